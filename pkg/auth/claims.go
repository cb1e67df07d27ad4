package auth

import (
	"slices"

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
