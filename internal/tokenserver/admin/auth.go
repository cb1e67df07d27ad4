package admin

import (
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/acme/registry-gateway/internal/accounts"
)

// limiterUser is the user name failures are charged to: admin keys have no
// user name, so the per-address limit is the one that bites.
const limiterUser = ""

// authenticated runs h for a request with an admin key whose scope allows
// it: write for a change, read or write for a look.
func (a *api) authenticated(write bool, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := a.client(r)
		if a.limiter != nil {
			if wait := a.limiter.Check(client, limiterUser); wait > 0 {
				writeProblem(w, problemf(http.StatusTooManyRequests, "rate-limited", "Too Many Requests",
					"too many failed authentications from this address").withHeader("Retry-After", strconv.FormatInt(max(int64(math.Ceil(wait.Seconds())), 1), 10)))
				return
			}
		}
		key, err := a.authenticate(r)
		if err != nil {
			if errors.Is(err, accounts.ErrUnauthorized) {
				if a.limiter != nil {
					a.limiter.Charge(client, limiterUser)
				}
				// The key is never logged: only that one failed, and from where.
				a.log.Warn("admin API: authentication failed", slog.String("client", client), slog.String("method", r.Method), slog.String("path", r.URL.Path))
				writeProblem(w, problemf(http.StatusUnauthorized, "unauthorized", "Unauthorized",
					"an active admin key is required as Authorization: Bearer KEY").withHeader("WWW-Authenticate", `Bearer realm="admin"`))
				return
			}
			a.writeError(w, r, err)
			return
		}
		if write && !key.CanWrite() {
			writeProblem(w, problemf(http.StatusForbidden, "forbidden", "Forbidden", "admin key %s has the read scope; this needs write", key.Name))
			return
		}
		if err := h(w, r, key); err != nil {
			a.writeError(w, r, err)
		}
	})
}

// authenticate returns the admin key of the request's Authorization
// header.
func (a *api) authenticate(r *http.Request) (accounts.AdminKey, error) {
	scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return accounts.AdminKey{}, accounts.ErrUnauthorized
	}
	return a.db.AuthenticateAdminKey(r.Context(), strings.TrimSpace(key))
}
