package accounts

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// maxDescriptionLen bounds a channel's description, in characters.
const maxDescriptionLen = 200

// Channel is a row of the channel catalogue: a grant can only name one.
type Channel struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Created     time.Time `json:"created"`
	// Accounts counts the accounts holding it.
	Accounts int `json:"accounts"`
}

// GrantOption changes how Add and Grant treat the channels they name.
type GrantOption struct{ create bool }

// CreateChannels makes Add and Grant create the channels the catalogue
// lacks, in the same transaction, instead of refusing them.
func CreateChannels() GrantOption { return GrantOption{create: true} }

func creating(opts []GrantOption) bool {
	for _, o := range opts {
		if o.create {
			return true
		}
	}
	return false
}

// UnknownChannelError refuses channels that are not in the catalogue,
// naming the known ones and, for a near miss, the one most likely meant.
// It is an ErrNotFound.
type UnknownChannelError struct {
	// Unknown are the channels refused; Suggest[i] is the nearest known
	// name to Unknown[i], "" when none is close.
	Unknown, Suggest []string
	// Known is the catalogue, by name.
	Known []string
}

// maxKnownShown bounds how many known channels a refusal lists.
const maxKnownShown = 20

func (e *UnknownChannelError) Error() string {
	var b strings.Builder
	for i, u := range e.Unknown {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "unknown channel %q", u)
		if e.Suggest[i] != "" {
			fmt.Fprintf(&b, "; did you mean %q?", e.Suggest[i])
		}
	}
	switch {
	case len(e.Known) == 0:
		b.WriteString(" (there are no channels yet)")
	case len(e.Known) > maxKnownShown:
		fmt.Fprintf(&b, " (known channels: %s and %d more)", strings.Join(e.Known[:maxKnownShown], ", "), len(e.Known)-maxKnownShown)
	default:
		fmt.Fprintf(&b, " (known channels: %s)", strings.Join(e.Known, ", "))
	}
	return b.String()
}

// Is makes it an ErrNotFound.
func (e *UnknownChannelError) Is(target error) bool { return target == ErrNotFound }

