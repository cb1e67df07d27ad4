package tokenserver

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/acme/registry-gateway/internal/license"
)

// Refresh tokens are sealed, not stored: an AES-256-GCM box of who the
// customer is and the API token to re-check their licence with. No state is
// kept, so a token survives restarts and opens on every replica that has the
// same key; it cannot be revoked one by one, but every use asks the licence
// backend again, so revoking the licence (or the API token) ends it.
//
// The key comes from refresh_token_key_file, or is derived with HKDF from
// the signing key: replicas share the signing key anyway. So that a key
// rotation does not log every customer out, tokens also open with the keys
// derived from the other private keys the configuration holds (the next key
// in publish_keys, the old one in publish_keys or previous_signing_keys);
// they are always sealed with the current one. Dropping a private key from
// the configuration ends the refresh tokens sealed under it, which is the
// way to invalidate them after a leak.
const (
	// refreshPrefix versions the format; a new format gets a new prefix
	// and the old one can still be opened during a transition.
	refreshPrefix = "rt1."
	// refreshKDFInfo separates this use of the signing key from any other.
	refreshKDFInfo = "acme-tokenserver refresh-token v1 AES-256-GCM"
	// maxRefreshTokenLen bounds what is decoded; a sealed token is a few
	// hundred bytes.
	maxRefreshTokenLen = 8 << 10
)

// errBadRefreshToken covers every way a refresh token can fail to open; the
// client learns nothing about which. A token that opens but whose life is
// over is a *refreshExpiredError, which errors.Is matches with it.
var errBadRefreshToken = errors.New("refresh token invalid or expired")

// refreshExpiredError is errBadRefreshToken for a genuine refresh token
// past its exp, the usual reason `docker pull` stops working a month after
// `docker login`: it names the customer and the API token for the
// failed-login line (license.Credentials never prints the token).
type refreshExpiredError struct {
	cred license.Credentials
}

func (*refreshExpiredError) Error() string { return errBadRefreshToken.Error() }

// Is makes errors.Is(err, errBadRefreshToken) hold.
func (*refreshExpiredError) Is(target error) bool { return target == errBadRefreshToken }

// refreshClaims are the sealed contents. Short JSON names keep the token
// small.
type refreshClaims struct {
	Subject   string `json:"sub"`
	Token     string `json:"tok"`
	IssuedAt  int64  `json:"iat"`
	ExpiresAt int64  `json:"exp"`
	ID        string `json:"jti"`
	Service   string `json:"svc"`
}

// refreshSealer seals refresh tokens with its first key and opens them
// with any of its keys.
type refreshSealer struct {
	aeads []cipher.AEAD
}

// newRefreshSealer seals with key; openOnly are earlier or later keys whose
// tokens it still (or already) accepts.
func newRefreshSealer(key []byte, openOnly ...[]byte) (*refreshSealer, error) {
	s := &refreshSealer{}
	for _, k := range append([][]byte{key}, openOnly...) {
		if len(k) != 32 {
			return nil, fmt.Errorf("refresh token key must be 32 bytes, got %d", len(k))
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, err
		}
		s.aeads = append(s.aeads, aead)
	}
	return s, nil
}

// deriveRefreshKey derives the AEAD key from a signing private key.
func deriveRefreshKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("derive refresh token key: %w", err)
	}
	return hkdf.Key(sha256.New, der, nil, refreshKDFInfo, 32)
}

// loadRefreshKey reads a key file: 64 hex digits (whitespace around them is
// fine) or exactly 32 raw bytes.
func loadRefreshKey(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if s := strings.TrimSpace(string(data)); len(s) == 64 {
		if key, err := hex.DecodeString(s); err == nil {
			return key, nil
		}
	}
	if len(data) == 32 {
		return data, nil
	}
	return nil, fmt.Errorf("%s: want 64 hex digits or 32 raw bytes", path)
}

// seal returns the refresh token for c.
func (s *refreshSealer) seal(c *refreshClaims) (string, error) {
	plain, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	box := s.aeads[0].Seal(nil, nil, plain, []byte(refreshPrefix))
	out := make([]byte, len(refreshPrefix)+base64.RawURLEncoding.EncodedLen(len(box)))
	copy(out, refreshPrefix)
	base64.RawURLEncoding.Encode(out[len(refreshPrefix):], box)
	return string(out), nil
}

// open checks a refresh token's seal, lifetime and service. Every failure
// is errBadRefreshToken (errors.Is); an expired one says whose it was.
func (s *refreshSealer) open(token, service string, now time.Time) (*refreshClaims, error) {
	rest, ok := strings.CutPrefix(token, refreshPrefix)
	if !ok || len(token) > maxRefreshTokenLen {
		return nil, errBadRefreshToken
	}
	box, err := base64.RawURLEncoding.DecodeString(rest)
	// Only the one spelling seal writes opens: the decoder skips line
	// breaks and ignores the padding bits of the last character, and a
	// bearer credential must not have variants it was never issued as.
	if err != nil || base64.RawURLEncoding.EncodeToString(box) != rest {
		return nil, errBadRefreshToken
	}
	var plain []byte
	for _, aead := range s.aeads {
		// Open into a fresh buffer: a failed Open may scribble on dst,
		// and the next key needs the box intact.
		if plain, err = aead.Open(nil, nil, box, []byte(refreshPrefix)); err == nil {
			break
		}
	}
	if err != nil {
		return nil, errBadRefreshToken
	}
	var c refreshClaims
	if err := json.Unmarshal(plain, &c); err != nil {
		return nil, errBadRefreshToken
	}
	if c.Subject == "" || c.Token == "" || c.Service != service {
		return nil, errBadRefreshToken
	}
	if now.Unix() >= c.ExpiresAt {
		return nil, &refreshExpiredError{cred: license.Credentials{Username: c.Subject, Token: c.Token}}
	}
	return &c, nil
}
