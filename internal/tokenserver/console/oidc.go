package console

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/acme/registry-gateway/internal/accounts"
)

// OIDCConfig is console.oidc: single sign-on for the vendor's staff with
// an OpenID provider (the authorization code flow with state, nonce and
// PKCE). Who may sign in is decided here, not only by the provider: the
// e-mail's domain must be one of AllowedEmailDomains and, when
// AllowedGroups is set, the groups claim must hold one of them.
type OIDCConfig struct {
	// Issuer is the provider's issuer URL; empty: no single sign-on.
	Issuer string `yaml:"issuer"`
	// ClientID is the console's client at the provider.
	ClientID string `yaml:"client_id"`
	// ClientSecretFile holds the client's secret; empty: a public client
	// (PKCE only).
	ClientSecretFile string `yaml:"client_secret_file"`
	// RedirectURL is registered at the provider: where it sends the
	// browser back, https://<console host>/console/sign-in/oidc/callback.
	RedirectURL string `yaml:"redirect_url"`
	// AllowedEmailDomains are the domains whose (verified) e-mail
	// addresses may sign in, e.g. [vendor.example].
	AllowedEmailDomains []string `yaml:"allowed_email_domains"`
	// GroupsClaim names the ID token's claim holding the user's groups;
	// default "groups".
	GroupsClaim string `yaml:"groups_claim"`
	// AllowedGroups, when set, admits only users in one of these groups
	// (besides the domain check, when that is set too).
	AllowedGroups []string `yaml:"allowed_groups"`
	// ReadOnly signs staff in with the read scope: they see everything
	// and change nothing.
	ReadOnly bool `yaml:"read_only"`
}

// oidcCallbackPath is where the provider sends the browser back.
const oidcCallbackPath = Prefix + "sign-in/oidc/callback"

// enabled: console.oidc is configured.
func (o *OIDCConfig) enabled() bool { return o.Issuer != "" }

// problems lists what is wrong with console.oidc.
func (o *OIDCConfig) problems() []error {
	if !o.enabled() {
		if o.ClientID != "" || o.RedirectURL != "" || len(o.AllowedEmailDomains) > 0 || len(o.AllowedGroups) > 0 {
			return []error{errors.New("console.oidc.issuer: required when other console.oidc keys are set")}
		}
		return nil
	}
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if u, err := url.Parse(o.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		add("console.oidc.issuer: %q is not an http or https URL", o.Issuer)
	}
	if o.ClientID == "" {
		add("console.oidc.client_id: required with console.oidc.issuer")
	}
	if o.RedirectURL == "" {
		add("console.oidc.redirect_url: required with console.oidc.issuer (the console's …%s, as registered at the provider)", oidcCallbackPath)
	} else {
		if u, err := url.Parse(o.RedirectURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || !strings.HasSuffix(u.Path, oidcCallbackPath) {
			add("console.oidc.redirect_url: %q is not an http or https URL ending in %s", o.RedirectURL, oidcCallbackPath)
		}
	}
	if len(o.AllowedEmailDomains) == 0 && len(o.AllowedGroups) == 0 {
		add("console.oidc: set allowed_email_domains or allowed_groups (or both): else every user of the provider could manage the accounts")
	}
	for _, d := range o.AllowedEmailDomains {
		if d == "" || strings.ContainsAny(d, "@ /") {
			add("console.oidc.allowed_email_domains: %q is not a domain", d)
		}
	}
	return errs
}

// oidcSignIn is the vendor's single sign-on. The provider's discovery is
// read on first use, not at start: a provider that is down when the token
// service starts costs the console its sign-in for a while, not the
// token service its start.
type oidcSignIn struct {
	cfg      OIDCConfig
	secret   string
	redirect string
	http     *http.Client

	mu       sync.Mutex
	provider *oidc.Provider
}

// oidcFlowCookie holds the state, nonce and PKCE verifier of one sign-in
// between the redirect to the provider and its return: the browser that
// started the flow must be the one that finishes it (no login CSRF), and
// any replica can finish it.
const (
	oidcFlowCookie = "rg_console_oidc"
	oidcFlowTTL    = 10 * time.Minute
)

type oidcFlow struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
}

