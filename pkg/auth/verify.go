package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Reasons a token is refused, as reported by VerifyError.Reason; they are
// stable so that metrics can be labelled with them.
const (
	ReasonMalformed  = "malformed"
	ReasonAlgorithm  = "algorithm"
	ReasonUnknownKey = "unknown_key"
	ReasonSignature  = "signature"
	ReasonExpired    = "expired"
	ReasonNotYet     = "not_yet_valid"
	ReasonIssuer     = "issuer"
	ReasonAudience   = "audience"
	ReasonKeySource  = "key_source"
)

// VerifyError says why a token was refused. Reason is safe to show to the
// client; Err is the detail, for logs.
type VerifyError struct {
	Reason string
	Err    error
}

func (e *VerifyError) Error() string { return "token " + e.Reason + ": " + e.Err.Error() }
func (e *VerifyError) Unwrap() error { return e.Err }

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	Issuer   string
	Audience string
	Keys     KeySource
	// Leeway tolerates clock skew between token service and gateway on exp
	// and nbf; default 30 s.
	Leeway time.Duration
	// CacheSize bounds the verified-token cache (entries; the least
	// recently used is evicted when full); 0 means 10,000, a negative
	// value turns it off.
	CacheSize int
	Clock     func() time.Time
}

// Verifier checks registry tokens: the signature with the algorithm pinned to
// the key type, iss, aud, exp and nbf. Verified tokens are cached until they
// expire, so that the many requests of one pull verify the signature once.
type Verifier struct {
	cfg    VerifierConfig
	parser *jwt.Parser
	cache  *tokenCache // nil when off
}

// NewVerifier returns a Verifier for cfg.
func NewVerifier(cfg VerifierConfig) *Verifier {
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = 10_000
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	v := &Verifier{
		cfg: cfg,
		// Time checks are done here rather than by the parser, so that
		// cached tokens are checked the same way as fresh ones.
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg(), jwt.SigningMethodRS256.Alg()}),
			jwt.WithoutClaimsValidation(),
			// Strict: base64url whose unused trailing bits are zero, so that
			// the last character of a segment has one spelling, not 4 or
			// 16. Padding is refused too (WithPaddingAllowed is not set),
			// and so are line breaks, which encoding/base64 skips even when
			// strict, by checkJWSBytes before the parser.
			jwt.WithStrictDecoding(),
		),
	}
	if cfg.CacheSize > 0 {
		v.cache = newTokenCache(cfg.CacheSize)
	}
	return v
}

// Verify checks raw and returns its claims. The claims are shared with the
// cache: callers must not change them. Errors are *VerifyError.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	now := v.cfg.Clock()
	if v.cache != nil {
		// Only tokens that passed verify are held, under the exact
		// string verified: a re-spelling of one misses and is refused.
		if c, ok := v.cache.get(raw, now); ok {
			if err := v.checkTimes(c, now); err != nil {
				return nil, err
			}
			return c, nil
		}
	}
	c, err := v.verify(ctx, raw, now)
	if err != nil {
		return nil, err
	}
	if v.cache != nil {
		// verify has checked that exp is set.
		v.cache.add(raw, c, c.ExpiresAt.Add(v.cfg.Leeway), now)
	}
	return c, nil
}

