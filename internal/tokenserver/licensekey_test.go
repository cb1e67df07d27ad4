package tokenserver

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/license"
)

// With the licence API, usernames cost nothing: one valid token typed with
// a hundred usernames is one API call. Without username_path any username
// is taken, and the audit line's token_fp says which token was used, so a
// made-up subject can be traced to its token.
func TestHTTPBackendKeysOnToken(t *testing.T) {
	t.Parallel()
	api := newLicenceAPI(t)
	f := newFixture(t, withHTTPBackend(api, time.Second))
	for i := range 100 {
		user := fmt.Sprintf("someone%d@example.com", i)
		c := f.verify(mustToken(t, get(t, f.url, user, aliceToken, scopes("repository:stable/app:pull"))).Token)
		if c.Subject != user || len(c.Access) != 1 {
			t.Fatalf("%s: claims %+v", user, c)
		}
	}
	if n := api.calls.Load(); n != 1 {
		t.Errorf("%d licence API calls for 100 usernames of one token, want 1", n)
	}
	audit := auditLines(t, f)
	if len(audit) != 100 {
		t.Fatalf("%d audit lines", len(audit))
	}
	for _, l := range audit {
		if l["token_fp"] != license.Fingerprint(aliceToken) {
			t.Fatalf("audit line %v: token_fp, want %s", l, license.Fingerprint(aliceToken))
		}
	}
	f.settle()
	if strings.Contains(f.logs.String(), aliceToken) {
		t.Error("the log contains the API token")
	}
}

// With username_path the licence API names the token's owner, and any
// other username is refused exactly like a wrong token: the same 401, the
// same charge to the failed-login limiter, and no extra API call.
func TestHTTPBackendUsernamePath(t *testing.T) {
	t.Parallel()
	api := newLicenceAPI(t)
	f := newFixture(t, func(c *Config) {
		withHTTPBackend(api, time.Second)(c)
		httpSection(c).UsernamePath = "user.email"
		c.RateLimit = RateLimitConfig{PerAddress: 60, PerAddressBurst: 4, PerUser: 60, PerUserBurst: 4}
	})
	c := f.verify(mustToken(t, get(t, f.url, strings.ToUpper(aliceUser), aliceToken, scopes())).Token)
	if c.Subject != aliceUser {
		t.Errorf("sub %q, want the address the API names, %q", c.Subject, aliceUser)
	}

	wrongToken := get(t, f.url, aliceUser, "not-a-token", scopes())
	spoofed := get(t, f.url, bobUser, aliceToken, scopes())
	for _, resp := range []*http.Response{wrongToken, spoofed} {
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d: %s", resp.StatusCode, bodyOf(resp))
		}
	}
	if a, b := string(bodyOf(wrongToken)), string(bodyOf(spoofed)); a != b {
		t.Errorf("a spoofed username is told apart from a wrong token:\n%s\n%s", a, b)
	}
	if a, b := wrongToken.Header.Get("WWW-Authenticate"), spoofed.Header.Get("WWW-Authenticate"); a != b {
		t.Errorf("challenges differ: %q, %q", a, b)
	}
	// Two more spoofed logins use up the per-address burst of 4.
	get(t, f.url, "mallory@example.com", aliceToken, scopes())
	get(t, f.url, "eve@example.com", aliceToken, scopes())
	if resp := get(t, f.url, aliceUser, aliceToken, scopes()); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("after 4 refused logins: status %d, want 429", resp.StatusCode)
	}
	// The owner's login, the spoofed ones and the wrong token: two tokens,
	// two API calls.
	if n := api.calls.Load(); n != 2 {
		t.Errorf("%d licence API calls, want 2", n)
	}
	if n := len(auditLines(t, f)); n != 1 {
		t.Errorf("%d tokens issued, want 1", n)
	}
}

// The licence file already knows whose a token is: another username is
// refused with it, and look-ups are keyed on the token there too.
func TestFileBackendRefusesOtherUsername(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	if resp := get(t, f.url, bobUser, aliceToken, scopes()); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("bob with alice's token: status %d", resp.StatusCode)
	}
	c := f.verify(mustToken(t, get(t, f.url, "ALICE@example.com", aliceToken, scopes())).Token)
	if c.Subject != aliceUser {
		t.Errorf("sub %q", c.Subject)
	}
	if got := metricValue(t, f.opsURL, `tokenserver_license_backend_requests_total{backend="file",outcome="ok"}`); got != "1" {
		t.Errorf("file look-ups = %q, want 1 (keyed on the token)", got)
	}
}
