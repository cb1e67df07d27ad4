package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/pkg/auth"
)

func TestBaseChallenge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newFakeRegistry())
	expired := e.claims()
	expired.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
	for name, h := range map[string]http.Header{
		"anonymous": nil,
		"basic":     {"Authorization": {"Basic YWxpY2U6cHc="}},
		"expired":   bearer(e.sign(expired)),
		"garbage":   bearer("not.a.token"),
	} {
		resp := e.do("GET", "/v2/", h)
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s: status %d", name, resp.StatusCode)
		}
		if got := resp.Header.Values("Www-Authenticate"); len(got) != 1 || got[0] != testChallenge {
			t.Errorf("%s: challenge %q, want exactly %q", name, got, testChallenge)
		}
		if code := errorCode(t, body); code != httpx.CodeUnauthorized {
			t.Errorf("%s: code %s", name, code)
		}
	}
	// Any valid token opens /v2/, even one without access (docker login).
	c := e.claims()
	c.Access = nil
	resp := e.do("GET", "/v2/", bearer(e.sign(c)))
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK || strings.TrimSpace(body) != "{}" {
		t.Fatalf("with token: %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get("Docker-Distribution-Api-Version") != "registry/2.0" {
		t.Errorf("no API version header")
	}
	if n := e.upstream.count(); n != 0 {
		t.Errorf("upstream saw %d requests", n)
	}
}

func TestTokenChecks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newFakeRegistry())
	const path = "/v2/stable/app/manifests/latest"
	scope := `,scope="repository:stable/app:pull"`

	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherKey, _ := auth.NewSigningKey(other, nil)
	rsaPriv, _ := rsa.GenerateKey(rand.Reader, 2048)

	mod := func(f func(c *auth.Claims)) string {
		c := e.claims()
		f(c)
		return e.sign(c)
	}
	tests := []struct {
		name   string
		header http.Header
		errTag string // "" for no error= parameter
		reason string // metric label
	}{
		{"no token", nil, "", ""},
		{"basic", http.Header{"Authorization": {"Basic YWxpY2U6cHc="}}, "", ""},
		{"empty bearer", http.Header{"Authorization": {"Bearer "}}, "", ""},
		{"malformed", bearer("abc"), "invalid_token", auth.ReasonMalformed},
		{"expired", bearer(mod(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-2 * time.Minute)) })), "invalid_token", auth.ReasonExpired},
		{"no exp", bearer(mod(func(c *auth.Claims) { c.ExpiresAt = nil })), "invalid_token", auth.ReasonExpired},
		{"not yet", bearer(mod(func(c *auth.Claims) { c.NotBefore = jwt.NewNumericDate(time.Now().Add(10 * time.Minute)) })), "invalid_token", auth.ReasonNotYet},
		{"issuer", bearer(mod(func(c *auth.Claims) { c.Issuer = "evil" })), "invalid_token", auth.ReasonIssuer},
		{"audience", bearer(mod(func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"other"} })), "invalid_token", auth.ReasonAudience},
		{"unknown key", bearer(func() string { t, _ := otherKey.Sign(e.claims()); return t }()), "invalid_token", auth.ReasonUnknownKey},
		{"forged signature", bearer(func() string {
			tok, _ := otherKey.Sign(e.claims())
			parts := strings.Split(tok, ".")
			good := strings.Split(e.token(), ".")
			return good[0] + "." + parts[1] + "." + parts[2] // our kid, their signature
		}()), "invalid_token", auth.ReasonSignature},
		{"alg none", bearer(func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, e.claims())
			tok.Header["kid"] = e.key.KeyID
			s, _ := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}()), "invalid_token", auth.ReasonAlgorithm},
		{"RS256 with our kid", bearer(func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, e.claims())
			tok.Header["kid"] = e.key.KeyID
			s, _ := tok.SignedString(rsaPriv)
			return s
		}()), "invalid_token", auth.ReasonAlgorithm},
		{"other repository", bearer(mod(func(c *auth.Claims) { c.Access[0].Name = "stable/app2" })), "insufficient_scope", reasonInsufficientScope},
		{"parent repository", bearer(mod(func(c *auth.Claims) { c.Access[0].Name = "stable" })), "insufficient_scope", reasonInsufficientScope},
		{"prefixed name", bearer(mod(func(c *auth.Claims) { c.Access[0].Name = "acme/stable/app" })), "insufficient_scope", reasonInsufficientScope},
		{"push only", bearer(mod(func(c *auth.Claims) { c.Access[0].Actions = []string{"push"} })), "insufficient_scope", reasonInsufficientScope},
		{"registry type", bearer(mod(func(c *auth.Claims) { c.Access[0].Type = "registry" })), "insufficient_scope", reasonInsufficientScope},
		{"no access", bearer(mod(func(c *auth.Claims) { c.Access = nil })), "insufficient_scope", reasonInsufficientScope},
	}
	// What error_description and the message say for insufficient_scope;
	// for invalid_token they say "invalid token: <reason>".
	otherRepo := "the token of alice@example.com does not grant pull on stable/app (it was issued for other repositories)"
	unlicensed := "the token of alice@example.com does not grant pull on channel 'stable' (the license does not include it)"
	denials := map[string]string{
		"other repository": otherRepo, "parent repository": otherRepo,
		"prefixed name": unlicensed, "push only": unlicensed, "registry type": unlicensed, "no access": unlicensed,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := 0.0
			if tt.reason != "" {
				before = counterValue(e.gw.metrics.verifyFailures.WithLabelValues(tt.reason))
			}
			resp := e.do("GET", path, tt.header)
			body := readBody(t, resp)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401 (never 403)", resp.StatusCode)
			}
			want := testChallenge + scope
			if tt.errTag != "" {
				desc, ok := denials[tt.name]
				if !ok {
					desc = "invalid token: " + tt.reason
				}
				want += `,error="` + tt.errTag + `",error_description="` + desc + `"`
				if msg := errorMessage(t, body); msg != desc {
					t.Errorf("message %q, want %q", msg, desc)
				}
			}
			if got := resp.Header.Values("Www-Authenticate"); len(got) != 1 || got[0] != want {
				t.Errorf("challenge %q, want %q", got, want)
			}
			if code := errorCode(t, body); code != httpx.CodeUnauthorized {
				t.Errorf("code %s", code)
			}
			if tt.reason != "" {
				if got := counterValue(e.gw.metrics.verifyFailures.WithLabelValues(tt.reason)); got != before+1 {
					t.Errorf("failures{reason=%s} went from %v to %v", tt.reason, before, got)
				}
			}
		})
	}
	if n := e.upstream.count(); n != 0 {
		t.Errorf("upstream saw %d requests", n)
	}

	// The same token works: exactly the repository it names.
	resp := e.do("GET", path, bearer(e.token()))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("valid token: %d %s", resp.StatusCode, readBody(t, resp))
	}
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newFakeRegistry())
	c := e.claims()
	c.Access[0].Actions = []string{"pull", "push", "delete", "*"}
	tok := bearer(e.sign(c))
	for _, m := range []string{"POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "PROPFIND"} {
		for _, p := range []string{"/v2/stable/app/blobs/uploads/", "/v2/stable/app/manifests/latest", "/v2/", "/v2/stable/app/blobs/" + dgst} {
			req := httptest.NewRequest(m, p, strings.NewReader("x"))
			req.Header = tok.Clone()
			rec := httptest.NewRecorder()
			e.gw.Handler().ServeHTTP(rec, req)
			if rec.Code != http.StatusMethodNotAllowed {
				t.Fatalf("%s %s: %d", m, p, rec.Code)
			}
			if m != "HEAD" {
				if code := errorCode(t, rec.Body.String()); code != httpx.CodeUnsupported {
					t.Errorf("%s %s: code %s", m, p, code)
				}
			}
		}
	}
	if n := e.upstream.count(); n != 0 {
		t.Errorf("upstream saw %d requests", n)
	}
}

