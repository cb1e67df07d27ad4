// Checking a token against keys as the gateway does (pkg/auth.Verifier):
// where the keys come from (--jwks, --key) and a refusal explained in words.

package tokencli

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/acme/registry-gateway/pkg/auth"
)

// keyOptions say which keys to verify with and what to expect.
type keyOptions struct {
	jwks, key        string
	cacert           string
	issuer, audience string
	leeway           time.Duration
}

func (k keyOptions) requested() bool { return k.jwks != "" || k.key != "" }

func (k *keyOptions) register(fs interface {
	StringVar(*string, string, string, string)
	DurationVar(*time.Duration, string, time.Duration, string)
}) {
	fs.StringVar(&k.jwks, "jwks", "", "verify with the JWKS at this URL or file (the token service publishes one)")
	fs.StringVar(&k.key, "key", "", "verify with this PEM public key, certificate, private key or JWKS file")
	fs.StringVar(&k.cacert, "cacert", "", "trust only the CAs of this PEM `file` for https URLs (e.g. certs/dev-ca/ca.crt of make run TLS=1)")
	fs.StringVar(&k.issuer, "issuer", "", "expected iss (default: the token's own, so only the signature and times are checked)")
	fs.StringVar(&k.audience, "audience", "", "expected aud, the registry's service name (default: the token's first)")
	fs.DurationVar(&k.leeway, "leeway", 0, "clock skew tolerated on exp and nbf (registries allow 60s)")
}

// verification is the outcome of checking a token against keys.
type verification struct {
	Checked   bool   `json:"checked"`
	OK        bool   `json:"ok"`
	Reason    string `json:"reason,omitempty"`
	Message   string `json:"message"`
	KeySource string `json:"key_source,omitempty"`
}

// loadKeys builds the trusted key set the flags name.
func (e *env) loadKeys(ctx context.Context, ko keyOptions) (auth.StaticKeys, string, error) {
	keys := auth.StaticKeys{}
	var sources []string
	add := func(m map[string]crypto.PublicKey) {
		for kid, k := range m {
			keys[kid] = k
		}
	}
	if ko.jwks != "" {
		var data []byte
		var err error
		if strings.HasPrefix(ko.jwks, "http://") || strings.HasPrefix(ko.jwks, "https://") {
			data, err = e.fetch(ctx, ko.jwks)
		} else {
			data, err = os.ReadFile(ko.jwks)
		}
		if err != nil {
			return nil, "", fmt.Errorf("could not read the JWKS: %w", err)
		}
		m, err := auth.ParseJWKS(data)
		if err != nil {
			return nil, "", fmt.Errorf("%s is not a usable JWKS: %w", ko.jwks, err)
		}
		add(m)
		sources = append(sources, "JWKS "+ko.jwks)
	}
	if ko.key != "" {
		m, err := readKeyFile(ko.key)
		if err != nil {
			return nil, "", err
		}
		add(m)
		sources = append(sources, "key "+ko.key)
	}
	return keys, strings.Join(sources, " + "), nil
}

// readKeyFile reads whatever an operator has at hand for a key: a JWKS, a
// public key, a certificate or the private key itself.
func readKeyFile(path string) (map[string]crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("could not read the key: %w", err)
	}
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		m, err := auth.ParseJWKS(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return m, nil
	}
	pubs, err := auth.ParsePublicKeysPEM(data)
	if err != nil {
		signer, perr := auth.ParsePrivateKeyPEM(data)
		if perr != nil {
			return nil, fmt.Errorf("%s holds no usable key: %v", path, err)
		}
		pubs = []crypto.PublicKey{signer.Public()}
	}
	m := map[string]crypto.PublicKey{}
	for _, pub := range pubs {
		kid, err := auth.Thumbprint(pub)
		if err != nil {
			return nil, err
		}
		m[kid] = pub
	}
	return m, nil
}

func (e *env) fetch(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxInput+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxInput {
		return nil, fmt.Errorf("%s: answer too large", url)
	}
	return data, nil
}

