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

	"github.com/acme/registry-gateway/internal/license"
)

// Account states.
const (
	StateActive   = "active"
	StateDisabled = "disabled"
)

// Account is an account as the admin commands show it.
type Account struct {
	Email    string    `json:"email"`
	State    string    `json:"state"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires,omitzero"`
	Channels []string  `json:"channels"`
	// ActiveTokens counts the tokens not revoked.
	ActiveTokens int `json:"active_tokens"`
	// SelfServiceTokens lets the customer create and revoke their own
	// API tokens in the console.
	SelfServiceTokens bool `json:"self_service_tokens"`
	// Tokens is filled by Show only.
	Tokens []Token `json:"tokens,omitempty"`

	id int64
}

// Token is an API token as listings show it: never the token itself.
type Token struct {
	ID int64 `json:"id"`
	// Prefix is the token's first characters; "" for a token imported as a
	// hash.
	Prefix   string    `json:"prefix"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitzero"`
	Revoked  time.Time `json:"revoked,omitzero"`
}

// AuditEntry is one row of the admin audit.
type AuditEntry struct {
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Account string    `json:"account,omitempty"`
	Detail  string    `json:"detail,omitempty"`
}

func unix(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.Unix(v.Int64, 0).UTC()
}

func nullUnix(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.Unix(), Valid: true}
}

// Add creates an account holding channels with one API token and returns
// the token: the only time it is seen. Channels not in the catalogue are
// refused (*UnknownChannelError), and nothing is changed, unless the
// option CreateChannels creates them.
func (db *DB) Add(ctx context.Context, actor, email string, channels []string, expires time.Time, opts ...GrantOption) (Account, string, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return Account{}, "", err
	}
	if channels, err = NormalizeChannels(channels); err != nil {
		return Account{}, "", err
	}
	now := db.clock()
	if !expires.IsZero() && !expires.After(now) {
		return Account{}, "", invalidf("expiry %s is in the past", expires.UTC().Format(time.RFC3339))
	}
	token, shown := newToken()
	acct := Account{Email: email, State: StateActive, Created: now.UTC().Truncate(time.Second), Expires: expires, Channels: channels, ActiveTokens: 1}
	detail := fmt.Sprintf("channels=%s expires=%s token=%s", strings.Join(channels, ","), expiryWords(expires), shown)
	err = db.change(ctx, actor, "add", email, func(t tx) (string, error) {
		if _, err := lookupAccount(ctx, t, email); err == nil {
			return "", conflictf("an account %s exists already", email)
		} else if !errors.Is(err, ErrNotFound) {
			return "", err
		}
		if _, err := db.knownChannels(ctx, t, actor, "add "+email, channels, creating(opts)); err != nil {
			return "", err
		}
		if err := t.queryRow(ctx, "INSERT INTO accounts (email, state, created_at, expires_at) VALUES (?, ?, ?, ?) RETURNING id",
			email, StateActive, now.Unix(), nullUnix(expires)).Scan(&acct.id); err != nil {
			return "", fmt.Errorf("accounts: %w", err)
		}
		if err := insertGrants(ctx, t, acct.id, channels, now); err != nil {
			return "", err
		}
		return detail, insertToken(ctx, t, acct.id, hashToken(token), shown, now)
	})
	if err != nil {
		return Account{}, "", err
	}
	return acct, token, nil
}

func expiryWords(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func insertGrants(ctx context.Context, t tx, id int64, channels []string, now time.Time) error {
	for _, ch := range channels {
		if _, err := t.exec(ctx, "INSERT INTO channel_grants (account_id, channel, granted_at) VALUES (?, ?, ?)", id, ch, now.Unix()); err != nil {
			return fmt.Errorf("accounts: grant %s: %w", ch, err)
		}
	}
	return nil
}

func insertToken(ctx context.Context, t tx, id int64, hash, shown string, now time.Time) error {
	if _, err := t.exec(ctx, "INSERT INTO api_tokens (account_id, token_sha256, prefix, created_at) VALUES (?, ?, ?, ?)",
		id, hash, shown, now.Unix()); err != nil {
		return fmt.Errorf("accounts: storing the token: %w", err)
	}
	return nil
}

// lookupAccount finds an account by (normalized) e-mail, without its
// channels and tokens.
func lookupAccount(ctx context.Context, t tx, email string) (Account, error) {
	var a Account
	var created int64
	var expires sql.NullInt64
	err := t.queryRow(ctx, "SELECT id, email, state, created_at, expires_at, self_service_tokens FROM accounts WHERE email = ?", email).
		Scan(&a.id, &a.Email, &a.State, &created, &expires, &a.SelfServiceTokens)
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, notFoundf("no account %s", email)
	}
	if err != nil {
		return Account{}, fmt.Errorf("accounts: %w", err)
	}
	a.Created, a.Expires = time.Unix(created, 0).UTC(), unix(expires)
	return a, nil
}

