package tokenserver

import (
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/registry-gateway/pkg/auth"
)

// The curl example of the issue: the token's claims say exactly what was
// asked and granted, nothing more.
func TestGetTokenClaims(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	resp := get(t, f.url, aliceUser, aliceToken, scopes("repository:stable/app:pull"))
	a := mustToken(t, resp)
	if a.Token != a.AccessToken {
		t.Error("token and access_token differ")
	}
	if string(a.ExpiresIn) != "300" {
		t.Errorf("expires_in = %s, want the integer 300", a.ExpiresIn)
	}
	issued, err := time.Parse(time.RFC3339, a.IssuedAt)
	if err != nil || !issued.Equal(f.clock.Now()) {
		t.Errorf("issued_at = %q (%v), want %s", a.IssuedAt, err, f.clock.Now().UTC().Format(time.RFC3339))
	}
	if a.RefreshToken != "" {
		t.Error("refresh_token without offline_token")
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q", cc)
	}

	h := header(t, a.Token)
	if h["alg"] != "ES256" || h["kid"] != f.srv.KeyID() || h["x5c"] != nil {
		t.Errorf("header = %v", h)
	}
	pub := f.srv.key.Signer.Public()
	if tp, _ := auth.Thumbprint(pub); tp != h["kid"] {
		t.Errorf("kid %v is not the RFC 7638 thumbprint %s", h["kid"], tp)
	}

	c := f.verify(a.Token)
	now := f.clock.Now()
	if c.Issuer != testIssuer || c.Subject != aliceUser || !slices.Equal(c.Audience, []string{testService}) {
		t.Errorf("iss/sub/aud = %q %q %q", c.Issuer, c.Subject, c.Audience)
	}
	if !c.IssuedAt.Equal(now) || !c.NotBefore.Equal(now) || !c.ExpiresAt.Equal(now.Add(5*time.Minute)) {
		t.Errorf("iat %v nbf %v exp %v, now %v", c.IssuedAt, c.NotBefore, c.ExpiresAt, now)
	}
	if len(c.ID) != 32 {
		t.Errorf("jti = %q", c.ID)
	}
	want := []auth.ResourceActions{{Type: "repository", Name: "stable/app", Actions: []string{"pull"}}}
	if !equalAccess(c.Access, want) || c.Channels != nil {
		t.Errorf("access = %+v, channels = %v", c.Access, c.Channels)
	}
	// Times are JSON integers: distribution refuses fractional ones.
	for _, k := range []string{"exp", "nbf", "iat"} {
		if n, ok := rawClaims(t, a.Token)[k].(json.Number); !ok || strings.ContainsAny(n.String(), ".eE") {
			t.Errorf("%s = %v, want an integer", k, rawClaims(t, a.Token)[k])
		}
	}

	// A second token has its own jti.
	b := mustToken(t, get(t, f.url, aliceUser, aliceToken, scopes("repository:stable/app:pull")))
	if f.verify(b.Token).ID == c.ID {
		t.Error("jti repeated")
	}
}

func equalAccess(a, b []auth.ResourceActions) bool {
	return slices.EqualFunc(a, b, func(x, y auth.ResourceActions) bool {
		return x.Type == y.Type && x.Class == y.Class && x.Name == y.Name && slices.Equal(x.Actions, y.Actions)
	})
}

// Scopes outside the licence, and actions the service never grants, are
// left out of a 200 answer rather than refused.
func TestGetTokenGrantsSubset(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	q := scopes("repository:stable/app:pull,push", "repository:beta/app:pull",
		"repository:stable/other:delete repository:stable/x:*")
	a := mustToken(t, get(t, f.url, aliceUser, aliceToken, q))
	want := []auth.ResourceActions{
		{Type: "repository", Name: "stable/app", Actions: []string{"pull"}},
		{Type: "repository", Name: "stable/x", Actions: []string{"pull"}},
	}
	if c := f.verify(a.Token); !equalAccess(c.Access, want) {
		t.Errorf("access = %+v, want %+v", c.Access, want)
	}
}

// `docker login` asks for no scope at all and needs a valid token with
// empty access (and, with offline_token, a refresh token).
func TestDockerLogin(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	q := url.Values{"account": {aliceUser}, "client_id": {"docker"}, "offline_token": {"true"}, "service": {testService}}
	a := mustToken(t, get(t, f.url, aliceUser, aliceToken, q))
	if a.RefreshToken == "" {
		t.Error("no refresh_token for offline_token=true")
	}
	c := f.verify(a.Token)
	if c.Access == nil || len(c.Access) != 0 {
		t.Errorf("access = %#v, want an empty list", c.Access)
	}
	if !strings.Contains(string(mustRawPayload(t, a.Token)), `"access":[]`) {
		t.Error(`payload lacks "access":[]`)
	}
}

