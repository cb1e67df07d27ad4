package httpx

import (
	"context"
	"net/http"
)

// Check is one readiness condition; it returns nil when ready.
type Check func(ctx context.Context) error

// Healthz answers 200 while the process serves at all.
func Healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// Readyz answers 200 when every check passes, else 503 naming the failing
// checks, so that a load balancer takes the replica out of rotation.
func Readyz(checks map[string]Check) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		failed := map[string]string{}
		for name, check := range checks {
			if err := check(r.Context()); err != nil {
				failed[name] = err.Error()
			}
		}
		if len(failed) > 0 {
			WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "failed": failed})
			return
		}
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}
