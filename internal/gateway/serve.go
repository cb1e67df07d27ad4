package gateway

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/acme/registry-gateway/internal/httpx"
)

// routed is a checked /v2 request as the gateway carries it: on the
// request's access record (httpx.Record.Route), which rides on its context
// to everything downstream (the proxy's rewrite, the round-trippers, the
// answer's rewriting, the manifest cache, metrics and the access line), so
// that nothing parses the path again.
type routed struct {
	Route
	// fill is set on a manifest GET that missed the cache and leads the
	// upstream fetch whose answer the cache stores.
	fill *manifestFill
	// blob is a blob answer the forwarder left for serve to write
	// (streamBlob), so that it can be spliced.
	blob *http.Response
	// For the access line and gateway_pulls_total (pulls.go): the checked
	// token's subject (the customer; empty until the token is checked),
	// whether the request is a GET, and the digest of a manifest served.
	subject string
	get     bool
	digest  string
}

// The routes of the requests that are not /v2 ones, shared: never changed.
var (
	tokenRoute  = &routed{Route: Route{Kind: routeToken}}
	healthRoute = &routed{Route: Route{Kind: routeHealth}}
	otherRoute  = &routed{Route: Route{Kind: routeOther}}
)

// notRouted is the route of a request that has none: no kind, no name.
var notRouted = &routed{}

// routeOf is the route of r (or of the outgoing request made for it);
// notRouted before it was routed, or outside the gateway's handler.
func routeOf(r *http.Request) *routed {
	if rec := httpx.RecordOf(r.Context()); rec != nil {
		if rt, ok := rec.Route.(*routed); ok {
			return rt
		}
	}
	return notRouted
}

// Handler is the gateway: the shared access-log and recover middleware
// around the dispatch.
func (g *Gateway) Handler() http.Handler { return g.handler }

// newHandler wraps the dispatch in the shared middleware: one access line a
// request (only failures with access_log off), counted by route, and the
// warning of a proxy in front that trusted_proxies does not list. A /v2
// request's routed is allocated with its access record.
func (g *Gateway) newHandler() http.Handler {
	return httpx.Chain(g.errs.Func(g.serve),
		httpx.NewAccessLogOf[routed](httpx.AccessLogOptions{
			Log:          g.log,
			FailuresOnly: g.cfg.AccessLog != nil && !*g.cfg.AccessLog,
			Client:       g.clients.Of,
			Done:         g.finishRequest,
			Attrs:        accessAttrs,
		}),
		httpx.Recover(g.errs),
		g.clients.WarnUntrustedProxy(g.log, "the gateway's trusted_proxies"),
	)
}

// finishRequest counts a finished request by route and status, and counts
// a pull.
func (g *Gateway) finishRequest(rec *httpx.Record) {
	rt, ok := rec.Route.(*routed)
	if !ok {
		g.metrics.request(routeOther, rec.Status)
		return
	}
	g.metrics.request(rt.Kind, rec.Status)
	if rt.pull(rec.Status) {
		g.metrics.pull(rt.Name)
	}
}

// accessAttrs puts who pulled what on a request's access line.
func accessAttrs(rec *httpx.Record, attrs []slog.Attr) []slog.Attr {
	if rt, ok := rec.Route.(*routed); ok {
		return rt.appendAccessAttrs(attrs, rt.pull(rec.Status))
	}
	return attrs
}

