package accounts

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Usage outcomes: what the gateway answered a manifest request with.
const (
	UsagePull   = "pull"   // a GET of a manifest, served
	UsageCheck  = "check"  // a HEAD of a manifest, served (a client that has it already)
	UsageDenied = "denied" // refused: the token does not grant the repository's channel
)

// UsageAgents are the client families an event names (from the
// User-Agent, decided by the gateway).
var UsageAgents = []string{"docker", "containerd", "helm", "crane", "oras", "skopeo", "podman", "other"}

// MaxUsageBatch bounds the events stored in one RecordUsage.
const MaxUsageBatch = 1000

// UsageEvent is one manifest request the gateway served or refused.
type UsageEvent struct {
	// ID is the event's row, set when read back: with Time, the cursor
	// of a paged listing (UsageQuery.After).
	ID int64 `json:"id,omitzero"`
	// Time is when the gateway answered; stored to the millisecond.
	Time    time.Time `json:"time"`
	Account string    `json:"account"`
	// Repository is as the client named it; its first component is the
	// channel.
	Repository string `json:"repository"`
	// Channel is the repository's first component; filled in by
	// RecordUsage, ignored when given.
	Channel   string `json:"channel"`
	Reference string `json:"reference"`
	// Digest is the manifest served; "" when denied.
	Digest  string `json:"digest"`
	Outcome string `json:"outcome"`
	// Reason is why a denied request was refused; "" otherwise.
	Reason string `json:"reason"`
	// Client is the client's address prefix, "" when not recorded.
	Client string `json:"client"`
	Agent  string `json:"agent"`
}

// UsageFieldError names the field of an event that is not acceptable.
type UsageFieldError struct {
	// Index is the event's position in its batch.
	Index int
	Field string
	Msg   string
}

func (e *UsageFieldError) Error() string {
	return fmt.Sprintf("events[%d].%s: %s", e.Index, e.Field, e.Msg)
}

// Is makes a UsageFieldError an ErrInvalid.
func (e *UsageFieldError) Is(target error) bool { return target == ErrInvalid }

