package accounts

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// Admin key scopes: read may only look, write may also change.
const (
	ScopeRead  = "read"
	ScopeWrite = "write"
)

// AdminKeyPrefix starts every admin API key, distinct from TokenPrefix so
// that a leaked key is told apart from a customer's token at a glance and
// by secret scanners.
const AdminKeyPrefix = "rgwa_"

// adminKeyShownLen is how much of a key listings show.
const adminKeyShownLen = len(AdminKeyPrefix) + 8

// lastUsedEvery bounds how often a key's last use is written: one write a
// minute per key, not one per request.
const lastUsedEvery = time.Minute

// ErrUnauthorized is a key that is unknown, revoked or expired. The
// caller is told no more than that.
var ErrUnauthorized = errors.New("unauthorized")

// AdminKey is an admin API key as listings show it: never the key.
type AdminKey struct {
	ID       int64     `json:"id"`
	Name     string    `json:"name"`
	Scope    string    `json:"scope"`
	Prefix   string    `json:"prefix"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires,omitzero"`
	Revoked  time.Time `json:"revoked,omitzero"`
	LastUsed time.Time `json:"last_used,omitzero"`
}

// CanWrite reports whether the key may change things.
func (k AdminKey) CanWrite() bool { return k.Scope == ScopeWrite }

// adminKeyNameRe: a name is what the audit records as the actor, so it is
// one short word a person recognizes ("crm", "billing-prod").
var adminKeyNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// newAdminKey returns a fresh admin key and the part of it listings show.
func newAdminKey() (key, shown string) {
	token, _ := newToken()
	key = AdminKeyPrefix + token[len(TokenPrefix):]
	return key, key[:adminKeyShownLen]
}

// AddAdminKey creates an admin API key and returns it: the only time it
// is seen. expires zero: it does not expire.
func (db *DB) AddAdminKey(ctx context.Context, actor, name, scope string, expires time.Time) (AdminKey, string, error) {
	if !adminKeyNameRe.MatchString(name) {
		return AdminKey{}, "", invalidf("%q is not an admin key name (letters, digits, '.', '_', '@', '-'; at most 64 characters)", name)
	}
	if scope != ScopeRead && scope != ScopeWrite {
		return AdminKey{}, "", invalidf("scope %q is not %s or %s", scope, ScopeRead, ScopeWrite)
	}
	now := db.clock()
	if !expires.IsZero() && !expires.After(now) {
		return AdminKey{}, "", invalidf("expiry %s is in the past", expires.UTC().Format(time.RFC3339))
	}
	key, shown := newAdminKey()
	k := AdminKey{Name: name, Scope: scope, Prefix: shown, Created: now.UTC().Truncate(time.Second), Expires: expires}
	err := db.change(ctx, actor, "admin_key.add", "", func(t tx) (string, error) {
		var n int
		if err := t.queryRow(ctx, "SELECT COUNT(*) FROM admin_keys WHERE name = ?", name).Scan(&n); err != nil {
			return "", fmt.Errorf("accounts: %w", err)
		}
		if n > 0 {
			return "", conflictf("an admin key %s exists already", name)
		}
		if err := t.queryRow(ctx, "INSERT INTO admin_keys (name, scope, key_sha256, prefix, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
			name, scope, hashToken(key), shown, now.Unix(), nullUnix(expires)).Scan(&k.ID); err != nil {
			return "", fmt.Errorf("accounts: storing the admin key: %w", err)
		}
		return fmt.Sprintf("admin_key=%s scope=%s expires=%s key=%s", name, scope, expiryWords(expires), shown), nil
	})
	if err != nil {
		return AdminKey{}, "", err
	}
	return k, key, nil
}

const adminKeyColumns = "id, name, scope, prefix, created_at, expires_at, revoked_at, last_used_at"

