package auth_test

// Micro-benchmarks of the hot paths of the token service (scope parsing,
// signing) and of the gateway (verification with and without the
// verified-token cache). `make bench` runs them with -benchmem and copies
// the numbers into BENCHMARKS.md; they are never run by `make test`.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/acme/registry-gateway/internal/testsupport/testutil"
	"github.com/acme/registry-gateway/pkg/auth"
)

var benchScopes = []struct{ name, scope string }{
	{"repository", "repository:stable/app:pull"},
	{"pull-push", "repository:beta/team/service:pull,push"},
	{"class-nested", "repository(plugin):stable/team/app:pull"},
	{"catalog", "registry:catalog:*"},
}

func BenchmarkParseScope(b *testing.B) {
	for _, bc := range benchScopes {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := auth.ParseScope(bc.scope); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseScopes is a docker pull with a cross-repository mount: the
// shape of a real token request.
func BenchmarkParseScopes(b *testing.B) {
	params := []string{"repository:stable/app:pull", "repository:stable/base:pull repository:stable/app:push"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := auth.ParseScopes(params); err != nil {
			b.Fatal(err)
		}
	}
}

type benchKey struct {
	alg    string
	signer crypto.Signer
}

func benchKeys(b *testing.B) []benchKey {
	b.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	rs, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	return []benchKey{{"ES256", ec}, {"RS256", rs}}
}

func benchClaims(now time.Time) *auth.Claims {
	return &auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    "bench-issuer",
			Subject:   "alice@example.com",
			Audience:  jwt.ClaimStrings{"bench-service"},
			ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute)),
			NotBefore: jwt.NewNumericDate(now.Add(-time.Second)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        auth.NewTokenID(),
		},
		Access: []auth.ResourceActions{{Type: "repository", Name: "stable/app", Actions: []string{"pull"}}},
	}
}

func BenchmarkSign(b *testing.B) {
	now := time.Now()
	for _, k := range benchKeys(b) {
		key, err := auth.NewSigningKey(k.signer, nil)
		if err != nil {
			b.Fatal(err)
		}
		// With the certificate in x5c, as the shipped configuration signs.
		withCert, err := auth.NewSigningKey(k.signer, []*x509.Certificate{benchCert(b, k.signer)})
		if err != nil {
			b.Fatal(err)
		}
		for _, v := range []struct {
			name string
			key  *auth.SigningKey
		}{{k.alg, key}, {k.alg + "-x5c", withCert}} {
			b.Run(v.name, func(b *testing.B) {
				b.ReportAllocs()
				cpu := testutil.StartCPU(b)
				for b.Loop() {
					if _, err := v.key.Sign(benchClaims(now)); err != nil {
						b.Fatal(err)
					}
				}
				cpu.Report()
			})
		}
		// Parallel: what a token server with GOMAXPROCS cores can sign.
		b.Run(k.alg+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := key.Sign(benchClaims(now)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// benchCert is a self-signed certificate for k, of the size `make keys`
// makes.
func benchCert(b *testing.B, k crypto.Signer) *x509.Certificate {
	b.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "registry-gateway token signer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		b.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	now := time.Now()
	for _, k := range benchKeys(b) {
		key, err := auth.NewSigningKey(k.signer, nil)
		if err != nil {
			b.Fatal(err)
		}
		raw, err := key.Sign(benchClaims(now))
		if err != nil {
			b.Fatal(err)
		}
		keys := auth.StaticKeys{key.KeyID: k.signer.Public()}
		for _, cache := range []struct {
			name string
			size int
		}{{"cached", 0}, {"uncached", -1}} {
			newVerifier := func() *auth.Verifier {
				return auth.NewVerifier(auth.VerifierConfig{
					Issuer: "bench-issuer", Audience: "bench-service", Keys: keys,
					CacheSize: cache.size, Clock: func() time.Time { return now },
				})
			}
			b.Run(fmt.Sprintf("%s/%s", k.alg, cache.name), func(b *testing.B) {
				v := newVerifier()
				if _, err := v.Verify(ctx, raw); err != nil { // warm the cache
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := v.Verify(ctx, raw); err != nil {
						b.Fatal(err)
					}
				}
			})
			// Parallel: the gateway verifies on every request from every
			// core; this shows lock contention on the cache.
			b.Run(fmt.Sprintf("%s/%s-parallel", k.alg, cache.name), func(b *testing.B) {
				v := newVerifier()
				if _, err := v.Verify(ctx, raw); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := v.Verify(ctx, raw); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
