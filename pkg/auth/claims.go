package auth

import (
	"slices"
	"strconv"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are the claims of a registry token. Access follows the token spec;
// Channels is private to this product: a token that grants the catalog
// carries the account's channels so that the gateway can filter the catalog
// without asking the license backend.
type Claims struct {
	jwt.RegisteredClaims
	Access   []ResourceActions `json:"access"`
	Channels []string          `json:"channels,omitempty"`
}

// Allows reports whether the token grants action on the resource typ/name,
// matched exactly: a grant on `stable/app` says nothing of `stable/app2`.
func (c *Claims) Allows(typ, name, action string) bool {
	for _, ra := range c.Access {
		if ra.Type == typ && ra.Name == name && ra.Has(action) {
			return true
		}
	}
	return false
}

// HoldsChannel reports whether the token carries channel in its private
// channels claim.
func (c *Claims) HoldsChannel(channel string) bool {
	return slices.Contains(c.Channels, channel)
}

// appendClaims appends the JSON of c, byte for byte what encoding/json
// makes of it (field order, omitempty, escaping), without reflection: it
// runs for every token issued. exp, nbf and iat are whole seconds, as
// golang-jwt writes them at its default TimePrecision and as registries
// decode them. TestAppendClaimsMatchesEncodingJSON and FuzzAppendClaims
// hold it to encoding/json.
func appendClaims(b []byte, c *Claims) []byte {
	b = append(b, '{')
	if c.Issuer != "" {
		b = appendJSONString(appendKey(b, "iss"), c.Issuer)
	}
	if c.Subject != "" {
		b = appendJSONString(appendKey(b, "sub"), c.Subject)
	}
	if len(c.Audience) > 0 {
		b = appendKey(b, "aud")
		if len(c.Audience) == 1 && !jwt.MarshalSingleStringAsArray {
			b = appendJSONString(b, c.Audience[0])
		} else {
			b = appendJSONStrings(b, c.Audience)
		}
	}
	for _, d := range []struct {
		key  string
		date *jwt.NumericDate
	}{{"exp", c.ExpiresAt}, {"nbf", c.NotBefore}, {"iat", c.IssuedAt}} {
		if d.date != nil {
			b = strconv.AppendInt(appendKey(b, d.key), d.date.Unix(), 10)
		}
	}
	if c.ID != "" {
		b = appendJSONString(appendKey(b, "jti"), c.ID)
	}
	b = appendKey(b, "access")
	if c.Access == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, ra := range c.Access {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(append(b, `{"type":`...), ra.Type)
			if ra.Class != "" {
				b = appendJSONString(append(b, `,"class":`...), ra.Class)
			}
			b = appendJSONString(append(b, `,"name":`...), ra.Name)
			b = append(b, `,"actions":`...)
			if ra.Actions == nil {
				b = append(b, "null"...)
			} else {
				b = appendJSONStrings(b, ra.Actions)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if len(c.Channels) > 0 {
		b = appendJSONStrings(appendKey(b, "channels"), c.Channels)
	}
	return append(b, '}')
}

// appendKey appends `"key":`, after a comma unless it is the object's
// first member (no value of appendClaims ends in '{').
func appendKey(b []byte, key string) []byte {
	if b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, key...)
	return append(b, '"', ':')
}

func appendJSONStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}
