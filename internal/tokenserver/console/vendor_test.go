package console

import (
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
	"github.com/acme/registry-gateway/internal/testsupport/oidctest"
)

// The users of the test identity provider.
var (
	staff   = oidctest.User{Username: "staff", Email: "staff@vendor.example", EmailVerified: true, Groups: []string{"support"}}
	sales   = oidctest.User{Username: "sales", Email: "sales@vendor.example", EmailVerified: true, Groups: []string{"sales"}}
	outside = oidctest.User{Username: "outside", Email: "someone@other.example", EmailVerified: true, Groups: []string{"support"}}
	unverif = oidctest.User{Username: "unverified", Email: "new@vendor.example", EmailVerified: false, Groups: []string{"support"}}
	noMail  = oidctest.User{Username: "nomail", Groups: []string{"support"}}
)

// newOIDCConsole is a console of e's database whose vendors sign in with
// the in-process OpenID provider p.
func (e *env) newOIDCConsole(p *oidctest.Provider, groups []string) *httptest.Server {
	return e.newOIDCConsoleSecret(p, groups, "client-secret")
}

// newOIDCConsoleSecret is newOIDCConsole with the client secret the
// console holds (the provider knows "client-secret").
func (e *env) newOIDCConsoleSecret(p *oidctest.Provider, groups []string, secret string) *httptest.Server {
	e.t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	redirect := "http://" + srv.Listener.Addr().String() + oidcCallbackPath
	p.AddClient(oidctest.Client{ID: "console", Secret: "client-secret", RedirectURIs: []string{redirect}})
	secretFile := filepath.Join(e.t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	cfg := Config{Enabled: true, RegistryURL: e.reg.srv.URL, RegistryHost: "registry.example.com", OIDC: OIDCConfig{
		Issuer: p.Issuer, ClientID: "console", ClientSecretFile: secretFile, RedirectURL: redirect,
		AllowedEmailDomains: []string{"vendor.example"}, AllowedGroups: groups,
	}}
	cfg.SetDefaults()
	if errs := cfg.Problems(); len(errs) > 0 {
		e.t.Fatal(errs)
	}
	lic := license.NewCache(e.db.NewBackend(accounts.BackendOptions{}), license.CacheConfig{Clock: e.clock.Now})
	c, err := New(Options{Config: cfg, DB: e.db, Licenses: lic, Limiter: e.limiter, Mint: testMint, Clock: e.clock.Now,
		HTTPClient: p.HTTPClient(), Log: slog.New(slog.NewTextHandler(e.logs, nil)), SignInFailed: e.signIns.add})
	if err != nil {
		e.t.Fatal(err)
	}
	srv.Config.Handler = c.Handler()
	srv.Start()
	e.t.Cleanup(srv.Close)
	return srv
}

// signInOIDC runs the code flow as a browser would: the console's
// redirect to the provider, the provider's redirects (auto-login), the
// callback. It returns the console's answer to the callback.
func (b *browser) signInOIDC() page {
	b.t.Helper()
	p := b.get(Prefix + "sign-in/oidc")
	if p.status != http.StatusSeeOther {
		b.t.Fatalf("sign-in/oidc: %d %s", p.status, p.body)
	}
	return b.followProvider(p.header.Get("Location"))
}

// followProvider follows the provider's redirects from loc, as the
// browser does, and returns the console's answer to the callback.
func (b *browser) followProvider(loc string) page {
	b.t.Helper()
	u := b.followProviderTo(loc)
	return b.get(strings.TrimPrefix(u.String(), b.base))
}

func TestVendorOIDCSignIn(t *testing.T) {
	e := newEnv(t, accountstest.SQLite(t))
	p := oidctest.Start(t, oidctest.Options{Users: []oidctest.User{staff, sales, outside, unverif, noMail}})
	srv := e.newOIDCConsole(p, nil)

	t.Run("sign-in page offers it", func(t *testing.T) {
		want(t, e.browserOn(srv).get(Prefix+"sign-in"), http.StatusOK, `href="/console/sign-in/oidc"`)
	})
	t.Run("staff of the allowed domain", func(t *testing.T) {
		p.AutoLogin("staff")
		b := e.browserOn(srv)
		cb := b.signInOIDC()
		if cb.status != http.StatusSeeOther || cb.header.Get("Location") != Prefix+"vendor/" {
			t.Fatalf("callback: %d %s", cb.status, cb.body)
		}
		want(t, b.get(Prefix+"vendor/"), http.StatusOK, "staff@vendor.example", "Dashboard")
		// Changes are audited with the e-mail as the actor.
		csrf := b.csrf(Prefix + "vendor/accounts")
		want(t, b.post(Prefix+"vendor/accounts", url.Values{"csrf": {csrf}, "email": {"carol@example.com"}, "channel": {"stable"}}), http.StatusOK, "The account&#39;s API token")
		want(t, b.get(accountPath("carol@example.com")), http.StatusOK, "staff@vendor.example")
	})
	for _, tc := range []struct{ user, says, reason string }{
		{"outside", "not one of the vendor&#39;s staff accounts", ReasonDomainNotAllowed},
		{"unverified", "not verified", ReasonEmailUnverified},
		{"nomail", "did not tell the console your e-mail address", ReasonNoEmail},
		{"nobody", "did not sign you in (access_denied)", ReasonProviderError},
	} {
		t.Run("refused "+tc.user, func(t *testing.T) {
			e.limiter.reset()
			p.AutoLogin(tc.user)
			b := e.browserOn(srv)
			cb := b.signInOIDC()
			want(t, cb, http.StatusForbidden, tc.says)
			want(t, b.get(Prefix+"vendor/"), http.StatusUnauthorized)
			if got := e.limiter.count("127.0.0.1"); got != 1 {
				t.Errorf("the refusal charged the limiter %d times, want 1", got)
			}
			e.signIns.check(t, map[string]int{"oidc/" + tc.reason: 1})
		})
	}
	t.Run("state from another browser", func(t *testing.T) {
		e.limiter.reset()
		p.AutoLogin("staff")
		victim, attacker := e.browserOn(srv), e.browserOn(srv)
		// The attacker starts a flow and hands its callback URL to the
		// victim (login CSRF): the victim's browser has no flow cookie.
		start := attacker.get(Prefix + "sign-in/oidc")
		u, _ := url.Parse(start.header.Get("Location"))
		cb := victim.get(oidcCallbackPath + "?code=stolen&state=" + url.QueryEscape(u.Query().Get("state")))
		want(t, cb, http.StatusForbidden, "not started from this browser")
		if strings.Contains(cb.header.Get("Set-Cookie"), sessionCookie+"=") && !strings.Contains(cb.header.Get("Set-Cookie"), sessionCookie+"=;") {
			t.Error("a session cookie was set")
		}
		e.signIns.check(t, map[string]int{"oidc/state_mismatch": 1})
	})
	t.Run("throttled", func(t *testing.T) {
		// The failed-login limiter the customers' sign-ins share: a
		// client it holds back does not reach the provider's answer.
		e.limiter.reset()
		for range 3 {
			e.limiter.Charge("127.0.0.1", "")
		}
		p.AutoLogin("staff")
		want(t, e.browserOn(srv).signInOIDC(), http.StatusTooManyRequests)
		e.limiter.reset()
		e.signIns.check(t, map[string]int{"oidc/rate_limited": 1})
	})
	if !strings.Contains(e.logs.String(), "outside the allowed domains") {
		t.Errorf("log lacks the refusal's reason:\n%s", e.logs.String())
	}
}

// TestVendorOIDCFlowTampered: the flow cookie carries the state, nonce
// and PKCE verifier between the redirect to the provider and the callback.
// A cookie changed on the way (or a callback whose state is not the
// cookie's) is refused with a page that says so, counted by reason, and
// makes no session, while the provider itself signed the user in.
func TestVendorOIDCFlowTampered(t *testing.T) {
	e := newEnv(t, accountstest.SQLite(t))
	p := oidctest.Start(t, oidctest.Options{Users: []oidctest.User{staff}})
	srv := e.newOIDCConsole(p, nil)
	p.AutoLogin("staff")
	const verify = "could not be verified"
	for _, tc := range []struct {
		name   string
		flow   func(*oidcFlow)  // changes the flow cookie
		cb     func(u *url.URL) // changes the callback URL
		says   string
		reason string
	}{
		{"nonce", func(f *oidcFlow) { f.Nonce = randomString() }, nil, verify, ReasonNonceMismatch},
		{"verifier", func(f *oidcFlow) { f.Verifier = randomString() }, nil, "refused the sign-in&#39;s code", ReasonCodeExchange},
		{"state in the cookie", func(f *oidcFlow) { f.State = randomString() }, nil, "not started from this browser", ReasonStateMismatch},
		{"state in the callback", nil, func(u *url.URL) {
			q := u.Query()
			q.Set("state", randomString())
			u.RawQuery = q.Encode()
		}, "not started from this browser", ReasonStateMismatch},
		{"no state in the callback", nil, func(u *url.URL) {
			q := u.Query()
			q.Del("state")
			u.RawQuery = q.Encode()
		}, "not started from this browser", ReasonStateMismatch},
		{"cookie not a flow", func(*oidcFlow) {}, nil, "not started from this browser", ReasonStateMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.limiter.reset()
			b := e.browserOn(srv)
			start := b.get(Prefix + "sign-in/oidc")
			if start.status != http.StatusSeeOther {
				t.Fatalf("sign-in/oidc: %d %s", start.status, start.body)
			}
			flowURL, _ := url.Parse(b.base + Prefix + "sign-in/oidc/")
			var f oidcFlow
			var value string
			for _, ck := range b.c.Jar.Cookies(flowURL) {
				if ck.Name == oidcFlowCookie {
					value = ck.Value
				}
			}
			raw, err := base64.RawURLEncoding.DecodeString(value)
			if err != nil || json.Unmarshal(raw, &f) != nil || f.State == "" || f.Nonce == "" || f.Verifier == "" {
				t.Fatalf("flow cookie %q: %v", value, err)
			}
			if tc.flow != nil {
				tc.flow(&f)
				raw, _ = json.Marshal(f)
				value = base64.RawURLEncoding.EncodeToString(raw)
				if tc.name == "cookie not a flow" {
					value = "not-base64!"
				}
				b.c.Jar.SetCookies(flowURL, []*http.Cookie{{Name: oidcFlowCookie, Value: value, Path: Prefix + "sign-in/oidc"}})
			}
			// The provider signs the user in and sends the browser back.
			cbURL := b.followProviderTo(start.header.Get("Location"))
			if tc.cb != nil {
				tc.cb(cbURL)
			}
			cb := b.get(strings.TrimPrefix(cbURL.String(), b.base))
			want(t, cb, http.StatusForbidden, tc.says, "Start again")
			for _, c := range cb.header.Values("Set-Cookie") {
				if strings.HasPrefix(c, sessionCookie+"=") && !strings.HasPrefix(c, sessionCookie+"=;") {
					t.Errorf("a session cookie was set: %s", c)
				}
			}
			want(t, b.get(Prefix+"vendor/"), http.StatusUnauthorized)
			if n := countSessions(t, e.cfg); n != 0 {
				t.Errorf("%d session(s) in the database after a refused sign-in", n)
			}
			if got := e.limiter.count("127.0.0.1"); got != 1 {
				t.Errorf("the refusal charged the limiter %d times, want 1", got)
			}
			e.signIns.check(t, map[string]int{"oidc/" + tc.reason: 1})
			if !strings.Contains(e.logs.String(), "reason="+tc.reason) {
				t.Errorf("log lacks reason=%s:\n%s", tc.reason, e.logs.String())
			}
		})
	}
	// The same flow untouched signs in: the refusals above are the
	// tampering's, not the test's.
	e.limiter.reset()
	if cb := e.browserOn(srv).signInOIDC(); cb.status != http.StatusSeeOther {
		t.Fatalf("untouched flow: %d %s", cb.status, cb.body)
	}
	if n := countSessions(t, e.cfg); n != 1 {
		t.Errorf("%d sessions after one sign-in", n)
	}
	e.signIns.check(t, map[string]int{})
}

