package accounts_test

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
)

var usageNow = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

const usageDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func usageEvent(at time.Time, account, repo, outcome string) accounts.UsageEvent {
	e := accounts.UsageEvent{Time: at, Account: account, Repository: repo, Reference: "1.4", Digest: usageDigest,
		Outcome: outcome, Client: "203.0.113.0/24", Agent: "docker"}
	if outcome == accounts.UsageDenied {
		e.Digest, e.Reason = "", "channel_not_licensed"
	}
	return e
}

// dailyCounts reads usage_daily as "day account repository channel outcome count" lines.
func dailyCounts(t *testing.T, cfg *accounts.Config) []string {
	t.Helper()
	rows, err := rawDB(t, cfg).QueryContext(t.Context(), "SELECT day, account, repository, channel, outcome, count FROM usage_daily ORDER BY day, account, repository, outcome")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var day, account, repo, channel, outcome string
		var n int64
		if err := rows.Scan(&day, &account, &repo, &channel, &outcome, &n); err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.Join([]string{day, account, repo, channel, outcome, strconv.FormatInt(n, 10)}, " "))
	}
	return out
}

// A batch is stored with its daily counts in one transaction; a second
// batch adds to the counts; the events read back as stored.
func TestRecordUsage(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		db := accountstest.Open(t, cfg, accounts.Options{Clock: func() time.Time { return usageNow }})
		ctx := t.Context()
		day1 := time.Date(2026, 12, 6, 23, 59, 59, 123e6, time.UTC)
		day2 := day1.Add(2 * time.Second)
		if err := db.RecordUsage(ctx, []accounts.UsageEvent{
			usageEvent(day1, "Alice@Example.com", "stable/app", accounts.UsagePull),
			usageEvent(day1, "alice@example.com", "stable/app", accounts.UsagePull),
			usageEvent(day2, "alice@example.com", "stable/app", accounts.UsageCheck),
			usageEvent(day2, "bob@example.com", "stable/app", accounts.UsageDenied),
		}); err != nil {
			t.Fatal(err)
		}
		if err := db.RecordUsage(ctx, []accounts.UsageEvent{usageEvent(day2, "alice@example.com", "stable/app", accounts.UsageCheck)}); err != nil {
			t.Fatal(err)
		}
		if err := db.RecordUsage(ctx, nil); err != nil {
			t.Fatalf("empty batch: %v", err)
		}
		want := []string{
			"2026-12-06 alice@example.com stable/app stable pull 2",
			"2026-12-07 alice@example.com stable/app stable check 2",
			"2026-12-07 bob@example.com stable/app stable denied 1",
		}
		if got := dailyCounts(t, cfg); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("daily counts:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		events, err := db.Usage(ctx, accounts.UsageQuery{})
		if err != nil || len(events) != 4 {
			t.Fatalf("usage: %v %+v", err, events)
		}
		if e := events[0]; !e.Time.Equal(day1) || e.Account != "alice@example.com" || e.Channel != "stable" || e.Digest != usageDigest || e.Client != "203.0.113.0/24" || e.Agent != "docker" {
			t.Errorf("first event %+v", e)
		}
		denied, err := db.Usage(ctx, accounts.UsageQuery{Outcomes: []string{accounts.UsageDenied}})
		if err != nil || len(denied) != 1 || denied[0].Reason != "channel_not_licensed" || denied[0].Account != "bob@example.com" {
			t.Errorf("denied: %v %+v", err, denied)
		}
		if limited, err := db.Usage(ctx, accounts.UsageQuery{Limit: 1}); err != nil || len(limited) != 1 {
			t.Errorf("limit: %v %+v", err, limited)
		}
		// Pages of two, each after the last event of the one before: the
		// whole listing, in order, once (two events share a time).
		var paged []accounts.UsageEvent
		q := accounts.UsageQuery{Limit: 2, Outcomes: []string{accounts.UsagePull, accounts.UsageCheck, accounts.UsageDenied}}
		for range 5 {
			page, err := db.Usage(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			paged = append(paged, page...)
			q.After = page[len(page)-1]
		}
		all, _ := db.Usage(ctx, accounts.UsageQuery{Outcomes: q.Outcomes})
		if len(paged) != 5 || len(all) != 5 {
			t.Fatalf("paged %d events, listed %d, want 5", len(paged), len(all))
		}
		for i := range all {
			if paged[i].ID != all[i].ID || paged[i].ID == 0 {
				t.Errorf("page order: %d: %d, want %d", i, paged[i].ID, all[i].ID)
			}
		}

		u, err := db.AccountUsage(ctx, "ALICE@example.com")
		if err != nil || !u.FirstPull.Equal(day1) || !u.LastPull.Equal(day1) || !u.LastCheck.Equal(day2) {
			t.Errorf("account usage %+v %v", u, err)
		}
		if u, err := db.AccountUsage(ctx, "nobody@example.com"); err != nil || !u.FirstPull.IsZero() || !u.LastPull.IsZero() || !u.LastCheck.IsZero() {
			t.Errorf("account without usage %+v %v", u, err)
		}
	})
}