func (v *Verifier) verify(ctx context.Context, raw string, now time.Time) (*Claims, error) {
	if err := checkJWSBytes(raw); err != nil {
		return nil, &VerifyError{ReasonMalformed, err}
	}
	var keyErr *VerifyError
	keyLookedUp := false
	claims := &Claims{}
	_, err := v.parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		keyLookedUp = true
		// The parser has decoded the signature but not checked it. An
		// ECDSA signature (r, s) has a twin (r, n−s) that crypto/ecdsa
		// verifies as well: take only the low-S one, as Sign makes, so
		// that nobody can re-spell a token (and so miss the cache, or
		// pass as another token in a log or a deny-list). Checked before
		// the key lookup: such a token costs no JWKS refetch.
		if t.Method.Alg() == jwt.SigningMethodES256.Alg() && len(t.Signature) == 2*p256ScalarLen &&
			!isLowS(t.Signature[p256ScalarLen:]) {
			keyErr = &VerifyError{ReasonSignature, errors.New("ES256 signature with a high S (s > n/2): only the low-S form is accepted")}
			return nil, keyErr
		}
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			keyErr = &VerifyError{ReasonUnknownKey, errors.New("no kid in header")}
			return nil, keyErr
		}
		pub, err := v.cfg.Keys.PublicKey(ctx, kid)
		if err != nil {
			reason := ReasonKeySource
			if errors.Is(err, ErrUnknownKey) {
				reason = ReasonUnknownKey
			}
			keyErr = &VerifyError{reason, fmt.Errorf("kid %q: %w", kid, err)}
			return nil, keyErr
		}
		method, err := MethodFor(pub)
		if err != nil {
			keyErr = &VerifyError{ReasonAlgorithm, err}
			return nil, keyErr
		}
		if t.Method.Alg() != method.Alg() {
			keyErr = &VerifyError{ReasonAlgorithm, fmt.Errorf("token uses %s, key %q takes %s", t.Method.Alg(), kid, method.Alg())}
			return nil, keyErr
		}
		return pub, nil
	})
	switch {
	case keyErr != nil:
		return nil, keyErr
	case errors.Is(err, jwt.ErrTokenSignatureInvalid) && !keyLookedUp:
		// The parser refused the alg (none, HS256, …) before asking for a key.
		return nil, &VerifyError{ReasonAlgorithm, err}
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return nil, &VerifyError{ReasonSignature, err}
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return nil, &VerifyError{ReasonAlgorithm, err}
	case err != nil:
		if _, ok := errors.AsType[base64.CorruptInputError](err); ok {
			err = fmt.Errorf("%w (segments must be canonical base64url: no padding, unused trailing bits zero)", err)
		}
		return nil, &VerifyError{ReasonMalformed, err}
	}
	if claims.Issuer != v.cfg.Issuer {
		return nil, &VerifyError{ReasonIssuer, fmt.Errorf("issuer %q is not trusted", claims.Issuer)}
	}
	audOK := false
	for _, a := range claims.Audience {
		audOK = audOK || a == v.cfg.Audience
	}
	if !audOK {
		return nil, &VerifyError{ReasonAudience, fmt.Errorf("audience %q is not %q", []string(claims.Audience), v.cfg.Audience)}
	}
	if err := v.checkTimes(claims, now); err != nil {
		return nil, err
	}
	return claims, nil
}

// checkJWSBytes refuses a token holding anything but the base64url
// alphabet and dots: padding and the standard alphabet's + and / (which
// the strict decoder refuses too, less clearly), and CR and LF, which
// encoding/base64 skips wherever they are, strict or not, so that each
// could be inserted anywhere in a token that would still verify.
func checkJWSBytes(raw string) error {
	for i := 0; i < len(raw); i++ {
		if !jwsAlphabet[raw[i]] {
			return fmt.Errorf("byte %d is %q: a token is three segments of base64url without padding, joined by dots", i, raw[i])
		}
	}
	return nil
}

// jwsAlphabet marks the bytes of a compact JWS.
var jwsAlphabet = func() (t [256]bool) {
	for _, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_." {
		t[c] = true
	}
	return t
}()

// checkTimes requires exp (a token without one would be valid forever) and
// honours nbf, both with the leeway.
func (v *Verifier) checkTimes(c *Claims, now time.Time) error {
	if c.ExpiresAt == nil {
		return &VerifyError{ReasonExpired, errors.New("no exp claim")}
	}
	if now.After(c.ExpiresAt.Add(v.cfg.Leeway)) {
		return &VerifyError{ReasonExpired, fmt.Errorf("expired at %s", c.ExpiresAt.UTC().Format(time.RFC3339))}
	}
	if c.NotBefore != nil && now.Before(c.NotBefore.Add(-v.cfg.Leeway)) {
		return &VerifyError{ReasonNotYet, fmt.Errorf("not valid before %s", c.NotBefore.UTC().Format(time.RFC3339))}
	}
	return nil
}
