// Taking a JWT apart without trusting it: what an operator pastes, the
// decoded header and claims, and what a registry would refuse whatever the
// signature.

package tokencli

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/acme/registry-gateway/pkg/auth"
)

// maxInput bounds what is read as a token or a JWKS; tokens are a few KiB.
const maxInput = 1 << 20

// decoded is a JWT taken apart without checking anything.
type decoded struct {
	raw       string
	header    map[string]any
	claimsRaw map[string]any
	claims    auth.Claims
	alg, kid  string
	x5c       []*x509.Certificate
	x5cErr    error
}

// cleanToken accepts what an operator is likely to paste: the bare token,
// an `Authorization: Bearer …` value, or a token endpoint answer.
func cleanToken(s string) (string, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "{") {
		var answer struct {
			Token       string `json:"token"`
			AccessToken string `json:"access_token"`
		}
		if err := json.Unmarshal([]byte(s), &answer); err != nil {
			return "", fmt.Errorf("input looks like JSON but does not decode: %v", err)
		}
		if s = answer.Token; s == "" {
			s = answer.AccessToken
		}
		if s == "" {
			return "", errors.New("JSON input has neither token nor access_token")
		}
	}
	s = strings.TrimPrefix(s, "Authorization:")
	s = strings.TrimSpace(s)
	if len(s) > 7 && strings.EqualFold(s[:7], "bearer ") {
		s = strings.TrimSpace(s[7:])
	}
	if s == "" {
		return "", errors.New("no token given")
	}
	return s, nil
}

func decodeToken(raw string) (*decoded, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("not a JWT: want 3 dot-separated parts, found %d", len(parts))
	}
	d := &decoded{raw: raw}
	for i, into := range []*map[string]any{&d.header, &d.claimsRaw} {
		name := [...]string{"header", "claims"}[i]
		data, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return nil, fmt.Errorf("not a JWT: the %s part is not base64url: %v", name, err)
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber() // keep 1.5 apart from 1 to flag fractional times
		if err := dec.Decode(into); err != nil {
			return nil, fmt.Errorf("not a JWT: the %s part is not a JSON object: %v", name, err)
		}
		if i == 1 {
			if err := json.Unmarshal(data, &d.claims); err != nil {
				return nil, fmt.Errorf("claims do not fit a registry token: %v", err)
			}
		}
	}
	d.alg, _ = d.header["alg"].(string)
	d.kid, _ = d.header["kid"].(string)
	if list, ok := d.header["x5c"].([]any); ok {
		for _, v := range list {
			s, _ := v.(string)
			der, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				d.x5cErr = fmt.Errorf("x5c entry is not base64: %v", err)
				break
			}
			c, err := x509.ParseCertificate(der)
			if err != nil {
				d.x5cErr = err
				break
			}
			d.x5c = append(d.x5c, c)
		}
	}
	return d, nil
}

// problems lists what a stock registry or our gateway would refuse in the
// token whatever its signature.
func (d *decoded) problems() []string {
	var out []string
	if d.claims.ExpiresAt == nil {
		out = append(out, "no exp claim: registries treat the token as expired")
	}
	for _, c := range []string{"exp", "nbf", "iat"} {
		if n, ok := d.claimsRaw[c].(json.Number); ok && strings.ContainsAny(n.String(), ".eE") {
			out = append(out, fmt.Sprintf("%s is %s, not a whole number of seconds: distribution refuses it", c, n))
		}
	}
	if len(d.claims.Audience) == 0 {
		out = append(out, "no aud claim: registries require their service name in it")
	}
	if d.kid == "" && len(d.x5c) == 0 {
		out = append(out, "neither kid nor x5c in the header: no registry can pick a key")
	}
	if d.x5cErr != nil {
		out = append(out, "x5c header does not decode: "+d.x5cErr.Error())
	}
	return out
}
