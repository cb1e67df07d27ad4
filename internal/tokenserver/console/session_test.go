package console

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
)

func TestCustomerSignInRefused(t *testing.T) {
	e := newEnv(t, accountstest.SQLite(t))
	b := e.browser()
	// A wrong token: one message for every reason, the limiter charged,
	// the reason and the token's fingerprint logged, never the token.
	p := b.signInCustomer("alice@example.com", "rgw_wrong")
	want(t, p, http.StatusUnauthorized, signInFailed, `value="alice@example.com"`)
	if strings.Contains(p.header.Get("Set-Cookie"), sessionCookie+"=") {
		t.Error("a refused sign-in set a session cookie")
	}
	if e.limiter.count("127.0.0.1") != 1 {
		t.Errorf("limiter charged %d times", e.limiter.count("127.0.0.1"))
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "reason=wrong_token") || !strings.Contains(logs, "token_fp=") || strings.Contains(logs, "rgw_wrong") {
		t.Errorf("log: %s", logs)
	}
	// Unknown account, disabled account: the same answer.
	want(t, b.signInCustomer("nobody@example.com", e.aliceToken), http.StatusUnauthorized, signInFailed)
	if err := e.db.SetState(t.Context(), "test", "bob@example.com", accounts.StateDisabled); err != nil {
		t.Fatal(err)
	}
	want(t, b.signInCustomer("bob@example.com", e.bobToken), http.StatusUnauthorized, signInFailed)
	// Three failures: the limiter holds the address back, even with the
	// right token.
	p = b.signInCustomer("alice@example.com", e.aliceToken)
	want(t, p, http.StatusTooManyRequests, "Too many failed sign-ins")
	if p.header.Get("Retry-After") != "60" {
		t.Errorf("Retry-After %q", p.header.Get("Retry-After"))
	}
}

func TestCustomerSignInMalformed(t *testing.T) {
	e := newEnv(t, accountstest.SQLite(t))
	b := e.browser()
	want(t, b.signInCustomer("", ""), http.StatusBadRequest, "Enter your e-mail address and your API token")
	want(t, b.signInCustomer("alice@example.com", strings.Repeat("x", maxTokenLen+1)), http.StatusUnauthorized, signInFailed)
	// Without the sign-in form's token (a cross-site post): refused.
	want(t, b.post(Prefix+"sign-in/customer", url.Values{"email": {"alice@example.com"}, "token": {e.aliceToken}}), http.StatusForbidden, "security token")
	want(t, b.post(Prefix+"sign-in/customer", url.Values{"csrf": {"forged"}, "email": {"alice@example.com"}, "token": {e.aliceToken}}), http.StatusForbidden)
	// A body over the bound.
	want(t, b.post(Prefix+"sign-in/customer", url.Values{"csrf": {b.csrf(Prefix + "sign-in")}, "email": {strings.Repeat("a", maxFormBytes)}}), http.StatusBadRequest)
}

func TestVendorKeySignInRefused(t *testing.T) {
	e := newEnv(t, accountstest.SQLite(t))
	b := e.browser()
	want(t, b.signInVendorKey("rga_wrong"), http.StatusUnauthorized, "not an active admin key")
	if e.limiter.count("127.0.0.1") != 1 {
		t.Error("limiter not charged")
	}
	if _, err := e.db.RevokeAdminKey(t.Context(), "test", "support"); err != nil {
		t.Fatal(err)
	}
	want(t, b.signInVendorKey(e.adminKey), http.StatusUnauthorized)
	e.signIns.check(t, map[string]int{"admin_key/wrong_key": 2})
	// Held back by the limiter the customers' sign-ins share.
	e.limiter.Charge("127.0.0.1", "")
	want(t, b.signInVendorKey(e.adminKey), http.StatusTooManyRequests)
	e.signIns.check(t, map[string]int{"admin_key/rate_limited": 1})
	if !strings.Contains(e.logs.String(), "reason=wrong_key") {
		t.Errorf("log lacks the reason:\n%s", e.logs.String())
	}
}

