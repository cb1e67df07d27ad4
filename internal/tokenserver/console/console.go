// Package console is the token service's web console: pages for the
// vendor's staff (accounts, channels, usage) and for the vendor's customers
// (what they may pull and how, their tokens, their usage), served under
// Prefix on the admin listener (admin.listen) beside the admin API.
//
// It is a client of the same operations as the admin API: it calls
// internal/accounts and never writes SQL of its own. Pages are rendered on
// the server with html/template (every value escaped) from embedded
// templates and assets; there is no inline script, so the
// Content-Security-Policy forbids it, and every page works as plain links
// and forms.
//
// Sessions are rows of the account database (accounts.CreateSession), so
// that any replica of the token service serves any session and a sign-out
// or expiry holds on all of them; the cookie carries the session id, the
// database only its hash. Every state-changing form carries a CSRF token
// derived from the session id (a synchroniser token no other session can
// know); the sign-in forms, before any session, carry a double-submit
// token of a cookie of their own.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/pkg/auth"
)

// Prefix is the path every page of the console is under.
const Prefix = "/console/"

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Licenses verifies a customer's e-mail and API token: the token service's
// licence source (the cache in front of the backend), the same that
// verifies the Basic credentials of /token.
type Licenses interface {
	Lookup(ctx context.Context, cred license.Credentials) (license.License, error)
}

// Limiter throttles clients that fail to sign in: the token service passes
// the limiter of its customers' logins, so that guessing through the
// console costs what guessing through /token costs, and a client locked
// out of one is locked out of the other.
type Limiter interface {
	// Check returns how long client must wait before it may try again.
	Check(client, username string) time.Duration
	// Charge records a failure of client.
	Charge(client, username string)
}

// Minter signs a registry token for lic granting what it holds of scopes,
// as /token would for a login of its account: the console reads the
// gateway's licence-filtered view with it.
type Minter func(ctx context.Context, lic license.License, scopes []auth.ResourceActions) (string, error)

// Options are what a Console needs.
type Options struct {
	Config Config
	// DB is the account database (sessions, sign-in links, accounts).
	DB *accounts.DB
	// Licenses verifies the customers' e-mail and API token.
	Licenses Licenses
	// Limiter, if set, throttles failed sign-ins.
	Limiter Limiter
	// Mint signs registry tokens for the gateway's view of a customer.
	Mint Minter
	// LoginFailed, if set, counts a refused customer sign-in by reason,
	// with the refused logins of /token
	// (tokenserver_login_failures_total).
	LoginFailed func(license.Reason)
	// SignInFailed, if set, counts every other refused sign-in: the
	// vendor's (OIDC, admin key) and the customers' sign-in links, by
	// method and reason, each one of SignInFailureReasons'
	// (tokenserver_console_sign_in_failures_total).
	SignInFailed func(method, reason string)
	// HTTPClient calls the gateway (console.registry_url); default a
	// client with a 10 s timeout.
	HTTPClient *http.Client
	// Log receives the refused sign-ins; default slog.Default().
	Log *slog.Logger
	// ClientAddr is the client's address (behind trusted proxies); default
	// the peer's.
	ClientAddr func(*http.Request) string
	// Clock; default time.Now.
	Clock func() time.Time
}

// Console is the console's state, shared by every request.
type Console struct {
	cfg      Config
	db       *accounts.DB
	licenses Licenses
	limiter  Limiter
	mint     Minter
	failed   func(license.Reason)
	// signInFailed counts the refused sign-ins failed does not.
	signInFailed func(method, reason string)
	http         *http.Client
	log          *slog.Logger
	client       func(*http.Request) string
	now          func() time.Time
	pages        map[string]*template.Template
	// formAction are the origins forms may be sent to besides the
	// console's own (an OpenID provider's sign-in), for the CSP.
	formAction []string
	// registryHost is what customers type in docker login.
	registryHost string
	// vendor is the vendor side's own state (vendor.go).
	vendor vendorState
}