// suggest returns the known name nearest to name by edit distance, when it
// is close enough to be a typo of it: one edit for names of up to four
// characters, two for longer ones.
func suggest(name string, known []string) string {
	limit := 2
	if utf8.RuneCountInString(name) <= 4 {
		limit = 1
	}
	best, bestDist := "", limit+1
	for _, k := range known {
		if d := editDistance(name, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b:
// Levenshtein's insertions, deletions and substitutions, plus the swap of
// two adjacent characters ("stabel" is one edit from "stable").
func editDistance(a, b string) int {
	s, t := []rune(a), []rune(b)
	// Three rows of the dynamic programme: two back, one back, this one.
	prev2 := make([]int, len(t)+1)
	prev := make([]int, len(t)+1)
	cur := make([]int, len(t)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(s); i++ {
		cur[0] = i
		for j := 1; j <= len(t); j++ {
			cost := 1
			if s[i-1] == t[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && s[i-1] == t[j-2] && s[i-2] == t[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(t)]
}

// NormalizeDescription checks a channel's description and returns it
// trimmed.
func NormalizeDescription(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return "", invalidf("a channel description is one line of text, without control characters")
	}
	if n := utf8.RuneCountInString(s); n > maxDescriptionLen {
		return "", invalidf("the channel description has %d characters, more than %d", n, maxDescriptionLen)
	}
	return s, nil
}

// catalogue returns the names of the channel catalogue, sorted.
func catalogue(ctx context.Context, t tx) ([]string, error) {
	rows, err := t.query(ctx, "SELECT name FROM channels ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("accounts: channels: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("accounts: channels: %w", err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("accounts: channels: %w", err)
	}
	return out, nil
}

// knownChannels makes sure channels (normalized) are in the catalogue:
// with create, it adds those that are not, each with an audit row naming
// why (cause: "add alice@example.com"); else it refuses them all with an
// *UnknownChannelError. It returns the channels it created.
func (db *DB) knownChannels(ctx context.Context, t tx, actor, cause string, channels []string, create bool) ([]string, error) {
	known, err := catalogue(ctx, t)
	if err != nil {
		return nil, err
	}
	var unknown []string
	for _, ch := range channels {
		if _, found := slices.BinarySearch(known, ch); !found {
			unknown = append(unknown, ch)
		}
	}
	if len(unknown) == 0 {
		return nil, nil
	}
	if !create {
		e := &UnknownChannelError{Unknown: unknown, Known: known, Suggest: make([]string, len(unknown))}
		for i, u := range unknown {
			e.Suggest[i] = suggest(u, known)
		}
		return nil, e
	}
	now := db.clock().Unix()
	for _, ch := range unknown {
		if err := insertChannel(ctx, t, ch, "", now); err != nil {
			return nil, err
		}
		if _, err := t.exec(ctx, insertAudit, now, actor, "channel.add", "", "channel="+ch+" (created by "+cause+")"); err != nil {
			return nil, fmt.Errorf("accounts: audit: %w", err)
		}
	}
	return unknown, nil
}

// insertChannel adds a channel unless it exists (a concurrent --create of
// the same name is not an error).
func insertChannel(ctx context.Context, t tx, name, description string, now int64) error {
	if _, err := t.exec(ctx, "INSERT INTO channels (name, description, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
		name, description, now); err != nil {
		return fmt.Errorf("accounts: creating channel %s: %w", name, err)
	}
	return nil
}

// Channels returns the channel catalogue by name, with how many accounts
// hold each channel.
func (db *DB) Channels(ctx context.Context) ([]Channel, error) {
	var out []Channel
	err := db.read(ctx, func(t tx) error {
		rows, err := t.query(ctx, `SELECT c.name, c.description, c.created_at,
    (SELECT COUNT(*) FROM channel_grants g WHERE g.channel = c.name)
FROM channels c ORDER BY c.name`)
		if err != nil {
			return fmt.Errorf("accounts: channels: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var c Channel
			var created int64
			if err := rows.Scan(&c.Name, &c.Description, &created, &c.Accounts); err != nil {
				return fmt.Errorf("accounts: channels: %w", err)
			}
			c.Created = time.Unix(created, 0).UTC()
			out = append(out, c)
		}
		return rows.Err()
	})
	return out, err
}

// AddChannel adds a channel to the catalogue.
func (db *DB) AddChannel(ctx context.Context, actor, name, description string) (Channel, error) {
	names, err := NormalizeChannels([]string{name})
	if err != nil {
		return Channel{}, err
	}
	name = names[0]
	if description, err = NormalizeDescription(description); err != nil {
		return Channel{}, err
	}
	now := db.clock()
	detail := "channel=" + name
	if description != "" {
		detail += " description=" + strconv.Quote(description)
	}
	err = db.change(ctx, actor, "channel.add", "", func(t tx) (string, error) {
		res, err := t.exec(ctx, "INSERT INTO channels (name, description, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
			name, description, now.Unix())
		if err != nil {
			return "", fmt.Errorf("accounts: creating channel %s: %w", name, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return "", fmt.Errorf("accounts: creating channel %s: %w", name, err)
		} else if n == 0 {
			return "", conflictf("channel %s exists already", name)
		}
		return detail, nil
	})
	if err != nil {
		return Channel{}, err
	}
	return Channel{Name: name, Description: description, Created: now.UTC().Truncate(time.Second)}, nil
}

// RemoveChannel removes a channel from the catalogue. A channel some
// accounts still hold is refused, naming them, unless force: then it is
// taken from them in the same transaction, with an ungrant in each one's
// audit, and their e-mail addresses are returned.
func (db *DB) RemoveChannel(ctx context.Context, actor, name string, force bool) ([]string, error) {
	names, err := NormalizeChannels([]string{name})
	if err != nil {
		return nil, err
	}
	name = names[0]
	var holders []string
	err = db.change(ctx, actor, "channel.remove", "", func(t tx) (string, error) {
		var created int64
		err := t.queryRow(ctx, "SELECT created_at FROM channels WHERE name = ?", name).Scan(&created)
		if errors.Is(err, sql.ErrNoRows) {
			known, err := catalogue(ctx, t)
			if err != nil {
				return "", err
			}
			return "", &UnknownChannelError{Unknown: []string{name}, Suggest: []string{suggest(name, known)}, Known: known}
		}
		if err != nil {
			return "", fmt.Errorf("accounts: %w", err)
		}
		if holders, err = channelHolders(ctx, t, name); err != nil {
			return "", err
		}
		if len(holders) > 0 && !force {
			return "", conflictf("channel %s is granted to %s: ungrant it first, or force its removal to take it from them", name, accountList(holders))
		}
		now := db.clock().Unix()
		for _, email := range holders {
			if _, err := t.exec(ctx, insertAudit, now, actor, "ungrant", email, "channels="+name+" (channel removed)"); err != nil {
				return "", fmt.Errorf("accounts: audit: %w", err)
			}
		}
		if _, err := t.exec(ctx, "DELETE FROM channel_grants WHERE channel = ?", name); err != nil {
			return "", fmt.Errorf("accounts: %w", err)
		}
		if _, err := t.exec(ctx, "DELETE FROM channels WHERE name = ?", name); err != nil {
			return "", fmt.Errorf("accounts: %w", err)
		}
		if len(holders) > 0 {
			return fmt.Sprintf("channel=%s forced, taken from %d accounts", name, len(holders)), nil
		}
		return "channel=" + name, nil
	})
	if err != nil {
		return nil, err
	}
	return holders, nil
}

// channelHolders returns the e-mail addresses of the accounts holding
// channel, sorted.
func channelHolders(ctx context.Context, t tx, channel string) ([]string, error) {
	rows, err := t.query(ctx, "SELECT a.email FROM channel_grants g JOIN accounts a ON a.id = g.account_id WHERE g.channel = ? ORDER BY a.email", channel)
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var e string
		if err := rows.Scan(&e); err != nil {
			return nil, fmt.Errorf("accounts: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	return out, nil
}

// accountList names accounts in a message: a count, and the first few.
func accountList(emails []string) string {
	const shown = 5
	noun := "accounts"
	if len(emails) == 1 {
		noun = "account"
	}
	if len(emails) <= shown {
		return fmt.Sprintf("%d %s (%s)", len(emails), noun, strings.Join(emails, ", "))
	}
	return fmt.Sprintf("%d %s (%s, …)", len(emails), noun, strings.Join(emails[:shown], ", "))
}
