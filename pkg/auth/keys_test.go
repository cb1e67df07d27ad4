package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustEC(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustRSA(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func selfSigned(t testing.TB, k crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "token signer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParsePrivateKeyPEMFormats(t *testing.T) {
	t.Parallel()
	ec, rs := mustEC(t), mustRSA(t)
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	sec1, _ := x509.MarshalECPrivateKey(ec)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)

	tests := []struct {
		name    string
		pem     []byte
		alg     string
		wantErr string
	}{
		{"pkcs8 ec", pemBlock("PRIVATE KEY", pkcs8(ec)), "ES256", ""},
		{"sec1 ec after a certificate", append(pemBlock("CERTIFICATE", []byte("x")), pemBlock("EC PRIVATE KEY", sec1)...), "ES256", ""},
		{"pkcs1 rsa", pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rs)), "RS256", ""},
		{"pkcs8 rsa", pemBlock("PRIVATE KEY", pkcs8(rs)), "RS256", ""},
		{"p384", pemBlock("PRIVATE KEY", pkcs8(p384)), "", "only P-256"},
		{"rsa 1024", pemBlock("PRIVATE KEY", pkcs8(small)), "", "at least 2048"},
		{"ed25519", pemBlock("PRIVATE KEY", pkcs8(ed)), "", "unsupported key type"},
		{"empty", nil, "", "no private key"},
		{"garbage der", pemBlock("PRIVATE KEY", []byte("nope")), "", "asn1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParsePrivateKeyPEM(tt.pem)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m, _ := MethodFor(s.Public())
			if m.Alg() != tt.alg {
				t.Fatalf("alg %s, want %s", m.Alg(), tt.alg)
			}
		})
	}
}

// The example of RFC 7638 §3.1.
func TestThumbprintRFC7638Vector(t *testing.T) {
	t.Parallel()
	jwk := JWK{Kty: "RSA", E: "AQAB", N: "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}
	pub, err := jwk.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Thumbprint(pub)
	if err != nil {
		t.Fatal(err)
	}
	if want := "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Fatalf("thumbprint %s, want %s", got, want)
	}
}

func TestJWKSRoundTrip(t *testing.T) {
	t.Parallel()
	ec, rs := mustEC(t), mustRSA(t)
	set, err := NewJWKS(ec.Public(), rs.Public())
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(set)
	keys, err := ParseJWKS(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []crypto.PublicKey{ec.Public(), rs.Public()} {
		kid, _ := Thumbprint(k)
		got, ok := keys[kid]
		if !ok || !got.(interface{ Equal(crypto.PublicKey) bool }).Equal(k) {
			t.Fatalf("key %s did not round-trip", kid)
		}
	}
	for _, j := range set.Keys {
		if j.Kty == "EC" && (len(j.X) != 43 || len(j.Y) != 43) {
			t.Errorf("EC coordinates not padded to 32 bytes: %q %q", j.X, j.Y)
		}
	}
}

func TestParseJWKSRefusesBadKeys(t *testing.T) {
	t.Parallel()
	for name, doc := range map[string]string{
		"not json":      `{`,
		"empty":         `{"keys":[]}`,
		"off curve":     `{"keys":[{"kty":"EC","crv":"P-256","x":"AQ","y":"AQ"}]}`,
		"p384":          `{"keys":[{"kty":"EC","crv":"P-384","x":"AQ","y":"AQ"}]}`,
		"symmetric":     `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`,
		"small rsa":     `{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`,
		"bad base64":    `{"keys":[{"kty":"RSA","n":"!!","e":"AQAB"}]}`,
		"huge exponent": `{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAAAAAAAAAA"}]}`,
		// 16,400 bits: seconds per verification.
		"oversized rsa": `{"keys":[{"kty":"RSA","n":"` + strings.Repeat("_", 2734) + `","e":"AQAB"}]}`,
	} {
		if _, err := ParseJWKS([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestLoadSigningKeyWithCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k := mustEC(t)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	keyPath := filepath.Join(dir, "token.key")
	certPath := filepath.Join(dir, "token.crt")
	if err := os.WriteFile(keyPath, pemBlock("PRIVATE KEY", der), 0o600); err != nil {
		t.Fatal(err)
	}
	cert := selfSigned(t, k)
	if err := os.WriteFile(certPath, pemBlock("CERTIFICATE", cert.Raw), 0o644); err != nil {
		t.Fatal(err)
	}
	sk, err := LoadSigningKey(keyPath, certPath)
	if err != nil {
		t.Fatal(err)
	}
	wantKid, _ := Thumbprint(k.Public())
	if sk.KeyID != wantKid || sk.Method.Alg() != "ES256" || len(sk.X5C) != 1 {
		t.Fatalf("got kid %s alg %s x5c %d", sk.KeyID, sk.Method.Alg(), len(sk.X5C))
	}

	// A certificate for another key must be refused: the registry would
	// check the signature against the certificate's key.
	other := selfSigned(t, mustEC(t))
	if err := os.WriteFile(certPath, pemBlock("CERTIFICATE", other.Raw), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSigningKey(keyPath, certPath); err == nil || !strings.Contains(err.Error(), "not for the signing key") {
		t.Fatalf("mismatched certificate: err = %v", err)
	}
	if _, err := LoadSigningKey(filepath.Join(dir, "missing.key"), ""); err == nil {
		t.Fatal("missing key file accepted")
	}

	// Public keys load from the certificate and from a PUBLIC KEY block.
	pubDER, _ := x509.MarshalPKIXPublicKey(k.Public())
	pubPath := filepath.Join(dir, "token.pub")
	if err := os.WriteFile(pubPath, pemBlock("PUBLIC KEY", pubDER), 0o644); err != nil {
		t.Fatal(err)
	}
	keys, err := LoadPublicKeys(pubPath, certPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[wantKid] == nil {
		t.Fatalf("LoadPublicKeys = %d keys, want the signing key and the other", len(keys))
	}
}