// New builds a console; cfg is expected to be defaulted and checked.
func New(o Options) (*Console, error) {
	if o.DB == nil {
		return nil, errors.New("console: no account database")
	}
	c := &Console{cfg: o.Config, db: o.DB, licenses: o.Licenses, limiter: o.Limiter, mint: o.Mint, failed: o.LoginFailed, signInFailed: o.SignInFailed, http: o.HTTPClient, log: o.Log, client: o.ClientAddr, now: o.Clock}
	if c.failed == nil {
		c.failed = func(license.Reason) {}
	}
	if c.signInFailed == nil {
		c.signInFailed = func(string, string) {}
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: 10 * time.Second}
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.client == nil {
		c.client = func(r *http.Request) string {
			host, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil {
				return r.RemoteAddr
			}
			return host
		}
	}
	c.registryHost = c.cfg.RegistryHost
	if c.registryHost == "" && c.cfg.RegistryURL != "" {
		if u, err := url.Parse(c.cfg.RegistryURL); err == nil {
			c.registryHost = u.Host
		}
	}
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	c.vendor = vendorState{}
	if err := c.initVendor(o); err != nil {
		return nil, err
	}
	return c, nil
}

// parsePages parses every page: layout.html and the partials (_*.html)
// with one page file each, so that each page defines its own "content".
func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/_*.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimPrefix(n, "templates/")
		if name == "layout.html" || strings.HasPrefix(name, "_") {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFiles, n)
		if err != nil {
			return nil, fmt.Errorf("console: templates: %w", err)
		}
		pages[strings.TrimSuffix(name, ".html")] = t
	}
	return pages, nil
}

// Handler returns the console's routes, all under Prefix, with the
// security headers on every answer.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFiles, "static")
	files := http.StripPrefix(Prefix+"static/", http.FileServerFS(static))
	mux.Handle("GET "+Prefix+"static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		files.ServeHTTP(w, r)
	}))
	mux.Handle("GET "+Prefix+"{$}", c.page(c.home))
	mux.Handle("GET "+Prefix+"help", c.page(c.help))
	c.signInRoutes(mux)
	c.customerRoutes(mux)
	c.vendorRoutes(mux)
	mux.Handle(Prefix, c.page(func(w http.ResponseWriter, r *http.Request) error {
		return notFound()
	}))
	return c.secure(mux)
}

// csp is the Content-Security-Policy of every answer: scripts and styles
// from the console's own files only, no inline script, no framing.
func (c *Console) csp() string {
	formAction := "'self'"
	for _, o := range c.formAction {
		formAction += " " + o
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
		"form-action " + formAction + "; frame-ancestors 'none'; base-uri 'none'"
}

// secure sets the headers every answer carries.
func (c *Console) secure(h http.Handler) http.Handler {
	policy := c.csp()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", policy)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		if r.TLS != nil {
			hd.Set("Strict-Transport-Security", "max-age=31536000")
		}
		h.ServeHTTP(w, r)
	})
}

// home sends a visitor where they belong: their side, or the sign-in.
func (c *Console) home(w http.ResponseWriter, r *http.Request) error {
	s, _, err := c.session(r)
	switch {
	case err != nil:
		http.Redirect(w, r, Prefix+"sign-in", http.StatusSeeOther)
	case s.Kind == accounts.SessionVendor:
		http.Redirect(w, r, Prefix+"vendor/", http.StatusSeeOther)
	default:
		http.Redirect(w, r, Prefix+"customer/", http.StatusSeeOther)
	}
	return nil
}

// help is the page the refusals of /token and the gateway point at.
func (c *Console) help(w http.ResponseWriter, r *http.Request) error {
	v := c.view(r, "Why a pull is refused")
	if s, id, err := c.session(r); err == nil {
		v.setSession(s, id)
		v.Nav = "help"
	}
	v.RegistryHost = c.registryHost
	return c.render(w, http.StatusOK, "help", v)
}
