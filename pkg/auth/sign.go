package auth

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/golang-jwt/jwt/v5"
)

// Sign signs claims with the key's pinned algorithm; the header carries
// the kid, and x5c when a certificate is configured.
func (k *SigningKey) Sign(claims *Claims) (string, error) {
	if claims.Access == nil {
		// An explicit empty list: what `docker login` is given.
		claims.Access = []ResourceActions{}
	}
	t := jwt.NewWithClaims(k.Method, claims)
	t.Header["kid"] = k.KeyID
	if len(k.X5C) > 0 {
		t.Header["x5c"] = k.X5C
	}
	return t.SignedString(k.Signer)
}

// NewTokenID returns a random jti.
func NewTokenID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}
