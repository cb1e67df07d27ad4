package gateway

import (
	"log/slog"
	"net/http"
	"net/netip"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/internal/tracing"
)

// routed is the state of one request: allocated with its access record
// (httpx.AccessLogged), handed by argument to the functions that serve the
// request, and kept on the record (Record.Route) for the access line and
// the metrics once it is answered. A /v2 request's route is parsed once
// and checked, then turned into the upstream's (ForUpstream); nothing
// parses the path again.
type routed struct {
	Route
	// For the access line and gateway_pulls_total (pulls.go): the checked
	// token's subject (the customer; empty until the token is checked, or
	// a manifest request is refused for the token's grants), whether the
	// request is a GET, the digest of a manifest served (set where the
	// manifest is written), and why a manifest request was denied.
	subject string
	get     bool
	digest  string
	denied  string
	// For the usage event of a manifest request (usage.go), with
	// usage.endpoint set: the client's agent family and address prefix.
	agent  string
	client netip.Prefix
}

// The routes of the requests that are not /v2 ones, shared: never changed.
var (
	tokenRoute  = &routed{Route: Route{Kind: routeToken}}
	healthRoute = &routed{Route: Route{Kind: routeHealth}}
	otherRoute  = &routed{Route: Route{Kind: routeOther}}
)

// Handler is the gateway: the shared access-log and recover middleware
// around the dispatch.
func (g *Gateway) Handler() http.Handler { return g.handler }

// newHandler is the gateway's handler: one access line a request (only
// failures with access_log off), counted by route; a panic answered 500;
// the warning of a proxy in front that trusted_proxies does not list; then
// serve, handed the request's access record and its routed, allocated
// together. Every error serve returns is written here.
func (g *Gateway) newHandler() http.Handler {
	warn := g.clients.UntrustedProxyCheck(g.log, "the gateway's trusted_proxies")
	return httpx.AccessLogged(httpx.AccessLogOptions{
		Log:          g.log,
		FailuresOnly: g.cfg.AccessLog != nil && !*g.cfg.AccessLog,
		Client:       g.clients.Of,
		Done:         g.finishRequest,
		Attrs:        accessAttrs,
	}, func(w http.ResponseWriter, r *http.Request, rec *httpx.Record, rt *routed) {
		if g.tracer != nil {
			// Deferred first, so that it ends the span after a panic
			// was answered.
			var span trace.Span
			r, span = g.tracer.StartServer(r, r.Method)
			defer endServerSpan(span, r.Method, w, rec)
		}
		defer g.errs.RecoverTo(w, r, rec)
		if warn != nil {
			warn(r)
		}
		if err := g.serve(w, r, rec, rt); err != nil {
			g.errs.WriteErrorTo(w, r, rec, err)
		}
	})
}

// finishRequest counts a finished request by route and status, and counts
// a pull, a check or a denial (and queues its usage event, without
// waiting).
func (g *Gateway) finishRequest(rec *httpx.Record) {
	rt, ok := rec.Route.(*routed)
	if !ok {
		g.metrics.request(routeOther, rec.Status)
		return
	}
	g.metrics.request(rt.Kind, rec.Status)
	if k := rt.pullKind(rec.Status); k != kindNone {
		g.metrics.pullCounts.count(rt.Name, k)
		if g.usage != nil {
			g.recordUsage(rt, k)
		}
	}
}

// endServerSpan names a request's span by its route, as the metrics do
// ("GET manifest": few names, whatever the repository), puts the client's
// repository on it (not the subject: an e-mail address) and ends it with
// the status answered.
func endServerSpan(span trace.Span, method string, w http.ResponseWriter, rec *httpx.Record) {
	route := "other"
	if rec.Route != nil {
		route = rec.Route.String()
	}
	span.SetName(method + " " + route)
	if rt, ok := rec.Route.(*routed); ok && rt.Name != "" {
		span.SetAttributes(attribute.String("registry.repository", rt.Name))
	}
	status := http.StatusOK
	if sw, ok := w.(interface{ Status() int }); ok {
		status = sw.Status()
	}
	tracing.EndHTTP(span, status)
}