// serve dispatches by path. It does not use http.ServeMux, which would
// answer unclean paths ("//", "..") with redirects of its own: every /v2 path
// goes to ParseRoute, which refuses them.
func (g *Gateway) serve(w http.ResponseWriter, r *http.Request) error {
	rec := httpx.RecordOf(r.Context())
	rec.Route = otherRoute
	p := r.URL.Path
	// The server has no read timeout, which would cut blob streams: a
	// declared body must arrive within timeouts.read_body, or the
	// connection is closed. Only /token has a use for one.
	limit := int64(maxIgnoredBody)
	if p == "/token" {
		limit = maxTokenRequestBody
	}
	if err := httpx.ReadBody(w, r, limit, g.cfg.Timeouts.ReadBody); err != nil {
		return err
	}
	if p != "/token" {
		// Registry reads have no body: none goes upstream.
		r.Body, r.ContentLength = http.NoBody, 0
	}
	switch {
	case p == "/v2" || strings.HasPrefix(p, "/v2/"):
		if err := g.serveV2(w, r, rec); err != nil {
			w.Header()["Docker-Distribution-Api-Version"] = apiVersionValue
			return err
		}
		// A blob the forwarder left to stream (streamBlob) is written
		// here, out of serveV2's frame: the goroutine waits under this
		// copy for as long as the stream lasts, within 8 KiB of stack
		// (TestBlobStreamStackUnder8KiB).
		if rt := httpx.StateOf[routed](rec); rt.blob != nil {
			writeBlob(w, rt.blob, g.log)
		}
	case p == "/token" && g.token != nil:
		rec.Route = tokenRoute
		g.token.ServeHTTP(w, r)
	case p == "/healthz":
		rec.Route = healthRoute
		g.healthz.ServeHTTP(w, r)
	case p == "/readyz":
		rec.Route = healthRoute
		g.readyz.ServeHTTP(w, r)
	default:
		// /metrics among them: it is served on metrics.listen only.
		return errRouteNotFound
	}
	return nil
}

// maxIgnoredBody bounds the body a GET or HEAD may carry: it is read and
// thrown away, so that the connection stays usable.
const maxIgnoredBody = 64 << 10

var errMethodNotAllowed = httpx.Errorf(http.StatusMethodNotAllowed, httpx.CodeUnsupported, "this registry is read-only").
	WithHeader("Allow", "GET, HEAD")

// serveV2 is the registry API: method, path, token, then the local answer
// or the upstream's. Nothing reaches the upstream before all three checks
// pass.
func (g *Gateway) serveV2(w http.ResponseWriter, r *http.Request, rec *httpx.Record) error {
	route, err := ParseRoute(r.URL.EscapedPath())
	rt := httpx.StateOf[routed](rec)
	*rt = routed{Route: route}
	rec.Route = rt
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return errMethodNotAllowed
	}
	if err != nil {
		return err
	}
	if err := checkAccept(r.Header["Accept"]); err != nil {
		return err
	}
	var authorization string
	if v := r.Header["Authorization"]; len(v) > 0 {
		authorization = v[0]
	}
	claims, err := g.authz.check(r.Context(), authorization, route)
	if err != nil {
		return err
	}
	if rt.Route, err = route.ForUpstream(g.cfg.Upstream.RepositoryPrefix); err != nil {
		return err
	}
	rt.subject, rt.get = claims.Subject, r.Method == http.MethodGet
	if route.Kind == RouteManifest {
		// For the access line: the digest served, once answered.
		defer func() {
			if v := w.Header()["Docker-Content-Digest"]; len(v) > 0 {
				rt.digest = v[0]
			}
		}()
	}
	switch route.Kind {
	case RouteBlob:
		if g.redirects != nil && g.redirects.serve(w, r, rt) {
			return nil
		}
	case RouteBase:
		w.Header()["Docker-Distribution-Api-Version"] = apiVersionValue
		httpx.WriteJSON(w, http.StatusOK, struct{}{})
		return nil
	case RouteCatalog:
		w.Header()["Docker-Distribution-Api-Version"] = apiVersionValue
		return g.catalog.serve(w, r, claims)
	case RouteManifest:
		// The upstream gets the Accept the cache is keyed by, so that a
		// cached answer is the one it would give.
		accept := parseAccept(r.Header["Accept"])
		if h := accept.header(); h != nil {
			r.Header["Accept"] = h
		} else {
			delete(r.Header, "Accept")
		}
		if g.manifests != nil {
			g.serveManifest(w, r, rt, accept)
			return nil
		}
	}
	g.proxy.ServeHTTP(w, r)
	return nil
}
