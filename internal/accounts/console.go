package accounts

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/acme/registry-gateway/internal/license"
)

// Kinds of console session.
const (
	SessionVendor   = "vendor"
	SessionCustomer = "customer"
)

// Errors of the console's sign-in links and sessions, for errors.Is.
var (
	// ErrNoSession is a session id that is unknown, signed out, idle too
	// long, past its end, or whose admin key or account is gone.
	ErrNoSession = errors.New("no such session")
	// ErrLinkUsed is a sign-in link that was used already.
	ErrLinkUsed = errors.New("the sign-in link was used already")
	// ErrLinkExpired is a sign-in link past its expiry.
	ErrLinkExpired = errors.New("the sign-in link has expired")
	// ErrLinkUnknown is a sign-in link that was never made (or whose
	// account was deleted).
	ErrLinkUnknown = errors.New("no such sign-in link")
)

// seenEvery is how often a session's last use is written: an idle
// timeout of minutes does not need a write per request.
const seenEvery = time.Minute

// maxSecretLen bounds session ids and links before they are hashed.
const maxSecretLen = 128

// Session is a signed-in console user.
type Session struct {
	Kind string
	// Subject is the account's e-mail (customer), or the admin key's name
	// or the OIDC e-mail (vendor).
	Subject string
	// Scope is the vendor's: ScopeRead or ScopeWrite; "" for a customer.
	Scope string
	// AdminKeyID is the admin key a vendor signed in with; 0 otherwise.
	AdminKeyID int64
	Created    time.Time
	Seen       time.Time
	Expires    time.Time
}

// NewSession is what CreateSession stores.
type NewSession struct {
	Kind, Subject, Scope string
	AdminKeyID           int64
	// Lifetime is the session's absolute limit.
	Lifetime time.Duration
}

