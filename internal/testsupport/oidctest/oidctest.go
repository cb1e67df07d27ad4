// Package oidctest runs a real OpenID provider in-process for tests: the
// provider of github.com/zitadel/oidc/v3 (package op) over an in-memory
// storage written here, on a loopback port (plain HTTP, or HTTPS with
// httptest's certificate).
//
// It serves what a relying party uses: discovery, authorize, token,
// userinfo and the JWKS. Protocol checks (redirect URIs, client secrets,
// PKCE, nonce, signatures) are the library's, not a mock's, so a relying
// party tested against it is tested against the protocol.
//
// Users sign in on a tiny login page (a form with user name and password),
// or, after AutoLogin, without a page: the provider completes every
// authorization request as that user at once, which is what a browser test
// that is not about the identity provider wants.
package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// User is one account of the provider.
type User struct {
	// Username is what the login form asks for; also the user's subject
	// when Subject is empty.
	Username string
	Password string
	Subject  string
	Email    string
	// EmailVerified is the email_verified claim.
	EmailVerified bool
	Name          string
	// Groups go into the groups claim (Options.GroupsClaim) of the ID token
	// and the userinfo answer when the client asks for the "groups" scope
	// or the "profile" scope; an empty list leaves the claim out.
	Groups []string
}

// Client is one registered relying party.
type Client struct {
	ID string
	// Secret authenticates the client at the token endpoint (Basic or form
	// post). Empty makes it a public client (PKCE only).
	Secret       string
	RedirectURIs []string
}

// Options of Start. The zero value is a provider on plain HTTP with no
// users and no clients.
type Options struct {
	// TLS serves HTTPS with httptest's certificate; Provider.HTTPClient
	// trusts it.
	TLS bool
	// GroupsClaim names the claim holding User.Groups; default "groups".
	GroupsClaim string
	Users       []User
	Clients     []Client
}

// Provider is a running OpenID provider.
type Provider struct {
	// Issuer is the issuer URL ("http://127.0.0.1:port"), where discovery
	// is served under /.well-known/openid-configuration.
	Issuer string

	server  *httptest.Server
	storage *storage
	op      *op.Provider
}

// Start runs a provider for the test's length.
func Start(t testing.TB, opts Options) *Provider {
	t.Helper()
	if opts.GroupsClaim == "" {
		opts.GroupsClaim = "groups"
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("oidctest: signing key: %v", err)
	}
	st := newStorage(key, opts.GroupsClaim)
	for _, u := range opts.Users {
		st.addUser(u)
	}
	for _, c := range opts.Clients {
		st.addClient(c)
	}

	// The issuer must be known before the provider is built, and it holds
	// the port: start the server unstarted, read its listener's address.
	srv := httptest.NewUnstartedServer(nil)
	scheme := "http"
	if opts.TLS {
		scheme = "https"
	}
	issuer := scheme + "://" + srv.Listener.Addr().String()

	// The crypto key encrypts the library's opaque tokens; a fixed key per
	// run is enough for a test provider.
	cryptoKey := sha256.Sum256([]byte("oidctest " + issuer))
	provider, err := op.NewProvider(&op.Config{
		CryptoKey:      cryptoKey,
		CodeMethodS256: true,
		AuthMethodPost: true,
	}, st, op.StaticIssuer(issuer), op.WithAllowInsecure())
	if err != nil {
		srv.Close()
		t.Fatalf("oidctest: provider: %v", err)
	}
	p := &Provider{Issuer: issuer, server: srv, storage: st, op: provider}

	mux := http.NewServeMux()
	mux.HandleFunc("GET "+loginPath, p.loginPage)
	mux.HandleFunc("POST "+loginPath, p.loginSubmit)
	mux.Handle("/", provider)
	srv.Config.Handler = mux
	if opts.TLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return p
}

// HTTPClient is a client that trusts the provider's certificate under TLS
// (http.DefaultClient's behaviour otherwise), for go-oidc's context client.
func (p *Provider) HTTPClient() *http.Client {
	return p.server.Client()
}

// Close stops the provider before the test ends (a provider that is
// down); Start's cleanup does it otherwise.
func (p *Provider) Close() { p.server.Close() }

// TLSConfig is the server's TLS configuration (nil on plain HTTP); its
// certificate is what a browser under test must be told to accept.
func (p *Provider) TLSConfig() *tls.Config {
	return p.server.TLS
}

// AddUser adds or replaces (by Username) a user.
func (p *Provider) AddUser(u User) { p.storage.addUser(u) }

// AddClient adds or replaces (by ID) a client.
func (p *Provider) AddClient(c Client) { p.storage.addClient(c) }

// AutoLogin makes every later authorization request complete at once as
// the user of that name, without the login page; "" turns the page back
// on. An unknown name fails the authorization (access_denied back to the
// client), which is how a test makes the provider refuse.
func (p *Provider) AutoLogin(username string) { p.storage.setAutoLogin(username) }

const loginPath = "/login"

var loginTemplate = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>oidctest sign-in</title></head>
<body><main><h1>Test identity provider</h1>
{{if .Error}}<p role="alert">{{.Error}}</p>{{end}}
<form method="post" action="` + loginPath + `">
<input type="hidden" name="id" value="{{.ID}}">
<label for="username">User name</label> <input id="username" name="username" autocomplete="username">
<label for="password">Password</label> <input id="password" name="password" type="password" autocomplete="current-password">
<button type="submit">Sign in</button>
</form></main></body></html>
`))

func (p *Provider) loginPage(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	if user := p.storage.autoLoginUser(); user != "" {
		p.finish(w, r, id, user, "")
		return
	}
	p.renderLogin(w, id, "")
}

func (p *Provider) loginSubmit(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p.finish(w, r, r.PostForm.Get("id"), r.PostForm.Get("username"), r.PostForm.Get("password"))
}

// finish completes the authorization request id as the user and sends the
// browser back to the provider's callback, which redirects to the client.
// password "" means the auto-login user, whose password is not checked.
func (p *Provider) finish(w http.ResponseWriter, r *http.Request, id, username, password string) {
	err := p.storage.complete(id, username, password, password == "" && username == p.storage.autoLoginUser())
	if err != nil {
		if password == "" {
			// Auto-login of an unknown user: send an access_denied to
			// the client rather than a page the test cannot fill.
			p.deny(w, r, id, err)
			return
		}
		p.renderLogin(w, id, err.Error())
		return
	}
	http.Redirect(w, r, op.AuthCallbackURL(p.op)(r.Context(), id), http.StatusFound)
}

func (p *Provider) deny(w http.ResponseWriter, r *http.Request, id string, err error) {
	req, lookupErr := p.storage.AuthRequestByID(r.Context(), id)
	if lookupErr != nil {
		http.Error(w, lookupErr.Error(), http.StatusBadRequest)
		return
	}
	op.AuthRequestError(w, r, req, accessDenied(err), p.op)
}

func (p *Provider) renderLogin(w http.ResponseWriter, id, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if msg != "" {
		w.WriteHeader(http.StatusUnauthorized)
	}
	if err := loginTemplate.Execute(w, struct{ ID, Error string }{id, msg}); err != nil {
		// The header is out; nothing better to do than to cut the page.
		panic(http.ErrAbortHandler)
	}
}

// signingKey and publicKey give op the provider's one RSA key.
type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

type publicKey struct{ *signingKey }

func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.key.PublicKey }

var keySeq struct {
	sync.Mutex
	n int
}

func nextKeyID() string {
	keySeq.Lock()
	defer keySeq.Unlock()
	keySeq.n++
	return fmt.Sprintf("oidctest-%d", keySeq.n)
}
