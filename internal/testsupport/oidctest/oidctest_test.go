package oidctest_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/acme/registry-gateway/internal/testsupport/oidctest"
)

const redirectURI = "http://127.0.0.1:1/callback" // never dialled: the test stops at the redirect

var alice = oidctest.User{
	Username: "alice", Password: "pw-alice", Email: "alice@vendor.example", EmailVerified: true,
	Name: "Alice", Groups: []string{"support", "sales"},
}

// relyingParty is what a real client does with go-oidc and x/oauth2.
type relyingParty struct {
	t        *testing.T
	ctx      context.Context
	provider *oidc.Provider
	conf     oauth2.Config
	http     *http.Client
}

func newRelyingParty(t *testing.T, p *oidctest.Provider, secret string) *relyingParty {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	ctx = oidc.ClientContext(ctx, p.HTTPClient())
	provider, err := oidc.NewProvider(ctx, p.Issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	hc := p.HTTPClient()
	// Follow the provider's own redirects, stop at the client's.
	hc.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), redirectURI) {
			return http.ErrUseLastResponse
		}
		return nil
	}
	hc.Jar = nil
	return &relyingParty{t: t, ctx: ctx, provider: provider, http: hc, conf: oauth2.Config{
		ClientID: "console", ClientSecret: secret, RedirectURL: redirectURI,
		Endpoint: provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "email", "groups"},
	}}
}

// authorize starts a code flow with state, nonce and PKCE and returns the
// redirect back to the client (or the last answer when there is none).
func (rp *relyingParty) authorize(state, nonce, verifier string) *http.Response {
	u := rp.conf.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
	resp, err := rp.http.Get(u)
	if err != nil {
		rp.t.Fatalf("authorize: %v", err)
	}
	resp.Body.Close()
	return resp
}

func (rp *relyingParty) callback(resp *http.Response) url.Values {
	rp.t.Helper()
	if resp.StatusCode != http.StatusFound {
		rp.t.Fatalf("authorize ended in %s, want a redirect to the client", resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), redirectURI) {
		rp.t.Fatalf("redirect to %q, want %s", resp.Header.Get("Location"), redirectURI)
	}
	return loc.Query()
}

type claims struct {
	Email         string   `json:"email"`
	EmailVerified bool     `json:"email_verified"`
	Groups        []string `json:"groups"`
}

func (rp *relyingParty) exchange(code, verifier, nonce string) (claims, *oauth2.Token) {
	rp.t.Helper()
	tok, err := rp.conf.Exchange(rp.ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		rp.t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := rp.provider.Verifier(&oidc.Config{ClientID: "console"}).Verify(rp.ctx, raw)
	if err != nil {
		rp.t.Fatalf("verify ID token: %v", err)
	}
	if idt.Nonce != nonce {
		rp.t.Fatalf("nonce %q, want %q", idt.Nonce, nonce)
	}
	var c claims
	if err := idt.Claims(&c); err != nil {
		rp.t.Fatal(err)
	}
	return c, tok
}

func TestCodeFlowAutoLogin(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[tlsOn], func(t *testing.T) {
			p := oidctest.Start(t, oidctest.Options{
				TLS:     tlsOn,
				Users:   []oidctest.User{alice},
				Clients: []oidctest.Client{{ID: "console", Secret: "s3cret", RedirectURIs: []string{redirectURI}}},
			})
			p.AutoLogin("alice")
			rp := newRelyingParty(t, p, "s3cret")
			verifier := oauth2.GenerateVerifier()
			q := rp.callback(rp.authorize("st-1", "n-1", verifier))
			if q.Get("state") != "st-1" || q.Get("code") == "" {
				t.Fatalf("callback query %v", q)
			}
			c, tok := rp.exchange(q.Get("code"), verifier, "n-1")
			if c.Email != alice.Email || !c.EmailVerified || !slices.Equal(c.Groups, alice.Groups) {
				t.Fatalf("ID token claims %+v", c)
			}
			info, err := rp.provider.UserInfo(rp.ctx, oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatalf("userinfo: %v", err)
			}
			var ic claims
			if err := info.Claims(&ic); err != nil || ic.Email != alice.Email || !slices.Equal(ic.Groups, alice.Groups) {
				t.Fatalf("userinfo %+v (%v)", ic, err)
			}
			// The code is spent.
			if _, err := rp.conf.Exchange(rp.ctx, q.Get("code"), oauth2.VerifierOption(verifier)); err == nil {
				t.Fatal("a code exchanged twice")
			}
		})
	}
}

