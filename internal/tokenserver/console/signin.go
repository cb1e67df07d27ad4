package console

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/license"
)

// Bounds of what a sign-in form may carry, as /token's.
const (
	maxEmailLen = 320
	maxTokenLen = 4096
)

// signInFailed is the one message of a refused customer sign-in, whatever
// the reason, as /token answers: the log says which it was.
const signInFailed = "The e-mail address or the API token is not right, or the account is not active. Use the same e-mail and API token as for docker login."

func (c *Console) signInRoutes(mux *http.ServeMux) {
	mux.Handle("GET "+Prefix+"sign-in", c.page(c.signInPage))
	mux.Handle("POST "+Prefix+"sign-in/customer", c.page(c.customerSignIn))
	mux.Handle("POST "+Prefix+"sign-in/key", c.page(c.vendorKeySignIn))
	mux.Handle("GET "+Prefix+"link", c.page(c.linkPage))
	mux.Handle("POST "+Prefix+"link", c.page(c.linkSignIn))
	mux.Handle("POST "+Prefix+"sign-out", c.page(c.signOut))
}

// signInData is the sign-in page's.
type signInData struct {
	// SignedIn is who the browser is signed in as already, and Home
	// their start page.
	SignedIn, Home string

	Email string
	// Customer and Vendor are the messages of a refused sign-in.
	CustomerError, VendorError string
	// OIDC offers the vendor's single sign-on (console.oidc).
	OIDC bool
}

func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) error {
	var d signInData
	if s, _, err := c.session(r); err == nil {
		// Signing in again replaces the session; say where the current
		// one leads.
		d.SignedIn, d.Home = s.Subject, Prefix+s.Kind+"/"
	}
	return c.renderSignIn(w, r, http.StatusOK, d)
}

func (c *Console) renderSignIn(w http.ResponseWriter, r *http.Request, status int, d signInData) error {
	v := c.view(r, "Sign in")
	v.CSRF = c.preToken(w, r)
	d.OIDC = c.vendor.oidc != nil
	v.Data = d
	return c.render(w, status, "sign_in", v)
}

// throttled answers a client the limiter holds back.
func (c *Console) throttled(r *http.Request, client, user string) error {
	if c.limiter == nil {
		return nil
	}
	if wait := c.limiter.Check(client, user); wait > 0 {
		return &pageError{Status: http.StatusTooManyRequests, Title: "Too many failed sign-ins",
			Message: "There were too many failed sign-ins from your address. Wait a few minutes and try again.", Retry: wait}
	}
	return nil
}

func (c *Console) charge(client, user string) {
	if c.limiter != nil {
		c.limiter.Charge(client, user)
	}
}

// customerSignIn verifies an e-mail and API token the way /token verifies
// Basic credentials: the failed-login limiter, then the licence source.
func (c *Console) customerSignIn(w http.ResponseWriter, r *http.Request) error {
	if err := parseForm(w, r); err != nil {
		return err
	}
	if err := checkPreCSRF(r); err != nil {
		return err
	}
	email, token := strings.TrimSpace(r.PostForm.Get("email")), strings.TrimSpace(r.PostForm.Get("token"))
	client := c.client(r)
	d := signInData{Email: email}
	if email == "" || token == "" {
		d.CustomerError = "Enter your e-mail address and your API token."
		return c.renderSignIn(w, r, http.StatusBadRequest, d)
	}
	if len(email) > maxEmailLen || len(token) > maxTokenLen {
		c.charge(client, "")
		c.failed(license.ReasonMalformed)
		d.Email, d.CustomerError = "", signInFailed
		return c.renderSignIn(w, r, http.StatusUnauthorized, d)
	}
	if err := c.throttled(r, client, email); err != nil {
		c.failed(license.ReasonRateLimited)
		return err
	}
	lic, err := c.licenses.Lookup(r.Context(), license.Credentials{Username: email, Token: token})
	switch {
	case errors.Is(err, license.ErrBadCredentials):
		c.charge(client, email)
		c.failed(license.ReasonOf(err))
		// The token is never logged; its fingerprint says which one it was.
		c.log.Info("console: sign-in failed", slog.String("kind", accounts.SessionCustomer), slog.String("reason", string(license.ReasonOf(err))),
			slog.String("username", truncate(email, 256)), slog.String("token_fp", license.Fingerprint(token)), slog.String("client", client))
		d.CustomerError = signInFailed
		return c.renderSignIn(w, r, http.StatusUnauthorized, d)
	case err != nil:
		c.failed(license.ReasonUnavailable)
		c.log.Warn("console: sign-in: licence service unavailable", slog.Any("error", err))
		return &pageError{Status: http.StatusServiceUnavailable, Title: "Try again later", Message: "The licence service is not answering. Try again in a minute."}
	}
	if err := c.startSession(w, r, accounts.NewSession{Kind: accounts.SessionCustomer, Subject: lic.Account}); err != nil {
		return err
	}
	c.log.Info("console: signed in", slog.String("kind", accounts.SessionCustomer), slog.String("subject", lic.Account), slog.String("client", client), slog.String("with", "api_token"))
	http.Redirect(w, r, Prefix+"customer/", http.StatusSeeOther)
	return nil
}

