package gateway

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"

	"go.opentelemetry.io/otel/trace"

	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/internal/tracing"
)

// maxTokenRequestBody bounds a token request's form (containerd's POST):
// a username, a password or refresh token, a few scopes.
const maxTokenRequestBody = 64 << 10

// newTokenProxy forwards /token to the token service at target as it came:
// method, query, form body and Authorization, the one place the client's
// Authorization goes on, since the token service is ours. It is
// net/http/httputil's ReverseProxy (Rewrite), which drops the hop-by-hop
// headers both ways and the client's X-Forwarded-* and Forwarded, and adds
// no Go User-Agent. X-Forwarded-For is built by clients (trusted_proxies):
// the token service limits failed logins per address, so it must see each
// customer's, and no customer may choose it. Only GET and POST pass (405
// otherwise), with a body of at most maxTokenRequestBody (413). Failures
// are registry JSON errors written by errs, the cause logged once on the
// request's access line. With a tracer, the forward is a client span
// whose context goes to the token service as its W3C traceparent (in
// place of any the client sent), so that the token service's spans join
// the gateway's trace.
func newTokenProxy(target *url.URL, transport http.RoundTripper, clients *httpx.ClientAddr, errs httpx.Handler, log *slog.Logger, tracer *tracing.Tracer) http.Handler {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			u := *target
			// ReverseProxy has dropped the parameters that do not parse.
			u.RawQuery = pr.Out.URL.RawQuery
			pr.Out.URL, pr.Out.Host = &u, ""
			h := pr.Out.Header
			// A client's Upgrade would have ReverseProxy switch protocols
			// should the token service agree; its Te: trailers is passed
			// on for gRPC. Neither has a use here.
			delete(h, "Connection")
			delete(h, "Upgrade")
			delete(h, "Te")
			proto := "http"
			if pr.In.TLS != nil {
				proto = "https"
			}
			// Behind a trusted load balancer the peer is the balancer:
			// keep the chain it appended to and add it; from anyone else
			// the header is forged, and the peer is the client.
			h["X-Forwarded-For"] = []string{clients.ForwardedFor(pr.In)}
			h["X-Forwarded-Host"] = []string{pr.In.Host}
			h["X-Forwarded-Proto"] = []string{proto}
			if tracer != nil {
				delete(h, "Traceparent")
				delete(h, "Tracestate")
				tracer.Inject(pr.Out.Context(), h)
			}
		},
		Transport:  transport,
		BufferPool: newBufferPool(),
		// Only a body copy that failed half-way is logged here (the
		// client then sees its connection cut); the rest goes through
		// ErrorHandler to the access line.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			errs.WriteError(w, r, tokenError(r, err))
		},
	}
	limited := httpx.LimitBody(errs, maxTokenRequestBody)(rp)
	return errs.Func(func(w http.ResponseWriter, r *http.Request) error {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			return httpx.Errorf(http.StatusMethodNotAllowed, httpx.CodeUnsupported, "method not allowed").
				WithHeader("Allow", "GET, POST")
		}
		r, span := tracer.StartRequest(r, "token service", trace.SpanKindClient)
		limited.ServeHTTP(w, r)
		if sw, ok := w.(interface{ Status() int }); ok {
			tracing.EndHTTP(span, sw.Status())
		} else {
			span.End()
		}
		return nil
	})
}

// tokenError is the answer to a failed token request: the client went
// away, its body was over the limit, or the token service failed (502, or
// 504 when it timed out).
func tokenError(r *http.Request, err error) *httpx.Error {
	var tooLarge *http.MaxBytesError
	switch {
	case r.Context().Err() != nil:
		return httpx.ClientClosed(err)
	case errors.As(err, &tooLarge):
		return httpx.Errorf(http.StatusRequestEntityTooLarge, httpx.CodeTooLarge, "request body too large")
	}
	return (&httpx.Error{Status: upstreamStatus(err), Code: httpx.CodeUnavailable,
		Message: "token service unavailable"}).Wrap(err)
}