// TestVendorSessionEndsWithKey: revoking the admin key a vendor signed in
// with ends the session.
func TestVendorSessionEndsWithKey(t *testing.T) {
	e := newEnv(t, accountstest.SQLite(t))
	b := e.browser()
	if p := b.signInVendorKey(e.adminKey); p.status != http.StatusSeeOther {
		t.Fatalf("%d %s", p.status, p.body)
	}
	want(t, b.get(Prefix+"vendor/"), http.StatusOK)
	if _, err := e.db.RevokeAdminKey(t.Context(), "test", "support"); err != nil {
		t.Fatal(err)
	}
	want(t, b.get(Prefix+"vendor/"), http.StatusUnauthorized, "Please sign in")
}

func TestSignInLinks(t *testing.T) {
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		e := newEnv(t, cfg)
		ctx := t.Context()
		secret, _, err := e.db.CreateSignInLink(ctx, "support", "alice@example.com", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		b := e.browser()
		// Opening the link does not use it up (mail scanners open links).
		for range 2 {
			want(t, b.get(Prefix+"link?t="+url.QueryEscape(secret)), http.StatusOK, `name="t" value="`+secret+`"`)
		}
		csrf := b.csrf(Prefix + "link?t=" + url.QueryEscape(secret))
		p := b.post(Prefix+"link", url.Values{"csrf": {csrf}, "t": {secret}})
		if p.status != http.StatusSeeOther || p.header.Get("Location") != Prefix+"customer/" {
			t.Fatalf("%d %s", p.status, p.body)
		}
		want(t, b.get(Prefix+"customer/"), http.StatusOK, "alice@example.com", "stable/hello")

		// Used again, by anyone: refused.
		b2 := e.browser()
		want(t, b2.post(Prefix+"link", url.Values{"csrf": {b2.csrf(Prefix + "sign-in")}, "t": {secret}}), http.StatusGone, "used already")
		// Expired.
		late, _, err := e.db.CreateSignInLink(ctx, "support", "alice@example.com", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Hour)
		want(t, b2.post(Prefix+"link", url.Values{"csrf": {b2.csrf(Prefix + "sign-in")}, "t": {late}}), http.StatusGone, "expired")
		// Unknown, and without the form's token.
		want(t, b2.post(Prefix+"link", url.Values{"csrf": {b2.csrf(Prefix + "sign-in")}, "t": {"nope"}}), http.StatusNotFound, "not a sign-in link")
		want(t, b2.post(Prefix+"link", url.Values{"t": {late}}), http.StatusForbidden)
		// A link of a deleted account signs nobody in.
		gone, _, err := e.db.CreateSignInLink(ctx, "support", "bob@example.com", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.db.Delete(ctx, "test", "bob@example.com"); err != nil {
			t.Fatal(err)
		}
		want(t, b2.post(Prefix+"link", url.Values{"csrf": {b2.csrf(Prefix + "sign-in")}, "t": {gone}}), http.StatusNotFound)
		// Counted by reason; the refusal without the form's token is the
		// CSRF check's, before any sign-in.
		e.signIns.check(t, map[string]int{"link/link_used": 1, "link/link_expired": 1, "link/unknown_link": 2})
	})
}

func TestCSRF(t *testing.T) {
	e := newEnv(t, accountstest.SQLite(t))
	if err := e.db.SetSelfServiceTokens(t.Context(), "test", "alice@example.com", true); err != nil {
		t.Fatal(err)
	}
	alice, bob := e.browser(), e.browser()
	alice.mustSignInCustomer("alice@example.com", e.aliceToken)
	bob.mustSignInCustomer("bob@example.com", e.bobToken)
	// No token, another session's token, a made-up one: 403, nothing made.
	for _, csrf := range []string{"", bob.csrf(Prefix + "customer/tokens"), "x"} {
		want(t, alice.post(Prefix+"customer/tokens", url.Values{"csrf": {csrf}, "name": {"ci"}}), http.StatusForbidden, "Form refused")
		want(t, alice.post(Prefix+"sign-out", url.Values{"csrf": {csrf}}), http.StatusForbidden)
	}
	if toks, _ := e.db.NamedTokens(t.Context(), "alice@example.com"); len(toks) != 1 {
		t.Errorf("a token was made without the CSRF token: %+v", toks)
	}
	// Still signed in: a refused sign-out signs nobody out.
	want(t, alice.get(Prefix+"customer/"), http.StatusOK)
}

