package bench

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/acme/registry-gateway/pkg/auth"
)

// Identity of the token service and gateway under test.
const (
	benchIssuer  = "bench-token-issuer"
	benchService = "bench-registry"
)

// keyFiles are a signing key written to disk for the servers under test.
type keyFiles struct {
	Alg     string
	Private string // PKCS#8 PEM
	Public  string // PKIX PEM
	Key     *auth.SigningKey
}

// writeKey generates an ES256 (P-256) or RS256 (RSA-2048) key into dir.
func writeKey(dir, alg string) (keyFiles, error) {
	var signer crypto.Signer
	var err error
	switch alg {
	case "ES256":
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		signer, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		return keyFiles{}, err
	}
	priv, err := x509.MarshalPKCS8PrivateKey(signer)
	if err != nil {
		return keyFiles{}, err
	}
	pub, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return keyFiles{}, err
	}
	k := keyFiles{
		Alg:     alg,
		Private: filepath.Join(dir, alg+".key"),
		Public:  filepath.Join(dir, alg+".pub"),
	}
	if err := os.WriteFile(k.Private, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}), 0o600); err != nil {
		return keyFiles{}, err
	}
	if err := os.WriteFile(k.Public, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return keyFiles{}, err
	}
	if k.Key, err = auth.NewSigningKey(signer, nil); err != nil {
		return keyFiles{}, err
	}
	return k, nil
}

// pullToken signs a token granting pull on repo, valid for an hour, as the
// token service would.
func pullToken(k *auth.SigningKey, subject, repo string) (string, error) {
	now := time.Now()
	return k.Sign(&auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    benchIssuer,
			Subject:   subject,
			Audience:  jwt.ClaimStrings{benchService},
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
			NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        auth.NewTokenID(),
		},
		Access: []auth.ResourceActions{{Type: auth.TypeRepository, Name: repo, Actions: []string{auth.ActionPull}}},
	})
}