// findAccount normalizes email and looks the account up.
func findAccount(ctx context.Context, t tx, email string) (Account, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return Account{}, err
	}
	return lookupAccount(ctx, t, email)
}

func (a *Account) loadChannels(ctx context.Context, t tx) error {
	rows, err := t.query(ctx, "SELECT channel FROM channel_grants WHERE account_id = ? ORDER BY channel", a.id)
	if err != nil {
		return fmt.Errorf("accounts: %w", err)
	}
	defer rows.Close()
	a.Channels = []string{}
	for rows.Next() {
		var ch string
		if err := rows.Scan(&ch); err != nil {
			return fmt.Errorf("accounts: %w", err)
		}
		a.Channels = append(a.Channels, ch)
	}
	return rows.Err()
}

func (a *Account) loadTokens(ctx context.Context, t tx) error {
	rows, err := t.query(ctx, "SELECT id, prefix, created_at, last_used_at, revoked_at FROM api_tokens WHERE account_id = ? ORDER BY id", a.id)
	if err != nil {
		return fmt.Errorf("accounts: %w", err)
	}
	defer rows.Close()
	a.Tokens, a.ActiveTokens = nil, 0
	for rows.Next() {
		var tok Token
		var created int64
		var used, revoked sql.NullInt64
		if err := rows.Scan(&tok.ID, &tok.Prefix, &created, &used, &revoked); err != nil {
			return fmt.Errorf("accounts: %w", err)
		}
		tok.Created, tok.LastUsed, tok.Revoked = time.Unix(created, 0).UTC(), unix(used), unix(revoked)
		if tok.Revoked.IsZero() {
			a.ActiveTokens++
		}
		a.Tokens = append(a.Tokens, tok)
	}
	return rows.Err()
}

// List returns every account with its channels, by e-mail.
func (db *DB) List(ctx context.Context) ([]Account, error) {
	var out []Account
	err := db.read(ctx, func(t tx) error {
		var err error
		out, err = listAccounts(ctx, t, "ORDER BY a.email")
		return err
	})
	return out, err
}

// accountListQuery selects the accounts of a listing with their count of
// tokens in use; a listing adds its WHERE, ORDER BY and LIMIT.
const accountListQuery = `SELECT a.id, a.email, a.state, a.created_at, a.expires_at, a.self_service_tokens,
    (SELECT COUNT(*) FROM api_tokens k WHERE k.account_id = a.id AND k.revoked_at IS NULL)
FROM accounts a `