// followProviderTo follows the provider's redirects from loc and returns
// the callback URL it sends the browser back to, not yet opened. The
// provider is another site: a client of its own (its own cookies).
func (b *browser) followProviderTo(loc string) *url.URL {
	b.t.Helper()
	idp := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for range 10 {
		if strings.HasPrefix(loc, b.base) {
			u, err := url.Parse(loc)
			if err != nil {
				b.t.Fatal(err)
			}
			return u
		}
		resp, err := idp.Get(loc)
		if err != nil {
			b.t.Fatal(err)
		}
		resp.Body.Close()
		next, err := resp.Location()
		if err != nil {
			b.t.Fatalf("provider answered %s at %s, no redirect", resp.Status, loc)
		}
		loc = next.String()
	}
	b.t.Fatal("too many redirects")
	return nil
}

// countSessions counts the console's sessions in the (SQLite) database,
// read without the package.
func countSessions(t *testing.T, cfg *accounts.Config) int {
	t.Helper()
	db, err := sql.Open("sqlite", cfg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM console_sessions").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (l *countingLimiter) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures = nil
}

func TestVendorOIDCWrongClientSecret(t *testing.T) {
	e := newEnv(t, accountstest.SQLite(t))
	p := oidctest.Start(t, oidctest.Options{Users: []oidctest.User{staff}})
	srv := e.newOIDCConsoleSecret(p, nil, "not-the-secret")
	p.AutoLogin("staff")
	want(t, e.browserOn(srv).signInOIDC(), http.StatusForbidden, "refused the sign-in&#39;s code")
	if !strings.Contains(e.logs.String(), "code exchange") {
		t.Errorf("log lacks the exchange's failure:\n%s", e.logs.String())
	}
	e.signIns.check(t, map[string]int{"oidc/code_exchange": 1})
}

func TestVendorOIDCGroups(t *testing.T) {
	e := newEnv(t, accountstest.SQLite(t))
	p := oidctest.Start(t, oidctest.Options{Users: []oidctest.User{staff, sales}})
	srv := e.newOIDCConsole(p, []string{"support"})
	p.AutoLogin("sales")
	want(t, e.browserOn(srv).signInOIDC(), http.StatusForbidden, "not in a group allowed")
	e.signIns.check(t, map[string]int{"oidc/group_not_allowed": 1})
	p.AutoLogin("staff")
	if cb := e.browserOn(srv).signInOIDC(); cb.status != http.StatusSeeOther {
		t.Fatalf("staff in support: %d %s", cb.status, cb.body)
	}
}

func TestOIDCConfigProblems(t *testing.T) {
	for _, tc := range []struct {
		cfg  OIDCConfig
		want string
	}{
		{OIDCConfig{ClientID: "x"}, "console.oidc.issuer: required"},
		{OIDCConfig{Issuer: "ftp://x", ClientID: "c", RedirectURL: "https://c.example/console/sign-in/oidc/callback", AllowedGroups: []string{"g"}}, "console.oidc.issuer"},
		{OIDCConfig{Issuer: "https://idp.example", RedirectURL: "https://c.example/console/sign-in/oidc/callback", AllowedGroups: []string{"g"}}, "console.oidc.client_id: required"},
		{OIDCConfig{Issuer: "https://idp.example", ClientID: "c", AllowedGroups: []string{"g"}}, "console.oidc.redirect_url: required"},
		{OIDCConfig{Issuer: "https://idp.example", ClientID: "c", RedirectURL: "https://c.example/elsewhere", AllowedGroups: []string{"g"}}, "console.oidc.redirect_url"},
		{OIDCConfig{Issuer: "https://idp.example", ClientID: "c", RedirectURL: "https://c.example/console/sign-in/oidc/callback"}, "set allowed_email_domains or allowed_groups"},
		{OIDCConfig{Issuer: "https://idp.example", ClientID: "c", RedirectURL: "https://c.example/console/sign-in/oidc/callback", AllowedEmailDomains: []string{"a@b"}}, "is not a domain"},
	} {
		errs := tc.cfg.problems()
		var all []string
		for _, err := range errs {
			all = append(all, err.Error())
		}
		if !strings.Contains(strings.Join(all, "\n"), tc.want) {
			t.Errorf("%+v: problems %q, want %q", tc.cfg, all, tc.want)
		}
	}
	ok := OIDCConfig{Issuer: "https://idp.example", ClientID: "c", RedirectURL: "https://c.example/console/sign-in/oidc/callback", AllowedEmailDomains: []string{"vendor.example"}}
	if errs := ok.problems(); len(errs) > 0 {
		t.Errorf("a good section: %v", errs)
	}
	if _, err := newOIDCSignIn(OIDCConfig{ClientSecretFile: filepath.Join(t.TempDir(), "missing")}, nil); err == nil || !strings.Contains(err.Error(), "client_secret_file") {
		t.Errorf("a missing secret file: %v", err)
	}
}

func TestOIDCProviderDown(t *testing.T) {
	e := newEnv(t, accountstest.SQLite(t))
	p := oidctest.Start(t, oidctest.Options{})
	srv := e.newOIDCConsole(p, nil)
	// Stop the provider before the first use: discovery fails, the page
	// says so, and the console itself works.
	p.Close()
	b := e.browserOn(srv)
	want(t, b.get(Prefix+"sign-in/oidc"), http.StatusServiceUnavailable, "identity provider is not answering")
	want(t, b.signInVendorKey(e.adminKey), http.StatusSeeOther)
	e.signIns.check(t, map[string]int{"oidc/provider_unavailable": 1})
}

var tokenShownRe = regexp.MustCompile(`<pre id="secret"><code>([^<]+)</code></pre>`)

// shownSecret is the token or link a page shows once.
func shownSecret(t *testing.T, p page) string {
	t.Helper()
	m := tokenShownRe.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no secret shown: %d %s", p.status, p.body)
	}
	return html.UnescapeString(m[1])
}

