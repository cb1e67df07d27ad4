package filebackend

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

func TestCacheOverFileBackend(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		fx := startFile(t, accountsYAML(""))
		obs := &testutil.LicenceObserver{}
		c := license.NewCache(fx.b, license.CacheConfig{Observer: obs})
		if _, err := c.Lookup(t.Context(), license.Credentials{Username: "alice@example.com", Token: aliceToken}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Lookup(t.Context(), license.Credentials{Username: "alice@example.com", Token: "wrong"}); !errors.Is(err, license.ErrBadCredentials) {
			t.Fatal(err)
		}
		if fmt.Sprint(obs.Lookups()) != "[file/ok file/bad_credentials]" {
			t.Errorf("lookups %q", obs.Lookups())
		}
	})
}

// The file backend through the license.Cache, as the token service asks it: each
// reason, and the same reasons again from the negative cache (the backend
// is asked once a token), where a wrong token is still told apart by the
// username it came with.
func TestFileReasons(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		fx := startFile(t, accountsYAML(""))
		fx.clock.Advance(30 * time.Minute) // bob's licence has expired
		obs := &testutil.LicenceObserver{}
		c := license.NewCache(fx.b, license.CacheConfig{Clock: fx.clock.Now, Observer: obs})
		cases := []struct {
			name, user, token string
			want              license.Reason
		}{
			{"unknown e-mail, unknown token", "mallory@example.com", "made-up-token", license.ReasonUnknownAccount},
			{"an account's e-mail, unknown token", "ALICE@example.com", "made-up-token", license.ReasonWrongToken},
			{"an account's e-mail, another's token", "alice@example.com", carolTokenOf(t, fx), license.ReasonWrongToken},
			{"mistyped e-mail, good token", "alice@exmaple.com", aliceToken, license.ReasonUnknownAccount},
			{"expired licence", "bob@example.com", bobToken, license.ReasonExpired},
			{"control character in the token", "alice@example.com", "tok\x00en", license.ReasonMalformed},
			{"empty username", "", aliceToken, license.ReasonMalformed},
		}
		for round := range 2 {
			for _, tc := range cases {
				_, err := c.Lookup(t.Context(), license.Credentials{Username: tc.user, Token: tc.token})
				wantReason(t, fmt.Sprintf("round %d: %s", round, tc.name), err, tc.want)
			}
		}
		// made-up-token, carol's, alice's, bob's: one look-up each; the rest
		// are answered from the cache (the malformed ones ask nothing).
		if len(obs.Lookups()) != 4 {
			t.Errorf("backend look-ups %q, want 4", obs.Lookups())
		}
	})
}

// carolTokenOf adds carol to the file and waits for the poller to load it.
func carolTokenOf(t *testing.T, fx *fileFixture) string {
	t.Helper()
	writeFile(t, fx.path, accountsYAML(fmt.Sprintf("  - username: carol@example.com\n    token_sha256: %q\n    channels: [stable]\n", license.HashToken(carolToken))))
	fx.afterPoll(t, "carol loaded", func() bool {
		ok, _ := fx.b.HasAccount(t.Context(), "Carol@example.com")
		return ok
	})
	return carolToken
}

func TestFileRefusesSharedToken(t *testing.T) {
	t.Parallel()
	_, err := parseAccounts([]byte(fmt.Sprintf(`accounts:
  - {username: a@example.com, token_sha256: %q, channels: [stable]}
  - {username: b@example.com, token_sha256: %q, channels: [beta]}
`, license.HashToken(aliceToken), strings.ToUpper(license.HashToken(aliceToken)))))
	if err == nil || !strings.Contains(err.Error(), "account 2 (b@example.com): token_sha256 is the same as that of account 1 (a@example.com)") {
		t.Fatalf("err = %v", err)
	}
}
