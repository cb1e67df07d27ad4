package console

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
	"github.com/acme/registry-gateway/pkg/auth"
)

func TestMain(m *testing.M) { os.Exit(accountstest.Main(m)) }

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// env is a console on a real account database, its licence source the SQL
// backend behind the licence cache (what the token service verifies /token
// with), and a registry that answers the gateway's licence-filtered view
// from the token the console mints.
type env struct {
	t       testing.TB
	cfg     *accounts.Config
	db      *accounts.DB
	clock   *testutil.Clock
	limiter *countingLimiter
	logs    *testutil.SyncBuffer
	// signIns counts what Options.SignInFailed is called with.
	signIns *signInCounter
	srv     *httptest.Server
	reg     *testRegistry
	// Customer and vendor credentials made by newEnv.
	aliceToken, bobToken, adminKey string
}

func newEnv(t *testing.T, cfg *accounts.Config) *env {
	t.Helper()
	e := newEmptyEnv(t, cfg)
	db := e.db
	ctx := t.Context()
	for _, ch := range []string{"stable", "beta"} {
		if _, err := db.AddChannel(ctx, "test", ch, ""); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if _, e.aliceToken, err = db.Add(ctx, "test", "alice@example.com", []string{"stable"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, e.bobToken, err = db.Add(ctx, "test", "bob@example.com", []string{"beta"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, e.adminKey, err = db.AddAdminKey(ctx, "test", "support", accounts.ScopeWrite, time.Time{}); err != nil {
		t.Fatal(err)
	}
	e.reg = newTestRegistry(t, map[string][]string{
		"stable/hello": {"1.0", "1.10", "1.9", "latest"},
		"stable/chart": {"0.1.0"},
		"beta/hello":   {"2.0-rc1"},
	})
	e.srv = e.newConsole()
	return e
}

// newEmptyEnv is an env on an empty, migrated database with its clock at
// t0, without a registry or a console yet: newEnv fills it with the
// tests' accounts, the benchmarks with the demo's (pages_bench_test.go).
func newEmptyEnv(t testing.TB, cfg *accounts.Config) *env {
	t.Helper()
	clock := testutil.NewClock(t0)
	db := accountstest.Open(t, cfg, accounts.Options{Clock: clock.Now})
	return &env{t: t, cfg: cfg, db: db, clock: clock, limiter: &countingLimiter{}, logs: &testutil.SyncBuffer{}, signIns: &signInCounter{}}
}

// newConsole is another replica: a console of its own on the same
// database.
func (e *env) newConsole() *httptest.Server {
	e.t.Helper()
	cfg := Config{Enabled: true, RegistryURL: e.reg.srv.URL, RegistryHost: "registry.example.com"}
	cfg.SetDefaults()
	c, err := New(Options{
		Config: cfg, DB: e.db, Licenses: licensesOf(e), Limiter: e.limiter, Mint: testMint, Clock: e.clock.Now,
		Log: slog.New(slog.NewTextHandler(e.logs, nil)), SignInFailed: e.signIns.add,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	srv := httptest.NewServer(c.Handler())
	e.t.Cleanup(srv.Close)
	return srv
}

// licensesOf is the licence source /token verifies with: the SQL backend
// behind the cache.
func licensesOf(e *env) Licenses {
	return license.NewCache(e.db.NewBackend(accounts.BackendOptions{}), license.CacheConfig{Clock: e.clock.Now})
}

// countingLimiter refuses a client after three failures.
type countingLimiter struct {
	mu       sync.Mutex
	failures map[string]int
}

func (l *countingLimiter) Check(client, _ string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failures[client] >= 3 {
		return time.Minute
	}
	return 0
}

func (l *countingLimiter) Charge(client, _ string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failures == nil {
		l.failures = map[string]int{}
	}
	l.failures[client]++
}

// signInCounter records Options.SignInFailed's calls, and that each is
// one of SignInFailureReasons' (the metric's only series).
type signInCounter struct {
	mu     sync.Mutex
	counts map[[2]string]int
	bad    [][2]string
}

func (c *signInCounter) add(method, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[[2]string]int{}
	}
	c.counts[[2]string{method, reason}]++
	if !slices.Contains(SignInFailureReasons()[method], reason) {
		c.bad = append(c.bad, [2]string{method, reason})
	}
}

// check fails t unless the calls since the last check are exactly want
// (method/reason: count), then forgets them.
func (c *signInCounter) check(t *testing.T, want map[string]int) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	got := map[string]int{}
	for k, n := range c.counts {
		got[k[0]+"/"+k[1]] = n
	}
	if !maps.Equal(got, want) {
		t.Errorf("sign-in failures counted %v, want %v", got, want)
	}
	if len(c.bad) > 0 {
		t.Errorf("sign-in failures outside SignInFailureReasons: %v", c.bad)
	}
	c.counts, c.bad = nil, nil
}

func (l *countingLimiter) count(client string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failures[client]
}

// testClaims is what testMint puts in its tokens: the licence's account and
// channels and the access granted, decided by the token service's rules
// (a repository's channel must be held).
type testClaims struct {
	Account  string   `json:"account"`
	Channels []string `json:"channels"`
	Catalog  bool     `json:"catalog"`
	Repos    []string `json:"repos"`
}

func testMint(_ context.Context, lic license.License, scopes []auth.ResourceActions) (string, error) {
	c := testClaims{Account: lic.Account, Channels: lic.Channels}
	for _, s := range scopes {
		switch {
		case s.Type == auth.TypeRegistry && s.Name == auth.CatalogName:
			c.Catalog = true
		case s.Type == auth.TypeRepository && lic.Holds(auth.Channel(s.Name)):
			c.Repos = append(c.Repos, s.Name)
		}
	}
	b, _ := json.Marshal(c)
	return "test." + url.QueryEscape(string(b)), nil
}

// testRegistry answers /v2/_catalog and tags/list as the gateway does:
// only what the bearer token grants.
type testRegistry struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []string // accounts the requests were for
}

func newTestRegistry(t testing.TB, repos map[string][]string) *testRegistry {
	r := &testRegistry{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		raw, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer test.")
		var c testClaims
		if s, err := url.QueryUnescape(raw); !ok || err != nil || json.Unmarshal([]byte(s), &c) != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		r.mu.Lock()
		r.seen = append(r.seen, c.Account)
		r.mu.Unlock()
		if req.URL.Path == "/v2/_catalog" {
			if !c.Catalog {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			var names []string
			for name := range repos {
				if slices.Contains(c.Channels, auth.Channel(name)) {
					names = append(names, name)
				}
			}
			slices.Sort(names)
			_ = json.NewEncoder(w).Encode(map[string][]string{"repositories": names})
			return
		}
		name, ok := strings.CutSuffix(strings.TrimPrefix(req.URL.Path, "/v2/"), "/tags/list")
		if !ok || !slices.Contains(c.Repos, name) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"name": name, "tags": repos[name]})
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// browser is a client with a cookie jar that does not follow redirects.
type browser struct {
	t    testing.TB
	base string
	c    *http.Client
}

func (e *env) browser() *browser { return e.browserOn(e.srv) }

func (e *env) browserOn(srv *httptest.Server) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, base: srv.URL, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// on is the same browser (cookies) against another replica.
func (b *browser) on(srv *httptest.Server) *browser {
	return &browser{t: b.t, base: srv.URL, c: &http.Client{Jar: &hostlessJar{b.c.Jar, b.base}, CheckRedirect: b.c.CheckRedirect}}
}

// hostlessJar hands the cookies of one test server to another (replicas
// behind one load balancer share a host name).
type hostlessJar struct {
	http.CookieJar
	base string
}

func (j *hostlessJar) Cookies(*url.URL) []*http.Cookie {
	u, _ := url.Parse(j.base + Prefix)
	return j.CookieJar.Cookies(u)
}

func (j *hostlessJar) SetCookies(_ *url.URL, cs []*http.Cookie) {
	u, _ := url.Parse(j.base + Prefix)
	j.CookieJar.SetCookies(u, cs)
}

// page is an answer with its body read.
type page struct {
	status int
	header http.Header
	body   string
}

func (b *browser) get(path string) page {
	b.t.Helper()
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	return read(b.t, resp)
}

func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	resp, err := b.c.PostForm(b.base+path, form)
	if err != nil {
		b.t.Fatal(err)
	}
	return read(b.t, resp)
}

func read(t testing.TB, resp *http.Response) page {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return page{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the CSRF token of the forms of the page at path.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	p := b.get(path)
	m := csrfRe.FindStringSubmatch(p.body)
	if m == nil {
		b.t.Fatalf("GET %s: no CSRF token in %d %s", path, p.status, p.body)
	}
	return m[1]
}

// signInCustomer signs in with an e-mail and API token.
func (b *browser) signInCustomer(email, token string) page {
	b.t.Helper()
	return b.post(Prefix+"sign-in/customer", url.Values{"csrf": {b.csrf(Prefix + "sign-in")}, "email": {email}, "token": {token}})
}

func (b *browser) mustSignInCustomer(email, token string) {
	b.t.Helper()
	if p := b.signInCustomer(email, token); p.status != http.StatusSeeOther || p.header.Get("Location") != Prefix+"customer/" {
		b.t.Fatalf("sign-in: %d %s", p.status, p.body)
	}
}

func (b *browser) signInVendorKey(key string) page {
	b.t.Helper()
	return b.post(Prefix+"sign-in/key", url.Values{"csrf": {b.csrf(Prefix + "sign-in")}, "key": {key}})
}

func want(t testing.TB, p page, status int, contains ...string) {
	t.Helper()
	if p.status != status {
		t.Fatalf("status %d, want %d: %s", p.status, status, p.body)
	}
	for _, s := range contains {
		if !strings.Contains(p.body, s) {
			t.Errorf("the page lacks %q:\n%s", s, p.body)
		}
	}
}