// TestSessions: expiry when idle, at the absolute end, by sign-out on
// another replica, and when the account is disabled.
func TestSessions(t *testing.T) {
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		e := newEnv(t, cfg)
		replica2 := e.newConsole()

		// Idle.
		b := e.browser()
		b.mustSignInCustomer("alice@example.com", e.aliceToken)
		e.clock.Advance(DefaultSessionIdle - time.Minute)
		want(t, b.get(Prefix+"customer/usage"), http.StatusOK) // used: the idle time starts again
		e.clock.Advance(DefaultSessionIdle - time.Minute)
		want(t, b.get(Prefix+"customer/usage"), http.StatusOK)
		e.clock.Advance(DefaultSessionIdle)
		want(t, b.get(Prefix+"customer/usage"), http.StatusUnauthorized, "Please sign in")

		// The absolute end, used all along.
		b = e.browser()
		b.mustSignInCustomer("alice@example.com", e.aliceToken)
		for end := e.clock.Now().Add(DefaultSessionMax); e.clock.Now().Add(10 * time.Minute).Before(end); e.clock.Advance(10 * time.Minute) {
			if p := b.get(Prefix + "customer/usage"); p.status != http.StatusOK {
				t.Fatalf("at %v: %d", e.clock.Now(), p.status)
			}
		}
		e.clock.Advance(10 * time.Minute)
		want(t, b.get(Prefix+"customer/usage"), http.StatusUnauthorized)

		// Signed in on one replica, used on the other, signed out there:
		// the first refuses it too.
		b = e.browser()
		b.mustSignInCustomer("alice@example.com", e.aliceToken)
		id := sessionOf(t, b)
		other := b.on(replica2)
		want(t, other.get(Prefix+"customer/usage"), http.StatusOK, "Your pulls")
		p := other.post(Prefix+"sign-out", url.Values{"csrf": {other.csrf(Prefix + "customer/usage")}})
		if p.status != http.StatusSeeOther || !strings.Contains(p.header.Get("Set-Cookie"), "Max-Age=0") {
			t.Fatalf("sign-out: %d %v", p.status, p.header)
		}
		// The browser forgot the cookie; an old copy of it is refused on
		// both replicas.
		stale := e.browser()
		stale.c.Jar.SetCookies(mustURL(t, e.srv.URL+Prefix), []*http.Cookie{{Name: sessionCookie, Value: id}})
		want(t, stale.get(Prefix+"customer/usage"), http.StatusUnauthorized)
		want(t, stale.on(replica2).get(Prefix+"customer/usage"), http.StatusUnauthorized)

		// Disabled account: its sessions end.
		b = e.browser()
		b.mustSignInCustomer("alice@example.com", e.aliceToken)
		if err := e.db.SetState(t.Context(), "test", "alice@example.com", accounts.StateDisabled); err != nil {
			t.Fatal(err)
		}
		want(t, b.get(Prefix+"customer/"), http.StatusUnauthorized)
	})
}

// TestSessionFixation: a session id planted before the sign-in is not the
// one after it, and is dead.
func TestSessionFixation(t *testing.T) {
	e := newEnv(t, accountstest.SQLite(t))
	attacker := e.browser()
	attacker.mustSignInCustomer("bob@example.com", e.bobToken)
	planted := sessionOf(t, attacker)
	victim := e.browser()
	victim.c.Jar.SetCookies(mustURL(t, e.srv.URL+Prefix), []*http.Cookie{{Name: sessionCookie, Value: planted}})
	victim.mustSignInCustomer("alice@example.com", e.aliceToken)
	if sessionOf(t, victim) == planted {
		t.Fatal("the planted session id was kept")
	}
	want(t, attacker.get(Prefix+"customer/"), http.StatusUnauthorized)
}