// newSecret is 32 random bytes, base64url: a session id or a sign-in link.
func newSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// CreateSession stores a new session and returns its id: the only time it
// is seen (the store keeps its hash). Sessions past their end are swept
// out on the way, so that the table does not grow with abandoned ones.
func (db *DB) CreateSession(ctx context.Context, n NewSession) (string, Session, error) {
	if n.Kind != SessionVendor && n.Kind != SessionCustomer {
		return "", Session{}, invalidf("session kind %q is not %s or %s", n.Kind, SessionVendor, SessionCustomer)
	}
	if n.Subject == "" || n.Lifetime <= 0 {
		return "", Session{}, invalidf("a session needs a subject and a lifetime")
	}
	now := db.clock().UTC().Truncate(time.Second)
	id := newSecret()
	s := Session{Kind: n.Kind, Subject: n.Subject, Scope: n.Scope, AdminKeyID: n.AdminKeyID, Created: now, Seen: now, Expires: now.Add(n.Lifetime)}
	keyID := sql.NullInt64{Int64: n.AdminKeyID, Valid: n.AdminKeyID != 0}
	if _, err := db.db.ExecContext(ctx, db.d.q("DELETE FROM console_sessions WHERE expires_at <= ?"), now.Unix()); err != nil {
		return "", Session{}, fmt.Errorf("accounts: sessions: %w", err)
	}
	if _, err := db.db.ExecContext(ctx, db.d.q("INSERT INTO console_sessions (id_sha256, kind, subject, scope, admin_key_id, created_at, seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
		hashToken(id), s.Kind, s.Subject, s.Scope, keyID, now.Unix(), now.Unix(), s.Expires.Unix()); err != nil {
		return "", Session{}, fmt.Errorf("accounts: sessions: %w", err)
	}
	return id, s, nil
}

// Session returns the live session id names and notes its use. A session
// is live until its absolute end, while it has been used within idle, and,
// for a vendor who signed in with an admin key, while the key is active;
// for a customer, while the account exists and is active and not expired.
// Anything else is ErrNoSession (and a dead session is deleted).
func (db *DB) Session(ctx context.Context, id string, idle time.Duration) (Session, error) {
	if id == "" || len(id) > maxSecretLen {
		return Session{}, ErrNoSession
	}
	hash := hashToken(id)
	var s Session
	var created, seen, expires int64
	var keyID sql.NullInt64
	var keyRevoked, keyExpires, acctExpires sql.NullInt64
	var acctState sql.NullString
	err := db.db.QueryRowContext(ctx, db.d.q(`SELECT s.kind, s.subject, s.scope, s.admin_key_id, s.created_at, s.seen_at, s.expires_at,
		k.revoked_at, k.expires_at, a.state, a.expires_at
		FROM console_sessions s
		LEFT JOIN admin_keys k ON k.id = s.admin_key_id
		LEFT JOIN accounts a ON s.kind = 'customer' AND a.email = s.subject
		WHERE s.id_sha256 = ?`), hash).
		Scan(&s.Kind, &s.Subject, &s.Scope, &keyID, &created, &seen, &expires, &keyRevoked, &keyExpires, &acctState, &acctExpires)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, ErrNoSession
	}
	if err != nil {
		return Session{}, fmt.Errorf("accounts: sessions: %w", err)
	}
	s.AdminKeyID = keyID.Int64
	s.Created, s.Seen, s.Expires = time.Unix(created, 0).UTC(), time.Unix(seen, 0).UTC(), time.Unix(expires, 0).UTC()
	now := db.clock()
	dead := !now.Before(s.Expires) || (idle > 0 && now.Sub(s.Seen) >= idle)
	if s.Kind == SessionVendor && keyID.Valid {
		dead = dead || keyRevoked.Valid || (keyExpires.Valid && now.Unix() >= keyExpires.Int64)
	}
	if s.Kind == SessionCustomer {
		dead = dead || !acctState.Valid || acctState.String != StateActive || (acctExpires.Valid && now.Unix() >= acctExpires.Int64)
	}
	if dead {
		_, _ = db.db.ExecContext(ctx, db.d.q("DELETE FROM console_sessions WHERE id_sha256 = ?"), hash)
		return Session{}, ErrNoSession
	}
	if now.Sub(s.Seen) >= seenEvery {
		// Best effort: a failed note of use only shortens the idle time.
		_, _ = db.db.ExecContext(ctx, db.d.q("UPDATE console_sessions SET seen_at = ? WHERE id_sha256 = ?"), now.Unix(), hash)
		s.Seen = now.UTC().Truncate(time.Second)
	}
	return s, nil
}

// DeleteSession signs a session out, on every replica at once. An unknown
// id is not an error: signing out twice is signing out.
func (db *DB) DeleteSession(ctx context.Context, id string) error {
	if id == "" || len(id) > maxSecretLen {
		return nil
	}
	if _, err := db.db.ExecContext(ctx, db.d.q("DELETE FROM console_sessions WHERE id_sha256 = ?"), hashToken(id)); err != nil {
		return fmt.Errorf("accounts: sessions: %w", err)
	}
	return nil
}

// CreateSignInLink makes a one-time sign-in link for the console that
// signs the holder in as the customer email, valid for ttl, and returns
// the secret part of it: the only time it is seen. It is audited
// (signin_link.create) with actor.
func (db *DB) CreateSignInLink(ctx context.Context, actor, email string, ttl time.Duration) (string, time.Time, error) {
	if ttl <= 0 {
		return "", time.Time{}, invalidf("a sign-in link needs a positive lifetime")
	}
	secret := newSecret()
	now := db.clock().UTC().Truncate(time.Second)
	expires := now.Add(ttl)
	err := db.onAccount(ctx, actor, "signin_link.create", email, func(t tx, a *Account) (string, error) {
		if a.State != StateActive {
			return "", conflictf("%s is %s: a sign-in link would not sign anyone in", a.Email, a.State)
		}
		if _, err := t.exec(ctx, "DELETE FROM sign_in_links WHERE expires_at <= ?", now.Unix()); err != nil {
			return "", fmt.Errorf("accounts: %w", err)
		}
		if _, err := t.exec(ctx, "INSERT INTO sign_in_links (link_sha256, account_id, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
			hashToken(secret), a.id, actor, now.Unix(), expires.Unix()); err != nil {
			return "", fmt.Errorf("accounts: %w", err)
		}
		return "expires=" + expires.Format(time.RFC3339), nil
	})
	if err != nil {
		return "", time.Time{}, err
	}
	return secret, expires, nil
}

