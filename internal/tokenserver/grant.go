package tokenserver

import (
	"slices"

	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/pkg/auth"
)

// catalogActions is what a catalog grant carries: distribution asks for
// `registry:catalog:*` and checks for "*".
var catalogActions = []string{auth.ActionAll}

// pullActions is shared by every repository grant; nothing may modify it.
var pullActions = []string{auth.ActionPull}

// Grant decides what a licence allows of the requested scopes. The answer is
// the granted subset, never an error: the token spec wants a token with
// less access rather than a refusal.
//
//   - repository:<name>:… gets pull (when pull or * was asked for) if the
//     licence holds the repository's channel, its first path component;
//     push, delete and * are never granted.
//   - registry:catalog:* is granted to every authenticated account; catalog
//     then reports true so that the token carries the account's channels
//     for the gateway to filter the listing by.
//   - anything else is granted nothing.
//
// Scopes granted nothing are left out of the result.
func Grant(requested []auth.ResourceActions, lic license.License) (granted []auth.ResourceActions, catalog bool) {
	for _, ra := range requested {
		switch ra.Type {
		case auth.TypeRepository:
			if !slices.Contains(ra.Actions, auth.ActionPull) && !slices.Contains(ra.Actions, auth.ActionAll) {
				continue
			}
			if !lic.Holds(auth.Channel(ra.Name)) {
				continue
			}
			granted = append(granted, auth.ResourceActions{Type: ra.Type, Class: ra.Class, Name: ra.Name, Actions: pullActions})
		case auth.TypeRegistry:
			if ra.Name != auth.CatalogName || !slices.Contains(ra.Actions, auth.ActionAll) {
				continue
			}
			catalog = true
			granted = append(granted, auth.ResourceActions{Type: ra.Type, Class: ra.Class, Name: ra.Name, Actions: catalogActions})
		}
	}
	return granted, catalog
}
