package accounts

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Grant is a channel an account holds, with when the grant ends on its own
// (zero: with the account).
type Grant struct {
	Channel string    `json:"channel"`
	Granted time.Time `json:"granted"`
	Expires time.Time `json:"expires,omitzero"`
}

// NamedToken is an API token as the admin API lists it: with its name.
type NamedToken struct {
	Token
	// Name says which of the customer's systems holds it; "" for a token
	// made without one.
	Name string `json:"name"`
}

func loadGrants(ctx context.Context, t tx, id int64) ([]Grant, error) {
	rows, err := t.query(ctx, "SELECT channel, granted_at, expires_at FROM channel_grants WHERE account_id = ? ORDER BY channel", id)
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	defer rows.Close()
	out := []Grant{}
	for rows.Next() {
		var g Grant
		var granted int64
		var expires sql.NullInt64
		if err := rows.Scan(&g.Channel, &granted, &expires); err != nil {
			return nil, fmt.Errorf("accounts: %w", err)
		}
		g.Granted, g.Expires = time.Unix(granted, 0).UTC(), unix(expires)
		out = append(out, g)
	}
	return out, rows.Err()
}

// ExpiringGrant is a grant of an active account that ends within a
// window (ExpiringGrants).
type ExpiringGrant struct {
	Email   string    `json:"email"`
	Channel string    `json:"channel"`
	Expires time.Time `json:"expires"`
}

// ExpiringGrants returns the grants of active accounts that end after
// after and no later than until, soonest first: the console dashboard's
// warnings, in one query rather than one per account (2,000 accounts were
// 2,000 queries a view).
func (db *DB) ExpiringGrants(ctx context.Context, after, until time.Time) ([]ExpiringGrant, error) {
	out := []ExpiringGrant{}
	err := db.read(ctx, func(t tx) error {
		rows, err := t.query(ctx, `SELECT a.email, g.channel, g.expires_at FROM channel_grants g JOIN accounts a ON a.id = g.account_id
WHERE a.state = ? AND g.expires_at > ? AND g.expires_at <= ? ORDER BY g.expires_at, a.email, g.channel`, StateActive, after.Unix(), until.Unix())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var g ExpiringGrant
			var expires int64
			if err := rows.Scan(&g.Email, &g.Channel, &expires); err != nil {
				return err
			}
			g.Expires = time.Unix(expires, 0).UTC()
			out = append(out, g)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("accounts: expiring grants: %w", err)
	}
	return out, nil
}

// Grants returns the grants of an account, by channel.
func (db *DB) Grants(ctx context.Context, email string) ([]Grant, error) {
	var out []Grant
	err := db.read(ctx, func(t tx) error {
		a, err := findAccount(ctx, t, email)
		if err != nil {
			return err
		}
		out, err = loadGrants(ctx, t, a.id)
		return err
	})
	return out, err
}

// SetGrant makes an account hold channel until expires (zero: as long as
// the account): a grant it holds already gets the new expiry. The channel
// must be in the catalogue (*UnknownChannelError). created says whether
// the grant is new.
func (db *DB) SetGrant(ctx context.Context, actor, email, channel string, expires time.Time) (g Grant, created bool, err error) {
	names, err := NormalizeChannels([]string{channel})
	if err != nil {
		return Grant{}, false, err
	}
	channel = names[0]
	now := db.clock()
	if !expires.IsZero() && !expires.After(now) {
		return Grant{}, false, invalidf("expiry %s is in the past", expires.UTC().Format(time.RFC3339))
	}
	err = db.onAccount(ctx, actor, "grant", email, func(t tx, a *Account) (string, error) {
		if _, err := db.knownChannels(ctx, t, actor, "grant "+a.Email, []string{channel}, false); err != nil {
			return "", err
		}
		var granted int64
		err := t.queryRow(ctx, "SELECT granted_at FROM channel_grants WHERE account_id = ? AND channel = ?", a.id, channel).Scan(&granted)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			created, granted = true, now.Unix()
			if _, err := t.exec(ctx, "INSERT INTO channel_grants (account_id, channel, granted_at, expires_at) VALUES (?, ?, ?, ?)",
				a.id, channel, granted, nullUnix(expires)); err != nil {
				return "", fmt.Errorf("accounts: grant %s: %w", channel, err)
			}
		case err != nil:
			return "", fmt.Errorf("accounts: %w", err)
		default:
			if _, err := t.exec(ctx, "UPDATE channel_grants SET expires_at = ? WHERE account_id = ? AND channel = ?", nullUnix(expires), a.id, channel); err != nil {
				return "", fmt.Errorf("accounts: grant %s: %w", channel, err)
			}
		}
		g = Grant{Channel: channel, Granted: time.Unix(granted, 0).UTC(), Expires: expires.UTC().Truncate(time.Second)}
		if expires.IsZero() {
			g.Expires = time.Time{}
		}
		return "channels=" + channel + " expires=" + expiryWords(expires), nil
	})
	return g, created, err
}

