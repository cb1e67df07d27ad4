package console

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
)

func TestCustomerSignInAndHome(t *testing.T) {
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		e := newEnv(t, cfg)
		b := e.browser()
		b.mustSignInCustomer("Alice@Example.com", e.aliceToken)
		p := b.get(Prefix + "customer/")
		want(t, p, http.StatusOK, "alice@example.com", "<code>stable</code>",
			"registry.example.com/stable/hello", "<code>latest</code>, <code>1.10</code>, <code>1.9</code>, <code>1.0</code>",
			"docker pull registry.example.com/stable/hello:latest", "helm pull oci://registry.example.com/stable/chart",
			"--docker-username=alice@example.com")
		if strings.Contains(p.body, "beta/hello") {
			t.Error("alice sees a repository of a channel she does not hold")
		}
		for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy"} {
			if p.header.Get(h) == "" {
				t.Errorf("no %s header", h)
			}
		}
		if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("CSP %q", csp)
		}
	})
}

func TestVendorKeySignIn(t *testing.T) {
	e := newEnv(t, accountstest.SQLite(t))
	b := e.browser()
	p := b.signInVendorKey(e.adminKey)
	if p.status != http.StatusSeeOther || p.header.Get("Location") != Prefix+"vendor/" {
		t.Fatalf("%d %s", p.status, p.body)
	}
	want(t, b.get(Prefix+"vendor/"), http.StatusOK, "support")
	// A vendor is not a customer.
	want(t, b.get(Prefix+"customer/"), http.StatusForbidden)
	_ = url.Values{}
}
