// Package admin is the token service's admin API (admin.listen): accounts,
// their channels and tokens, the channel catalogue, the usage store and
// the admin audit of the SQL account store, as JSON (usage also as CSV)
// over HTTPS under /admin/v1/, for a vendor's systems (CRM, billing, support tools) that have no database
// access. Callers authenticate with admin keys (accounts.AdminKey); every
// change is audited with the key's name as the actor. The OpenAPI 3.1
// document of the API is openapi.yaml, served at /admin/v1/openapi.json.
package admin

import (
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/acme/registry-gateway/internal/accounts"
)

// Prefix is the path every route of the API is under.
const Prefix = "/admin/v1"

// maxBodyBytes bounds a request body: the largest, an account with its
// channels, is well under a kilobyte.
const maxBodyBytes = 64 << 10

// Limiter throttles clients that fail to authenticate; the token service
// passes the limiter of its customers' logins, so that guessing admin keys
// costs what guessing API tokens costs.
type Limiter interface {
	// Check returns how long client must wait before it may try again.
	Check(client, username string) time.Duration
	// Charge records a failure of client.
	Charge(client, username string)
}

// Options are what the API needs.
type Options struct {
	// DB is the account database.
	DB *accounts.DB
	// Log receives the refused authentications; default slog.Default().
	Log *slog.Logger
	// Limiter, if set, throttles failed authentications.
	Limiter Limiter
	// ClientAddr is the client's address (behind trusted proxies); default
	// the peer's.
	ClientAddr func(*http.Request) string
	// Clock decides whether an expiry given is in the past; default
	// time.Now.
	Clock func() time.Time
	// ConsoleURL is the console's public_url: a sign-in link is answered
	// as a URL under it. Empty: under the address the request came to.
	ConsoleURL string
	// SignInLinkTTL is how long a sign-in link is valid; default 72h.
	SignInLinkTTL time.Duration
}

// api is one API's state.
type api struct {
	db      *accounts.DB
	log     *slog.Logger
	limiter Limiter
	client  func(*http.Request) string
	now     func() time.Time
	// csvRows bounds a CSV export of usage (maxCSVRows).
	csvRows int
	// consoleURL and linkTTL make sign-in links (signinlink.go).
	consoleURL string
	linkTTL    time.Duration
}

// Handler returns the API's routes. Anything outside Prefix is 404.
func Handler(o Options) http.Handler {
	return newAPI(o).routes()
}

func newAPI(o Options) *api {
	a := &api{db: o.DB, log: o.Log, limiter: o.Limiter, client: o.ClientAddr, now: o.Clock, csvRows: maxCSVRows, consoleURL: o.ConsoleURL, linkTTL: o.SignInLinkTTL}
	if a.linkTTL <= 0 {
		a.linkTTL = 72 * time.Hour
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.client == nil {
		a.client = func(r *http.Request) string {
			host, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil {
				return r.RemoteAddr
			}
			return host
		}
	}
	return a
}

// route is one operation: the router's and the OpenAPI document's.
type route struct {
	method, pattern string
	// write: the key needs the write scope.
	write bool
	h     handlerFunc
}

// routeTable lists every operation of the API; TestRoutesMatchDocument checks
// them against openapi.yaml both ways.
func (a *api) routeTable() []route {
	return []route{
		{http.MethodGet, "/openapi.json", false, a.openAPI},
		{http.MethodGet, "/audit", false, a.audit},
		{http.MethodGet, "/accounts", false, a.listAccounts},
		{http.MethodPost, "/accounts", true, a.createAccount},
		{http.MethodGet, "/accounts/{email}", false, a.showAccount},
		{http.MethodPatch, "/accounts/{email}", true, a.patchAccount},
		{http.MethodDelete, "/accounts/{email}", true, a.deleteAccount},
		{http.MethodPut, "/accounts/{email}/channels/{channel}", true, a.putGrant},
		{http.MethodDelete, "/accounts/{email}/channels/{channel}", true, a.deleteGrant},
		{http.MethodGet, "/accounts/{email}/tokens", false, a.listTokens},
		{http.MethodPost, "/accounts/{email}/tokens", true, a.createToken},
		{http.MethodDelete, "/accounts/{email}/tokens/{id}", true, a.revokeToken},
		{http.MethodPost, "/accounts/{email}/tokens/{id}/rotate", true, a.rotateToken},
		{http.MethodPost, "/accounts/{email}/sign-in-links", true, a.createSignInLink},
		{http.MethodGet, "/channels", false, a.listChannels},
		{http.MethodPost, "/channels", true, a.createChannel},
		{http.MethodDelete, "/channels/{name}", true, a.deleteChannel},
		{http.MethodGet, "/usage", false, a.usage},
	}
}

func (a *api) routes() http.Handler {
	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, problemf(http.StatusNotFound, "not-found", "Not Found", "no such endpoint: %s", r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, problemf(http.StatusMethodNotAllowed, "method-not-allowed", "Method Not Allowed", "%s is not allowed on %s", r.Method, r.URL.Path))
	})
	r.Route(Prefix, func(r chi.Router) {
		for _, rt := range a.routeTable() {
			if rt.pattern == "/openapi.json" {
				// The document is public: a client reads it before it has
				// a key, and it holds nothing secret.
				r.Method(rt.method, rt.pattern, a.serve(rt.h))
				continue
			}
			r.Method(rt.method, rt.pattern, a.authenticated(rt.write, rt.h))
		}
	})
	return r
}

// handlerFunc is an operation: it answers, or returns the error to answer
// with (a *problem, an accounts error, or anything else: a 500).
type handlerFunc func(w http.ResponseWriter, r *http.Request, key accounts.AdminKey) error

// serve runs h without authentication.
func (a *api) serve(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r, accounts.AdminKey{}); err != nil {
			a.writeError(w, r, err)
		}
	})
}