// vendorKeySignIn signs the vendor's staff in with an admin API key (small
// installs without single sign-on). The session keeps the key's scope and
// ends when the key is revoked or expires.
func (c *Console) vendorKeySignIn(w http.ResponseWriter, r *http.Request) error {
	if err := parseForm(w, r); err != nil {
		return err
	}
	if err := checkPreCSRF(r); err != nil {
		return err
	}
	client := c.client(r)
	if err := c.throttled(r, client, ""); err != nil {
		c.signInFailed(MethodAdminKey, ReasonRateLimited)
		return err
	}
	key, err := c.db.AuthenticateAdminKey(r.Context(), strings.TrimSpace(r.PostForm.Get("key")))
	if errors.Is(err, accounts.ErrUnauthorized) {
		c.charge(client, "")
		c.signInFailed(MethodAdminKey, ReasonWrongKey)
		c.log.Warn("console: sign-in failed", slog.String("kind", accounts.SessionVendor), slog.String("with", "admin_key"), slog.String("reason", ReasonWrongKey), slog.String("client", client))
		return c.renderSignIn(w, r, http.StatusUnauthorized, signInData{VendorError: "That is not an active admin key."})
	}
	if err != nil {
		return err
	}
	if err := c.startSession(w, r, accounts.NewSession{Kind: accounts.SessionVendor, Subject: key.Name, Scope: key.Scope, AdminKeyID: key.ID}); err != nil {
		return err
	}
	c.log.Info("console: signed in", slog.String("kind", accounts.SessionVendor), slog.String("subject", key.Name), slog.String("client", client), slog.String("with", "admin_key"))
	http.Redirect(w, r, Prefix+"vendor/", http.StatusSeeOther)
	return nil
}

// linkData is the one-time link page's.
type linkData struct{ Link string }

// linkPage shows a button that uses the link: opening it does not, so that
// a mail scanner or a link preview fetching it does not burn it.
func (c *Console) linkPage(w http.ResponseWriter, r *http.Request) error {
	v := c.view(r, "Sign in with a link")
	v.CSRF = c.preToken(w, r)
	v.Data = linkData{Link: r.URL.Query().Get("t")}
	return c.render(w, http.StatusOK, "link", v)
}

// linkSignIn uses a one-time sign-in link up and signs its customer in.
func (c *Console) linkSignIn(w http.ResponseWriter, r *http.Request) error {
	if err := parseForm(w, r); err != nil {
		return err
	}
	if err := checkPreCSRF(r); err != nil {
		return err
	}
	client := c.client(r)
	if err := c.throttled(r, client, ""); err != nil {
		c.signInFailed(MethodLink, ReasonRateLimited)
		return err
	}
	email, err := c.db.RedeemSignInLink(r.Context(), r.PostForm.Get("t"))
	var pe *pageError
	var reason string
	switch {
	case errors.Is(err, accounts.ErrLinkUsed):
		reason = ReasonLinkUsed
		pe = &pageError{Status: http.StatusGone, Title: "Link used already", Message: "This sign-in link has been used already: each link signs in once. Ask your vendor for a new one, or sign in with your e-mail and API token."}
	case errors.Is(err, accounts.ErrLinkExpired):
		reason = ReasonLinkExpired
		pe = &pageError{Status: http.StatusGone, Title: "Link expired", Message: "This sign-in link has expired. Ask your vendor for a new one, or sign in with your e-mail and API token."}
	case errors.Is(err, accounts.ErrLinkUnknown):
		c.charge(client, "")
		reason = ReasonLinkUnknown
		pe = &pageError{Status: http.StatusNotFound, Title: "Unknown link", Message: "This is not a sign-in link of this console (check that it was copied whole)."}
	case err != nil:
		return err
	}
	if pe != nil {
		c.signInFailed(MethodLink, reason)
		c.log.Info("console: sign-in failed", slog.String("kind", accounts.SessionCustomer), slog.String("with", "link"), slog.String("reason", reason), slog.String("client", client))
		pe.SignIn = true
		return pe
	}
	if err := c.startSession(w, r, accounts.NewSession{Kind: accounts.SessionCustomer, Subject: email}); err != nil {
		return err
	}
	c.log.Info("console: signed in", slog.String("kind", accounts.SessionCustomer), slog.String("subject", email), slog.String("client", client), slog.String("with", "link"))
	http.Redirect(w, r, Prefix+"customer/", http.StatusSeeOther)
	return nil
}

// signOut ends the session everywhere: it is a row of the database, so
// every replica refuses it from now on.
func (c *Console) signOut(w http.ResponseWriter, r *http.Request) error {
	if err := parseForm(w, r); err != nil {
		return err
	}
	s, id, err := c.session(r)
	if err == nil && !equalTokens(csrfOf(id), r.PostForm.Get(csrfField)) {
		return errCSRF
	}
	if err := c.endSession(w, r); err != nil {
		return err
	}
	if err == nil {
		c.log.Info("console: signed out", slog.String("kind", s.Kind), slog.String("subject", s.Subject))
	}
	http.Redirect(w, r, Prefix+"sign-in", http.StatusSeeOther)
	return nil
}

// SignInLinkURL is the address of a sign-in link: under public_url, or
// else base (the address the vendor reached the console or the admin API
// at); "" when neither is known.
func SignInLinkURL(publicURL, base, secret string) string {
	root := publicURL
	if root == "" {
		if base == "" {
			return ""
		}
		root = strings.TrimSuffix(base, "/") + Prefix
	}
	return root + "link?t=" + url.QueryEscape(secret)
}

// baseURL is the scheme and host the request came to.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// NewSignInLink makes a one-time sign-in link for the customer email on
// behalf of actor (the vendor's pages), valid for console.sign_in_link_ttl,
// and returns its URL: under public_url, else under the address r came
// to.
func (c *Console) NewSignInLink(r *http.Request, actor, email string) (string, time.Time, error) {
	secret, expires, err := c.db.CreateSignInLink(r.Context(), actor, email, c.cfg.SignInLinkTTL)
	if err != nil {
		return "", time.Time{}, err
	}
	return SignInLinkURL(c.cfg.PublicURL, baseURL(r), secret), expires, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