func TestLoginForm(t *testing.T) {
	p := oidctest.Start(t, oidctest.Options{
		Users:   []oidctest.User{alice},
		Clients: []oidctest.Client{{ID: "console", Secret: "s3cret", RedirectURIs: []string{redirectURI}}},
	})
	rp := newRelyingParty(t, p, "s3cret")
	verifier := oauth2.GenerateVerifier()
	page := rp.authorize("st", "n", verifier)
	if page.StatusCode != http.StatusOK || page.Request.URL.Path != "/login" {
		t.Fatalf("authorize without auto-login: %s at %s, want the login page", page.Status, page.Request.URL)
	}
	id := page.Request.URL.Query().Get("id")
	post := func(password string) *http.Response {
		resp, err := rp.http.PostForm(p.Issuer+"/login", url.Values{"id": {id}, "username": {"alice"}, "password": {password}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post("wrong"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: %s, want 401", resp.Status)
	}
	q := rp.callback(post(alice.Password))
	c, _ := rp.exchange(q.Get("code"), verifier, "n")
	if c.Email != alice.Email {
		t.Fatalf("claims %+v", c)
	}
}

func TestRefusals(t *testing.T) {
	p := oidctest.Start(t, oidctest.Options{
		Users:   []oidctest.User{alice},
		Clients: []oidctest.Client{{ID: "console", Secret: "s3cret", RedirectURIs: []string{redirectURI}}},
	})
	p.AutoLogin("alice")

	t.Run("wrong PKCE verifier", func(t *testing.T) {
		rp := newRelyingParty(t, p, "s3cret")
		q := rp.callback(rp.authorize("s", "n", oauth2.GenerateVerifier()))
		if _, err := rp.conf.Exchange(rp.ctx, q.Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil {
			t.Fatal("exchange with another verifier succeeded")
		}
	})
	t.Run("wrong client secret", func(t *testing.T) {
		rp := newRelyingParty(t, p, "not-the-secret")
		v := oauth2.GenerateVerifier()
		q := rp.callback(rp.authorize("s", "n", v))
		var re *oauth2.RetrieveError
		if _, err := rp.conf.Exchange(rp.ctx, q.Get("code"), oauth2.VerifierOption(v)); !errors.As(err, &re) {
			t.Fatalf("exchange with a wrong secret: %v, want a refusal", err)
		}
	})
	t.Run("unregistered redirect", func(t *testing.T) {
		rp := newRelyingParty(t, p, "s3cret")
		rp.conf.RedirectURL = "http://127.0.0.1:1/elsewhere"
		if resp := rp.authorize("s", "n", oauth2.GenerateVerifier()); resp.StatusCode == http.StatusFound {
			t.Fatalf("authorize redirected to %s for an unregistered redirect URI", resp.Header.Get("Location"))
		}
	})
	t.Run("unknown auto-login user", func(t *testing.T) {
		p.AutoLogin("mallory")
		defer p.AutoLogin("alice")
		rp := newRelyingParty(t, p, "s3cret")
		q := rp.callback(rp.authorize("s", "n", oauth2.GenerateVerifier()))
		if q.Get("error") != "access_denied" || q.Get("code") != "" || q.Get("state") != "s" {
			t.Fatalf("callback query %v, want access_denied", q)
		}
	})
}
