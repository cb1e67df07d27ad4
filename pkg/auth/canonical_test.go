package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"encoding/base64"
	"errors"
	"io"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// A token has one spelling. A re-spelled signature segment (or a high S)
// still verifies under golang-jwt's lenient defaults, and a re-spelled
// header or claims segment still decodes to the same header and claims
// (its signature then fails, as it covers the segments as written); the
// Verifier refuses every one as what it is, whether the canonical token is
// in its cache or not.
func TestVerifyRefusesRespelledTokens(t *testing.T) {
	t.Parallel()
	clk := newClock()
	key := mustEC(t)
	k := mustSigningKey(t, key)
	keys := StaticKeys{k.KeyID: key.Public()}

	// Every segment must have unused trailing bits (a length that is not
	// a multiple of 4) for the trailing-bit cases: the header and the
	// 64-byte signature always do; the claims do for the right subject.
	// And the token must hold a - or _ for the standard-alphabet case: the
	// base64 of JSON text seldom does, so it comes from the signature,
	// whose 86 characters lack both in about one token in 15 (ECDSA
	// signatures are random: signing again draws another).
	var raw string
	for i := 0; ; i++ {
		c := testClaims(clk.Now())
		c.Subject += strings.Repeat("x", i)
		var err error
		if raw, err = k.Sign(c); err != nil {
			t.Fatal(err)
		}
		if segs := strings.Split(raw, "."); len(segs[0])%4 != 0 && len(segs[1])%4 != 0 && len(segs[2])%4 != 0 && strings.ContainsAny(raw, "-_") {
			break
		}
	}
	segs := strings.Split(raw, ".")
	join := func(i int, seg string) string {
		s := append([]string(nil), segs...)
		s[i] = seg
		return strings.Join(s, ".")
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	// nonZeroTrailingBits sets the lowest unused bit of the last character.
	nonZeroTrailingBits := func(seg string) string {
		last := strings.IndexByte(alphabet, seg[len(seg)-1])
		return seg[:len(seg)-1] + string(alphabet[last|1])
	}
	padded := func(seg string) string { return seg + strings.Repeat("=", (4-len(seg)%4)%4) }
	highS := func() string {
		sig, err := base64.RawURLEncoding.DecodeString(segs[2])
		if err != nil {
			t.Fatal(err)
		}
		s := new(big.Int).SetBytes(sig[p256ScalarLen:])
		if s.Cmp(new(big.Int).Rsh(p256Order, 1)) > 0 {
			t.Fatal("Sign made a high-S signature")
		}
		new(big.Int).Sub(p256Order, s).FillBytes(sig[p256ScalarLen:])
		return join(2, base64.RawURLEncoding.EncodeToString(sig))
	}
	stdAlphabet := func() string {
		i := strings.IndexAny(raw, "-_")
		if i < 0 {
			t.Fatal("no - or _ in the token to spell with + or /")
		}
		return raw[:i] + map[byte]string{'-': "+", '_': "/"}[raw[i]] + raw[i+1:]
	}

	lax := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation())
	laxPadded := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation(), jwt.WithPaddingAllowed())
	pub := func(*jwt.Token) (any, error) { return key.Public(), nil }

	for _, tc := range []struct {
		name string
		raw  string
		// lax takes the re-spelling: it verifies it when verifies, else
		// decodes the same header and claims as from the canonical token.
		lax      *jwt.Parser
		verifies bool
		reason   string
		msg      string
	}{
		{"high S", highS(), lax, true, ReasonSignature, "high S"},
		{"trailing bits in header", join(0, nonZeroTrailingBits(segs[0])), lax, false, ReasonMalformed, "canonical base64url"},
		{"trailing bits in claims", join(1, nonZeroTrailingBits(segs[1])), lax, false, ReasonMalformed, "canonical base64url"},
		{"trailing bits in signature", join(2, nonZeroTrailingBits(segs[2])), lax, true, ReasonMalformed, "canonical base64url"},
		{"padded header", join(0, padded(segs[0])), laxPadded, false, ReasonMalformed, "without padding"},
		{"padded claims", join(1, padded(segs[1])), laxPadded, false, ReasonMalformed, "without padding"},
		{"padded signature", join(2, padded(segs[2])), laxPadded, true, ReasonMalformed, "without padding"},
		{"line feed in claims", join(1, segs[1][:10]+"\n"+segs[1][10:]), lax, false, ReasonMalformed, "without padding"},
		{"carriage return in signature", join(2, segs[2][:10]+"\r"+segs[2][10:]), lax, true, ReasonMalformed, "without padding"},
		{"standard alphabet", stdAlphabet(), nil, false, ReasonMalformed, "without padding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.raw == raw {
				t.Fatal("not a re-spelling")
			}
			switch {
			case tc.lax != nil && tc.verifies:
				if _, err := tc.lax.ParseWithClaims(tc.raw, &Claims{}, pub); err != nil {
					t.Fatalf("golang-jwt refuses it, so the case proves nothing: %v", err)
				}
			case tc.lax != nil:
				want, _, err := lax.ParseUnverified(raw, &Claims{})
				if err != nil {
					t.Fatal(err)
				}
				got, _, err := tc.lax.ParseUnverified(tc.raw, &Claims{})
				if err != nil || !reflect.DeepEqual(got.Header, want.Header) || !reflect.DeepEqual(got.Claims, want.Claims) {
					t.Fatalf("golang-jwt decodes something else, so the case proves nothing: %v", err)
				}
			}
			for _, cached := range []bool{false, true} {
				v := NewVerifier(VerifierConfig{Issuer: testIssuer, Audience: testAudience, Keys: keys, Clock: clk.Now})
				if cached {
					if _, err := v.Verify(context.Background(), raw); err != nil {
						t.Fatalf("canonical token refused: %v", err)
					}
				}
				_, err := v.Verify(context.Background(), tc.raw)
				var ve *VerifyError
				if !errors.As(err, &ve) || ve.Reason != tc.reason || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("cached=%v: err = %v, want reason %s mentioning %q", cached, err, tc.reason, tc.msg)
				}
			}
		})
	}
}