func newOIDCSignIn(cfg OIDCConfig, hc *http.Client) (*oidcSignIn, error) {
	o := &oidcSignIn{cfg: cfg, redirect: cfg.RedirectURL, http: hc}
	if o.cfg.GroupsClaim == "" {
		o.cfg.GroupsClaim = "groups"
	}
	if cfg.ClientSecretFile != "" {
		b, err := os.ReadFile(cfg.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("console.oidc.client_secret_file: %w", err)
		}
		o.secret = strings.TrimSpace(string(b))
		if o.secret == "" {
			return nil, fmt.Errorf("console.oidc.client_secret_file: %s is empty", cfg.ClientSecretFile)
		}
	}
	return o, nil
}

// discover returns the provider, reading its discovery document once.
func (o *oidcSignIn) discover(ctx context.Context) (*oidc.Provider, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider != nil {
		return o.provider, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, o.http), o.cfg.Issuer)
	if err != nil {
		return nil, err
	}
	o.provider = p
	return p, nil
}

func (o *oidcSignIn) oauth2(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{
		ClientID: o.cfg.ClientID, ClientSecret: o.secret, RedirectURL: o.redirect,
		Endpoint: p.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "email", "profile", "groups"},
	}
}

func randomString() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// errOIDCUnavailable: the provider could not be reached.
var errOIDCUnavailable = &pageError{Status: http.StatusServiceUnavailable, Title: "Single sign-on unavailable",
	Message: "The identity provider is not answering. Try again in a minute, or sign in with an admin key.", SignIn: true}

// oidcStart sends the browser to the provider.
func (c *Console) oidcStart(w http.ResponseWriter, r *http.Request) error {
	o := c.vendor.oidc
	if o == nil {
		return notFound()
	}
	p, err := o.discover(r.Context())
	if err != nil {
		c.signInFailed(MethodOIDC, ReasonProviderUnavailable)
		c.log.Warn("console: OpenID provider discovery failed", slog.String("issuer", o.cfg.Issuer), slog.Any("error", err))
		return errOIDCUnavailable
	}
	f := oidcFlow{State: randomString(), Nonce: randomString(), Verifier: oauth2.GenerateVerifier()}
	v, _ := json.Marshal(f)
	// SameSite Lax: the provider's redirect back is a top-level GET from
	// another site, which Lax lets through and Strict would not.
	http.SetCookie(w, &http.Cookie{Name: oidcFlowCookie, Value: base64.RawURLEncoding.EncodeToString(v), Path: Prefix + "sign-in/oidc",
		MaxAge: int(oidcFlowTTL / time.Second), HttpOnly: true, Secure: c.secureCookies(r), SameSite: http.SameSiteLaxMode})
	u := o.oauth2(p).AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier))
	http.Redirect(w, r, u, http.StatusSeeOther)
	return nil
}

// oidcRefused is a sign-in the console refuses; Log is what the log says,
// Reason its label in the sign-in failures metric (one of
// SignInFailureReasons' for MethodOIDC).
type oidcRefused struct{ Reason, Log, Shown string }

func (e *oidcRefused) Error() string { return e.Log }

// oidcCallback finishes the sign-in: state against the flow cookie, the
// code exchanged with the PKCE verifier, the ID token verified (signature,
// issuer, audience, expiry) with its nonce, then who it is against the
// allowed domains and groups.
func (c *Console) oidcCallback(w http.ResponseWriter, r *http.Request) error {
	o := c.vendor.oidc
	if o == nil {
		return notFound()
	}
	client := c.client(r)
	if err := c.throttled(r, client, ""); err != nil {
		c.signInFailed(MethodOIDC, ReasonRateLimited)
		return err
	}
	// The flow is used once, whatever happens.
	http.SetCookie(w, &http.Cookie{Name: oidcFlowCookie, Value: "", Path: Prefix + "sign-in/oidc", MaxAge: -1, HttpOnly: true, Secure: c.secureCookies(r), SameSite: http.SameSiteLaxMode})
	email, err := c.oidcIdentity(r, o)
	var refused *oidcRefused
	switch {
	case errors.As(err, &refused):
		c.charge(client, "")
		c.signInFailed(MethodOIDC, refused.Reason)
		c.log.Warn("console: sign-in failed", slog.String("kind", accounts.SessionVendor), slog.String("with", "oidc"),
			slog.String("reason", refused.Reason), slog.String("detail", refused.Log), slog.String("client", client))
		return c.renderSignIn(w, r, http.StatusForbidden, signInData{VendorError: refused.Shown})
	case errors.Is(err, errOIDCUnavailable):
		c.signInFailed(MethodOIDC, ReasonProviderUnavailable)
		return err
	case err != nil:
		return err
	}
	scope := accounts.ScopeWrite
	if o.cfg.ReadOnly {
		scope = accounts.ScopeRead
	}
	if err := c.startSession(w, r, accounts.NewSession{Kind: accounts.SessionVendor, Subject: email, Scope: scope}); err != nil {
		return err
	}
	c.log.Info("console: signed in", slog.String("kind", accounts.SessionVendor), slog.String("subject", email), slog.String("client", client), slog.String("with", "oidc"))
	http.Redirect(w, r, Prefix+"vendor/", http.StatusSeeOther)
	return nil
}