// NamedTokens returns an account's API tokens with their names, revoked
// ones included, oldest first.
func (db *DB) NamedTokens(ctx context.Context, email string) ([]NamedToken, error) {
	var out []NamedToken
	err := db.read(ctx, func(t tx) error {
		a, err := findAccount(ctx, t, email)
		if err != nil {
			return err
		}
		rows, err := t.query(ctx, "SELECT id, prefix, name, created_at, last_used_at, revoked_at FROM api_tokens WHERE account_id = ? ORDER BY id", a.id)
		if err != nil {
			return fmt.Errorf("accounts: %w", err)
		}
		defer rows.Close()
		out = []NamedToken{}
		for rows.Next() {
			var tok NamedToken
			var created int64
			var used, revoked sql.NullInt64
			if err := rows.Scan(&tok.ID, &tok.Prefix, &tok.Name, &created, &used, &revoked); err != nil {
				return fmt.Errorf("accounts: %w", err)
			}
			tok.Created, tok.LastUsed, tok.Revoked = time.Unix(created, 0).UTC(), unix(used), unix(revoked)
			out = append(out, tok)
		}
		return rows.Err()
	})
	return out, err
}

// CheckTokenName checks the name of an API token: a short word naming
// the customer's system that holds it.
func CheckTokenName(name string) error {
	if !adminKeyNameRe.MatchString(name) {
		return invalidf("%q is not a token name (letters, digits, '.', '_', '@', '-'; at most 64 characters)", name)
	}
	return nil
}

// insertNamedToken stores a new token of account id and returns its id.
func insertNamedToken(ctx context.Context, t tx, id int64, token, shown, name string, now time.Time) (int64, error) {
	var tokID int64
	if err := t.queryRow(ctx, "INSERT INTO api_tokens (account_id, token_sha256, prefix, name, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
		id, hashToken(token), shown, name, now.Unix()).Scan(&tokID); err != nil {
		return 0, fmt.Errorf("accounts: storing the token: %w", err)
	}
	return tokID, nil
}

// AddNamedToken gives an account another API token named name and returns
// it: the only time it is seen.
func (db *DB) AddNamedToken(ctx context.Context, actor, email, name string) (NamedToken, string, error) {
	if err := CheckTokenName(name); err != nil {
		return NamedToken{}, "", err
	}
	token, shown := newToken()
	now := db.clock()
	tok := NamedToken{Token: Token{Prefix: shown, Created: now.UTC().Truncate(time.Second)}, Name: name}
	err := db.onAccount(ctx, actor, "token.add", email, func(t tx, a *Account) (string, error) {
		var err error
		tok.ID, err = insertNamedToken(ctx, t, a.id, token, shown, name, now)
		return "token=" + shown + " name=" + name, err
	})
	if err != nil {
		return NamedToken{}, "", err
	}
	return tok, token, nil
}

// RotateNamedToken replaces an active token (by id or prefix) with a new
// one of the same name in one step, and returns the new one.
func (db *DB) RotateNamedToken(ctx context.Context, actor, email, ref string) (old Token, created NamedToken, token string, err error) {
	token, shown := newToken()
	now := db.clock()
	err = db.onAccount(ctx, actor, "token.rotate", email, func(t tx, a *Account) (string, error) {
		tok, err := pickToken(ctx, t, a, ref)
		if err != nil {
			return "", err
		}
		var name string
		if err := t.queryRow(ctx, "SELECT name FROM api_tokens WHERE id = ?", tok.ID).Scan(&name); err != nil {
			return "", fmt.Errorf("accounts: %w", err)
		}
		if _, err := t.exec(ctx, "UPDATE api_tokens SET revoked_at = ? WHERE id = ?", now.Unix(), tok.ID); err != nil {
			return "", fmt.Errorf("accounts: %w", err)
		}
		tok.Revoked = now.UTC().Truncate(time.Second)
		old = tok
		created = NamedToken{Token: Token{Prefix: shown, Created: now.UTC().Truncate(time.Second)}, Name: name}
		if created.ID, err = insertNamedToken(ctx, t, a.id, token, shown, name, now); err != nil {
			return "", err
		}
		return "revoked " + tokenWords(tok) + ", new token=" + shown, nil
	})
	if err != nil {
		return Token{}, NamedToken{}, "", err
	}
	return old, created, token, nil
}

// ShowGrants is Show with the account's grants, read together.
func (db *DB) ShowGrants(ctx context.Context, email string) (Account, []Grant, error) {
	var a Account
	var grants []Grant
	err := db.read(ctx, func(t tx) error {
		var err error
		if a, err = findAccount(ctx, t, email); err != nil {
			return err
		}
		if err := a.loadChannels(ctx, t); err != nil {
			return err
		}
		if err := a.loadTokens(ctx, t); err != nil {
			return err
		}
		grants, err = loadGrants(ctx, t, a.id)
		return err
	})
	return a, grants, err
}