func mustRawPayload(t *testing.T, raw string) []byte {
	b, _ := json.Marshal(rawClaims(t, raw))
	return b
}

// The catalog is granted to any account and the token carries the
// account's channels for the gateway to filter with.
func TestCatalogCarriesChannels(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	a := mustToken(t, get(t, f.url, bobUser, bobToken, scopes("registry:catalog:*")))
	c := f.verify(a.Token)
	want := []auth.ResourceActions{{Type: "registry", Name: "catalog", Actions: []string{"*"}}}
	if !equalAccess(c.Access, want) || !slices.Equal(c.Channels, []string{"beta", "stable"}) {
		t.Errorf("access %+v channels %v", c.Access, c.Channels)
	}
}

func TestRS256AndX5C(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *Config) {
		c.SigningKey = filepath.Join(filepath.Dir(c.SigningKey), "rsa.key")
		c.SigningCert = filepath.Join(filepath.Dir(c.SigningKey), "rsa.crt")
	}, func(f *fixture, _ *Options) {
		k := writeRSAKey(f.t, filepath.Join(f.dir, "rsa.key"))
		writeCert(f.t, filepath.Join(f.dir, "rsa.crt"), k)
	})
	a := mustToken(t, get(t, f.url, aliceUser, aliceToken, scopes("repository:stable/app:pull")))
	h := header(t, a.Token)
	x5c, _ := h["x5c"].([]any)
	if h["alg"] != "RS256" || h["kid"] != f.srv.KeyID() || len(x5c) != 1 {
		t.Errorf("header = %v", h)
	}
	f.verify(a.Token)
}

func TestJWKS(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	resp := do(t, mustRequest(t, http.MethodGet, f.url+"/.well-known/jwks.json"))
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var set auth.JWKS
	if err := json.Unmarshal(bodyOf(resp), &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS %s: %v", bodyOf(resp), err)
	}
	k := set.Keys[0]
	pub, err := k.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	if tp, _ := auth.Thumbprint(pub); k.Kid != tp || k.Kid != f.srv.KeyID() || k.Alg != "ES256" {
		t.Errorf("jwk = %+v, thumbprint %s", k, tp)
	}
}

// publish_keys adds a previous key to the JWKS during a rotation.
func TestJWKSPublishesExtraKeys(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *Config) {
		c.PublishKeys = []string{filepath.Join(filepath.Dir(c.SigningKey), "old.crt")}
	}, func(f *fixture, _ *Options) {
		old := writeECKey(f.t, filepath.Join(f.dir, "old.key"))
		writeCert(f.t, filepath.Join(f.dir, "old.crt"), old)
	})
	var set auth.JWKS
	if err := json.Unmarshal(f.srv.JWKS(), &set); err != nil || len(set.Keys) != 2 || set.Keys[0].Kid != f.srv.KeyID() {
		t.Fatalf("JWKS %s: %v", f.srv.JWKS(), err)
	}
}

func TestHealthAndReady(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	for _, p := range []string{"/healthz", "/readyz"} {
		if resp := do(t, mustRequest(t, http.MethodGet, f.url+p)); resp.StatusCode != 200 {
			t.Errorf("%s: %d %s", p, resp.StatusCode, bodyOf(resp))
		}
	}
}

// Many parallel pulls of one account all succeed and never touch the rate
// limiter: only failures are tracked.
func TestParallelGoodLoginsAreNotLimited(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *Config) {
		c.RateLimit = RateLimitConfig{PerAddress: 1, PerAddressBurst: 1, PerUser: 1, PerUserBurst: 1}
	})
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			resp := get(t, f.url, aliceUser, aliceToken, scopes("repository:stable/app:pull"))
			if resp.StatusCode != 200 {
				t.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	if n := f.srv.limiter.Len(); n != 0 {
		t.Errorf("limiter tracks %d keys after successes only", n)
	}
}

