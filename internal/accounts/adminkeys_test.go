package accounts_test

import (
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

// Admin keys: made once and shown once, stored as a hash, refused when
// unknown, revoked or expired, audited, last use noted at most once a
// minute.
func TestAdminKeys(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		ctx := t.Context()
		clock := testutil.NewClock(t0)
		db := accountstest.Open(t, cfg, accounts.Options{Clock: clock.Now})

		k, key, err := db.AddAdminKey(ctx, "ops", "crm", accounts.ScopeWrite, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(key, accounts.AdminKeyPrefix) || len(key) != len(accounts.AdminKeyPrefix)+43 || !strings.HasPrefix(key, k.Prefix) || k.Name != "crm" || !k.CanWrite() || !k.Created.Equal(t0) {
			t.Fatalf("key %q %+v", key, k)
		}
		ro, roKey, err := db.AddAdminKey(ctx, "ops", "support", accounts.ScopeRead, t0.Add(48*time.Hour))
		if err != nil || ro.CanWrite() || !ro.Expires.Equal(t0.Add(48*time.Hour)) {
			t.Fatalf("read key %+v %v", ro, err)
		}

		_, _, err = db.AddAdminKey(ctx, "ops", "crm", accounts.ScopeRead, time.Time{})
		wantKind(t, err, accounts.ErrConflict, "an admin key crm exists already")
		_, _, err = db.AddAdminKey(ctx, "ops", "two words", accounts.ScopeRead, time.Time{})
		wantKind(t, err, accounts.ErrInvalid, "not an admin key name")
		_, _, err = db.AddAdminKey(ctx, "ops", "x", "admin", time.Time{})
		wantKind(t, err, accounts.ErrInvalid, `scope "admin" is not read or write`)
		_, _, err = db.AddAdminKey(ctx, "ops", "x", accounts.ScopeRead, t0.Add(-time.Hour))
		wantKind(t, err, accounts.ErrInvalid, "in the past")

		got, err := db.AuthenticateAdminKey(ctx, key)
		if err != nil || got.ID != k.ID || got.Scope != accounts.ScopeWrite || !got.LastUsed.Equal(t0) {
			t.Fatalf("authenticate %+v %v", got, err)
		}
		for _, bad := range []string{"", "rgwa_", key + "x", key[:len(key)-1] + "0", strings.Replace(key, accounts.AdminKeyPrefix, accounts.TokenPrefix, 1)} {
			if _, err := db.AuthenticateAdminKey(ctx, bad); err != accounts.ErrUnauthorized {
				t.Errorf("authenticate %q: %v", bad, err)
			}
		}

		// Last use: written once a minute at most.
		clock.Advance(30 * time.Second)
		if _, err := db.AuthenticateAdminKey(ctx, key); err != nil {
			t.Fatal(err)
		}
		list := must[[]accounts.AdminKey](t)(db.AdminKeys(ctx))
		if len(list) != 2 || list[0].Name != "crm" || !list[0].LastUsed.Equal(t0) || list[1].Name != "support" || !list[1].LastUsed.IsZero() {
			t.Fatalf("list %+v", list)
		}
		clock.Advance(time.Minute)
		if _, err := db.AuthenticateAdminKey(ctx, key); err != nil {
			t.Fatal(err)
		}
		if list := must[[]accounts.AdminKey](t)(db.AdminKeys(ctx)); !list[0].LastUsed.Equal(t0.Add(90 * time.Second)) {
			t.Errorf("last used %v", list[0].LastUsed)
		}

		// Expiry.
		if _, err := db.AuthenticateAdminKey(ctx, roKey); err != nil {
			t.Fatal(err)
		}
		clock.Advance(48 * time.Hour)
		if _, err := db.AuthenticateAdminKey(ctx, roKey); err != accounts.ErrUnauthorized {
			t.Errorf("expired key: %v", err)
		}

		// Revocation, by name, id or prefix.
		rk, err := db.RevokeAdminKey(ctx, "ops", "crm")
		if err != nil || rk.ID != k.ID || rk.Revoked.IsZero() {
			t.Fatalf("revoke %+v %v", rk, err)
		}
		if _, err := db.AuthenticateAdminKey(ctx, key); err != accounts.ErrUnauthorized {
			t.Errorf("revoked key: %v", err)
		}
		_, err = db.RevokeAdminKey(ctx, "ops", k.Prefix)
		wantKind(t, err, accounts.ErrConflict, "revoked already")
		if _, err := db.RevokeAdminKey(ctx, "ops", "2"); err != nil {
			t.Errorf("revoke by id: %v", err)
		}
		_, err = db.RevokeAdminKey(ctx, "ops", "nobody")
		wantKind(t, err, accounts.ErrNotFound, "no admin key nobody")

		// The audit names the keys, never a key.
		var actions []string
		for _, e := range must[[]accounts.AuditEntry](t)(db.Audit(ctx, "")) {
			if strings.HasPrefix(e.Action, "admin_key.") {
				actions = append(actions, e.Action+" "+e.Detail)
			}
			if strings.Contains(e.Detail, key) || strings.Contains(e.Detail, roKey) {
				t.Errorf("the audit holds a key: %+v", e)
			}
		}
		if len(actions) != 4 || !strings.Contains(actions[0], "admin_key=crm scope=write") || !strings.Contains(actions[3], "admin_key=support") {
			t.Errorf("audit %q", actions)
		}
	})
}