// accessAttrs puts who pulled what on a request's access line.
func accessAttrs(rec *httpx.Record, attrs []slog.Attr) []slog.Attr {
	if rt, ok := rec.Route.(*routed); ok {
		return rt.appendAccessAttrs(attrs, rt.pullKind(rec.Status))
	}
	return attrs
}

// serve dispatches by path. It does not use http.ServeMux, which would
// answer unclean paths ("//", "..") with redirects of its own: every /v2 path
// goes to ParseRoute, which refuses them.
func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, rec *httpx.Record, rt *routed) error {
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
		if err := g.serveV2(w, r, rec, rt); err != nil {
			w.Header()["Docker-Distribution-Api-Version"] = apiVersionValue
			return err
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
// pass. rt is the request's state, filled in here: the route, then the
// token's subject.
func (g *Gateway) serveV2(w http.ResponseWriter, r *http.Request, rec *httpx.Record, rt *routed) error {
	route, err := ParseRoute(r.URL.EscapedPath())
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
	ctx, span := g.tracer.Start(r.Context(), "verify token", trace.SpanKindInternal)
	claims, err := g.authz.check(ctx, authorization, route)
	endVerifySpan(span, err)
	if err != nil {
		if d, ok := err.(*refusal); ok && d.denied != "" && route.Kind == RouteManifest {
			// A valid token asked for what it does not hold: a customer
			// after a channel it has not bought, on the line and counted.
			rt.subject, rt.denied = d.subject, d.denied
			g.noteUsageClient(r, rt)
		}
		return err
	}
	if rt.Route, err = route.ForUpstream(g.cfg.Upstream.RepositoryPrefix); err != nil {
		return err
	}
	rt.subject, rt.get = claims.Subject, r.Method == http.MethodGet
	switch route.Kind {
	case RouteBlob:
		if g.redirects != nil {
			_, span := g.tracer.Start(r.Context(), "blob redirect cache", trace.SpanKindInternal)
			hit := g.redirects.serve(w, r, rt)
			endCacheSpan(span, hit)
			if hit {
				return nil
			}
		}
	case RouteBase:
		w.Header()["Docker-Distribution-Api-Version"] = apiVersionValue
		httpx.WriteJSON(w, http.StatusOK, struct{}{})
		return nil
	case RouteCatalog:
		w.Header()["Docker-Distribution-Api-Version"] = apiVersionValue
		return g.catalog.serve(w, r, claims)
	case RouteManifest:
		g.noteUsageClient(r, rt)
		// The upstream gets the Accept the cache is keyed by, so that a
		// cached answer is the one it would give.
		accept := parseAccept(r.Header["Accept"])
		if h := accept.header(); h != nil {
			r.Header["Accept"] = h
		} else {
			delete(r.Header, "Accept")
		}
		if g.manifests != nil {
			// The upstream round trip of a miss is this span's child.
			r, span := g.tracer.StartRequest(r, "manifest cache", trace.SpanKindInternal)
			defer span.End()
			return g.serveManifest(w, r, rt, accept)
		}
	}
	return g.proxy.forward(w, r, rt, nil)
}

// endVerifySpan ends the token check's span with its outcome: ok, or the
// refusal's reason word (expired, signature, insufficient_scope, …) —
// never the refusal's message, which names the token's subject.
func endVerifySpan(span trace.Span, err error) {
	if !span.IsRecording() {
		span.End()
		return
	}
	outcome := "ok"
	if err != nil {
		outcome = "refused"
		if d, ok := err.(*refusal); ok {
			if d.challenge.Error != "" {
				outcome = d.challenge.Error
			}
			if reason, ok := d.detail.(map[string]string); ok && reason["reason"] != "" {
				outcome = reason["reason"]
			}
		}
	}
	span.SetAttributes(attribute.String("gateway.token.outcome", outcome))
	span.End()
}

// endCacheSpan ends a cache's span with whether it answered.
func endCacheSpan(span trace.Span, hit bool) {
	if span.IsRecording() {
		span.SetAttributes(attribute.Bool("gateway.cache.hit", hit))
	}
	span.End()
}

// noteCacheHit puts whether the cache answered on the span of r (the
// manifest cache's).
func noteCacheHit(r *http.Request, hit bool) {
	if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
		span.SetAttributes(attribute.Bool("gateway.cache.hit", hit))
	}
}
