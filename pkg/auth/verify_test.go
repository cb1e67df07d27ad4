package auth

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	testIssuer   = "acme-tokenserver"
	testAudience = "registry.example.com"
)

// fakeClock is stopped at one instant, for the tests that need a fixed
// time; the tests that move time run in a synctest bubble instead.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)} }

func testClaims(now time.Time) *Claims {
	return &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: testIssuer, Subject: "alice@example.com", Audience: jwt.ClaimStrings{testAudience},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute)), ID: NewTokenID(),
		},
		Access: []ResourceActions{{Type: "repository", Name: "stable/app", Actions: []string{"pull"}}},
	}
}

func mustSigningKey(t testing.TB, s crypto.Signer) *SigningKey {
	t.Helper()
	k, err := NewSigningKey(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSignedTokenShape(t *testing.T) {
	t.Parallel()
	clk := newClock()
	k := mustSigningKey(t, mustEC(t))
	raw, err := k.Sign(testClaims(clk.Now()))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", raw)
	}
	var header map[string]any
	var payload map[string]json.RawMessage
	for i, v := range []any{&header, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	if header["alg"] != "ES256" || header["kid"] != k.KeyID || header["x5c"] != nil {
		t.Fatalf("header %v", header)
	}
	// Registries decode exp/nbf/iat as integers: no fractions allowed.
	for _, c := range []string{"exp", "nbf", "iat"} {
		if s := string(payload[c]); s == "" || strings.ContainsAny(s, ".e") {
			t.Errorf("claim %s = %q, want an integer", c, s)
		}
	}
	if string(payload["access"]) != `[{"type":"repository","name":"stable/app","actions":["pull"]}]` {
		t.Errorf("access = %s", payload["access"])
	}

	// An empty grant is an empty list, not null.
	c := testClaims(clk.Now())
	c.Access = nil
	raw, _ = k.Sign(c)
	b, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
	if !strings.Contains(string(b), `"access":[]`) {
		t.Errorf("empty access encoded as %s", b)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	clk := newClock()
	ecKey, rsaKey, otherKey := mustEC(t), mustRSA(t), mustEC(t)
	ec, rs, other := mustSigningKey(t, ecKey), mustSigningKey(t, rsaKey), mustSigningKey(t, otherKey)
	keys := StaticKeys{ec.KeyID: ecKey.Public(), rs.KeyID: rsaKey.Public()}

	sign := func(k *SigningKey, mutate func(*Claims)) string {
		c := testClaims(clk.Now())
		if mutate != nil {
			mutate(c)
		}
		raw, err := k.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	// A token that claims the kid of the trusted EC key but is signed by
	// another key: a forgery.
	forged := func() string {
		k := *other
		k.KeyID = ec.KeyID
		return sign(&k, nil)
	}
	// HS256 with the public key's bytes as the secret: the classic
	// algorithm-confusion attack.
	hmacConfusion := func() string {
		der, _ := x509.MarshalPKIXPublicKey(ecKey.Public())
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, testClaims(clk.Now()))
		tok.Header["kid"] = ec.KeyID
		s, _ := tok.SignedString(der)
		return s
	}
	algNone := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodNone, testClaims(clk.Now()))
		tok.Header["kid"] = ec.KeyID
		s, _ := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
		return s
	}
	// RS256 claimed in the header of a token whose kid names the EC key.
	algMismatch := func() string {
		k := *rs
		k.KeyID = ec.KeyID
		return sign(&k, nil)
	}
	tamper := func(raw string) string {
		parts := strings.Split(raw, ".")
		b, _ := base64.RawURLEncoding.DecodeString(parts[1])
		b = []byte(strings.Replace(string(b), "stable/app", "beta/app00", 1))
		parts[1] = base64.RawURLEncoding.EncodeToString(b)
		return strings.Join(parts, ".")
	}

	tests := []struct {
		name   string
		raw    string
		reason string
	}{
		{"es256", sign(ec, nil), ""},
		{"rs256", sign(rs, nil), ""},
		{"aud in a list", sign(ec, func(c *Claims) { c.Audience = jwt.ClaimStrings{"other", testAudience} }), ""},
		{"within leeway after exp", sign(ec, func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(clk.Now().Add(-10 * time.Second)) }), ""},
		{"within leeway before nbf", sign(ec, func(c *Claims) { c.NotBefore = jwt.NewNumericDate(clk.Now().Add(10 * time.Second)) }), ""},

		{"garbage", "not-a-token", ReasonMalformed},
		{"empty", "", ReasonMalformed},
		{"tampered payload", tamper(sign(ec, nil)), ReasonSignature},
		{"forged with trusted kid", forged(), ReasonSignature},
		{"unknown kid", sign(other, nil), ReasonUnknownKey},
		{"no kid", func() string { k := *ec; k.KeyID = ""; return sign(&k, nil) }(), ReasonUnknownKey},
		{"hs256 confusion", hmacConfusion(), ReasonAlgorithm},
		{"alg none", algNone(), ReasonAlgorithm},
		{"rs256 header on ec key", algMismatch(), ReasonAlgorithm},
		{"expired", sign(ec, func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(clk.Now().Add(-time.Minute)) }), ReasonExpired},
		{"no exp", sign(ec, func(c *Claims) { c.ExpiresAt = nil }), ReasonExpired},
		{"not yet valid", sign(ec, func(c *Claims) { c.NotBefore = jwt.NewNumericDate(clk.Now().Add(time.Minute)) }), ReasonNotYet},
		{"wrong issuer", sign(ec, func(c *Claims) { c.Issuer = "evil" }), ReasonIssuer},
		{"wrong audience", sign(ec, func(c *Claims) { c.Audience = jwt.ClaimStrings{"other.example.com"} }), ReasonAudience},
		{"no audience", sign(ec, func(c *Claims) { c.Audience = nil }), ReasonAudience},
	}
	v := NewVerifier(VerifierConfig{Issuer: testIssuer, Audience: testAudience, Keys: keys, Clock: clk.Now})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 2 { // the second round answers from the cache when valid
				c, err := v.Verify(context.Background(), tt.raw)
				if tt.reason == "" {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					if !c.Allows(TypeRepository, "stable/app", ActionPull) {
						t.Fatalf("claims lost access: %+v", c.Access)
					}
					continue
				}
				var ve *VerifyError
				if !errors.As(err, &ve) || ve.Reason != tt.reason {
					t.Fatalf("err = %v, want reason %s", err, tt.reason)
				}
			}
		})
	}
}

