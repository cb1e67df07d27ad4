package tokenserver

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/license/backends"
	"github.com/acme/registry-gateway/internal/license/sqlbackend"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
	"github.com/acme/registry-gateway/internal/tokenserver/console"
	"github.com/acme/registry-gateway/pkg/auth"
)

// The console on admin.listen, wired to the service: customers verified
// like /token's Basic credentials and throttled by the same limiter, the
// gateway read with tokens signed by the service's key for that customer
// only, and the admin API still beside it.
func TestConsoleWiring(t *testing.T) {
	t.Parallel()
	sqlCfg := accountstest.SQLite(t)
	db := accountstest.Open(t, sqlCfg, accounts.Options{})
	if _, err := db.AddChannel(t.Context(), "ops", "stable", ""); err != nil {
		t.Fatal(err)
	}
	_, aliceTok, err := db.Add(t.Context(), "ops", "alice@example.com", []string{"stable"}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}

	// The gateway's side: the tokens the console presents, verified with
	// the service's published keys.
	var mu sync.Mutex
	var seen []*auth.Claims
	var srv *Server
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keys, err := auth.ParseJWKS(srv.JWKS())
		if err != nil {
			t.Error(err)
		}
		v := auth.NewVerifier(auth.VerifierConfig{Issuer: testIssuer, Audience: testService, Keys: auth.StaticKeys(keys), CacheSize: -1})
		c, err := v.Verify(r.Context(), strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		if err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		seen = append(seen, c)
		mu.Unlock()
		switch {
		case r.URL.Path == "/v2/_catalog" && c.Allows(auth.TypeRegistry, auth.CatalogName, auth.ActionAll) && c.HoldsChannel("stable"):
			_ = json.NewEncoder(w).Encode(map[string][]string{"repositories": {"stable/hello"}})
		case r.URL.Path == "/v2/stable/hello/tags/list" && c.Allows(auth.TypeRepository, "stable/hello", auth.ActionPull):
			_ = json.NewEncoder(w).Encode(map[string]any{"name": "stable/hello", "tags": []string{"1.0"}})
		default:
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(gateway.Close)

	keyPath := filepath.Join(t.TempDir(), "token.key")
	writeECKey(t, keyPath)
	cfg := &Config{
		Issuer: testIssuer, Service: testService, SigningKey: keyPath,
		Licenses:  backends.Config{Backends: backends.Sections{"sql": &sqlbackend.Config{Config: *sqlCfg}}},
		RateLimit: RateLimitConfig{PerAddress: 1, PerAddressBurst: 2},
		Admin:     AdminConfig{Listen: "127.0.0.1:0"},
		Console:   console.Config{Enabled: true, RegistryURL: gateway.URL},
	}
	srv, err = New(t.Context(), cfg, Options{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	admin := httptest.NewServer(srv.AdminHandler())
	t.Cleanup(admin.Close)
	tokenSrv := httptest.NewServer(srv.Handler())
	t.Cleanup(tokenSrv.Close)

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	fetch := func(resp *http.Response, err error) (int, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	csrf := func() string {
		_, body := fetch(c.Get(admin.URL + "/console/sign-in"))
		return regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)[1]
	}
	signIn := func(token string) int {
		code, _ := fetch(c.PostForm(admin.URL+"/console/sign-in/customer", url.Values{"csrf": {csrf()}, "email": {"alice@example.com"}, "token": {token}}))
		return code
	}
	if code := signIn(aliceTok); code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", code)
	}
	code, body := fetch(c.Get(admin.URL + "/console/customer/"))
	if code != http.StatusOK || !strings.Contains(body, "<code>1.0</code>") || !strings.Contains(body, "docker login "+strings.TrimPrefix(gateway.URL, "http://")) {
		t.Fatalf("customer page: %d %s", code, body)
	}
	mu.Lock()
	if len(seen) != 2 {
		t.Errorf("%d gateway requests, want 2", len(seen))
	}
	for _, cl := range seen {
		if cl.Subject != "alice@example.com" {
			t.Errorf("a token for %q", cl.Subject)
		}
	}
	mu.Unlock()
	// The admin API is still there; /console redirects.
	if code, _ := fetch(c.Get(admin.URL + "/admin/v1/openapi.json")); code != http.StatusOK {
		t.Errorf("admin API: %d", code)
	}
	if resp, err := c.Get(admin.URL + "/console"); err != nil || resp.StatusCode != http.StatusMovedPermanently {
		t.Errorf("/console: %v %v", resp, err)
	}

	// Failed sign-ins and failed /token logins share one limiter: two
	// wrong tokens in the console (the burst), then /token refuses the
	// address even with the right credentials.
	for range 2 {
		if code := signIn("rgw_wrong"); code != http.StatusUnauthorized {
			t.Fatalf("wrong token: %d", code)
		}
	}
	resp := get(t, tokenSrv.URL, "alice@example.com", aliceTok, url.Values{"service": {testService}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("/token after failed console sign-ins: %d, want 429", resp.StatusCode)
	}
	// And they count with the refused logins of /token.
	ops := httptest.NewServer(srv.MetricsHandler())
	t.Cleanup(ops.Close)
	if v := metricValue(t, ops.URL, `tokenserver_login_failures_total{reason="wrong_token"}`); v != "2" {
		t.Errorf("wrong_token failures %s, want 2", v)
	}
	// The vendor's refused sign-ins count in their own metric, by method
	// and reason (every series there from the start, at 0): here an admin
	// key from the address the limiter holds back.
	if code, _ := fetch(c.PostForm(admin.URL+"/console/sign-in/key", url.Values{"csrf": {csrf()}, "key": {"rga_wrong"}})); code != http.StatusTooManyRequests {
		t.Errorf("admin key sign-in from a held-back address: %d, want 429", code)
	}
	for series, want := range map[string]string{
		`tokenserver_console_sign_in_failures_total{method="admin_key",reason="rate_limited"}`: "1",
		`tokenserver_console_sign_in_failures_total{method="admin_key",reason="wrong_key"}`:    "0",
		`tokenserver_console_sign_in_failures_total{method="oidc",reason="nonce_mismatch"}`:    "0",
		`tokenserver_console_sign_in_failures_total{method="link",reason="link_used"}`:         "0",
	} {
		if v := metricValue(t, ops.URL, series); v != want {
			t.Errorf("%s = %s, want %s", series, v, want)
		}
	}
}

func TestConsoleConfig(t *testing.T) {
	for _, tc := range []struct {
		yaml, want string
	}{
		{"console: {enabled: true, registry_url: http://gw:5000}", "console.enabled: the console is served on admin.listen"},
		{"console: {enabled: true}", "console.registry_url: required"},
		{"console: {registry_url: ftp://x}", "console.registry_url: \"ftp://x\" is not an http or https URL"},
		{"console: {public_url: https://c.example.com/}", "must end in /console/"},
		{"console: {session_idle: 1s}", "console.session_idle"},
		{"console: {session_idle: 2h, session_max: 1h}", "console.session_max"},
		{"console: {sign_in_link_ttl: 1000h}", "console.sign_in_link_ttl"},
		{"console: {registry_host: a/b}", "console.registry_host"},
		{"console: {unknown: 1}", "unknown"},
	} {
		_, err := ParseConfig([]byte("issuer: i\nservice: s\nsigning_key: k\nlicenses: {file: {path: l.yaml}}\n" + tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

// The refusals a customer can act on point at customer_help_url, or at
// the console's help page when console.public_url says where it is.
func TestCustomerHelpURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		help   string
	}{
		{"none", nil, ""},
		{"explicit", func(c *Config) { c.CustomerHelpURL = "https://vendor.example/pull-help" }, "https://vendor.example/pull-help"},
		{"console", func(c *Config) { c.Console.PublicURL = "https://console.vendor.example/console/" }, "https://console.vendor.example/console/help"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.mutate)
			msg := func(user, pass string) string {
				resp := get(t, f.url, user, pass, url.Values{"service": {testService}})
				e := decodeError(t, resp)
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("%d", resp.StatusCode)
				}
				return e.Errors[0].Message
			}
			bad, empty := msg(aliceUser, "wrong"), msg(aliceUser, "")
			if tc.help == "" {
				if bad != "invalid username or API token" || empty != emptyPasswordMessage {
					t.Errorf("%q, %q", bad, empty)
				}
				return
			}
			if bad != "invalid username or API token (help: "+tc.help+"#bad-credentials)" {
				t.Errorf("bad credentials: %q", bad)
			}
			if !strings.HasSuffix(empty, "see "+tc.help+"#kubernetes") || strings.Contains(empty, "docs/customers.md") {
				t.Errorf("empty password: %q", empty)
			}
		})
	}
	if _, err := ParseConfig([]byte("issuer: i\nservice: s\nsigning_key: k\nlicenses: {file: {path: l.yaml}}\ncustomer_help_url: https://x.example/help#a\n")); err == nil || !strings.Contains(err.Error(), "customer_help_url") {
		t.Errorf("a help URL with a fragment: %v", err)
	}
}
