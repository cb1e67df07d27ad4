package console

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
)

// TestCustomerIsolation: a customer signed in sees and changes only their
// own account, whatever ids they send: every customer route, with the
// second account's ids, on both databases.
func TestCustomerIsolation(t *testing.T) {
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		e := newEnv(t, cfg)
		ctx := t.Context()
		for _, email := range []string{"alice@example.com", "bob@example.com"} {
			if err := e.db.SetSelfServiceTokens(ctx, "test", email, true); err != nil {
				t.Fatal(err)
			}
		}
		bobTok, _, err := e.db.AddNamedToken(ctx, "test", "bob@example.com", "bob-ci")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.db.RecordUsage(ctx, []accounts.UsageEvent{
			{Time: t0.Add(-time.Hour), Account: "bob@example.com", Repository: "beta/hello", Reference: "2.0-rc1", Digest: "sha256:" + strings.Repeat("b", 64), Outcome: accounts.UsagePull, Client: "192.0.2.0/24", Agent: "docker"},
		}); err != nil {
			t.Fatal(err)
		}
		b := e.browser()
		b.mustSignInCustomer("alice@example.com", e.aliceToken)
		csrf := b.csrf(Prefix + "customer/tokens")

		pages := map[string]page{
			"home":   b.get(Prefix + "customer/"),
			"tokens": b.get(Prefix + "customer/tokens"),
			"usage":  b.get(Prefix + "customer/usage"),
			"help":   b.get(Prefix + "help"),
			// The account is the session's: a query or form naming another
			// one is ignored.
			"home?email":   b.get(Prefix + "customer/?email=bob@example.com&account=bob@example.com"),
			"tokens?email": b.get(Prefix + "customer/tokens?email=bob@example.com"),
			"create":       b.post(Prefix+"customer/tokens", url.Values{"csrf": {csrf}, "name": {"mine"}, "email": {"bob@example.com"}}),
		}
		for name, p := range pages {
			if p.status != http.StatusOK {
				t.Errorf("%s: %d %s", name, p.status, p.body)
			}
			for _, leak := range []string{"bob@example.com", "bob-ci", bobTok.Prefix, "beta/hello", "<code>beta</code>"} {
				if strings.Contains(p.body, leak) {
					t.Errorf("%s shows %q of another account", name, leak)
				}
			}
		}
		if !strings.Contains(pages["usage"].body, "0 pulls") {
			t.Errorf("alice's usage counts bob's pull:\n%s", pages["usage"].body)
		}
		// Revoking bob's token by its id: not found among alice's, and
		// bob's token stays active.
		p := b.post(Prefix+"customer/tokens/"+strconv.FormatInt(bobTok.ID, 10)+"/revoke", url.Values{"csrf": {csrf}})
		want(t, p, http.StatusNotFound)
		toks, err := e.db.NamedTokens(ctx, "bob@example.com")
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range toks {
			if !tok.Revoked.IsZero() {
				t.Errorf("bob's token %d was revoked by alice", tok.ID)
			}
		}
		// alice created her token on her own account.
		mine, err := e.db.NamedTokens(ctx, "alice@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if len(mine) != 2 || mine[1].Name != "mine" {
			t.Errorf("alice's tokens %+v", mine)
		}
		// The gateway was only ever asked for alice's view.
		e.reg.mu.Lock()
		defer e.reg.mu.Unlock()
		for _, who := range e.reg.seen {
			if who != "alice@example.com" {
				t.Errorf("a token for %q was minted in alice's session", who)
			}
		}
	})
}

func TestCustomerTokens(t *testing.T) {
	e := newEnv(t, accountstest.SQLite(t))
	b := e.browser()
	b.mustSignInCustomer("alice@example.com", e.aliceToken)

	// The vendor has not allowed it: the page says so and has no form,
	// and a form sent anyway is refused.
	p := b.get(Prefix + "customer/tokens")
	want(t, p, http.StatusOK, "Your vendor manages the tokens")
	if strings.Contains(p.body, `action="/console/customer/tokens"`) {
		t.Error("a create form without self-service")
	}
	csrf := b.csrf(Prefix + "customer/tokens")
	want(t, b.post(Prefix+"customer/tokens", url.Values{"csrf": {csrf}, "name": {"ci"}}), http.StatusForbidden, "Your vendor manages the API tokens")
	want(t, b.post(Prefix+"customer/tokens/1/revoke", url.Values{"csrf": {csrf}}), http.StatusForbidden)

	if err := e.db.SetSelfServiceTokens(t.Context(), "test", "alice@example.com", true); err != nil {
		t.Fatal(err)
	}
	p = b.post(Prefix+"customer/tokens", url.Values{"csrf": {csrf}, "name": {"ci"}})
	want(t, p, http.StatusOK, "Your new token ci", "shown this once")
	token := regexp.MustCompile(`<pre id="new-token"><code>([^<]+)</code>`).FindStringSubmatch(p.body)
	if token == nil {
		t.Fatalf("no token shown:\n%s", p.body)
	}
	// The new token works as a login.
	b2 := e.browser()
	b2.mustSignInCustomer("alice@example.com", token[1])
	// Shown once: the listing has its prefix only.
	if p := b.get(Prefix + "customer/tokens"); strings.Contains(p.body, token[1]) {
		t.Error("the token is shown again")
	}
	// A bad name is refused with the store's reason.
	want(t, b.post(Prefix+"customer/tokens", url.Values{"csrf": {csrf}, "name": {"has space"}}), http.StatusBadRequest, "is not a token name")
	// Revoke it; revoking again is not found (no active token of that id).
	toks, _ := e.db.NamedTokens(t.Context(), "alice@example.com")
	id := strconv.FormatInt(toks[len(toks)-1].ID, 10)
	if p := b.post(Prefix+"customer/tokens/"+id+"/revoke", url.Values{"csrf": {csrf}}); p.status != http.StatusSeeOther {
		t.Fatalf("revoke: %d %s", p.status, p.body)
	}
	want(t, b.post(Prefix+"customer/tokens/"+id+"/revoke", url.Values{"csrf": {csrf}}), http.StatusNotFound)
	want(t, b.post(Prefix+"customer/tokens/x/revoke", url.Values{"csrf": {csrf}}), http.StatusNotFound)
	audit, _ := e.db.Audit(t.Context(), "alice@example.com")
	if last := audit[len(audit)-1]; last.Actor != "customer:alice@example.com" || last.Action != "token.revoke" {
		t.Errorf("audit %+v", last)
	}
	// The revoked token signs in no more (past the licence cache's
	// negative answers, as /token would answer).
	e.clock.Advance(2 * time.Minute)
	want(t, e.browser().signInCustomer("alice@example.com", token[1]), http.StatusUnauthorized, signInFailed)
}

