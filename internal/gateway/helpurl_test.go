package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/pkg/auth"
)

// TestChannelRefusalLinksHelp: with customer_help_url, the refusal of a
// channel the licence lacks points at its section of the help page (the
// body's message and the challenge's description, which docker prints);
// other refusals do not change.
func TestChannelRefusalLinksHelp(t *testing.T) {
	t.Parallel()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := auth.NewSigningKey(priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	verifier := auth.NewVerifier(auth.VerifierConfig{Issuer: testIssuer, Audience: testService, Keys: auth.StaticKeys{key.KeyID: priv.Public()}})
	tok, err := key.Sign(&auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Issuer: testIssuer, Subject: "alice@example.com", Audience: jwt.ClaimStrings{testService},
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute))},
		Access: []auth.ResourceActions{{Type: "repository", Name: "stable/app", Actions: []string{"pull"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, help := range []string{"", "https://console.vendor.example/console/help"} {
		a := newAuthorizer(verifier, testRealm, testService, nil)
		a.help = help
		_, err := a.check(t.Context(), "Bearer "+tok, Route{Kind: RouteManifest, Name: "beta/app", Reference: "1"})
		var he *httpx.Error
		if !errors.As(err, &he) {
			t.Fatalf("%v", err)
		}
		want := "the token of alice@example.com does not grant pull on channel 'beta' (the license does not include it)"
		if help != "" {
			want += " (help: " + help + "#channel)"
		}
		if he.Message != want || !strings.Contains(he.Header.Get("Www-Authenticate"), `error_description="`+want+`"`) {
			t.Errorf("help %q: %q / %q", help, he.Message, he.Header.Get("Www-Authenticate"))
		}
		// Another repository of a held channel: no help link.
		_, err = a.check(t.Context(), "Bearer "+tok, Route{Kind: RouteManifest, Name: "stable/other", Reference: "1"})
		if errors.As(err, &he) && strings.Contains(he.Message, "help:") {
			t.Errorf("repository refusal: %q", he.Message)
		}
	}
}
