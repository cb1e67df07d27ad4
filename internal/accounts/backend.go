package accounts

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acme/registry-gateway/internal/license"
)

// maxTokenLen matches the licence package's bound on what is hashed.
const maxTokenLen = 4096

// BackendOptions configure a Backend; zero values take Config's.
type BackendOptions struct {
	// RevocationPoll and LastUsedFlush: see Config.
	RevocationPoll time.Duration
	LastUsedFlush  time.Duration
	// Logger receives poll and flush failures; default slog.Default().
	Logger *slog.Logger
}

// Backend serves logins from the database: license.Backend for the token
// service's cache, license.Versioned so that the cache drops answers the
// moment an admin change is seen, license.Prober so that readiness follows
// the database with no login traffic.
type Backend struct {
	db         *DB
	lookup     string
	hasAccount string
	poll       time.Duration
	flush      time.Duration
	log        *slog.Logger
	running    atomic.Bool
	version    atomic.Uint64
	// lastPoll is when the last successful poll started, as time since
	// base (monotonic: staleness is a matter of real time, not of the
	// injected clock that decides expiry); 0: none yet.
	base     time.Time
	lastPoll atomic.Int64

	// Poll bookkeeping, owned by Run.
	seen     int64
	pollFail bool

	mu   sync.Mutex
	used map[int64]int64 // token id → last use, Unix seconds
}

var (
	_ license.Backend   = (*Backend)(nil)
	_ license.Versioned = (*Backend)(nil)
	_ license.Prober    = (*Backend)(nil)

	_ license.AccountFinder = (*Backend)(nil)
)

// NewBackend returns the login side of db. Call Run to poll the change
// counter: until it has, Version reports nothing cached as usable.
func (db *DB) NewBackend(opts BackendOptions) *Backend {
	if opts.RevocationPoll <= 0 {
		opts.RevocationPoll = DefaultRevocationPoll
	}
	if opts.LastUsedFlush <= 0 {
		opts.LastUsedFlush = DefaultLastUsedFlush
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Backend{
		db: db,
		// One indexed query a look-up: the token hash is unique, and the
		// grants come along as rows of the same answer.
		lookup: db.d.q(`SELECT a.email, a.state, a.expires_at, t.id, t.token_sha256, t.revoked_at, g.channel, g.expires_at
FROM api_tokens t
JOIN accounts a ON a.id = t.account_id
LEFT JOIN channel_grants g ON g.account_id = a.id
WHERE t.token_sha256 = ?`),
		hasAccount: db.d.q("SELECT COUNT(*) FROM accounts WHERE email = ?"),
		poll:       opts.RevocationPoll,
		flush:      opts.LastUsedFlush,
		log:        opts.Logger,
		used:       make(map[int64]int64),
		base:       time.Now(),
	}
}

// Probe implements license.Prober: the database answers. The cache's
// Monitor calls it while look-ups fail, so a database that comes back makes
// the replica ready again by itself.
func (b *Backend) Probe(ctx context.Context) error { return b.db.Ping(ctx) }

// BackendName labels the licence backend metrics.
func (b *Backend) BackendName() string { return "sql" }

// Lookup implements license.Backend: the licence of the token's account,
// with the owner's e-mail as Account. The username is not checked here: the
// cache compares it with Account for every answer, cached or not.
//
// A refusal says why, for the log: a token not in the database, or revoked,
// is wrong_token (the cache makes it unknown_account when the username has
// no account either: HasAccount); a token of a disabled account is
// disabled, of an account past its expiry expired. The account's state is
// reported before the token's: it is what the customer has to have fixed.
func (b *Backend) Lookup(ctx context.Context, token string) (license.License, error) {
	if token == "" || len(token) > maxTokenLen {
		return license.License{}, license.BadCredentials(license.ReasonMalformed)
	}
	hash := hashToken(token)
	rows, err := b.db.db.QueryContext(ctx, b.lookup, hash)
	if err != nil {
		return license.License{}, fmt.Errorf("%w: %w", license.ErrUnavailable, err)
	}
	defer rows.Close()
	var (
		found            bool
		email, state     string
		stored           string
		expires, revoked sql.NullInt64
		tokenID          int64
		channels         []string
	)
	now := b.db.clock()
	for rows.Next() {
		var ch sql.NullString
		var chExpires sql.NullInt64
		if err := rows.Scan(&email, &state, &expires, &tokenID, &stored, &revoked, &ch, &chExpires); err != nil {
			return license.License{}, fmt.Errorf("%w: %w", license.ErrUnavailable, err)
		}
		found = true
		// A grant past its own expiry grants nothing.
		if ch.Valid && (!chExpires.Valid || now.Unix() < chExpires.Int64) {
			channels = append(channels, ch.String)
		}
	}
	if err := rows.Err(); err != nil {
		return license.License{}, fmt.Errorf("%w: %w", license.ErrUnavailable, err)
	}
	switch {
	case !found,
		// The index found it; the comparison keeps a collation or
		// encoding quirk of a database from matching another hash.
		subtle.ConstantTimeCompare([]byte(stored), []byte(hash)) != 1:
		return license.License{}, license.BadCredentials(license.ReasonWrongToken)
	case state != StateActive:
		return license.License{}, license.BadCredentials(license.ReasonDisabled)
	case expires.Valid && now.Unix() >= expires.Int64:
		return license.License{}, license.BadCredentials(license.ReasonExpired)
	case revoked.Valid:
		// Usually the token a rotation replaced: not the account's any
		// more, like a wrong one.
		return license.License{}, license.BadCredentials(license.ReasonWrongToken)
	}
	b.mu.Lock()
	b.used[tokenID] = now.Unix()
	b.mu.Unlock()
	slices.Sort(channels)
	return license.License{Account: email, Channels: slices.Compact(channels), ExpiresAt: unix(expires)}, nil
}

// HasAccount implements license.AccountFinder: whether an account (in any
// state) has the e-mail address username, compared case-insensitively (the
// store keeps addresses lower case). The cache asks it only for a refused
// login, to log unknown_account rather than wrong_token.
func (b *Backend) HasAccount(ctx context.Context, username string) (bool, error) {
	if username == "" || len(username) > maxEmailLen {
		return false, nil // no account can have it
	}
	var n int
	if err := b.db.db.QueryRowContext(ctx, b.hasAccount, strings.ToLower(username)).Scan(&n); err != nil {
		return false, fmt.Errorf("%w: %w", license.ErrUnavailable, err)
	}
	return n > 0, nil
}

// Version implements license.Versioned: it changes whenever a poll sees an
// admin change (or the first poll after failed ones), and is not usable when
// no poll succeeded within two intervals, so that a replica that cannot
// read the counter does not go on serving what may have been revoked.
func (b *Backend) Version() (uint64, bool) {
	last := b.lastPoll.Load()
	if last == 0 || time.Since(b.base)-time.Duration(last) > 2*b.poll {
		return 0, false
	}
	return b.version.Load(), true
}

// Run polls the change counter and writes recorded token use until ctx
// ends, then writes what is left. Only one Run may be active at a time.
func (b *Backend) Run(ctx context.Context) error {
	if !b.running.CompareAndSwap(false, true) {
		return errors.New("accounts: Backend.Run is already running")
	}
	defer b.running.Store(false)
	b.pollOnce(ctx)
	poll := time.NewTicker(b.poll)
	defer poll.Stop()
	flush := time.NewTicker(b.flush)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			b.FlushLastUsed(final)
			return nil
		case <-poll.C:
			b.pollOnce(ctx)
		case <-flush.C:
			b.FlushLastUsed(ctx)
		}
	}
}

