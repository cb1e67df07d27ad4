package accounts_test

import (
	"errors"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

// Every refused login says why, through the licence cache as the token
// service asks: unknown account, wrong token (unknown, revoked, another
// account's), disabled account, expired account; and the reasons hold when
// the refusals are answered from the cache.
func TestLoginReasons(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		ctx := t.Context()
		clock := testutil.NewClock(time.Now().Truncate(time.Second))
		db := openSeeded(t, cfg, accounts.Options{Clock: clock.Now})
		alice := addAlice(t, db)
		add := func(email string, expires time.Time) string {
			t.Helper()
			_, token, err := db.Add(ctx, "ops", email, []string{"stable"}, expires)
			if err != nil {
				t.Fatal(err)
			}
			return token
		}
		bob := add("bob@example.com", clock.Now().Add(time.Hour))
		carol := add("carol@example.com", time.Time{})
		if err := db.SetState(ctx, "ops", "carol@example.com", accounts.StateDisabled); err != nil {
			t.Fatal(err)
		}
		dave := add("dave@example.com", time.Time{})
		erin := add("erin@example.com", time.Time{})
		if _, err := db.RevokeToken(ctx, "ops", "erin@example.com", ""); err != nil {
			t.Fatal(err)
		}
		clock.Advance(2 * time.Hour) // bob's account has expired

		// The default poll: a shorter one can miss its deadline under
		// -race on a busy machine, and the cache then serves nothing.
		be := db.NewBackend(accounts.BackendOptions{})
		runBackend(t, be)
		obs := &countingObserver{}
		cache := license.NewCache(be, license.CacheConfig{Clock: clock.Now, Observer: obs})
		if _, err := cache.Lookup(ctx, alice); err != nil {
			t.Fatalf("alice: %v", err)
		}
		for round := range 2 {
			for _, tc := range []struct {
				name, user, token string
				want              license.Reason
			}{
				{"no such account, unknown token", "mallory@example.com", "rgw_made_up", license.ReasonUnknownAccount},
				{"an account, unknown token", "Alice@Example.com", "rgw_made_up", license.ReasonWrongToken},
				{"an account, another account's token", "alice@example.com", dave, license.ReasonWrongToken},
				{"mistyped e-mail, good token", "alice@exmaple.com", alice.Token, license.ReasonUnknownAccount},
				{"revoked token", "erin@example.com", erin, license.ReasonWrongToken},
				{"disabled account", "carol@example.com", carol, license.ReasonDisabled},
				{"expired account", "bob@example.com", bob, license.ReasonExpired},
				{"empty token", "alice@example.com", "", license.ReasonMalformed},
			} {
				_, err := cache.Lookup(ctx, license.Credentials{Username: tc.user, Token: tc.token})
				if got := license.ReasonOf(err); got != tc.want || !errors.Is(err, license.ErrBadCredentials) {
					t.Errorf("round %d: %s: %v (reason %q), want %q", round, tc.name, err, got, tc.want)
				}
			}
			if round == 0 {
				obs.lookups.Store(0)
			}
		}
		if n := obs.lookups.Load(); n != 0 {
			t.Errorf("%d token look-ups in the second round, want every refusal from the cache", n)
		}

		for user, want := range map[string]bool{"ALICE@example.com": true, "carol@example.com": true, "nobody@example.com": false, "": false} {
			if got, err := be.HasAccount(ctx, user); err != nil || got != want {
				t.Errorf("HasAccount(%q) = %v, %v; want %v", user, got, err, want)
			}
		}
	})
}

// HasAccount fails with ErrUnavailable on a database that does not answer;
// the cache then still refuses, as wrong_token.
func TestHasAccountDatabaseGone(t *testing.T) {
	t.Parallel()
	db := openSeeded(t, accountstest.SQLite(t), accounts.Options{})
	be := db.NewBackend(accounts.BackendOptions{})
	db.Close()
	if _, err := be.HasAccount(t.Context(), "alice@example.com"); !errors.Is(err, license.ErrUnavailable) {
		t.Errorf("HasAccount on a closed database: %v", err)
	}
}
