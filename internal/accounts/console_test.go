package accounts_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

// openWithAlice opens a database on a hand-moved clock at t0 holding the
// channel stable and alice@example.com, granted it.
func openWithAlice(t *testing.T, cfg *accounts.Config) (*accounts.DB, *testutil.Clock) {
	t.Helper()
	clock := testutil.NewClock(t0)
	db := accountstest.Open(t, cfg, accounts.Options{Clock: clock.Now})
	if _, err := db.AddChannel(t.Context(), "t", "stable", ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Add(t.Context(), "t", "alice@example.com", []string{"stable"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	return db, clock
}

func TestConsoleSessions(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		db, clock := openWithAlice(t, cfg)
		ctx := t.Context()
		id, s, err := db.CreateSession(ctx, accounts.NewSession{Kind: accounts.SessionCustomer, Subject: "alice@example.com", Lifetime: time.Hour})
		if err != nil || len(id) != 43 || !s.Expires.Equal(t0.Add(time.Hour)) {
			t.Fatalf("%q %+v %v", id, s, err)
		}
		got, err := db.Session(ctx, id, 10*time.Minute)
		if err != nil || got.Subject != "alice@example.com" || got.Kind != accounts.SessionCustomer {
			t.Fatalf("%+v %v", got, err)
		}
		// Idle: used at 9 minutes (seen is written), alive at 18, dead
		// 10 minutes after the last use.
		clock.Advance(9 * time.Minute)
		if _, err := db.Session(ctx, id, 10*time.Minute); err != nil {
			t.Fatal(err)
		}
		clock.Advance(9 * time.Minute)
		if _, err := db.Session(ctx, id, 10*time.Minute); err != nil {
			t.Fatalf("used 9 minutes ago: %v", err)
		}
		clock.Advance(10 * time.Minute)
		if _, err := db.Session(ctx, id, 10*time.Minute); !errors.Is(err, accounts.ErrNoSession) {
			t.Fatalf("idle: %v", err)
		}
		// Deleted with it: alive again never.
		if _, err := db.Session(ctx, id, time.Hour); !errors.Is(err, accounts.ErrNoSession) {
			t.Fatalf("after idle: %v", err)
		}
		// Signed out; unknown and oversized ids.
		id, _, _ = db.CreateSession(ctx, accounts.NewSession{Kind: accounts.SessionCustomer, Subject: "alice@example.com", Lifetime: time.Hour})
		if err := db.DeleteSession(ctx, id); err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{id, "", "nope", string(make([]byte, 200))} {
			if _, err := db.Session(ctx, bad, time.Hour); !errors.Is(err, accounts.ErrNoSession) {
				t.Errorf("%q: %v", bad, err)
			}
		}
		// A vendor's session ends with its admin key.
		key, _, err := db.AddAdminKey(ctx, "t", "support", accounts.ScopeWrite, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		vid, _, err := db.CreateSession(ctx, accounts.NewSession{Kind: accounts.SessionVendor, Subject: "support", Scope: accounts.ScopeWrite, AdminKeyID: key.ID, Lifetime: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if s, err := db.Session(ctx, vid, time.Hour); err != nil || s.Scope != accounts.ScopeWrite || s.AdminKeyID != key.ID {
			t.Fatalf("%+v %v", s, err)
		}
		if _, err := db.RevokeAdminKey(ctx, "t", "support"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Session(ctx, vid, time.Hour); !errors.Is(err, accounts.ErrNoSession) {
			t.Errorf("revoked key: %v", err)
		}
		// Bad input.
		if _, _, err := db.CreateSession(ctx, accounts.NewSession{Kind: "admin", Subject: "x", Lifetime: time.Hour}); !errors.Is(err, accounts.ErrInvalid) {
			t.Errorf("kind: %v", err)
		}
	})
}

func TestSignInLinkOnce(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		db, clock := openWithAlice(t, cfg)
		ctx := t.Context()
		secret, expires, err := db.CreateSignInLink(ctx, "support", "Alice@Example.com", time.Hour)
		if err != nil || !expires.Equal(t0.Add(time.Hour)) {
			t.Fatal(err)
		}
		// Two replicas redeem it at once: exactly one wins.
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won, used int
		for range 8 {
			wg.Go(func() {
				email, err := db.RedeemSignInLink(ctx, secret)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && email == "alice@example.com":
					won++
				case errors.Is(err, accounts.ErrLinkUsed):
					used++
				default:
					t.Errorf("redeem: %q %v", email, err)
				}
			})
		}
		wg.Wait()
		if won != 1 || used != 7 {
			t.Errorf("won %d, used %d", won, used)
		}
		late, _, _ := db.CreateSignInLink(ctx, "support", "alice@example.com", time.Hour)
		clock.Advance(time.Hour)
		if _, err := db.RedeemSignInLink(ctx, late); !errors.Is(err, accounts.ErrLinkExpired) {
			t.Errorf("expired: %v", err)
		}
		if _, err := db.RedeemSignInLink(ctx, "nope"); !errors.Is(err, accounts.ErrLinkUnknown) {
			t.Errorf("unknown: %v", err)
		}
		if _, _, err := db.CreateSignInLink(ctx, "support", "nobody@example.com", time.Hour); !errors.Is(err, accounts.ErrNotFound) {
			t.Errorf("no account: %v", err)
		}
		// The licence the console mints from: active grants only.
		if err := db.Grant(ctx, "t", "alice@example.com", []string{"beta"}, accounts.CreateChannels()); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.SetGrant(ctx, "t", "alice@example.com", "beta", clock.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		lic, err := db.LicenseOf(ctx, "alice@example.com")
		if err != nil || len(lic.Channels) != 2 {
			t.Fatalf("%+v %v", lic, err)
		}
		clock.Advance(time.Minute)
		if lic, _ := db.LicenseOf(ctx, "alice@example.com"); len(lic.Channels) != 1 || lic.Channels[0] != "stable" {
			t.Errorf("after the grant's end: %+v", lic)
		}
		if err := db.SetState(ctx, "t", "alice@example.com", accounts.StateDisabled); err != nil {
			t.Fatal(err)
		}
		if _, err := db.LicenseOf(ctx, "alice@example.com"); license.ReasonOf(err) != license.ReasonDisabled {
			t.Errorf("disabled: %v", err)
		}
		if _, err := db.LicenseOf(ctx, "nobody@example.com"); license.ReasonOf(err) != license.ReasonUnknownAccount {
			t.Errorf("unknown: %v", err)
		}
	})
}

// The self-service flag survives an export and its restore.
func TestSelfServiceExport(t *testing.T) {
	t.Parallel()
	db := accountstest.Open(t, accountstest.SQLite(t), accounts.Options{})
	ctx := t.Context()
	if _, _, err := db.Add(ctx, "t", "alice@example.com", []string{"stable"}, time.Time{}, accounts.CreateChannels()); err != nil {
		t.Fatal(err)
	}
	if err := db.SetSelfServiceTokens(ctx, "t", "alice@example.com", true); err != nil {
		t.Fatal(err)
	}
	doc, err := db.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fresh := accountstest.Open(t, accountstest.SQLite(t), accounts.Options{})
	if _, err := fresh.Restore(ctx, doc); err != nil {
		t.Fatal(err)
	}
	if on, err := fresh.SelfServiceTokens(ctx, "alice@example.com"); err != nil || !on {
		t.Errorf("restored: %v %v", on, err)
	}
}
