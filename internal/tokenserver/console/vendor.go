package console

import (
	"net/http"

	"github.com/acme/registry-gateway/internal/accounts"
)

// The vendor's pages (signed in with an admin key, or OpenID Connect).
// A vendor's changes go through internal/accounts with the session's
// subject as the actor, as the admin API's go with the admin key's name.

// OIDCConfig is console.oidc: single sign-on for the vendor's staff.
// (Filled in with the OpenID Connect sign-in.)
type OIDCConfig struct{}

// problems lists what is wrong with console.oidc.
func (o *OIDCConfig) problems() []error { return nil }

// vendorState is what the vendor's side keeps besides the Console's
// fields (the OpenID provider, once configured).
type vendorState struct{}

// initVendor sets up the vendor's side; New calls it.
func (c *Console) initVendor(o Options) error { return nil }

func (c *Console) vendorRoutes(mux *http.ServeMux) {
	vendor := func(h sessionFunc) http.Handler { return c.signedIn(accounts.SessionVendor, h) }
	mux.Handle("GET "+Prefix+"vendor/{$}", vendor(c.vendorHome))
}

// vendorHome is the vendor's start page.
func (c *Console) vendorHome(w http.ResponseWriter, r *http.Request, q *request) error {
	v := c.sessionView(r, q, "Vendor console", "vendor")
	return c.render(w, http.StatusOK, "vendor_home", v)
}