func (b *Backend) pollOnce(ctx context.Context) {
	start := time.Since(b.base)
	ctx, cancel := context.WithTimeout(ctx, 2*b.poll)
	defer cancel()
	var v int64
	err := b.db.db.QueryRowContext(ctx, "SELECT value FROM revision WHERE id = 1").Scan(&v)
	if err != nil {
		if ctx.Err() == nil || !errors.Is(err, context.Canceled) {
			if !b.pollFail {
				b.log.Error("accounts database: change counter unreadable; cached licences are not served until it is", slog.Any("error", err))
			}
			b.pollFail = true
		}
		return
	}
	if b.pollFail || v != b.seen || b.lastPoll.Load() == 0 {
		if b.pollFail {
			b.log.Info("accounts database: change counter readable again")
		}
		b.version.Add(1)
	}
	b.seen, b.pollFail = v, false
	b.lastPoll.Store(int64(max(start, 1)))
}

// FlushLastUsed writes the token use recorded since the last flush, in one
// transaction. On failure the uses are kept for the next flush.
func (b *Backend) FlushLastUsed(ctx context.Context) {
	b.mu.Lock()
	used := b.used
	b.used = make(map[int64]int64)
	b.mu.Unlock()
	if len(used) == 0 {
		return
	}
	err := b.writeLastUsed(ctx, used)
	if err == nil {
		return
	}
	b.log.Warn("accounts database: last_used not written; retrying at the next flush", slog.Int("tokens", len(used)), slog.Any("error", err))
	b.mu.Lock()
	for id, at := range used {
		if at > b.used[id] {
			b.used[id] = at
		}
	}
	b.mu.Unlock()
}

func (b *Backend) writeLastUsed(ctx context.Context, used map[int64]int64) error {
	sqlTx, err := b.db.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer sqlTx.Rollback()
	t := tx{sqlTx, b.db.d}
	for _, id := range slices.Sorted(maps.Keys(used)) { // one lock order for every replica
		at := used[id]
		if _, err := t.exec(ctx, "UPDATE api_tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)", at, id, at); err != nil {
			return err
		}
	}
	return sqlTx.Commit()
}