func scanAdminKey(row interface{ Scan(...any) error }, extra ...any) (AdminKey, error) {
	var k AdminKey
	var created int64
	var expires, revoked, used sql.NullInt64
	if err := row.Scan(append([]any{&k.ID, &k.Name, &k.Scope, &k.Prefix, &created, &expires, &revoked, &used}, extra...)...); err != nil {
		return AdminKey{}, err
	}
	k.Created, k.Expires, k.Revoked, k.LastUsed = time.Unix(created, 0).UTC(), unix(expires), unix(revoked), unix(used)
	return k, nil
}

// AdminKeys returns every admin key, revoked ones included, by name.
func (db *DB) AdminKeys(ctx context.Context) ([]AdminKey, error) {
	var out []AdminKey
	err := db.read(ctx, func(t tx) error {
		rows, err := t.query(ctx, "SELECT "+adminKeyColumns+" FROM admin_keys ORDER BY name")
		if err != nil {
			return fmt.Errorf("accounts: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			k, err := scanAdminKey(rows)
			if err != nil {
				return fmt.Errorf("accounts: %w", err)
			}
			out = append(out, k)
		}
		return rows.Err()
	})
	return out, err
}

// RevokeAdminKey revokes an admin key named by its name, id or prefix; it
// is refused from the next request on.
func (db *DB) RevokeAdminKey(ctx context.Context, actor, ref string) (AdminKey, error) {
	var k AdminKey
	err := db.change(ctx, actor, "admin_key.revoke", "", func(t tx) (string, error) {
		id, numErr := strconv.ParseInt(ref, 10, 64)
		if numErr != nil {
			id = -1
		}
		var err error
		k, err = scanAdminKey(t.queryRow(ctx, "SELECT "+adminKeyColumns+" FROM admin_keys WHERE name = ? OR id = ? OR prefix = ? ORDER BY id LIMIT 1", ref, id, ref))
		if errors.Is(err, sql.ErrNoRows) {
			return "", notFoundf("no admin key %s", ref)
		}
		if err != nil {
			return "", fmt.Errorf("accounts: %w", err)
		}
		if !k.Revoked.IsZero() {
			return "", conflictf("admin key %s is revoked already", k.Name)
		}
		now := db.clock()
		if _, err := t.exec(ctx, "UPDATE admin_keys SET revoked_at = ? WHERE id = ?", now.Unix(), k.ID); err != nil {
			return "", fmt.Errorf("accounts: %w", err)
		}
		k.Revoked = now.UTC().Truncate(time.Second)
		return "admin_key=" + k.Name, nil
	})
	return k, err
}

// AuthenticateAdminKey returns the admin key key is, active and not
// expired, and notes its use. Any other key is ErrUnauthorized, without
// saying why: the caller learns nothing about which keys exist.
func (db *DB) AuthenticateAdminKey(ctx context.Context, key string) (AdminKey, error) {
	if len(key) != len(AdminKeyPrefix)+tokenSecretLen {
		return AdminKey{}, ErrUnauthorized
	}
	sum := hashToken(key)
	var k AdminKey
	var stored string
	err := db.read(ctx, func(t tx) error {
		var err error
		k, err = scanAdminKey(t.queryRow(ctx, "SELECT "+adminKeyColumns+", key_sha256 FROM admin_keys WHERE key_sha256 = ?", sum), &stored)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return AdminKey{}, ErrUnauthorized
	}
	if err != nil {
		return AdminKey{}, fmt.Errorf("accounts: %w", err)
	}
	now := db.clock()
	if subtle.ConstantTimeCompare([]byte(stored), []byte(sum)) != 1 || !k.Revoked.IsZero() || (!k.Expires.IsZero() && !now.Before(k.Expires)) {
		return AdminKey{}, ErrUnauthorized
	}
	if k.LastUsed.IsZero() || now.Sub(k.LastUsed) >= lastUsedEvery {
		// Best effort: a failed note of use does not refuse the request.
		_, _ = db.db.ExecContext(ctx, db.d.q("UPDATE admin_keys SET last_used_at = ? WHERE id = ?"), now.Unix(), k.ID)
		k.LastUsed = now.UTC().Truncate(time.Second)
	}
	return k, nil
}