func TestVendorAccountPages(t *testing.T) {
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		e := newEnv(t, cfg)
		b := e.browser()
		b.signInVendorKey(e.adminKey)
		csrf := b.csrf(Prefix + "vendor/accounts")
		post := func(path string, form url.Values) page {
			t.Helper()
			form.Set("csrf", csrf)
			return b.post(path, form)
		}
		backend := e.db.NewBackend(accounts.BackendOptions{})
		lic := func(email, token string) error {
			l, err := backend.Lookup(t.Context(), token)
			if err == nil && l.Account != email {
				return errors.New("the token is " + l.Account + "'s")
			}
			return err
		}

		// Create: the token is shown once, on the answer, and works.
		created := post(Prefix+"vendor/accounts", url.Values{"email": {"Carol@Example.com"}, "channel": {"beta"}, "expires": {"2027-06-30"}})
		want(t, created, http.StatusOK, "Account carol@example.com", "<code>beta</code>")
		first := shownSecret(t, created)
		if err := lic("carol@example.com", first); err != nil {
			t.Fatalf("the token shown does not sign in: %v", err)
		}
		acct := accountPath("carol@example.com")
		if strings.Contains(b.get(acct).body, first) {
			t.Error("the account page shows the token again")
		}
		// A duplicate is refused with the store's words.
		want(t, post(Prefix+"vendor/accounts", url.Values{"email": {"carol@example.com"}, "channel": {"beta"}}), http.StatusConflict, "exists already")
		want(t, post(Prefix+"vendor/accounts", url.Values{"email": {"carol@example.com"}, "channel": {"beta"}, "expires": {"soon"}}), http.StatusBadRequest, "not a date")
		want(t, post(Prefix+"vendor/accounts", url.Values{"email": {"dave@example.com"}}), http.StatusBadRequest, "no channels")

		// Grant stable with an end, ungrant beta.
		want(t, post(acct+"/grant", url.Values{"channel": {"stable"}, "expires": {"2026-12-20"}}), http.StatusSeeOther)
		want(t, post(acct+"/ungrant", url.Values{"channel": {"beta"}}), http.StatusSeeOther)
		grants, err := e.db.Grants(t.Context(), "carol@example.com")
		if err != nil || len(grants) != 1 || grants[0].Channel != "stable" || !grants[0].Expires.Equal(time.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC)) {
			t.Fatalf("grants %+v (%v)", grants, err)
		}
		want(t, post(acct+"/grant", url.Values{"channel": {"nightly"}}), http.StatusBadRequest)

		// Issue a named token, rotate it, revoke the first.
		issued := post(acct+"/tokens", url.Values{"name": {"ci"}})
		second := shownSecret(t, issued)
		toks, _ := e.db.NamedTokens(t.Context(), "carol@example.com")
		var ci, orig int64
		for _, tk := range toks {
			if tk.Name == "ci" {
				ci = tk.ID
			} else {
				orig = tk.ID
			}
		}
		rotated := post(acct+"/tokens/"+itoa(ci)+"/rotate", url.Values{})
		third := shownSecret(t, rotated)
		if lic("carol@example.com", second) == nil || lic("carol@example.com", third) != nil {
			t.Error("rotation: the old token still works or the new one does not")
		}
		want(t, post(acct+"/tokens/"+itoa(orig)+"/revoke", url.Values{}), http.StatusSeeOther)
		if lic("carol@example.com", first) == nil {
			t.Error("a revoked token still signs in")
		}
		// Another account's token id is not found under this account.
		bobToks, _ := e.db.NamedTokens(t.Context(), "bob@example.com")
		want(t, post(acct+"/tokens/"+itoa(bobToks[0].ID)+"/revoke", url.Values{}), http.StatusNotFound)

		// Disable and enable.
		want(t, post(acct+"/state", url.Values{"state": {"disabled"}}), http.StatusSeeOther)
		if lic("carol@example.com", third) == nil {
			t.Error("a disabled account signs in")
		}
		want(t, post(acct+"/state", url.Values{"state": {"gone"}}), http.StatusBadRequest)
		want(t, post(acct+"/state", url.Values{"state": {"active"}}), http.StatusSeeOther)

		// Self-service and a sign-in link.
		want(t, post(acct+"/self-service", url.Values{"on": {"1"}}), http.StatusSeeOther)
		link := shownSecret(t, post(acct+"/link", url.Values{}))
		if !strings.Contains(link, "/console/link?t=") {
			t.Errorf("sign-in link %q", link)
		}

		// The page: grants, tokens, state, usage, audit with the actor.
		pg := b.get(acct)
		want(t, pg, http.StatusOK, "<code>stable</code>", "2026-12-20", "ci", "revoked", "Stop the customer's own tokens",
			"Audit trail", "support", "Pulls and checks per day", "Disable the account")
		for _, action := range []string{"add", "grant", "ungrant", "token.add", "token.rotate", "token.revoke", "disable", "enable", "self_service", "signin_link.create"} {
			if !strings.Contains(pg.body, "<td>"+action) {
				t.Errorf("audit trail lacks %s", action)
			}
		}
		want(t, b.get(Prefix+"vendor/accounts/nobody@example.com"), http.StatusNotFound)

		// The list: search and filters.
		want(t, b.get(Prefix+"vendor/accounts?q=carol"), http.StatusOK, "carol@example.com")
		if p := b.get(Prefix + "vendor/accounts?channel=beta"); strings.Contains(p.body, ">carol@example.com<") || !strings.Contains(p.body, ">bob@example.com<") {
			t.Errorf("channel filter:\n%s", p.body)
		}
		if p := b.get(Prefix + "vendor/accounts?state=disabled"); strings.Contains(p.body, ">bob@example.com<") {
			t.Errorf("state filter shows an active account")
		}
		// Channels with their holders.
		want(t, b.get(Prefix+"vendor/channels"), http.StatusOK, "<code>stable</code>", "<code>beta</code>")
		want(t, b.get(Prefix+"vendor/"), http.StatusOK, "Dashboard", "Expiring within 30 days", "carol@example.com")
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestVendorFormsNeedCSRF(t *testing.T) {
	e := newEnv(t, accountstest.SQLite(t))
	b := e.browser()
	b.signInVendorKey(e.adminKey)
	for _, path := range []string{Prefix + "vendor/accounts", accountPath("alice@example.com") + "/grant", accountPath("alice@example.com") + "/state"} {
		want(t, b.post(path, url.Values{"email": {"x@example.com"}, "channel": {"beta"}, "state": {"disabled"}}), http.StatusForbidden, "security token")
		want(t, b.post(path, url.Values{"csrf": {"forged"}, "email": {"x@example.com"}, "channel": {"beta"}, "state": {"disabled"}}), http.StatusForbidden)
	}
	if a, err := e.db.Show(t.Context(), "alice@example.com"); err != nil || a.State != accounts.StateActive || len(a.Channels) != 1 {
		t.Fatalf("a form without its token changed the account: %+v %v", a, err)
	}
}

