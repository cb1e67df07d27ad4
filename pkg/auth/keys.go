package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"

	"github.com/golang-jwt/jwt/v5"
)

// minRSABits refuses RSA keys too weak to sign anything that grants access;
// maxRSABits keys so large that verifying one signature takes seconds (a
// JWKS document may be a megabyte).
const (
	minRSABits = 2048
	maxRSABits = 16384
)

// MethodFor pins the JWT algorithm to the key type: ES256 for P-256, RS256
// for RSA. Every other key is refused, so that a token can never pick its own
// algorithm ("none", HS256 with a public key as secret, …).
func MethodFor(pub crypto.PublicKey) (jwt.SigningMethod, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("EC key on %s: only P-256 is supported", k.Curve.Params().Name)
		}
		return jwt.SigningMethodES256, nil
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits: at least %d are required", k.N.BitLen(), minRSABits)
		}
		if k.N.BitLen() > maxRSABits {
			return nil, fmt.Errorf("RSA key of %d bits: at most %d are supported", k.N.BitLen(), maxRSABits)
		}
		return jwt.SigningMethodRS256, nil
	default:
		return nil, fmt.Errorf("unsupported key type %T", pub)
	}
}

// SigningKey is the token service's private key with what goes into the
// header of every token it signs.
type SigningKey struct {
	Signer crypto.Signer
	Method jwt.SigningMethod
	// KeyID is the RFC 7638 thumbprint of the public key.
	KeyID string
	// X5C is the certificate chain (base64 DER, leaf first) sent in the
	// x5c header when a certificate is configured. Replace the slice
	// rather than its elements: Sign notices a new slice, not a changed
	// element.
	X5C []string

	// header is the JWS header NewSigningKey encoded, reused while the
	// fields above are what it was encoded from.
	header encodedHeader
}

// NewSigningKey derives the method and key ID of signer; chain, if any, must
// start with a certificate for the same key.
func NewSigningKey(signer crypto.Signer, chain []*x509.Certificate) (*SigningKey, error) {
	method, err := MethodFor(signer.Public())
	if err != nil {
		return nil, err
	}
	kid, err := Thumbprint(signer.Public())
	if err != nil {
		return nil, err
	}
	k := &SigningKey{Signer: signer, Method: method, KeyID: kid}
	if len(chain) > 0 {
		certKey, ok := chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
		if !ok || !certKey.Equal(signer.Public()) {
			return nil, errors.New("signing certificate is not for the signing key")
		}
		for _, c := range chain {
			k.X5C = append(k.X5C, base64.StdEncoding.EncodeToString(c.Raw))
		}
	}
	if k.header, err = encodeHeader(method.Alg(), kid, k.X5C); err != nil {
		return nil, err
	}
	return k, nil
}

// LoadSigningKey reads a PEM private key and, when certPath is not empty,
// the PEM certificate chain that goes into the x5c header.
func LoadSigningKey(keyPath, certPath string) (*SigningKey, error) {
	data, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	signer, err := ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	var chain []*x509.Certificate
	if certPath != "" {
		data, err := os.ReadFile(certPath)
		if err != nil {
			return nil, err
		}
		if chain, err = ParseCertificatesPEM(data); err != nil {
			return nil, fmt.Errorf("%s: %w", certPath, err)
		}
	}
	k, err := NewSigningKey(signer, chain)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	return k, nil
}

// ParsePrivateKeyPEM reads the first private key of a PEM file: PKCS#8,
// SEC 1 ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY").
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no private key in PEM data")
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", key)
		}
		if _, err := MethodFor(signer.Public()); err != nil {
			return nil, err
		}
		return signer, nil
	}
}

// ParseCertificatesPEM reads every certificate of a PEM file, in order.
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate in PEM data")
	}
	return certs, nil
}

// ParsePublicKeysPEM reads the public keys of a PEM file: "PUBLIC KEY"
// blocks and the keys of "CERTIFICATE" blocks.
func ParsePublicKeysPEM(data []byte) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var key crypto.PublicKey
		switch block.Type {
		case "PUBLIC KEY":
			k, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, err
			}
			key = k
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, err
			}
			key = c.PublicKey
		default:
			continue
		}
		if _, err := MethodFor(key); err != nil {
			return nil, err
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("no public key in PEM data")
	}
	return keys, nil
}