// Every bad field is refused with its name and the event's index, and
// nothing of the batch is stored.
func TestRecordUsageRefusesBadEvents(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		db := accountstest.Open(t, cfg, accounts.Options{Clock: func() time.Time { return usageNow }})
		good := usageEvent(usageNow.Add(-time.Minute), "alice@example.com", "stable/app", accounts.UsagePull)
		for _, tc := range []struct {
			field  string
			mutate func(*accounts.UsageEvent)
		}{
			{"time", func(e *accounts.UsageEvent) { e.Time = time.Time{} }},
			{"time", func(e *accounts.UsageEvent) { e.Time = usageNow.Add(2 * time.Hour) }},
			{"account", func(e *accounts.UsageEvent) { e.Account = "" }},
			{"account", func(e *accounts.UsageEvent) { e.Account = "a\nb" }},
			{"account", func(e *accounts.UsageEvent) { e.Account = strings.Repeat("a", 321) }},
			{"repository", func(e *accounts.UsageEvent) { e.Repository = "" }},
			{"repository", func(e *accounts.UsageEvent) { e.Repository = "Stable/App" }},
			{"repository", func(e *accounts.UsageEvent) { e.Repository = "stable//app" }},
			{"reference", func(e *accounts.UsageEvent) { e.Reference = "" }},
			{"reference", func(e *accounts.UsageEvent) { e.Reference = "-bad" }},
			{"digest", func(e *accounts.UsageEvent) { e.Digest = "sha256:short" }},
			{"outcome", func(e *accounts.UsageEvent) { e.Outcome = "" }},
			{"outcome", func(e *accounts.UsageEvent) { e.Outcome = "push" }},
			{"reason", func(e *accounts.UsageEvent) { e.Reason = "channel_not_licensed" }},
			{"reason", func(e *accounts.UsageEvent) { e.Outcome, e.Digest = accounts.UsageDenied, "" }},
			{"reason", func(e *accounts.UsageEvent) { e.Outcome, e.Digest, e.Reason = accounts.UsageDenied, "", "Not Licensed" }},
			{"digest", func(e *accounts.UsageEvent) { e.Outcome, e.Reason = accounts.UsageDenied, "channel_not_licensed" }},
			{"client", func(e *accounts.UsageEvent) { e.Client = "203.0.113.7/24" }},
			{"client", func(e *accounts.UsageEvent) { e.Client = "somewhere" }},
			{"agent", func(e *accounts.UsageEvent) { e.Agent = "" }},
			{"agent", func(e *accounts.UsageEvent) { e.Agent = "curl" }},
		} {
			bad := good
			tc.mutate(&bad)
			err := db.RecordUsage(t.Context(), []accounts.UsageEvent{good, bad})
			var fe *accounts.UsageFieldError
			if !errors.As(err, &fe) || fe.Index != 1 || fe.Field != tc.field || !errors.Is(err, accounts.ErrInvalid) {
				t.Errorf("%s (%+v): %v", tc.field, bad, err)
			}
		}
		// Valid edge values: a digest reference, an IPv6 prefix, no client,
		// no digest for a served request, a repository of one component.
		edge := good
		edge.Reference, edge.Client, edge.Repository = usageDigest, "2001:db8::/48", "stable"
		noClient := good
		noClient.Client, noClient.Digest = "", ""
		if err := db.RecordUsage(t.Context(), []accounts.UsageEvent{edge, noClient}); err != nil {
			t.Errorf("valid edge values refused: %v", err)
		}
		if events, err := db.Usage(t.Context(), accounts.UsageQuery{}); err != nil || len(events) != 2 {
			t.Errorf("a refused batch stored something: %v %d events", err, len(events))
		}
		many := make([]accounts.UsageEvent, accounts.MaxUsageBatch+1)
		for i := range many {
			many[i] = good
		}
		if err := db.RecordUsage(t.Context(), many); !errors.Is(err, accounts.ErrInvalid) {
			t.Errorf("batch over %d: %v", accounts.MaxUsageBatch, err)
		}
	})
}