func TestVendorReadOnly(t *testing.T) {
	e := newEnv(t, accountstest.SQLite(t))
	_, key, err := e.db.AddAdminKey(t.Context(), "test", "auditor", accounts.ScopeRead, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.signInVendorKey(key)
	pg := b.get(accountPath("alice@example.com"))
	want(t, pg, http.StatusOK, "alice@example.com")
	if strings.Contains(pg.body, "Issue a token") || strings.Contains(pg.body, "Disable the account") {
		t.Error("a read-only session is offered changes")
	}
	csrf := b.csrf(Prefix + "vendor/accounts")
	want(t, b.post(accountPath("alice@example.com")+"/state", url.Values{"csrf": {csrf}, "state": {"disabled"}}), http.StatusForbidden, "read access only")
}

func TestVendorPagesEscape(t *testing.T) {
	e := newEnv(t, accountstest.SQLite(t))
	evil := `<script>alert(1)</script>@evil.example`
	if _, _, err := e.db.Add(t.Context(), "<b>actor</b>", evil, []string{"stable"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.signInVendorKey(e.adminKey)
	for _, path := range []string{Prefix + "vendor/accounts", accountPath(evil)} {
		pg := b.get(path)
		want(t, pg, http.StatusOK, "&lt;script&gt;alert(1)&lt;/script&gt;@evil.example")
		if strings.Contains(pg.body, "<script>alert") || strings.Contains(pg.body, "<b>actor") {
			t.Errorf("%s: markup from the data rendered as markup", path)
		}
	}
}

func TestCustomerCannotUseVendorPages(t *testing.T) {
	e := newEnv(t, accountstest.SQLite(t))
	b := e.browser()
	b.mustSignInCustomer("alice@example.com", e.aliceToken)
	csrf := b.csrf(Prefix + "customer/")
	for _, path := range []string{Prefix + "vendor/", Prefix + "vendor/accounts", accountPath("bob@example.com"), Prefix + "vendor/channels"} {
		want(t, b.get(path), http.StatusForbidden)
	}
	want(t, b.post(accountPath("bob@example.com")+"/state", url.Values{"csrf": {csrf}, "state": {"disabled"}}), http.StatusForbidden)
}

// The dashboard's top lists count every day of its 30 from the daily
// counts, as its chart does: also the days whose raw events
// usage.retention has pruned, and the newest days however many events
// came before them (it read at most 50,000 raw events, the oldest).
func TestVendorDashboardTopListsFromDailyCounts(t *testing.T) {
	e := newEnv(t, accountstest.SQLite(t))
	ctx := t.Context()
	ev := func(at time.Time, account, repo, outcome string) accounts.UsageEvent {
		u := accounts.UsageEvent{Time: at, Account: account, Repository: repo, Reference: "1.0",
			Digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Outcome: outcome, Agent: "docker"}
		if outcome == accounts.UsageDenied {
			u.Digest, u.Reason = "", "channel_not_licensed"
		}
		return u
	}
	old := t0.AddDate(0, 0, -20)
	if err := e.db.RecordUsage(ctx, []accounts.UsageEvent{
		ev(old, "alice@example.com", "stable/hello", accounts.UsagePull),
		ev(old, "alice@example.com", "stable/chart", accounts.UsageCheck),
		ev(old, "alice@example.com", "beta/hello", accounts.UsageDenied),
		ev(t0.Add(-time.Hour), "bob@example.com", "beta/hello", accounts.UsagePull),
	}); err != nil {
		t.Fatal(err)
	}
	// usage.retention of 10 days: alice's raw events go, the counts stay.
	if _, _, err := e.db.PruneUsage(ctx, t0.AddDate(0, 0, -10), t0.AddDate(-1, 0, 0)); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.signInVendorKey(e.adminKey)
	pg := b.get(Prefix + "vendor/")
	want(t, pg, http.StatusOK)
	for _, row := range []string{
		`<a href="/console/vendor/accounts/alice@example.com">alice@example.com</a></td><td>2</td>`,
		`<a href="/console/vendor/accounts/bob@example.com">bob@example.com</a></td><td>1</td>`,
		`<code>stable/hello</code></td><td>1</td>`, `<code>stable/chart</code></td><td>1</td>`, `<code>beta/hello</code></td><td>1</td>`,
		`<td><code>beta</code></td><td>1</td>`,
	} {
		if !strings.Contains(pg.body, row) {
			t.Errorf("the dashboard lacks %s", row)
		}
	}
}