func TestCookies(t *testing.T) {
	e := newEnv(t, accountstest.SQLite(t))
	check := func(b *browser, secure bool) {
		t.Helper()
		p := b.post(Prefix+"sign-in/customer", url.Values{"csrf": {b.csrf(Prefix + "sign-in")}, "email": {"alice@example.com"}, "token": {e.aliceToken}})
		var found bool
		for _, c := range (&http.Response{Header: p.header}).Cookies() {
			if c.Name != sessionCookie {
				continue
			}
			found = true
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != Prefix || c.Secure != secure || c.MaxAge != 0 {
				t.Errorf("cookie %+v", c)
			}
		}
		if !found {
			t.Fatalf("no session cookie: %d %v", p.status, p.header)
		}
	}
	check(e.browser(), false)

	// Under TLS the cookie is Secure.
	cfg := Config{Enabled: true, RegistryURL: e.reg.srv.URL}
	cfg.SetDefaults()
	c, err := New(Options{Config: cfg, DB: e.db, Licenses: licensesOf(e), Mint: testMint, Clock: e.clock.Now, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	tlsSrv := httptest.NewTLSServer(c.Handler())
	t.Cleanup(tlsSrv.Close)
	b := e.browserOn(tlsSrv)
	b.c.Transport = tlsSrv.Client().Transport
	check(b, true)
	if p := b.get(Prefix + "sign-in"); p.header.Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS under TLS")
	}
}

func TestPublicPages(t *testing.T) {
	e := newEnv(t, accountstest.SQLite(t))
	b := e.browser()
	want(t, b.get(Prefix+"help"), http.StatusOK, `id="channel"`, "does not grant pull on channel", "docker login registry.example.com")
	if p := b.get(Prefix); p.status != http.StatusSeeOther || p.header.Get("Location") != Prefix+"sign-in" {
		t.Errorf("home: %d %v", p.status, p.header)
	}
	want(t, b.get(Prefix+"nope"), http.StatusNotFound, "There is no such page")
	want(t, b.get(Prefix+"customer/"), http.StatusUnauthorized, "Please sign in")
	b.mustSignInCustomer("alice@example.com", e.aliceToken)
	want(t, b.get(Prefix+"sign-in"), http.StatusOK, `You are signed in as alice@example.com: <a href="/console/customer/">`)
	p := b.get(Prefix + "static/console.css")
	want(t, p, http.StatusOK, ":focus-visible")
	if ct := p.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
		t.Errorf("css content type %q", ct)
	}
	if p := b.get(Prefix + "static/console.js"); p.status != http.StatusOK || !strings.Contains(p.header.Get("Content-Type"), "javascript") {
		t.Errorf("js: %d %q", p.status, p.header.Get("Content-Type"))
	}
	// No page has inline script or inline style: the CSP would block it.
	for _, path := range []string{"sign-in", "help", "link?t=x"} {
		body := b.get(Prefix + path).body
		if strings.Contains(body, "<script>") || strings.Contains(body, "style=") || strings.Contains(body, " on") && strings.Contains(body, "onclick") {
			t.Errorf("%s has inline script or style", path)
		}
	}
}

func sessionOf(t *testing.T, b *browser) string {
	t.Helper()
	for _, c := range b.c.Jar.Cookies(mustURL(t, b.base+Prefix)) {
		if c.Name == sessionCookie {
			return c.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestNewSignInLink(t *testing.T) {
	e := newEnv(t, accountstest.SQLite(t))
	cfg := Config{Enabled: true, RegistryURL: e.reg.srv.URL}
	cfg.SetDefaults()
	c, err := New(Options{Config: cfg, DB: e.db, Licenses: licensesOf(e), Mint: testMint, Clock: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "http://console.test/console/vendor/accounts", nil)
	link, expires, err := c.NewSignInLink(r, "support", "alice@example.com")
	if err != nil || !strings.HasPrefix(link, "http://console.test/console/link?t=") || !expires.Equal(t0.Add(DefaultSignInLinkTTL)) {
		t.Fatalf("%q %v %v", link, expires, err)
	}
	c.cfg.PublicURL = "https://c.example.com/console/"
	if link, _, _ := c.NewSignInLink(r, "support", "alice@example.com"); !strings.HasPrefix(link, "https://c.example.com/console/link?t=") {
		t.Errorf("%q", link)
	}
	if _, _, err := c.NewSignInLink(r, "support", "nobody@example.com"); !errors.Is(err, accounts.ErrNotFound) {
		t.Errorf("unknown account: %v", err)
	}
}
