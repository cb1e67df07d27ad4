package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"unsafe"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// p256ScalarLen is the length of r and s in an ES256 signature (RFC 7518
// §3.4): each left-padded to the curve's 32 bytes.
const p256ScalarLen = 32

// Sign signs claims with the key's pinned algorithm; the header carries
// the kid, and x5c when a certificate is configured.
//
// Up to the signature, the token is the one golang-jwt's
// Token.SignedString makes, byte for byte, built without its per-token
// costs: the header is encoded once per key (with x5c about 850 of a
// token's 1,250 bytes), the claims are written without reflection, and the
// token is assembled in one buffer.
func (k *SigningKey) Sign(claims *Claims) (string, error) {
	if claims.Access == nil {
		// An explicit empty list: what `docker login` is given.
		claims.Access = []ResourceActions{}
	}
	alg := k.Method.Alg()
	h := &k.header
	if !h.encodes(alg, k.KeyID, k.X5C) {
		// Not made by NewSigningKey, or a field changed since.
		fresh, err := encodeHeader(alg, k.KeyID, k.X5C)
		if err != nil {
			return "", err
		}
		h = &fresh
	}
	header := h.segment
	var scratch [512]byte
	payload := appendClaims(scratch[:0], claims)

	b64 := base64.RawURLEncoding
	// The key must be of the kind the header names, as golang-jwt's
	// signing methods insist: otherwise the token would carry a signature
	// no verifier accepts (NewSigningKey never makes such a key).
	var sigLen int
	es256 := alg == jwt.SigningMethodES256.Alg()
	switch pub := k.Signer.Public().(type) {
	case *ecdsa.PublicKey:
		if !es256 || pub.Curve != elliptic.P256() {
			return "", fmt.Errorf("auth: a %s key cannot sign %s", pub.Curve.Params().Name, alg)
		}
		sigLen = 2 * p256ScalarLen
	case *rsa.PublicKey:
		if alg != jwt.SigningMethodRS256.Alg() {
			return "", fmt.Errorf("auth: an RSA key cannot sign %s", alg)
		}
		sigLen = pub.Size()
	default:
		return "", fmt.Errorf("auth: unsupported key type %T", pub)
	}
	buf := make([]byte, 0, len(header)+1+b64.EncodedLen(len(payload))+1+b64.EncodedLen(sigLen))
	buf = append(buf, header...)
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, payload)
	digest := sha256.Sum256(buf)
	sig, err := k.signDigest(digest[:], es256)
	if err != nil {
		return "", err
	}
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, sig)
	// buf is never written again: the string shares its bytes rather
	// than copying a token of up to a few KB.
	return unsafe.String(unsafe.SliceData(buf), len(buf)), nil
}

// signDigest signs a SHA-256 digest: RS256 is the PKCS #1 v1.5 signature
// as it comes; ES256 is r || s (RFC 7518 §3.4), not the ASN.1 form
// crypto/ecdsa returns.
//
// An ECDSA private key signs deterministically (RFC 6979, FIPS 186-5: what
// crypto/ecdsa does when Sign is given no random source). Its default, the
// hedged signature, draws the nonce from an HMAC-SHA-512 DRBG seeded with
// fresh randomness as well as the key and digest; RFC 6979 derives it from
// the key and digest with HMAC-SHA-256, for about a fifth less CPU a
// signature. It is as strong for tokens: the nonce is secret and unique
// per message either way, and what hedging adds is resistance to fault
// attacks, which need the same message signed twice (a correct and a
// faulted signature), while every token carries a fresh 128-bit jti.
func (k *SigningKey) signDigest(digest []byte, es256 bool) ([]byte, error) {
	random := io.Reader(rand.Reader)
	if _, ok := k.Signer.(*ecdsa.PrivateKey); ok {
		random = nil
	}
	sig, err := k.Signer.Sign(random, digest, crypto.SHA256)
	if err != nil {
		return nil, err
	}
	if !es256 {
		return sig, nil
	}
	var r, s []byte
	in, seq := cryptobyte.String(sig), cryptobyte.String(nil)
	if !in.ReadASN1(&seq, asn1.SEQUENCE) || !in.Empty() ||
		!seq.ReadASN1Integer(&r) || !seq.ReadASN1Integer(&s) || !seq.Empty() ||
		len(r) > p256ScalarLen || len(s) > p256ScalarLen {
		return nil, errors.New("ecdsa: malformed signature")
	}
	out := make([]byte, 2*p256ScalarLen)
	copy(out[p256ScalarLen-len(r):p256ScalarLen], r)
	copy(out[2*p256ScalarLen-len(s):], s)
	// (r, s) and (r, n−s) are both valid signatures of the digest, and
	// crypto/ecdsa (RFC 6979 or hedged) returns either, about half the time
	// each. The Verifier takes only the low-S one, so that a token has a
	// single spelling: turn a high S into n−s, which keeps the signature
	// deterministic and valid for any ECDSA verifier.
	if sOut := out[p256ScalarLen:]; !isLowS(sOut) {
		new(big.Int).Sub(p256Order, new(big.Int).SetBytes(sOut)).FillBytes(sOut)
	}
	return out, nil
}

// p256Order is n, the order of P-256's base point; p256HalfOrder is ⌊n/2⌋
// as the 32 big-endian bytes of an ES256 s, to compare without big.Int on
// the verifier's path.
var (
	p256Order     = elliptic.P256().Params().N
	p256HalfOrder = new(big.Int).Rsh(p256Order, 1).FillBytes(make([]byte, p256ScalarLen))
)

// isLowS reports whether s, the 32 big-endian bytes of the s of an ES256
// signature, is at most n/2: the only form Sign makes and the Verifier
// accepts.
func isLowS(s []byte) bool {
	return len(s) == p256ScalarLen && bytes.Compare(s, p256HalfOrder) <= 0
}

// encodedHeader is the first segment of every token of a key, with what it
// was encoded from.
type encodedHeader struct {
	alg, kid string
	x5c      []string
	segment  string
}

// encodes reports whether h is the header of alg, kid and x5c; the chain is
// compared by identity, which is cheap and enough for a slice that is
// replaced, never edited.
func (h *encodedHeader) encodes(alg, kid string, x5c []string) bool {
	return h.segment != "" && h.alg == alg && h.kid == kid &&
		len(h.x5c) == len(x5c) && (len(x5c) == 0 || &h.x5c[0] == &x5c[0])
}

// encodeHeader encodes the header as golang-jwt writes it: the JSON of the
// header map (keys sorted), base64url.
func encodeHeader(alg, kid string, x5c []string) (encodedHeader, error) {
	m := map[string]any{"alg": alg, "typ": "JWT", "kid": kid}
	if len(x5c) > 0 {
		m["x5c"] = x5c
	}
	data, err := json.Marshal(m)
	if err != nil {
		return encodedHeader{}, fmt.Errorf("encode JWT header: %w", err)
	}
	return encodedHeader{alg: alg, kid: kid, x5c: x5c, segment: base64.RawURLEncoding.EncodeToString(data)}, nil
}

// NewTokenID returns a random jti.
func NewTokenID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}
