package gateway

import (
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"

	"github.com/acme/registry-gateway/internal/httpx"
)

// maxTokenRequestBody bounds a token request's form (containerd's POST):
// a username, a password or refresh token, a few scopes.
const maxTokenRequestBody = 64 << 10

// newTokenProxy forwards /token to the token service as it came: method,
// query, form body and Authorization, the one place the client's
// Authorization goes on, since the token service is ours. The body is
// bounded; the answer streams back untouched. X-Forwarded-For is built by
// clients (trusted_proxies): the token service limits failed logins per
// address, so it must see each customer's, and no customer may choose it.
func newTokenProxy(target *url.URL, transport http.RoundTripper, clients *httpx.ClientAddr, errs httpx.Handler, log *slog.Logger) http.Handler {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = target.Scheme
			pr.Out.URL.Host = target.Host
			pr.Out.URL.Path = target.Path
			pr.Out.URL.RawPath = target.RawPath
			pr.Out.Host = ""
			pr.SetXForwarded()
			// Behind a trusted load balancer the peer is the balancer:
			// keep the chain it appended to and add it; from anyone else
			// the header is forged, and the peer is the client.
			pr.Out.Header.Set("X-Forwarded-For", clients.ForwardedFor(pr.In))
		},
		Transport: transport,
		ErrorLog:  slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				errs.WriteError(w, r, httpx.ClientClosed(err))
				return
			}
			errs.WriteError(w, r, (&httpx.Error{
				Status: upstreamStatus(err), Code: httpx.CodeUnavailable,
				Message: "token service unavailable",
			}).Wrap(err))
		},
	}
	limited := httpx.LimitBody(errs, maxTokenRequestBody)(rp)
	return errs.Func(func(w http.ResponseWriter, r *http.Request) error {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			return httpx.Errorf(http.StatusMethodNotAllowed, httpx.CodeUnsupported, "method not allowed").
				WithHeader("Allow", "GET, POST")
		}
		limited.ServeHTTP(w, r)
		return nil
	})
}