func TestVerifyCacheChecksExpiry(t *testing.T) {
	t.Parallel()
	// In a synctest bubble the Verifier's own clock (time.Now) is moved by
	// time.Sleep.
	synctest.Test(t, func(t *testing.T) {
		key := mustEC(t)
		k := mustSigningKey(t, key)
		var lookups atomic.Int32
		keys := keySourceFunc(func(ctx context.Context, kid string) (crypto.PublicKey, error) {
			lookups.Add(1)
			return StaticKeys{k.KeyID: key.Public()}.PublicKey(ctx, kid)
		})
		v := NewVerifier(VerifierConfig{Issuer: testIssuer, Audience: testAudience, Keys: keys, Leeway: time.Second})
		raw, _ := k.Sign(testClaims(time.Now()))
		for range 5 {
			if _, err := v.Verify(context.Background(), raw); err != nil {
				t.Fatal(err)
			}
		}
		if n := lookups.Load(); n != 1 {
			t.Fatalf("verified %d times, want 1 (cached)", n)
		}
		time.Sleep(5*time.Minute + 2*time.Second)
		var ve *VerifyError
		if _, err := v.Verify(context.Background(), raw); !errors.As(err, &ve) || ve.Reason != ReasonExpired {
			t.Fatalf("cached token past exp: err = %v", err)
		}

		// Without a cache every call verifies.
		lookups.Store(0)
		raw, _ = k.Sign(testClaims(time.Now()))
		nc := NewVerifier(VerifierConfig{Issuer: testIssuer, Audience: testAudience, Keys: keys, CacheSize: -1})
		for range 3 {
			if _, err := nc.Verify(context.Background(), raw); err != nil {
				t.Fatal(err)
			}
		}
		if n := lookups.Load(); n != 3 {
			t.Fatalf("uncached verifier looked up %d keys, want 3", n)
		}
	})
}