// Thumbprint is the RFC 7638 JWK thumbprint of pub (SHA-256, base64url):
// the `kid` of the tokens it signs and of its JWKS entry.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	jwk, err := NewJWK(pub)
	if err != nil {
		return "", err
	}
	// RFC 7638: the required members only, in lexicographic order, no spaces.
	var canonical string
	switch jwk.Kty {
	case "EC":
		canonical = fmt.Sprintf(`{"crv":%q,"kty":"EC","x":%q,"y":%q}`, jwk.Crv, jwk.X, jwk.Y)
	case "RSA":
		canonical = fmt.Sprintf(`{"e":%q,"kty":"RSA","n":%q}`, jwk.E, jwk.N)
	}
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// JWK is a public JSON Web Key (RFC 7517) of the kinds MethodFor accepts.
type JWK struct {
	Kty string `json:"kty"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
	Kid string `json:"kid,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
}

// JWKS is a JSON Web Key Set.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// NewJWK encodes pub without a kid.
func NewJWK(pub crypto.PublicKey) (JWK, error) {
	method, err := MethodFor(pub)
	if err != nil {
		return JWK{}, err
	}
	b64 := base64.RawURLEncoding.EncodeToString
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		// RFC 7518 §6.2.1.2: coordinates are padded to the curve size.
		ecdh, err := k.ECDH()
		if err != nil {
			return JWK{}, err
		}
		raw := ecdh.Bytes() // 0x04 || X || Y, each 32 bytes for P-256
		return JWK{Kty: "EC", Use: "sig", Alg: method.Alg(), Crv: "P-256", X: b64(raw[1:33]), Y: b64(raw[33:65])}, nil
	case *rsa.PublicKey:
		return JWK{Kty: "RSA", Use: "sig", Alg: method.Alg(), N: b64(k.N.Bytes()), E: b64(big.NewInt(int64(k.E)).Bytes())}, nil
	}
	return JWK{}, fmt.Errorf("unsupported key type %T", pub)
}

// NewJWKS encodes the public keys, each with its thumbprint as kid.
func NewJWKS(pubs ...crypto.PublicKey) (JWKS, error) {
	set := JWKS{Keys: []JWK{}}
	for _, pub := range pubs {
		jwk, err := NewJWK(pub)
		if err != nil {
			return JWKS{}, err
		}
		if jwk.Kid, err = Thumbprint(pub); err != nil {
			return JWKS{}, err
		}
		set.Keys = append(set.Keys, jwk)
	}
	return set, nil
}

// PublicKey decodes the key of a JWK and checks that it is usable.
func (j JWK) PublicKey() (crypto.PublicKey, error) {
	dec := func(s string) (*big.Int, error) {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(b) == 0 {
			return nil, errors.New("bad base64url integer")
		}
		return new(big.Int).SetBytes(b), nil
	}
	var pub crypto.PublicKey
	switch j.Kty {
	case "EC":
		if j.Crv != "P-256" {
			return nil, fmt.Errorf("unsupported curve %q", j.Crv)
		}
		x, err := dec(j.X)
		if err != nil {
			return nil, err
		}
		y, err := dec(j.Y)
		if err != nil {
			return nil, err
		}
		// Round-trip through the uncompressed encoding, which checks that
		// the point is on the curve.
		raw := make([]byte, 65)
		raw[0] = 4
		if x.BitLen() > 256 || y.BitLen() > 256 {
			return nil, errors.New("EC coordinate too long")
		}
		x.FillBytes(raw[1:33])
		y.FillBytes(raw[33:65])
		k, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
		if err != nil {
			return nil, err
		}
		pub = k
	case "RSA":
		n, err := dec(j.N)
		if err != nil {
			return nil, err
		}
		e, err := dec(j.E)
		if err != nil {
			return nil, err
		}
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 {
			return nil, errors.New("bad RSA exponent")
		}
		pub = &rsa.PublicKey{N: n, E: int(e.Int64())}
	default:
		return nil, fmt.Errorf("unsupported key type %q", j.Kty)
	}
	if _, err := MethodFor(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// ParseJWKS decodes a JWKS document into kid → key. A key without a kid is
// filed under its thumbprint.
func ParseJWKS(data []byte) (map[string]crypto.PublicKey, error) {
	var set JWKS
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("decode JWKS: %w", err)
	}
	keys := make(map[string]crypto.PublicKey, len(set.Keys))
	for i, jwk := range set.Keys {
		pub, err := jwk.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("JWKS key %d: %w", i, err)
		}
		kid := jwk.Kid
		if kid == "" {
			if kid, err = Thumbprint(pub); err != nil {
				return nil, err
			}
		}
		keys[kid] = pub
	}
	if len(keys) == 0 {
		return nil, errors.New("JWKS holds no keys")
	}
	return keys, nil
}
