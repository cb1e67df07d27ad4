package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Sign makes the token golang-jwt's Token.SignedString makes, byte for
// byte up to the signature (ECDSA signatures are randomized), whose
// signature golang-jwt accepts: for both algorithms, with and without
// x5c, and after the key's fields changed.
func TestSignMatchesGolangJWT(t *testing.T) {
	t.Parallel()
	clk := newClock()
	ecKey, rsaKey := mustEC(t), mustRSA(t)
	for _, tc := range []struct {
		name   string
		signer crypto.Signer
		cert   bool
	}{
		{"ES256", ecKey, false},
		{"ES256 x5c", ecKey, true},
		{"RS256", rsaKey, false},
		{"RS256 x5c", rsaKey, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var chain []*x509.Certificate
			if tc.cert {
				chain = append(chain, selfSigned(t, tc.signer))
			}
			k, err := NewSigningKey(tc.signer, chain)
			if err != nil {
				t.Fatal(err)
			}
			check := func(k *SigningKey, c *Claims) {
				t.Helper()
				raw, err := k.Sign(c) // first: it turns a nil Access into []
				if err != nil {
					t.Fatal(err)
				}
				want := jwt.NewWithClaims(k.Method, c)
				want.Header["kid"] = k.KeyID
				if len(k.X5C) > 0 {
					want.Header["x5c"] = k.X5C
				}
				wantSigning, err := want.SigningString()
				if err != nil {
					t.Fatal(err)
				}
				if got := raw[:strings.LastIndexByte(raw, '.')]; got != wantSigning {
					t.Fatalf("signing input\n got %s\nwant %s", got, wantSigning)
				}
				if _, err := jwt.NewParser(jwt.WithValidMethods([]string{k.Method.Alg()}), jwt.WithoutClaimsValidation()).
					ParseWithClaims(raw, &Claims{}, func(*jwt.Token) (any, error) { return tc.signer.Public(), nil }); err != nil {
					t.Fatalf("golang-jwt refuses the signature: %v", err)
				}
			}
			check(k, testClaims(clk.Now()))
			c := testClaims(clk.Now())
			c.Access = nil // signed as []
			check(k, c)

			// A copy with other fields gets its own header, not the
			// one encoded for k.
			other := *k
			other.KeyID = "another-kid"
			check(&other, testClaims(clk.Now()))
			other.X5C = append([]string{"AAAA"}, k.X5C...)
			check(&other, testClaims(clk.Now()))
			check(&SigningKey{Signer: k.Signer, Method: k.Method, KeyID: k.KeyID}, testClaims(clk.Now()))
		})
	}
}

// An ES256 signature is r || s, each left-padded to 32 bytes: about one
// signature in 128 has an r or s shorter than that, which a verifier
// refuses unless it is padded. Enough signatures to meet several.
func TestSignES256PadsShortScalars(t *testing.T) {
	t.Parallel()
	k := mustSigningKey(t, mustEC(t))
	pub := k.Signer.Public().(*ecdsa.PublicKey)
	p := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation())
	now := newClock().Now()
	for i := range 600 {
		raw, err := k.Sign(testClaims(now))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.ParseWithClaims(raw, &Claims{}, func(*jwt.Token) (any, error) { return pub, nil }); err != nil {
			t.Fatalf("signature %d refused: %v", i, err)
		}
	}
}