func TestCustomerHomeRegistryDown(t *testing.T) {
	e := newEnv(t, accountstest.SQLite(t))
	e.reg.srv.Close()
	b := e.browser()
	b.mustSignInCustomer("alice@example.com", e.aliceToken)
	// The page still renders, with the commands, and says what is missing.
	want(t, b.get(Prefix+"customer/"), http.StatusOK, "not available right now", "docker login registry.example.com", "<code>stable</code>")
	if !strings.Contains(e.logs.String(), "reading the gateway") {
		t.Errorf("not logged: %s", e.logs.String())
	}
}

func TestCustomerUsage(t *testing.T) {
	e := newEnv(t, accountstest.SQLite(t))
	digest := "sha256:" + strings.Repeat("a", 64)
	var events []accounts.UsageEvent
	for i, o := range []string{accounts.UsagePull, accounts.UsagePull, accounts.UsageCheck, accounts.UsageDenied} {
		events = append(events, accounts.UsageEvent{Time: t0.Add(-time.Duration(i) * time.Hour), Account: "alice@example.com", Repository: "stable/hello",
			Reference: "1.0", Digest: digest, Outcome: o, Client: "192.0.2.0/24", Agent: "docker"})
	}
	events[3].Repository, events[3].Digest, events[3].Reason = "beta/hello", "", "channel"
	if err := e.db.RecordUsage(t.Context(), events); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.mustSignInCustomer("alice@example.com", e.aliceToken)
	want(t, b.get(Prefix+"customer/usage"), http.StatusOK, "<svg", "2026-12-01: 2 pulls", "2026-12-01: 1 checks", "2026-12-01: 1 refused",
		"pulls (2)", "checks (1)", "refused (1)", "2026-12-01 12:00 UTC")
}

// TestEscaping: what the store holds is text on the page, never markup.
func TestEscaping(t *testing.T) {
	e := newEnv(t, accountstest.SQLite(t))
	evil := `<script>alert(1)</script>@example.com`
	_, tok, err := e.db.Add(t.Context(), "test", evil, []string{"stable"}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.mustSignInCustomer(evil, tok)
	for _, path := range []string{"customer/", "customer/tokens", "customer/usage", "help"} {
		p := b.get(Prefix + path)
		want(t, p, http.StatusOK, "&lt;script&gt;alert(1)&lt;/script&gt;@example.com")
		if strings.Contains(p.body, "<script>alert") {
			t.Errorf("%s: unescaped", path)
		}
	}
	// A failed sign-in echoes the address typed, escaped.
	p := e.browser().signInCustomer(`"><img src=x onerror=alert(1)>@x.com`, "wrong")
	if strings.Contains(p.body, "<img src=x") {
		t.Error("the typed address is echoed unescaped")
	}
}

// The catalogue is read page by page (the gateway's Link header), and a
// repository whose tags cannot be read says so without failing the page.
func TestRegistryPaging(t *testing.T) {
	pages := map[string]string{"": "stable/a", "stable/a": "stable/b", "stable/b": "stable/c"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/_catalog" {
			name := pages[r.URL.Query().Get("last")]
			if name != "stable/c" {
				w.Header().Set("Link", `</v2/_catalog?n=1&last=`+url.QueryEscape(name)+`>; rel="next"`)
			}
			_, _ = w.Write([]byte(`{"repositories":["` + name + `"]}`))
			return
		}
		if r.URL.Path == "/v2/stable/b/tags/list" {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		_, _ = w.Write([]byte(`{"tags":["1.0"]}`))
	}))
	t.Cleanup(srv.Close)
	e := newEnv(t, accountstest.SQLite(t))
	c, err := New(Options{Config: Config{RegistryURL: srv.URL}, DB: e.db, Mint: testMint, Clock: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.readRegistry(t.Context(), license.License{Account: "alice@example.com", Channels: []string{"stable"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range v.Repositories {
		got = append(got, r.Name+":"+strings.Join(r.Tags, ",")+":"+r.Err)
	}
	if strings.Join(got, " ") != "stable/a:1.0: stable/b::the tags could not be read stable/c:1.0:" || v.Truncated {
		t.Errorf("%q truncated=%v", got, v.Truncated)
	}
	// No channel: nothing asked.
	if v, err := c.readRegistry(t.Context(), license.License{Account: "x@example.com"}); err != nil || len(v.Repositories) != 0 {
		t.Errorf("%+v %v", v, err)
	}
	// No registry_url: an error the page shows as "not available".
	c.cfg.RegistryURL = ""
	if _, err := c.readRegistry(t.Context(), license.License{Channels: []string{"stable"}}); err == nil {
		t.Error("no error without registry_url")
	}
}
