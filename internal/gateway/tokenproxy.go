package gateway

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/acme/registry-gateway/internal/httpx"
)

// maxTokenRequestBody bounds a token request's form (containerd's POST):
// a username, a password or refresh token, a few scopes.
const maxTokenRequestBody = 64 << 10

// tokenForwarder forwards /token to the token service as it came: method,
// query, form body and Authorization, the one place the client's
// Authorization goes on, since the token service is ours. The body is
// bounded; the answer streams back untouched. X-Forwarded-For is built by
// clients (trusted_proxies): the token service limits failed logins per
// address, so it must see each customer's, and no customer may choose it.

type tokenForwarder struct {
	target  *url.URL
	plain   http.RoundTripper // requests without a body
	bodied  http.RoundTripper // requests with one
	clients *httpx.ClientAddr
	buffers copyBuffers
	log     *slog.Logger
}

func newTokenProxy(f *tokenForwarder, errs httpx.Handler) http.Handler {
	limited := httpx.LimitBody(errs, maxTokenRequestBody)(errs.Func(f.serve))
	return errs.Func(func(w http.ResponseWriter, r *http.Request) error {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			return httpx.Errorf(http.StatusMethodNotAllowed, httpx.CodeUnsupported, "method not allowed").
				WithHeader("Allow", "GET, POST")
		}
		limited.ServeHTTP(w, r)
		return nil
	})
}

func (f *tokenForwarder) serve(w http.ResponseWriter, r *http.Request) error {
	out := f.outgoing(r)
	rt := f.plain
	if out.Body != nil {
		rt = f.bodied
	}
	resp, err := rt.RoundTrip(out)
	if err != nil {
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
	defer resp.Body.Close()
	h := w.Header()
	hop := connectionTokens(resp.Header)
	for k, v := range resp.Header {
		if !hopByHop(k, hop) {
			h[k] = v
		}
	}
	w.WriteHeader(resp.StatusCode)
	if err := copyBody(w, resp, f.buffers, f.log); err != nil {
		abort(r)
	}
	return nil
}

// outgoing is the request the token service gets for in: in's method, the
// target's path with in's query, in's headers less the hop-by-hop ones and
// the X-Forwarded-* a client may have forged, which are set anew.
func (f *tokenForwarder) outgoing(in *http.Request) *http.Request {
	out := in.WithContext(in.Context()) // a shallow copy
	u := *f.target
	u.RawQuery = in.URL.RawQuery
	out.URL, out.Host, out.RequestURI, out.Close = &u, "", "", false
	if in.ContentLength == 0 {
		out.Body = nil
	}
	hop := connectionTokens(in.Header)
	out.Header = make(http.Header, len(in.Header)+3)
	for k, v := range in.Header {
		switch {
		case hopByHop(k, hop), k == "Forwarded", strings.HasPrefix(k, "X-Forwarded-"):
		default:
			out.Header[k] = v
		}
	}
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = noUserAgent
	}
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	// Behind a trusted load balancer the peer is the balancer: keep the
	// chain it appended to and add it; from anyone else the header is
	// forged, and the peer is the client.
	out.Header["X-Forwarded-For"] = []string{f.clients.ForwardedFor(in)}
	out.Header["X-Forwarded-Host"] = []string{in.Host}
	out.Header["X-Forwarded-Proto"] = []string{proto}
	return out
}

// hopByHop reports whether the header k (canonical) is for one hop only:
// the standard ones (RFC 9110 7.6.1) and those the Connection header names
// (connection, from connectionTokens).
func hopByHop(k string, connection []string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	for _, c := range connection {
		if c == k {
			return true
		}
	}
	return false
}

// connectionTokens are the header names the Connection header of h names,
// canonical.
func connectionTokens(h http.Header) []string {
	var out []string
	for _, v := range h["Connection"] {
		for t := range strings.SplitSeq(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, http.CanonicalHeaderKey(t))
			}
		}
	}
	return out
}