// hedgedSigner hides the *ecdsa.PrivateKey, so that Sign takes the path of
// any other crypto.Signer (an HSM, a KMS): randomized ECDSA.
type hedgedSigner struct{ k *ecdsa.PrivateKey }

func (h hedgedSigner) Public() crypto.PublicKey { return h.k.Public() }
func (h hedgedSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	return h.k.Sign(r, d, o)
}

// Every ES256 signature Sign makes is low-S and verifies, with golang-jwt
// and with the Verifier: crypto/ecdsa makes a high S about half the time,
// so 2,000 tokens would meet about 1,000 (and 100 hedged ones about 50).
func TestSignES256AlwaysLowS(t *testing.T) {
	t.Parallel()
	key := mustEC(t)
	now := newClock().Now()
	for _, tc := range []struct {
		name   string
		signer crypto.Signer
		n      int
	}{{"RFC 6979", key, 2000}, {"hedged", hedgedSigner{key}, 100}} {
		t.Run(tc.name, func(t *testing.T) {
			k := mustSigningKey(t, tc.signer)
			v := NewVerifier(VerifierConfig{Issuer: testIssuer, Audience: testAudience,
				Keys: StaticKeys{k.KeyID: key.Public()}, Clock: func() time.Time { return now }, CacheSize: -1})
			p := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation())
			half := new(big.Int).Rsh(p256Order, 1)
			for i := range tc.n {
				raw, err := k.Sign(testClaims(now))
				if err != nil {
					t.Fatal(err)
				}
				sig, err := base64.RawURLEncoding.DecodeString(raw[strings.LastIndexByte(raw, '.')+1:])
				if err != nil || len(sig) != 2*p256ScalarLen {
					t.Fatalf("token %d: signature of %d bytes, %v", i, len(sig), err)
				}
				if new(big.Int).SetBytes(sig[p256ScalarLen:]).Cmp(half) > 0 {
					t.Fatalf("token %d: high S", i)
				}
				if _, err := v.Verify(context.Background(), raw); err != nil {
					t.Fatalf("token %d refused: %v", i, err)
				}
				if _, err := p.ParseWithClaims(raw, &Claims{}, func(*jwt.Token) (any, error) { return key.Public(), nil }); err != nil {
					t.Fatalf("token %d refused by golang-jwt: %v", i, err)
				}
			}
		})
	}
}

// Tokens golang-jwt signs are taken as long as they are low-S (RS256 always
// is unaffected); its ES256 signer does not normalise S, so about half of
// its tokens are high-S, which are refused. 64 tokens meet both kinds but
// once in 2^63.
func TestVerifyGolangJWTTokens(t *testing.T) {
	t.Parallel()
	clk := newClock()
	ecKey, rsaKey := mustEC(t), mustRSA(t)
	ecKID, _ := Thumbprint(ecKey.Public())
	rsaKID, _ := Thumbprint(rsaKey.Public())
	v := NewVerifier(VerifierConfig{Issuer: testIssuer, Audience: testAudience,
		Keys: StaticKeys{ecKID: ecKey.Public(), rsaKID: rsaKey.Public()}, Clock: clk.Now})
	sign := func(m jwt.SigningMethod, kid string, key any) string {
		tok := jwt.NewWithClaims(m, testClaims(clk.Now()))
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for range 4 {
		if _, err := v.Verify(context.Background(), sign(jwt.SigningMethodRS256, rsaKID, rsaKey)); err != nil {
			t.Fatalf("RS256 token refused: %v", err)
		}
	}
	var low, high int
	for range 64 {
		raw := sign(jwt.SigningMethodES256, ecKID, ecKey)
		sig, _ := base64.RawURLEncoding.DecodeString(raw[strings.LastIndexByte(raw, '.')+1:])
		_, err := v.Verify(context.Background(), raw)
		if isLowS(sig[p256ScalarLen:]) {
			low++
			if err != nil {
				t.Fatalf("low-S token refused: %v", err)
			}
			continue
		}
		high++
		var ve *VerifyError
		if !errors.As(err, &ve) || ve.Reason != ReasonSignature {
			t.Fatalf("high-S token: err = %v, want reason %s", err, ReasonSignature)
		}
	}
	if low == 0 || high == 0 {
		t.Fatalf("%d low-S and %d high-S tokens: expected both", low, high)
	}
}