func TestVerifyCacheIsBounded(t *testing.T) {
	t.Parallel()
	clk := newClock()
	key := mustEC(t)
	k := mustSigningKey(t, key)
	v := NewVerifier(VerifierConfig{Issuer: testIssuer, Audience: testAudience, Keys: StaticKeys{k.KeyID: key.Public()}, Clock: clk.Now, CacheSize: 4})
	for range 10 {
		raw, _ := k.Sign(testClaims(clk.Now()))
		if _, err := v.Verify(context.Background(), raw); err != nil {
			t.Fatal(err)
		}
		if n := v.cache.len(); n > 4 {
			t.Fatalf("cache holds %d entries, bound is 4", n)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type keySourceFunc func(ctx context.Context, kid string) (crypto.PublicKey, error)

func (f keySourceFunc) PublicKey(ctx context.Context, kid string) (crypto.PublicKey, error) {
	return f(ctx, kid)
}

func TestRemoteJWKSRefetchesUnknownKidAtMostOncePerInterval(t *testing.T) {
	t.Parallel()
	// In a synctest bubble RemoteJWKS's own clock (time.Now) is moved by
	// time.Sleep; the JWKS endpoint is served in memory (a bubble has no
	// network).
	synctest.Test(t, testRemoteJWKSRefetch)
}

func testRemoteJWKSRefetch(t *testing.T) {
	first, second := mustEC(t), mustEC(t)
	var current atomic.Pointer[JWKS]
	set1, _ := NewJWKS(first.Public())
	current.Store(&set1)
	var fetches atomic.Int32
	var fail atomic.Bool
	jwks := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if fail.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(current.Load())
	})
	client := &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		rec := httptest.NewRecorder()
		jwks.ServeHTTP(rec, req)
		return rec.Result(), nil
	})}

	r := NewRemoteJWKS("https://tokens.example.com/jwks", RemoteJWKSOptions{Client: client, MinRefetch: 5 * time.Second})
	ctx := context.Background()
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	kid1, _ := Thumbprint(first.Public())
	kid2, _ := Thumbprint(second.Public())
	if _, err := r.PublicKey(ctx, kid1); err != nil {
		t.Fatal(err)
	}

	// The token service rotates its key.
	set2, _ := NewJWKS(first.Public(), second.Public())
	current.Store(&set2)

	// Within MinRefetch of the last fetch, an unknown kid does not refetch.
	for range 10 {
		if _, err := r.PublicKey(ctx, kid2); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("err = %v, want ErrUnknownKey", err)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
	time.Sleep(6 * time.Second)
	if _, err := r.PublicKey(ctx, kid2); err != nil {
		t.Fatalf("rotated key not found after refetch: %v", err)
	}
	if n := fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}

	// A failing JWKS endpoint keeps the keys held.
	fail.Store(true)
	time.Sleep(6 * time.Second)
	if _, err := r.PublicKey(ctx, "made-up"); err == nil {
		t.Fatal("unknown kid accepted")
	}
	if _, err := r.PublicKey(ctx, kid1); err != nil {
		t.Fatalf("held key lost after a failed fetch: %v", err)
	}
	if r.Len() != 2 {
		t.Fatalf("Len = %d, want 2", r.Len())
	}
}

func TestKeySources(t *testing.T) {
	t.Parallel()
	a, b := mustEC(t), mustEC(t)
	ka, _ := Thumbprint(a.Public())
	kb, _ := Thumbprint(b.Public())
	ks := KeySources{StaticKeys{ka: a.Public()}, StaticKeys{kb: b.Public()}}
	for _, kid := range []string{ka, kb} {
		if _, err := ks.PublicKey(context.Background(), kid); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ks.PublicKey(context.Background(), "nope"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("err = %v", err)
	}
}