// Replicas storing batches of the same keys at once: every count adds up.
func TestRecordUsageConcurrent(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		db := accountstest.Open(t, cfg, accounts.Options{Clock: func() time.Time { return usageNow }})
		other := accountstest.Open(t, cfg, accounts.Options{Clock: func() time.Time { return usageNow }})
		at := usageNow.Add(-time.Hour)
		batch := []accounts.UsageEvent{
			usageEvent(at, "alice@example.com", "stable/app", accounts.UsagePull),
			usageEvent(at, "bob@example.com", "stable/app", accounts.UsagePull),
			usageEvent(at, "alice@example.com", "beta/app", accounts.UsageCheck),
		}
		var wg sync.WaitGroup
		for i := range 8 {
			d := db
			if i%2 == 1 {
				d = other
			}
			wg.Go(func() {
				for range 5 {
					if err := d.RecordUsage(t.Context(), append([]accounts.UsageEvent(nil), batch...)); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		got := dailyCounts(t, cfg)
		if len(got) != 3 {
			t.Fatalf("daily counts %q", got)
		}
		for _, line := range got {
			if !strings.HasSuffix(line, " 40") {
				t.Errorf("count %q, want 40", line)
			}
		}
	})
}

// Retention: raw events older than the cut are deleted, the daily counts
// of days before theirs; the first pull survives in the daily counts.
func TestPruneUsage(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		db := accountstest.Open(t, cfg, accounts.Options{Clock: func() time.Time { return usageNow }})
		ctx := t.Context()
		old := usageNow.AddDate(0, 0, -100)
		recent := usageNow.AddDate(0, 0, -10)
		if err := db.RecordUsage(ctx, []accounts.UsageEvent{
			usageEvent(old, "alice@example.com", "stable/app", accounts.UsagePull),
			usageEvent(old.Add(time.Minute), "alice@example.com", "stable/app", accounts.UsageCheck),
			usageEvent(recent, "alice@example.com", "stable/app", accounts.UsagePull),
		}); err != nil {
			t.Fatal(err)
		}
		events, rollups, err := db.PruneUsage(ctx, usageNow.AddDate(0, 0, -90), usageNow.AddDate(-2, 0, 0))
		if err != nil || events != 2 || rollups != 0 {
			t.Fatalf("prune events: %d %d %v", events, rollups, err)
		}
		left, err := db.Usage(ctx, accounts.UsageQuery{})
		if err != nil || len(left) != 1 || !left[0].Time.Equal(recent) {
			t.Errorf("left: %v %+v", err, left)
		}
		u, err := db.AccountUsage(ctx, "alice@example.com")
		wantFirst := time.Date(old.Year(), old.Month(), old.Day(), 0, 0, 0, 0, time.UTC)
		if err != nil || !u.FirstPull.Equal(wantFirst) || !u.LastPull.Equal(recent) || !u.LastCheck.IsZero() {
			t.Errorf("account usage after pruning events: %+v %v", u, err)
		}
		// Again: nothing left to prune (as another replica finds it).
		if events, rollups, err := db.PruneUsage(ctx, usageNow.AddDate(0, 0, -90), usageNow.AddDate(-2, 0, 0)); err != nil || events != 0 || rollups != 0 {
			t.Errorf("second prune: %d %d %v", events, rollups, err)
		}
		// The daily counts of the old day go at their own cut.
		if _, rollups, err := db.PruneUsage(ctx, usageNow.AddDate(0, 0, -90), usageNow.AddDate(0, 0, -50)); err != nil || rollups != 2 {
			t.Errorf("prune daily counts: %d %v", rollups, err)
		}
		if got := dailyCounts(t, cfg); len(got) != 1 || !strings.Contains(got[0], "pull 1") {
			t.Errorf("daily counts left %q", got)
		}
	})
}

// UsageTotals sums the daily counts from since's day on by account,
// repository and outcome, also of days whose raw events are pruned.
func TestUsageTotals(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		db := accountstest.Open(t, cfg, accounts.Options{Clock: func() time.Time { return usageNow }})
		ctx := t.Context()
		day := func(n int) time.Time { return usageNow.AddDate(0, 0, -n) }
		if err := db.RecordUsage(ctx, []accounts.UsageEvent{
			usageEvent(day(40), "alice@example.com", "stable/app", accounts.UsagePull), // before since
			usageEvent(day(20), "alice@example.com", "stable/app", accounts.UsagePull),
			usageEvent(day(20), "Alice@example.com", "stable/app", accounts.UsagePull),
			usageEvent(day(3), "alice@example.com", "stable/app", accounts.UsagePull),
			usageEvent(day(3), "alice@example.com", "stable/app", accounts.UsageCheck),
			usageEvent(day(2), "bob@example.com", "beta/app", accounts.UsageDenied),
			usageEvent(day(0), "bob@example.com", "stable/app", accounts.UsageCheck),
		}); err != nil {
			t.Fatal(err)
		}
		// The raw events of day 20 go; their daily counts stay.
		if _, _, err := db.PruneUsage(ctx, day(10), day(100)); err != nil {
			t.Fatal(err)
		}
		got, err := db.UsageTotals(ctx, day(29))
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, u := range got {
			lines = append(lines, u.Account+" "+u.Repository+" "+u.Channel+" "+u.Outcome+" "+strconv.FormatInt(u.Count, 10))
		}
		want := []string{
			"alice@example.com stable/app stable check 1",
			"alice@example.com stable/app stable pull 3",
			"bob@example.com beta/app beta denied 1",
			"bob@example.com stable/app stable check 1",
		}
		if strings.Join(lines, "\n") != strings.Join(want, "\n") {
			t.Errorf("totals:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
		}
		if got, err := db.UsageTotals(ctx, day(-1)); err != nil || len(got) != 0 {
			t.Errorf("totals from tomorrow: %+v %v", got, err)
		}
	})
}
