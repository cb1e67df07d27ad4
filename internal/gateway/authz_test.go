package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/pkg/auth"
)

func TestBearerToken(t *testing.T) {
	t.Parallel()
	for h, want := range map[string]string{
		"Bearer abc":   "abc",
		"bearer abc":   "abc",
		"BEARER  abc ": "abc",
		"Bearer":       "",
		"Bearer ":      "",
		"Basic abc":    "",
		"Bearerabc":    "",
		"":             "",
	} {
		got, ok := bearerToken(h)
		if got != want || ok != (want != "") {
			t.Errorf("bearerToken(%q) = %q, %v", h, got, ok)
		}
	}
}

// FuzzTokenCheck feeds arbitrary Authorization headers and paths to the
// token check: it must never panic, every refusal must be a 401 with a
// well-formed Bearer challenge, and every acceptance must come from a token
// that this issuer signed for this service and that grants the route.
func FuzzTokenCheck(f *testing.F) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	key, err := auth.NewSigningKey(priv, nil)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	verifier := auth.NewVerifier(auth.VerifierConfig{
		Issuer: testIssuer, Audience: testService, Keys: auth.StaticKeys{key.KeyID: priv.Public()},
		Clock: func() time.Time { return now },
	})
	a := newAuthorizer(verifier, testRealm, testService, nil)
	sign := func(name string, actions []string, exp time.Duration) string {
		c := &auth.Claims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: testIssuer, Audience: jwt.ClaimStrings{testService},
				IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(exp)),
			},
			Access:   []auth.ResourceActions{{Type: "repository", Name: name, Actions: actions}},
			Channels: []string{"stable"},
		}
		if name == "catalog" {
			c.Access[0].Type = "registry"
		}
		tok, err := key.Sign(c)
		if err != nil {
			f.Fatal(err)
		}
		return tok
	}
	good := sign("stable/app", []string{"pull"}, 5*time.Minute)
	for _, s := range []struct{ header, path string }{
		{"Bearer " + good, "/v2/stable/app/manifests/latest"},
		{"Bearer " + good, "/v2/stable/app2/manifests/latest"},
		{"Bearer " + good, "/v2/"},
		{"Bearer " + good, "/v2/_catalog"},
		{"Bearer " + sign("catalog", []string{"*"}, time.Minute), "/v2/_catalog"},
		{"Bearer " + sign("stable/app", []string{"push"}, time.Minute), "/v2/stable/app/tags/list"},
		{"Bearer " + sign("stable/app", []string{"pull"}, -time.Hour), "/v2/stable/app/tags/list"},
		{"Bearer " + good[:len(good)-2] + "AA", "/v2/stable/app/blobs/" + dgst},
		{"Basic YWxpY2U6cHc=", "/v2/stable/app/tags/list"},
		{"", "/v2/stable/app/referrers/" + dgst},
		{"Bearer e30.e30.", "/v2/"},
	} {
		f.Add(s.header, s.path)
	}
	f.Fuzz(func(t *testing.T, header, path string) {
		route, err := ParseRoute(path)
		if err != nil {
			route = Route{Kind: RouteManifest, Name: "stable/app", Reference: "latest", Suffix: "/manifests/latest"}
		}
		claims, err := a.check(context.Background(), header, route)
		if err != nil {
			var e *httpx.Error
			if !errors.As(err, &e) || e.Status != http.StatusUnauthorized || e.Code != httpx.CodeUnauthorized {
				t.Fatalf("refusal %v is not a 401 UNAUTHORIZED", err)
			}
			ch := e.Header.Get("Www-Authenticate")
			if !strings.HasPrefix(ch, testChallenge) || strings.ContainsAny(ch, "\r\n") {
				t.Fatalf("bad challenge %q", ch)
			}
			if route.Kind != RouteBase && !strings.Contains(ch, `scope="`+route.Scope()+`"`) {
				t.Fatalf("challenge %q lacks the scope", ch)
			}
			if route.Kind == RouteBase && ch != testChallenge {
				t.Fatalf("base challenge %q has more than realm and service", ch)
			}
			return
		}
		if _, ok := bearerToken(header); !ok {
			t.Fatalf("accepted without a bearer token: %q", header)
		}
		if claims.Issuer != testIssuer || !slices.Contains(claims.Audience, testService) || !now.Before(claims.ExpiresAt.Add(time.Minute)) {
			t.Fatalf("accepted claims %+v", claims)
		}
		if !grants(claims, route) {
			t.Fatalf("accepted a token that does not grant %+v", route)
		}
		if route.Kind != RouteBase && route.Kind != RouteCatalog && !claims.Allows("repository", route.Name, "pull") {
			t.Fatalf("accepted without pull on %q", route.Name)
		}
	})
}