// appendClaims writes what encoding/json writes, whatever the strings hold.
func TestAppendClaimsMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_796_000_000, 0)
	full := func() *Claims {
		return &Claims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: "iss", Subject: "alice@example.com", Audience: jwt.ClaimStrings{"a", "b"},
				ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)), NotBefore: jwt.NewNumericDate(now),
				IssuedAt: jwt.NewNumericDate(now), ID: "0123abcd",
			},
			Access: []ResourceActions{
				{Type: "repository", Name: "stable/app", Actions: []string{"pull"}},
				{Type: "repository", Class: "plugin", Name: "stable/p", Actions: []string{"pull", "push"}},
				{Type: "registry", Name: "catalog", Actions: []string{"*"}},
				{Type: "repository", Name: "nil/actions"},
				{Type: "repository", Name: "empty/actions", Actions: []string{}},
			},
			Channels: []string{"stable", "beta"},
		}
	}
	cases := map[string]*Claims{
		"full":  full(),
		"empty": {},
		"empty lists": {
			RegisteredClaims: jwt.RegisteredClaims{Audience: jwt.ClaimStrings{}},
			Access:           []ResourceActions{}, Channels: []string{},
		},
		"one audience": {RegisteredClaims: jwt.RegisteredClaims{Audience: jwt.ClaimStrings{"svc"}}},
		"sub-second and before 1970": {RegisteredClaims: jwt.RegisteredClaims{
			ExpiresAt: jwt.NewNumericDate(now.Add(1500 * time.Millisecond)),
			NotBefore: &jwt.NumericDate{Time: time.Unix(-5, 0)},
			IssuedAt:  &jwt.NumericDate{Time: time.Unix(0, 0)},
		}},
	}
	for _, s := range []string{
		`quote " and \ backslash`, "<script>&amp;</script>", "tab\tnewline\n\x00\x1f\x7f",
		"ünïcødé ✓", "line\u2028sep\u2029", "bad utf-8 \xff\xfe", "",
	} {
		c := full()
		c.Issuer, c.Subject, c.ID = s, s, s
		c.Audience = jwt.ClaimStrings{s}
		c.Access[1].Class, c.Access[1].Name, c.Access[1].Actions = s, s, []string{s}
		c.Channels = []string{s, s}
		cases["strings "+s] = c
	}
	for name, c := range cases {
		want, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendClaims(nil, c); string(got) != string(want) {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
}

// appendClaims knows every field of Claims: one added to the type must be
// added to it (and to the test above).
func TestAppendClaimsKnowsEveryField(t *testing.T) {
	t.Parallel()
	for typ, n := range map[reflect.Type]int{
		reflect.TypeFor[Claims]():               3, // RegisteredClaims, Access, Channels
		reflect.TypeFor[jwt.RegisteredClaims](): 7,
		reflect.TypeFor[ResourceActions]():      4,
	} {
		if typ.NumField() != n {
			t.Errorf("%s has %d fields, appendClaims writes %d", typ, typ.NumField(), n)
		}
	}
}

func FuzzAppendClaims(f *testing.F) {
	f.Add("iss", "alice@example.com", "svc", "repository", "", "stable/app", "pull", "stable", int64(1_796_000_000))
	f.Add("<&>", "\xff", "\u2028", "repository", "plugin", `a"b\c`, "*", "", int64(-1))
	f.Fuzz(func(t *testing.T, iss, sub, aud, typ, class, name, action, channel string, exp int64) {
		c := &Claims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: iss, Subject: sub, Audience: jwt.ClaimStrings{aud, sub},
				ExpiresAt: jwt.NewNumericDate(time.Unix(exp, 0)), ID: name,
			},
			Access:   []ResourceActions{{Type: typ, Class: class, Name: name, Actions: []string{action, class}}},
			Channels: []string{channel},
		}
		want, err := json.Marshal(c)
		if err != nil {
			t.Skip() // a time json cannot encode
		}
		if got := appendClaims(nil, c); string(got) != string(want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}

// An ECDSA key signs deterministically (RFC 6979): the same claims give the
// same token, which golang-jwt accepts, and claims that differ (the token
// service's fresh jti) give another signature.
func TestSignES256Deterministic(t *testing.T) {
	t.Parallel()
	k := mustSigningKey(t, mustEC(t))
	now := newClock().Now()
	c := testClaims(now)
	a, err := k.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := k.Sign(c)
	if a != b {
		t.Fatal("two signatures of the same claims differ: not RFC 6979")
	}
	c.ID = NewTokenID()
	other, _ := k.Sign(c)
	sig := func(raw string) string { return raw[strings.LastIndexByte(raw, '.')+1:] }
	if sig(other) == sig(a) {
		t.Fatal("claims with another jti got the same signature")
	}
	for _, raw := range []string{a, other} {
		if _, err := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation()).
			ParseWithClaims(raw, &Claims{}, func(*jwt.Token) (any, error) { return k.Signer.Public(), nil }); err != nil {
			t.Fatal(err)
		}
	}
}

// A key whose kind differs from the algorithm of its header signs nothing
// (it would make tokens no verifier accepts).
func TestSignRefusesMismatchedMethod(t *testing.T) {
	t.Parallel()
	ec, rs := mustEC(t), mustRSA(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []*SigningKey{
		{Signer: p384, Method: jwt.SigningMethodES256, KeyID: "k"},
		{Signer: ec, Method: jwt.SigningMethodRS256, KeyID: "k"},
		{Signer: rs, Method: jwt.SigningMethodES256, KeyID: "k"},
		{Signer: ec, Method: jwt.SigningMethodES384, KeyID: "k"},
	} {
		if raw, err := k.Sign(testClaims(newClock().Now())); err == nil {
			t.Errorf("%T with %s signed %s", k.Signer, k.Method.Alg(), raw)
		}
	}
}