// listAccounts runs accountListQuery with rest and its args, and loads
// each account's channels.
func listAccounts(ctx context.Context, t tx, rest string, args ...any) ([]Account, error) {
	rows, err := t.query(ctx, accountListQuery+rest, args...)
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		var a Account
		var created int64
		var expires sql.NullInt64
		if err := rows.Scan(&a.id, &a.Email, &a.State, &created, &expires, &a.SelfServiceTokens, &a.ActiveTokens); err != nil {
			return nil, fmt.Errorf("accounts: %w", err)
		}
		a.Created, a.Expires = time.Unix(created, 0).UTC(), unix(expires)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	// Close before the channels are read: one transaction, one query at a
	// time on SQLite's single connection.
	rows.Close()
	for i := range out {
		if err := out[i].loadChannels(ctx, t); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Show returns one account with its channels and tokens.
func (db *DB) Show(ctx context.Context, email string) (Account, error) {
	var a Account
	err := db.read(ctx, func(t tx) error {
		var err error
		if a, err = findAccount(ctx, t, email); err != nil {
			return err
		}
		if err := a.loadChannels(ctx, t); err != nil {
			return err
		}
		return a.loadTokens(ctx, t)
	})
	return a, err
}

// Grant adds channels to an account; channels it holds already are left
// alone. Channels not in the catalogue are refused as by Add, unless the
// option CreateChannels creates them.
func (db *DB) Grant(ctx context.Context, actor, email string, channels []string, opts ...GrantOption) error {
	channels, err := NormalizeChannels(channels)
	if err != nil {
		return err
	}
	return db.onAccount(ctx, actor, "grant", email, func(t tx, a *Account) (string, error) {
		if _, err := db.knownChannels(ctx, t, actor, "grant "+a.Email, channels, creating(opts)); err != nil {
			return "", err
		}
		if err := a.loadChannels(ctx, t); err != nil {
			return "", err
		}
		var added []string
		for _, ch := range channels {
			if !slices.Contains(a.Channels, ch) {
				added = append(added, ch)
			}
		}
		return "channels=" + strings.Join(added, ","), insertGrants(ctx, t, a.id, added, db.clock())
	})
}

// Ungrant removes channels from an account. Naming a channel the account
// does not hold is an error (most likely a typo of one it holds).
func (db *DB) Ungrant(ctx context.Context, actor, email string, channels []string) error {
	channels, err := NormalizeChannels(channels)
	if err != nil {
		return err
	}
	return db.onAccount(ctx, actor, "ungrant", email, func(t tx, a *Account) (string, error) {
		if err := a.loadChannels(ctx, t); err != nil {
			return "", err
		}
		for _, ch := range channels {
			if !slices.Contains(a.Channels, ch) {
				return "", notFoundf("%s does not hold channel %s (it holds: %s)", a.Email, ch, strings.Join(a.Channels, ", "))
			}
			if _, err := t.exec(ctx, "DELETE FROM channel_grants WHERE account_id = ? AND channel = ?", a.id, ch); err != nil {
				return "", fmt.Errorf("accounts: %w", err)
			}
		}
		return "channels=" + strings.Join(channels, ","), nil
	})
}

// onAccount runs an admin change on an existing account.
func (db *DB) onAccount(ctx context.Context, actor, action, email string, fn func(tx, *Account) (string, error)) error {
	norm, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	return db.change(ctx, actor, action, norm, func(t tx) (string, error) {
		a, err := lookupAccount(ctx, t, norm)
		if err != nil {
			return "", err
		}
		return fn(t, &a)
	})
}

// SetState disables or re-enables an account. A disabled account keeps its
// tokens and channels but every login is refused.
func (db *DB) SetState(ctx context.Context, actor, email, state string) error {
	if state != StateActive && state != StateDisabled {
		return invalidf("state %q is not %s or %s", state, StateActive, StateDisabled)
	}
	action := map[string]string{StateActive: "enable", StateDisabled: "disable"}[state]
	return db.onAccount(ctx, actor, action, email, func(t tx, a *Account) (string, error) {
		if a.State == state {
			return "", conflictf("%s is %s already", a.Email, state)
		}
		_, err := t.exec(ctx, "UPDATE accounts SET state = ? WHERE id = ?", state, a.id)
		return "", err
	})
}

// SetExpiry changes when an account's licence ends; zero: never.
func (db *DB) SetExpiry(ctx context.Context, actor, email string, expires time.Time) error {
	if !expires.IsZero() && !expires.After(db.clock()) {
		return invalidf("expiry %s is in the past", expires.UTC().Format(time.RFC3339))
	}
	return db.onAccount(ctx, actor, "expire", email, func(t tx, a *Account) (string, error) {
		_, err := t.exec(ctx, "UPDATE accounts SET expires_at = ? WHERE id = ?", nullUnix(expires), a.id)
		return "expires=" + expiryWords(expires), err
	})
}

// Delete removes an account with its tokens and grants. The audit keeps
// its history.
func (db *DB) Delete(ctx context.Context, actor, email string) error {
	return db.onAccount(ctx, actor, "delete", email, func(t tx, a *Account) (string, error) {
		_, err := t.exec(ctx, "DELETE FROM accounts WHERE id = ?", a.id)
		return "", err
	})
}

// AddToken gives an account another API token (for a second system of the
// customer, or ahead of a rotation) and returns it.
func (db *DB) AddToken(ctx context.Context, actor, email string) (Token, string, error) {
	token, shown := newToken()
	now := db.clock()
	tok := Token{Prefix: shown, Created: now.UTC().Truncate(time.Second)}
	err := db.onAccount(ctx, actor, "token.add", email, func(t tx, a *Account) (string, error) {
		if err := insertToken(ctx, t, a.id, hashToken(token), shown, now); err != nil {
			return "", err
		}
		err := t.queryRow(ctx, "SELECT id FROM api_tokens WHERE token_sha256 = ?", hashToken(token)).Scan(&tok.ID)
		return "token=" + shown, err
	})
	if err != nil {
		return Token{}, "", err
	}
	return tok, token, nil
}

// RevokeToken revokes one token of an account: ref is its id or prefix,
// and may be empty when the account has exactly one active token.
func (db *DB) RevokeToken(ctx context.Context, actor, email, ref string) (Token, error) {
	var revoked Token
	err := db.onAccount(ctx, actor, "token.revoke", email, func(t tx, a *Account) (string, error) {
		tok, err := pickToken(ctx, t, a, ref)
		if err != nil {
			return "", err
		}
		now := db.clock()
		if _, err := t.exec(ctx, "UPDATE api_tokens SET revoked_at = ? WHERE id = ?", now.Unix(), tok.ID); err != nil {
			return "", fmt.Errorf("accounts: %w", err)
		}
		tok.Revoked = now.UTC().Truncate(time.Second)
		revoked = tok
		return tokenWords(tok), nil
	})
	return revoked, err
}

// RotateToken replaces a token with a new one in one step: the old one is
// revoked and the new one returned.
func (db *DB) RotateToken(ctx context.Context, actor, email, ref string) (old, created Token, token string, err error) {
	token, shown := newToken()
	now := db.clock()
	err = db.onAccount(ctx, actor, "token.rotate", email, func(t tx, a *Account) (string, error) {
		tok, err := pickToken(ctx, t, a, ref)
		if err != nil {
			return "", err
		}
		if _, err := t.exec(ctx, "UPDATE api_tokens SET revoked_at = ? WHERE id = ?", now.Unix(), tok.ID); err != nil {
			return "", fmt.Errorf("accounts: %w", err)
		}
		tok.Revoked = now.UTC().Truncate(time.Second)
		old = tok
		if err := insertToken(ctx, t, a.id, hashToken(token), shown, now); err != nil {
			return "", err
		}
		created = Token{Prefix: shown, Created: now.UTC().Truncate(time.Second)}
		if err := t.queryRow(ctx, "SELECT id FROM api_tokens WHERE token_sha256 = ?", hashToken(token)).Scan(&created.ID); err != nil {
			return "", fmt.Errorf("accounts: %w", err)
		}
		return "revoked " + tokenWords(tok) + ", new token=" + shown, nil
	})
	if err != nil {
		return Token{}, Token{}, "", err
	}
	return old, created, token, nil
}

func tokenWords(t Token) string {
	if t.Prefix == "" {
		return "token id=" + strconv.FormatInt(t.ID, 10)
	}
	return "token=" + t.Prefix
}

// pickToken resolves ref (id, or prefix with or without TokenPrefix) among
// the account's active tokens.
func pickToken(ctx context.Context, t tx, a *Account, ref string) (Token, error) {
	if err := a.loadTokens(ctx, t); err != nil {
		return Token{}, err
	}
	var active []Token
	for _, tok := range a.Tokens {
		if tok.Revoked.IsZero() {
			active = append(active, tok)
		}
	}
	if ref == "" {
		switch len(active) {
		case 0:
			return Token{}, notFoundf("%s has no active token", a.Email)
		case 1:
			return active[0], nil
		default:
			return Token{}, invalidf("%s has %d active tokens: name one by id or prefix (see `tokenserver accounts show %s`)", a.Email, len(active), a.Email)
		}
	}
	id, numErr := strconv.ParseInt(ref, 10, 64)
	for _, tok := range active {
		if (numErr == nil && tok.ID == id) || (tok.Prefix != "" && (ref == tok.Prefix || TokenPrefix+ref == tok.Prefix)) {
			return tok, nil
		}
	}
	return Token{}, notFoundf("%s has no active token %s", a.Email, ref)
}

// Audit returns the admin audit, oldest first; of one account when email
// is not empty.
func (db *DB) Audit(ctx context.Context, email string) ([]AuditEntry, error) {
	query, args := "SELECT at, actor, action, account, detail FROM admin_audit ORDER BY id", []any(nil)
	if email != "" {
		norm, err := NormalizeEmail(email)
		if err != nil {
			return nil, err
		}
		query, args = "SELECT at, actor, action, account, detail FROM admin_audit WHERE account = ? ORDER BY id", []any{norm}
	}
	var out []AuditEntry
	err := db.read(ctx, func(t tx) error {
		rows, err := t.query(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("accounts: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var e AuditEntry
			var at int64
			if err := rows.Scan(&at, &e.Actor, &e.Action, &e.Account, &e.Detail); err != nil {
				return fmt.Errorf("accounts: %w", err)
			}
			e.At = time.Unix(at, 0).UTC()
			out = append(out, e)
		}
		return rows.Err()
	})
	return out, err
}

// Import adds the accounts of a licence file (the file backend's), with
// their token hashes as imported tokens, and the channels they hold to the
// catalogue. It adds all or nothing: an account
// that exists already, a user name that is not an e-mail address or a bad
// channel name stops it, naming every such account.
func (db *DB) Import(ctx context.Context, actor string, in []license.FileAccount) (int, error) {
	now := db.clock()
	type row struct {
		email    string
		hash     string
		channels []string
		expires  time.Time
	}
	var rows []row
	var problems []string
	for _, a := range in {
		email, err := NormalizeEmail(a.Username)
		var channels []string
		if err == nil && len(a.Channels) > 0 {
			channels, err = NormalizeChannels(a.Channels)
		}
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		rows = append(rows, row{email, strings.ToLower(a.TokenSHA256), channels, a.Expires})
	}
	if len(problems) > 0 {
		return 0, invalidf("nothing imported:\n  %s", strings.Join(problems, "\n  "))
	}
	err := db.change(ctx, actor, "import", "", func(t tx) (string, error) {
		var exist []string
		for _, r := range rows {
			if _, err := lookupAccount(ctx, t, r.email); err == nil {
				exist = append(exist, r.email)
			} else if !errors.Is(err, ErrNotFound) {
				return "", err
			}
		}
		if len(exist) > 0 {
			return "", conflictf("nothing imported: these accounts exist already: %s", strings.Join(exist, ", "))
		}
		// The file backend has no catalogue: the channels its accounts
		// hold become the channels.
		var channels []string
		for _, r := range rows {
			channels = append(channels, r.channels...)
		}
		slices.Sort(channels)
		if _, err := db.knownChannels(ctx, t, actor, "import", slices.Compact(channels), true); err != nil {
			return "", err
		}
		for _, r := range rows {
			var id int64
			if err := t.queryRow(ctx, "INSERT INTO accounts (email, state, created_at, expires_at) VALUES (?, ?, ?, ?) RETURNING id",
				r.email, StateActive, now.Unix(), nullUnix(r.expires)).Scan(&id); err != nil {
				return "", fmt.Errorf("accounts: %s: %w", r.email, err)
			}
			if err := insertGrants(ctx, t, id, r.channels, now); err != nil {
				return "", err
			}
			if err := insertToken(ctx, t, id, r.hash, "", now); err != nil {
				return "", conflictf("%s: its token hash is already stored for another account", r.email)
			}
		}
		return fmt.Sprintf("%d accounts", len(rows)), nil
	})
	if err != nil {
		return 0, err
	}
	return len(rows), nil
}