// RedeemSignInLink uses a sign-in link up, once, and returns the e-mail of
// its account. A second use is ErrLinkUsed, a late one ErrLinkExpired, an
// unknown one ErrLinkUnknown. The use is one conditional UPDATE, so two
// replicas redeeming the same link at once cannot both succeed.
func (db *DB) RedeemSignInLink(ctx context.Context, secret string) (string, error) {
	if secret == "" || len(secret) > maxSecretLen {
		return "", ErrLinkUnknown
	}
	hash := hashToken(secret)
	now := db.clock().Unix()
	res, err := db.db.ExecContext(ctx, db.d.q("UPDATE sign_in_links SET used_at = ? WHERE link_sha256 = ? AND used_at IS NULL AND expires_at > ?"), now, hash, now)
	if err != nil {
		return "", fmt.Errorf("accounts: sign-in links: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return "", fmt.Errorf("accounts: sign-in links: %w", err)
	}
	var email string
	var expires int64
	var used sql.NullInt64
	err = db.db.QueryRowContext(ctx, db.d.q("SELECT a.email, l.expires_at, l.used_at FROM sign_in_links l JOIN accounts a ON a.id = l.account_id WHERE l.link_sha256 = ?"), hash).
		Scan(&email, &expires, &used)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", ErrLinkUnknown
	case err != nil:
		return "", fmt.Errorf("accounts: sign-in links: %w", err)
	case n == 1:
		return email, nil
	case used.Valid:
		return "", ErrLinkUsed
	default:
		return "", ErrLinkExpired
	}
}

// SelfServiceTokens reports whether the customer email may create and
// revoke their own API tokens in the console.
func (db *DB) SelfServiceTokens(ctx context.Context, email string) (bool, error) {
	var on bool
	err := db.read(ctx, func(t tx) error {
		a, err := findAccount(ctx, t, email)
		on = a.SelfServiceTokens
		return err
	})
	return on, err
}

// SetSelfServiceTokens lets the customer email manage their own API tokens
// in the console, or stops it (audited as self_service).
func (db *DB) SetSelfServiceTokens(ctx context.Context, actor, email string, on bool) error {
	return db.onAccount(ctx, actor, "self_service", email, func(t tx, a *Account) (string, error) {
		if _, err := t.exec(ctx, "UPDATE accounts SET self_service_tokens = ? WHERE id = ?", on, a.id); err != nil {
			return "", fmt.Errorf("accounts: %w", err)
		}
		return "tokens=" + strconv.FormatBool(on), nil
	})
}

// LicenseOf is the licence the account email holds now, as the licence
// backend would answer a login of it: its channels whose grants have not
// ended. A disabled or expired account, or none, is license.ErrBadCredentials.
// The console mints its registry tokens for customers who signed in with a
// link (and hold no API token) from it.
func (db *DB) LicenseOf(ctx context.Context, email string) (license.License, error) {
	var lic license.License
	err := db.read(ctx, func(t tx) error {
		a, err := findAccount(ctx, t, email)
		if errors.Is(err, ErrNotFound) {
			return license.BadCredentials(license.ReasonUnknownAccount)
		}
		if err != nil {
			return err
		}
		now := db.clock()
		switch {
		case a.State != StateActive:
			return license.BadCredentials(license.ReasonDisabled)
		case !a.Expires.IsZero() && !now.Before(a.Expires):
			return license.BadCredentials(license.ReasonExpired)
		}
		grants, err := loadGrants(ctx, t, a.id)
		if err != nil {
			return err
		}
		lic = license.License{Account: a.Email, ExpiresAt: a.Expires, Channels: []string{}}
		for _, g := range grants {
			if g.Expires.IsZero() || now.Before(g.Expires) {
				lic.Channels = append(lic.Channels, g.Channel)
			}
		}
		slices.Sort(lic.Channels)
		return nil
	})
	return lic, err
}