// TestDenial: a refused pull names the channel and the license when the
// token shows nothing of the channel, and not when it shows the channel is
// licensed (a token for another repository of it).
func TestDenial(t *testing.T) {
	t.Parallel()
	route := Route{Kind: RouteManifest, Name: "beta/hello", Reference: "1.0"}
	pull := func(names ...string) []auth.ResourceActions {
		var ra []auth.ResourceActions
		for _, n := range names {
			ra = append(ra, auth.ResourceActions{Type: auth.TypeRepository, Name: n, Actions: []string{auth.ActionPull}})
		}
		return ra
	}
	unlicensed := "the token of bob@example.com does not grant pull on channel 'beta' (the license does not include it)"
	other := "the token of bob@example.com does not grant pull on beta/hello (it was issued for other repositories)"
	for _, tc := range []struct {
		name   string
		claims auth.Claims
		want   string
	}{
		{"no access", auth.Claims{}, unlicensed},
		{"other channel", auth.Claims{Access: pull("stable/hello")}, unlicensed},
		{"name with the channel as a prefix", auth.Claims{Access: pull("betamax/hello")}, unlicensed},
		{"push on the channel", auth.Claims{Access: []auth.ResourceActions{{Type: auth.TypeRepository, Name: "beta/other", Actions: []string{"push"}}}}, unlicensed},
		{"catalog token without the channel", auth.Claims{Channels: []string{"stable"}}, unlicensed},
		{"other repository of the channel", auth.Claims{Access: pull("stable/hello", "beta/other")}, other},
		{"catalog token with the channel", auth.Claims{Channels: []string{"beta"}}, other},
	} {
		tc.claims.Subject = "bob@example.com"
		wantReason := deniedChannel
		if tc.want == other {
			wantReason = deniedRepository
		}
		if got, reason := denial(&tc.claims, route); got != tc.want || reason != wantReason {
			t.Errorf("%s: %q %s, want %q %s", tc.name, got, reason, tc.want, wantReason)
		}
	}
	if got, _ := denial(&auth.Claims{}, route); got != "the token does not grant pull on channel 'beta' (the license does not include it)" {
		t.Errorf("no subject: %q", got)
	}
	if got, reason := denial(&auth.Claims{}, Route{Kind: RouteCatalog}); got != "the token does not grant the catalog (registry:catalog:*)" || reason != "" {
		t.Errorf("catalog: %q %q", got, reason)
	}
}

// TestDenialWithOddSubject: a username with quotes, backslashes or non-ASCII
// letters still gives a challenge that parses, and the body keeps it as is.
func TestDenialWithOddSubject(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newFakeRegistry())
	c := e.claims()
	c.Subject = `zoë "x" \y`
	resp := e.do("GET", "/v2/beta/app/manifests/latest", bearer(e.sign(c)))
	body := readBody(t, resp)
	want := `,error="insufficient_scope",error_description="the token of zo? ?x? ?y does not grant pull on channel 'beta' (the license does not include it)"`
	if got := resp.Header.Get("Www-Authenticate"); !strings.HasSuffix(got, want) {
		t.Errorf("challenge %q, want it to end with %q", got, want)
	}
	if msg := errorMessage(t, body); !strings.HasPrefix(msg, `the token of zoë "x" \y does not grant`) {
		t.Errorf("message %q", msg)
	}
}

// TestRefusalSetsItsChallenge: a refusal is an error that sets its own
// WWW-Authenticate header (what the error adapter writes, through
// errors.As), and the header parses back to the challenge it was built
// from, the description kept to RFC 6750's characters; on /v2/ it is realm
// and service only.
func TestRefusalSetsItsChallenge(t *testing.T) {
	t.Parallel()
	a := newAuthorizer(nil, testRealm, testService, nil)
	route := Route{Kind: RouteManifest, Name: "stable/app", Reference: "1.0"}
	msg := `the token of zoë "x" does not grant pull`
	r := a.refuse(route, "insufficient_scope", msg, nil)
	h := http.Header{}
	r.SetHeaders(h)
	got, err := auth.ParseChallenge(h.Get("Www-Authenticate"))
	want := auth.Challenge{Realm: testRealm, Service: testService, Scope: "repository:stable/app:pull",
		Error: "insufficient_scope", ErrorDescription: "the token of zo? ?x? does not grant pull"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("challenge %q parsed as %+v (%v), want %+v", h.Get("Www-Authenticate"), got, err, want)
	}
	var he *httpx.Error
	if !errors.As(error(r), &he) || he.Status != http.StatusUnauthorized || he.Code != httpx.CodeUnauthorized ||
		he.Message != msg || he.Header.Get("Www-Authenticate") != h.Get("Www-Authenticate") {
		t.Fatalf("as *httpx.Error: %+v", he)
	}

	base := a.refuse(Route{Kind: RouteBase}, "invalid_token", "invalid token: expired", nil)
	h = http.Header{}
	base.SetHeaders(h)
	if got := h.Get("Www-Authenticate"); got != testChallenge {
		t.Errorf("base challenge %q, want %q", got, testChallenge)
	}
}