var (
	// The distribution grammar of a repository name and of a tag.
	repositoryRe = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*$`)
	tagRe        = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	digestRe     = regexp.MustCompile(`^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$`)
	reasonRe     = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
)

// Field bounds: generous for real values, small enough that a batch of
// MaxUsageBatch events stays small.
const (
	maxUsageAccount    = 320
	maxUsageRepository = 255
	maxUsageDigest     = 200
	// maxUsageFuture is how far ahead of our clock an event may be: clock
	// skew between hosts, not a time that would escape retention.
	maxUsageFuture = time.Hour
)

// ValidateUsage checks the events of one batch against the intake
// protocol and returns the first bad field (a *UsageFieldError), nil when
// all are acceptable. now bounds times in the future.
func ValidateUsage(events []UsageEvent, now time.Time) error {
	for i := range events {
		if field, msg := validateUsageEvent(&events[i], now); field != "" {
			return &UsageFieldError{Index: i, Field: field, Msg: msg}
		}
	}
	return nil
}

func validateUsageEvent(e *UsageEvent, now time.Time) (field, msg string) {
	switch {
	case e.Time.IsZero():
		return "time", "required (RFC 3339)"
	case e.Time.After(now.Add(maxUsageFuture)):
		return "time", "more than an hour ahead of the token service's clock"
	case e.Time.Year() < 2000:
		return "time", "before 2000"
	}
	if e.Account == "" {
		return "account", "required"
	}
	if len(e.Account) > maxUsageAccount || !printable(e.Account) {
		return "account", "not a printable name of at most 320 bytes"
	}
	if e.Repository == "" {
		return "repository", "required"
	}
	if len(e.Repository) > maxUsageRepository || !repositoryRe.MatchString(e.Repository) {
		return "repository", "not a repository name"
	}
	if e.Reference == "" {
		return "reference", "required"
	}
	if !tagRe.MatchString(e.Reference) && (len(e.Reference) > maxUsageDigest || !digestRe.MatchString(e.Reference)) {
		return "reference", "neither a tag nor a digest"
	}
	switch e.Outcome {
	case UsagePull, UsageCheck:
		if e.Reason != "" {
			return "reason", "only a denied request has a reason"
		}
		if e.Digest != "" && (len(e.Digest) > maxUsageDigest || !digestRe.MatchString(e.Digest)) {
			return "digest", "not a digest"
		}
	case UsageDenied:
		if e.Digest != "" {
			return "digest", "a denied request served no manifest: must be empty"
		}
		if !reasonRe.MatchString(e.Reason) {
			return "reason", "required for a denied request (e.g. channel_not_licensed)"
		}
	case "":
		return "outcome", "required (pull, check or denied)"
	default:
		return "outcome", "not one of pull, check, denied"
	}
	if e.Client != "" {
		p, err := netip.ParsePrefix(e.Client)
		if err != nil || p != p.Masked() {
			return "client", "not an address prefix such as 203.0.113.0/24"
		}
	}
	if !slices.Contains(UsageAgents, e.Agent) {
		return "agent", "not one of " + strings.Join(UsageAgents, ", ")
	}
	return "", ""
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// channelOf is a repository's channel: its first component.
func channelOf(repository string) string {
	ch, _, _ := strings.Cut(repository, "/")
	return ch
}

// usageDay is the rollup key of a time: its UTC day.
func usageDay(t time.Time) string { return t.UTC().Format(time.DateOnly) }

type rollupKey struct{ day, account, repository, channel, outcome string }

// RecordUsage stores a batch of events and adds them to the daily counts,
// all in one transaction: either every event is stored and counted, or
// none. Events that do not validate are refused (ErrInvalid, a
// *UsageFieldError) and nothing is stored.
func (db *DB) RecordUsage(ctx context.Context, events []UsageEvent) error {
	if len(events) > MaxUsageBatch {
		return invalidf("%d events in one batch, at most %d", len(events), MaxUsageBatch)
	}
	if err := ValidateUsage(events, db.clock()); err != nil {
		return err
	}
	if len(events) == 0 {
		return nil
	}
	counts := map[rollupKey]int64{}
	for i := range events {
		e := &events[i]
		e.Account = strings.ToLower(e.Account)
		e.Channel = channelOf(e.Repository)
		counts[rollupKey{usageDay(e.Time), e.Account, e.Repository, e.Channel, e.Outcome}]++
	}
	// Upserted in one order by every writer, so that two replicas storing
	// batches of the same keys at once wait for each other rather than
	// deadlock.
	keys := slices.SortedFunc(maps.Keys(counts), func(a, b rollupKey) int {
		return strings.Compare(a.day+"\x00"+a.account+"\x00"+a.repository+"\x00"+a.channel+"\x00"+a.outcome,
			b.day+"\x00"+b.account+"\x00"+b.repository+"\x00"+b.channel+"\x00"+b.outcome)
	})

	sqlTx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("accounts: usage: %w", err)
	}
	defer sqlTx.Rollback()
	t := tx{sqlTx, db.d}
	insert, err := sqlTx.PrepareContext(ctx, db.d.q(`INSERT INTO usage_events
(time, account, repository, channel, reference, digest, outcome, reason, client, agent)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`))
	if err != nil {
		return fmt.Errorf("accounts: usage: %w", err)
	}
	defer insert.Close()
	for _, e := range events {
		if _, err := insert.ExecContext(ctx, e.Time.UnixMilli(), e.Account, e.Repository, e.Channel, e.Reference, e.Digest, e.Outcome, e.Reason, e.Client, e.Agent); err != nil {
			return fmt.Errorf("accounts: usage: storing an event: %w", err)
		}
	}
	for _, k := range keys {
		if _, err := t.exec(ctx, `INSERT INTO usage_daily (day, account, repository, channel, outcome, count)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (day, account, repository, channel, outcome) DO UPDATE SET count = usage_daily.count + excluded.count`,
			k.day, k.account, k.repository, k.channel, k.outcome, counts[k]); err != nil {
			return fmt.Errorf("accounts: usage: daily count: %w", err)
		}
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("accounts: usage: %w", err)
	}
	return nil
}

// pruneChunk bounds the rows one DELETE removes, so that pruning a large
// backlog never holds a long lock against the intake.
const pruneChunk = 10_000

// PruneUsage deletes the raw events older than eventsBefore and the daily
// counts of days before rollupsBefore's day, and returns how many of each
// it deleted. Several replicas may run it at once: each DELETE removes
// what is still there.
func (db *DB) PruneUsage(ctx context.Context, eventsBefore, rollupsBefore time.Time) (events, rollups int64, err error) {
	for {
		res, err := db.db.ExecContext(ctx, db.d.q(`DELETE FROM usage_events WHERE id IN
(SELECT id FROM usage_events WHERE time < ? LIMIT ?)`), eventsBefore.UnixMilli(), pruneChunk)
		if err != nil {
			return events, rollups, fmt.Errorf("accounts: pruning usage events: %w", err)
		}
		n, _ := res.RowsAffected()
		events += n
		if n < pruneChunk {
			break
		}
	}
	res, err := db.db.ExecContext(ctx, db.d.q("DELETE FROM usage_daily WHERE day < ?"), usageDay(rollupsBefore))
	if err != nil {
		return events, rollups, fmt.Errorf("accounts: pruning daily usage: %w", err)
	}
	rollups, _ = res.RowsAffected()
	return events, rollups, nil
}

// UsageQuery selects events; zero fields select everything.
type UsageQuery struct {
	Account    string
	Channel    string
	Repository string
	Digest     string
	// Since and Until bound the time: Since <= time < Until.
	Since, Until time.Time
	// Outcomes selects by outcome; none: pull and check.
	Outcomes []string
	// Limit bounds the rows; 0: no bound.
	Limit int
	// After, when its ID is set, starts the listing after that event (the
	// last one of the previous page): keyset paging in the listing's
	// order.
	After UsageEvent
}

// Usage returns the events q selects, oldest first.
func (db *DB) Usage(ctx context.Context, q UsageQuery) ([]UsageEvent, error) {
	var where []string
	var args []any
	add := func(cond string, arg any) {
		where = append(where, cond)
		args = append(args, arg)
	}
	if q.Account != "" {
		add("account = ?", strings.ToLower(strings.TrimSpace(q.Account)))
	}
	if q.Channel != "" {
		add("channel = ?", q.Channel)
	}
	if q.Repository != "" {
		add("repository = ?", q.Repository)
	}
	if q.Digest != "" {
		add("digest = ?", q.Digest)
	}
	if !q.Since.IsZero() {
		add("time >= ?", q.Since.UnixMilli())
	}
	if !q.Until.IsZero() {
		add("time < ?", q.Until.UnixMilli())
	}
	if q.After.ID != 0 {
		ms := q.After.Time.UnixMilli()
		where = append(where, "(time > ? OR (time = ? AND id > ?))")
		args = append(args, ms, ms, q.After.ID)
	}
	outcomes := q.Outcomes
	if len(outcomes) == 0 {
		outcomes = []string{UsagePull, UsageCheck}
	}
	marks := make([]string, len(outcomes))
	for i, o := range outcomes {
		marks[i] = "?"
		args = append(args, o)
	}
	where = append(where, "outcome IN ("+strings.Join(marks, ", ")+")")
	query := `SELECT id, time, account, repository, channel, reference, digest, outcome, reason, client, agent
FROM usage_events WHERE ` + strings.Join(where, " AND ") + " ORDER BY time, id"
	if q.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	out := []UsageEvent{}
	err := db.read(ctx, func(t tx) error {
		rows, err := t.query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e UsageEvent
			var ms int64
			if err := rows.Scan(&e.ID, &ms, &e.Account, &e.Repository, &e.Channel, &e.Reference, &e.Digest, &e.Outcome, &e.Reason, &e.Client, &e.Agent); err != nil {
				return err
			}
			e.Time = time.UnixMilli(ms).UTC()
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("accounts: reading usage: %w", err)
	}
	return out, nil
}

// AccountUsage is what the usage store says about one account.
type AccountUsage struct {
	// FirstPull and LastPull are the first and last manifest GET kept;
	// zero: none.
	FirstPull time.Time `json:"first_pull,omitzero"`
	LastPull  time.Time `json:"last_pull,omitzero"`
	// LastCheck is the last manifest HEAD kept; zero: none.
	LastCheck time.Time `json:"last_check,omitzero"`
}

// AccountUsage returns the first and last pull and the last check of the
// account email from the raw events (kept for usage.retention) and, for
// the first pull, the daily counts (kept longer), whichever is earlier.
func (db *DB) AccountUsage(ctx context.Context, email string) (AccountUsage, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	var u AccountUsage
	err := db.read(ctx, func(t tx) error {
		var first, last, check sql.NullInt64
		if err := t.queryRow(ctx, "SELECT MIN(time), MAX(time) FROM usage_events WHERE account = ? AND outcome = ?", email, UsagePull).Scan(&first, &last); err != nil {
			return err
		}
		if err := t.queryRow(ctx, "SELECT MAX(time) FROM usage_events WHERE account = ? AND outcome = ?", email, UsageCheck).Scan(&check); err != nil {
			return err
		}
		var day sql.NullString
		if err := t.queryRow(ctx, "SELECT MIN(day) FROM usage_daily WHERE account = ? AND outcome = ?", email, UsagePull).Scan(&day); err != nil {
			return err
		}
		ms := func(v sql.NullInt64) time.Time {
			if !v.Valid {
				return time.Time{}
			}
			return time.UnixMilli(v.Int64).UTC()
		}
		u = AccountUsage{FirstPull: ms(first), LastPull: ms(last), LastCheck: ms(check)}
		// Raw events of the first days may be gone: the daily counts
		// remember the day of the first pull for longer.
		if day.Valid {
			d, err := time.Parse(time.DateOnly, day.String)
			if err == nil && (u.FirstPull.IsZero() || d.Before(time.Date(u.FirstPull.Year(), u.FirstPull.Month(), u.FirstPull.Day(), 0, 0, 0, 0, time.UTC))) {
				u.FirstPull = d
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return AccountUsage{}, fmt.Errorf("accounts: reading usage: %w", err)
	}
	return u, nil
}

// DailyCount is one day's count of one outcome, from the daily counts.
type DailyCount struct {
	// Day is the UTC day, YYYY-MM-DD.
	Day     string `json:"day"`
	Outcome string `json:"outcome"`
	Count   int64  `json:"count"`
}

// DailyUsage returns the daily counts by day and outcome from since's day
// on, of the account email ("": of every account), by day: the console's
// charts.
func (db *DB) DailyUsage(ctx context.Context, email string, since time.Time) ([]DailyCount, error) {
	query := "SELECT day, outcome, SUM(count) FROM usage_daily WHERE day >= ?"
	args := []any{usageDay(since)}
	if email != "" {
		query += " AND account = ?"
		args = append(args, strings.ToLower(strings.TrimSpace(email)))
	}
	query += " GROUP BY day, outcome ORDER BY day, outcome"
	out := []DailyCount{}
	err := db.read(ctx, func(t tx) error {
		rows, err := t.query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c DailyCount
			if err := rows.Scan(&c.Day, &c.Outcome, &c.Count); err != nil {
				return err
			}
			out = append(out, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("accounts: reading daily usage: %w", err)
	}
	return out, nil
}

// UsageTotal is the daily counts of one account, repository and outcome
// summed over days.
type UsageTotal struct {
	Account    string `json:"account"`
	Repository string `json:"repository"`
	Channel    string `json:"channel"`
	Outcome    string `json:"outcome"`
	Count      int64  `json:"count"`
}

// UsageTotals returns the daily counts from since's day on, summed by
// account, repository and outcome: the console dashboard's top lists. They
// come from the same counts as DailyUsage, so that they agree with its
// chart, cover days whose raw events are pruned already, and cost one row
// per account and repository however many pulls there were (the raw
// events of a busy month are hundreds of thousands of rows).
func (db *DB) UsageTotals(ctx context.Context, since time.Time) ([]UsageTotal, error) {
	out := []UsageTotal{}
	err := db.read(ctx, func(t tx) error {
		rows, err := t.query(ctx, `SELECT account, repository, channel, outcome, SUM(count) FROM usage_daily
WHERE day >= ? GROUP BY account, repository, channel, outcome ORDER BY account, repository, outcome`, usageDay(since))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var u UsageTotal
			if err := rows.Scan(&u.Account, &u.Repository, &u.Channel, &u.Outcome, &u.Count); err != nil {
				return err
			}
			out = append(out, u)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("accounts: reading usage totals: %w", err)
	}
	return out, nil
}