// verify checks the token as the gateway would (pkg/auth.Verifier, the
// algorithm pinned to the key type) and explains a refusal in words.
func (e *env) verify(ctx context.Context, d *decoded, ko keyOptions) verification {
	if !ko.requested() {
		return verification{Message: "signature not checked: pass --jwks URL|FILE or --key FILE"}
	}
	keys, source, err := e.loadKeys(ctx, ko)
	if err != nil {
		return verification{Checked: true, Reason: auth.ReasonKeySource, Message: err.Error()}
	}
	v := verification{Checked: true, KeySource: source}
	issuer, audience := ko.issuer, ko.audience
	var fromToken []string
	if issuer == "" {
		fromToken = append(fromToken, "issuer")
	}
	if audience == "" {
		fromToken = append(fromToken, "audience")
	}
	if issuer == "" {
		issuer = d.claims.Issuer
	}
	if audience == "" && len(d.claims.Audience) > 0 {
		audience = d.claims.Audience[0]
	}
	leeway := ko.leeway
	if leeway <= 0 {
		leeway = time.Nanosecond // the Verifier reads 0 as its default
	}
	verifier := auth.NewVerifier(auth.VerifierConfig{
		Issuer: issuer, Audience: audience, Keys: keys, Leeway: leeway, CacheSize: -1, Clock: e.now,
	})
	_, err = verifier.Verify(ctx, d.raw)
	if err == nil {
		v.OK = true
		v.Message = fmt.Sprintf("signature verified with key %s from %s", d.kid, source)
		switch len(fromToken) {
		case 0:
			v.Message += "; issuer and audience match"
		case 1:
			checked := fmt.Sprintf("audience %q", audience)
			if fromToken[0] == "audience" {
				checked = fmt.Sprintf("issuer %q", issuer)
			}
			v.Message += fmt.Sprintf("; %s matches, the %s was taken from the token (pass --%s to check it)", checked, fromToken[0], fromToken[0])
		default:
			v.Message += "; issuer and audience were taken from the token (pass --issuer and --audience to check them)"
		}
		return v
	}
	var ve *auth.VerifyError
	if !errors.As(err, &ve) {
		v.Reason, v.Message = auth.ReasonMalformed, err.Error()
		return v
	}
	v.Reason = ve.Reason
	v.Message = e.explain(ve, d, keys, issuer, audience)
	return v
}

// explain turns a VerifyError into what an operator should conclude.
func (e *env) explain(ve *auth.VerifyError, d *decoded, keys auth.StaticKeys, issuer, audience string) string {
	now := e.now()
	switch ve.Reason {
	case auth.ReasonExpired:
		if d.claims.ExpiresAt == nil {
			return "the token has no expiry (exp): registries treat it as expired"
		}
		exp := d.claims.ExpiresAt.Time
		return fmt.Sprintf("the token expired %s (at %s); a client must fetch a new one, and a request that starts after expiry is refused",
			relative(exp, now), stamp(exp))
	case auth.ReasonNotYet:
		nbf := d.claims.NotBefore.Time
		return fmt.Sprintf("the token is not valid before %s (%s): the token service's clock is ahead of this machine's", stamp(nbf), relative(nbf, now))
	case auth.ReasonSignature:
		return fmt.Sprintf("the signature does not match: the token was changed after it was signed (tampered), or it was signed by another key that claims kid %s", d.kid)
	case auth.ReasonUnknownKey:
		if d.kid == "" {
			return "the token has no kid header, so no key can be chosen to check it"
		}
		kids := make([]string, 0, len(keys))
		for k := range keys {
			kids = append(kids, k)
		}
		sort.Strings(kids)
		return fmt.Sprintf("no trusted key has kid %s: the token was signed by a different key (wrong JWKS or key given, or the token service's key was replaced); trusted kids: %s",
			d.kid, strings.Join(kids, ", "))
	case auth.ReasonAlgorithm:
		return fmt.Sprintf("the token says alg %q, which is refused: only the algorithm of the key's type is accepted (ES256 for P-256, RS256 for RSA), so that a forged token cannot pick its own (%v)", d.alg, ve.Err)
	case auth.ReasonIssuer:
		return fmt.Sprintf("the token was issued by %q, not by %q", d.claims.Issuer, issuer)
	case auth.ReasonAudience:
		return fmt.Sprintf("the token is for %q, not for the service %q", []string(d.claims.Audience), audience)
	case auth.ReasonMalformed:
		return "the token does not parse as a signed JWT: " + ve.Err.Error()
	default:
		return ve.Error()
	}
}
