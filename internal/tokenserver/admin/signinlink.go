package admin

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
)

// createdSignInLink is the answer to POST /accounts/{email}/sign-in-links:
// the link is shown only in it.
type createdSignInLink struct {
	// URL opens the console's sign-in page of the link.
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
}

// consolePrefix is where the console is served; the admin package does
// not import the console (which imports nothing of it either).
const consolePrefix = "/console/"

// createSignInLink makes a one-time sign-in link to the console for a
// customer, who then needs no API token to see their page.
func (a *api) createSignInLink(w http.ResponseWriter, r *http.Request, key accounts.AdminKey) error {
	secret, expires, err := a.db.CreateSignInLink(r.Context(), key.Name, pathParam(r, "email"), a.linkTTL)
	if err != nil {
		return err
	}
	root := a.consoleURL
	if root == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		root = scheme + "://" + r.Host + consolePrefix
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusCreated, createdSignInLink{URL: strings.TrimSuffix(root, "/") + "/link?t=" + url.QueryEscape(secret), Expires: expires})
}