func (c *Console) oidcIdentity(r *http.Request, o *oidcSignIn) (string, error) {
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		return "", &oidcRefused{Reason: ReasonProviderError, Log: "provider answered " + truncate(e, 64) + ": " + truncate(q.Get("error_description"), 200),
			Shown: "The identity provider did not sign you in (" + truncate(e, 64) + ")."}
	}
	ck, err := r.Cookie(oidcFlowCookie)
	var f oidcFlow
	if err == nil {
		if b, derr := base64.RawURLEncoding.DecodeString(ck.Value); derr == nil {
			err = json.Unmarshal(b, &f)
		} else {
			err = derr
		}
	}
	if err != nil || f.State == "" || !equalTokens(f.State, q.Get("state")) {
		return "", &oidcRefused{Reason: ReasonStateMismatch, Log: "state does not match the flow cookie (or no flow)",
			Shown: "This sign-in was not started from this browser, or took longer than 10 minutes. Start again."}
	}
	p, err := o.discover(r.Context())
	if err != nil {
		return "", errOIDCUnavailable
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(r.Context(), o.http), 15*time.Second)
	defer cancel()
	tok, err := o.oauth2(p).Exchange(ctx, q.Get("code"), oauth2.VerifierOption(f.Verifier))
	if err != nil {
		return "", &oidcRefused{Reason: ReasonCodeExchange, Log: "code exchange: " + err.Error(), Shown: "The identity provider refused the sign-in's code. Start again."}
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := p.Verifier(&oidc.Config{ClientID: o.cfg.ClientID}).Verify(ctx, raw)
	if err != nil {
		return "", &oidcRefused{Reason: ReasonIDTokenInvalid, Log: "ID token: " + err.Error(), Shown: "The identity provider's answer could not be verified. Start again."}
	}
	if !equalTokens(f.Nonce, idt.Nonce) {
		return "", &oidcRefused{Reason: ReasonNonceMismatch, Log: "ID token nonce does not match", Shown: "The identity provider's answer could not be verified. Start again."}
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return "", &oidcRefused{Reason: ReasonIDTokenInvalid, Log: "ID token claims: " + err.Error(), Shown: "The identity provider's answer could not be read."}
	}
	return o.admit(claims)
}

// admit decides from the ID token's claims whether its user may sign in,
// and returns the e-mail the session and the audit trail name them by.
func (o *oidcSignIn) admit(claims map[string]any) (string, error) {
	email, _ := claims["email"].(string)
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		return "", &oidcRefused{Reason: ReasonNoEmail, Log: "no e-mail claim", Shown: "The identity provider did not tell the console your e-mail address (ask for the email scope)."}
	}
	// An unverified address proves nothing about its domain.
	if v, ok := claims["email_verified"].(bool); ok && !v {
		return "", &oidcRefused{Reason: ReasonEmailUnverified, Log: "e-mail " + email + " not verified", Shown: "Your e-mail address is not verified at the identity provider."}
	}
	if len(o.cfg.AllowedEmailDomains) > 0 {
		_, domain, _ := strings.Cut(email, "@")
		if !slices.ContainsFunc(o.cfg.AllowedEmailDomains, func(d string) bool { return strings.EqualFold(d, domain) }) {
			return "", &oidcRefused{Reason: ReasonDomainNotAllowed, Log: "e-mail " + email + " outside the allowed domains", Shown: "Your account (" + email + ") is not one of the vendor's staff accounts allowed in this console."}
		}
	}
	if len(o.cfg.AllowedGroups) > 0 {
		groups := claimStrings(claims[o.cfg.GroupsClaim])
		if !slices.ContainsFunc(groups, func(g string) bool { return slices.Contains(o.cfg.AllowedGroups, g) }) {
			return "", &oidcRefused{Reason: ReasonGroupNotAllowed, Log: "user " + email + " in none of the allowed groups", Shown: "Your account (" + email + ") is not in a group allowed in this console."}
		}
	}
	return email, nil
}

// claimStrings reads a claim that is a list of strings or one string.
func claimStrings(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