func TestNonCanonicalPathsAreRefusedBeforeForwarding(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newFakeRegistry())
	tok := bearer(e.token())
	for _, p := range []string{
		"/v2/stable%2Fapp/manifests/latest",
		"/v2/stable/%2e%2e/stable/app/manifests/latest",
		"/v2/stable/app/%2e%2e/app/manifests/latest",
		"/v2/stable/x/../app/manifests/latest",
		"/v2/stable//app/manifests/latest",
		"/v2/Stable/App/manifests/latest",
		"/v2/stable/app/manifests/lat%65st",
		"/v2/" + strings.Repeat("a", 300) + "/manifests/latest",
		"/v2/stable/app/manifests/latest?x=1#", // fine path, kept for contrast below
	} {
		req := httptest.NewRequest("GET", p, nil)
		req.Header = tok.Clone()
		rec := httptest.NewRecorder()
		before := e.upstream.count()
		e.gw.Handler().ServeHTTP(rec, req)
		if strings.HasSuffix(p, "#") {
			if rec.Code != http.StatusOK {
				t.Errorf("%s: %d", p, rec.Code)
			}
			continue
		}
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", p, rec.Code)
			continue
		}
		if code := errorCode(t, rec.Body.String()); code != httpx.CodeNameInvalid {
			t.Errorf("%s: code %s", p, code)
		}
		if e.upstream.count() != before {
			t.Errorf("%s was forwarded", p)
		}
	}

	// A name that fits alone but not with the prefix.
	name := strings.Repeat("a", 251)
	c := e.claims()
	c.Access[0].Name = name
	resp := e.do("GET", "/v2/"+name+"/tags/list", bearer(e.sign(c)))
	if resp.StatusCode != http.StatusBadRequest || errorCode(t, readBody(t, resp)) != httpx.CodeNameInvalid {
		t.Errorf("over-long upstream name: %d", resp.StatusCode)
	}
}

func TestUnknownPaths(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newFakeRegistry())
	for _, p := range []string{"/", "/v1/", "/token", "/v2x", "/v2/stable/app/other/x"} {
		resp := e.do("GET", p, bearer(e.token()))
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
}