// Failures from one address are throttled with Retry-After; the same
// account from another address (behind a trusted proxy) is not, and the
// throttle lifts once the bucket refills.
func TestFailedLoginsAreLimited(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *Config) {
		c.TrustedProxies = []string{"127.0.0.1/32", "::1"}
		c.RateLimit = RateLimitConfig{PerAddress: 6, PerAddressBurst: 3, PerUser: 6, PerUserBurst: 3}
	})
	attacker := []string{"X-Forwarded-For", "203.0.113.7"}
	for i := range 3 {
		if resp := get(t, f.url, aliceUser, "wrong", scopes(), attacker...); resp.StatusCode != 401 {
			t.Fatalf("failure %d: status %d", i, resp.StatusCode)
		}
	}
	// Even the right password waits now: the check comes before the
	// backend is asked.
	resp := get(t, f.url, aliceUser, aliceToken, scopes(), attacker...)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "10" {
		t.Fatalf("status %d Retry-After %q, want 429 and 10", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if e := decodeError(t, resp); e.Errors[0].Code != "TOOMANYREQUESTS" {
		t.Errorf("code %q", e.Errors[0].Code)
	}
	mustToken(t, get(t, f.url, aliceUser, aliceToken, scopes(), "X-Forwarded-For", "198.51.100.1"))

	f.clock.Advance(10 * time.Second)
	mustToken(t, get(t, f.url, aliceUser, aliceToken, scopes(), attacker...))
}

// Every grant path ends in the same metrics.
func TestMetrics(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	mustToken(t, get(t, f.url, aliceUser, aliceToken, scopes("repository:stable/app:pull")))
	mustToken(t, get(t, f.url, aliceUser, aliceToken, scopes("repository:stable/app:pull")))
	get(t, f.url, aliceUser, "wrong", scopes())
	post(t, f.url, url.Values{"grant_type": {"client_credentials"}})

	for sample, want := range map[string]string{
		`tokenserver_token_requests_total{grant="basic",outcome="issued"}`:                     "2",
		`tokenserver_token_requests_total{grant="basic",outcome="unauthorized"}`:               "1",
		`tokenserver_token_requests_total{grant="other",outcome="bad_request"}`:                "1",
		`tokenserver_token_request_duration_seconds_count{grant="basic"}`:                      "3",
		`tokenserver_license_backend_requests_total{backend="file",outcome="ok"}`:              "1",
		`tokenserver_license_backend_requests_total{backend="file",outcome="bad_credentials"}`: "1",
		`tokenserver_license_backend_duration_seconds_count{backend="file"}`:                   "2",
		`tokenserver_license_cache_hits_total{result="positive"}`:                              "1",
		`tokenserver_rate_limiter_keys`:                                                        "2",
	} {
		if got := metricValue(t, f.opsURL, sample); got != want {
			t.Errorf("%s = %q, want %q", sample, got, want)
		}
	}
}

// A licence that expires soon caps the token's lifetime.
func TestTokenDoesNotOutliveLicence(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	writeLicenses(t, f.licPath, account{user: aliceUser, token: aliceToken, channels: []string{"stable"}, expires: f.clock.Now().Add(2 * time.Minute)})
	srv, err := New(t.Context(), &f.cfg, Options{Clock: f.clock.Now, Logger: f.srv.log})
	if err != nil {
		t.Fatal(err)
	}
	base := serve(t, srv)
	a := mustToken(t, get(t, base, aliceUser, aliceToken, scopes("repository:stable/app:pull")))
	if string(a.ExpiresIn) != "120" {
		t.Errorf("expires_in = %s, want 120", a.ExpiresIn)
	}
	f.clock.Advance(2 * time.Minute)
	if resp := get(t, base, aliceUser, aliceToken, scopes()); resp.StatusCode != 401 {
		t.Errorf("expired licence: status %d", resp.StatusCode)
	}
}

// The answer is written by hand; it must be what encoding/json writes for
// tokenResponse's tags, whichever fields are set.
func TestTokenResponseJSON(t *testing.T) {
	t.Parallel()
	for _, r := range []tokenResponse{
		{Token: "a.b.c", AccessToken: "a.b.c", ExpiresIn: 300, IssuedAt: "2026-12-01T16:00:00Z"},
		{AccessToken: "a.b.c", TokenType: "Bearer", ExpiresIn: 60, IssuedAt: "2026-12-01T16:00:00Z",
			RefreshToken: "rgwr_x-y", Scope: "repository:stable/app:pull registry:catalog:*"},
		{AccessToken: `<"\` + "\u2028\xff", ExpiresIn: -1, Scope: "&"},
		{Token: "<a&b>", AccessToken: "<a&b>"},
		{Token: "x.y.z", AccessToken: "a.b.c"},
		{},
	} {
		want, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.appendJSON(nil); string(got) != string(want)+"\n" {
			t.Errorf("\n got %s\nwant %s", got, want)
		}
	}
}
