package gateway

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/distribution/reference"

	"github.com/acme/registry-gateway/internal/httpx"
)

// ServeHTTP dispatches by path. It does not use http.ServeMux, which would
// answer unclean paths ("//", "..") with redirects of its own: every /v2 path
// goes to ParseRoute, which refuses them.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := httpx.NewRecorder(w)
	acc := access{kind: routeOther}
	defer func() {
		v := recover()
		if v != nil && v != http.ErrAbortHandler {
			g.errs.WriteError(rec, r, fmt.Errorf("panic: %v\n%s", v, debug.Stack()))
		}
		g.metrics.request(acc.kind, rec.Status())
		pull := acc.pull(r, rec)
		if pull {
			g.metrics.pull(acc.route.Name)
		}
		if g.accessLog {
			// Never headers or the query: they carry tokens.
			attrs := []slog.Attr{slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.String("route", routeLabel(acc.kind)), slog.Int("status", rec.Status()),
				slog.Int64("bytes", rec.Bytes()), slog.Duration("duration", time.Since(start)),
				slog.String("remote", g.clients.Of(r))}
			g.log.LogAttrs(r.Context(), slog.LevelInfo, "request", append(attrs, acc.attrs(rec, pull)...)...)
		}
		if v == http.ErrAbortHandler {
			// ReverseProxy aborts a response whose copy failed half-way;
			// the server must drop the connection.
			panic(v)
		}
	}()
	g.serve(rec, r, &acc)
}

func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, acc *access) {
	p := r.URL.Path
	// The server has no read timeout, which would cut blob streams: a
	// declared body must arrive within timeouts.read_body, or the
	// connection is closed. Only /token has a use for one.
	limit := int64(maxIgnoredBody)
	if p == "/token" {
		limit = maxTokenRequestBody
	}
	if err := httpx.ReadBody(w, r, limit, g.cfg.Timeouts.ReadBody); err != nil {
		g.errs.WriteError(w, r, err)
		return
	}
	if p != "/token" {
		// Registry reads have no body: none goes upstream.
		r.Body, r.ContentLength = http.NoBody, 0
	}
	switch {
	case p == "/v2" || strings.HasPrefix(p, "/v2/"):
		g.serveV2(w, r, acc)
	case p == "/token" && g.token != nil:
		acc.kind = routeToken
		g.token.ServeHTTP(w, r)
	case p == "/healthz":
		acc.kind = routeHealth
		g.healthz.ServeHTTP(w, r)
	case p == "/readyz":
		acc.kind = routeHealth
		g.readyz.ServeHTTP(w, r)
	case p == "/metrics":
		acc.kind = routeMetrics
		g.metricH.ServeHTTP(w, r)
	default:
		g.errs.WriteError(w, r, errRouteNotFound)
	}
}

// maxIgnoredBody bounds the body a GET or HEAD may carry: it is read and
// thrown away, so that the connection stays usable.
const maxIgnoredBody = 64 << 10

var (
	errMethodNotAllowed = httpx.Errorf(http.StatusMethodNotAllowed, httpx.CodeUnsupported, "this registry is read-only").
				WithHeader("Allow", "GET, HEAD")
	errUpstreamNameTooLong = httpx.Errorf(http.StatusBadRequest, httpx.CodeNameInvalid, "repository name too long")
)

// serveV2 is the registry API: method, path, token, then the local answer
// or the upstream's. Nothing reaches the upstream before all three checks
// pass.
func (g *Gateway) serveV2(w http.ResponseWriter, r *http.Request, acc *access) {
	route, err := ParseRoute(r.URL.EscapedPath())
	acc.kind = route.Kind
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		g.fail(w, r, errMethodNotAllowed)
		return
	}
	if err == nil {
		err = checkAccept(r.Header["Accept"])
	}
	if err != nil {
		g.fail(w, r, err)
		return
	}
	claims, err := g.authz.check(r.Context(), r.Header.Get("Authorization"), route)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	acc.route, acc.subject = route, claims.Subject
	switch route.Kind {
	case RouteBase:
		w.Header()["Docker-Distribution-Api-Version"] = apiVersionValue
		httpx.WriteJSON(w, http.StatusOK, struct{}{})
	case RouteCatalog:
		w.Header()["Docker-Distribution-Api-Version"] = apiVersionValue
		if err := g.catalog.serve(w, r, claims); err != nil {
			g.fail(w, r, err)
		}
	default:
		if len(g.cfg.Upstream.RepositoryPrefix)+len(route.Name) > reference.RepositoryNameTotalLengthMax {
			g.fail(w, r, errUpstreamNameTooLong)
			return
		}
		if route.Kind == RouteManifest {
			// The upstream gets the Accept the cache is keyed by, so
			// that a cached answer is the one it would give.
			accept := parseAccept(r.Header["Accept"])
			if h := accept.header(); h != nil {
				r.Header["Accept"] = h
			} else {
				delete(r.Header, "Accept")
			}
			if g.manifests != nil {
				g.serveManifest(w, r, route, accept)
				return
			}
		}
		g.proxy.ServeHTTP(w, r)
	}
}

func (g *Gateway) fail(w http.ResponseWriter, r *http.Request, err error) {
	w.Header()["Docker-Distribution-Api-Version"] = apiVersionValue
	g.errs.WriteError(w, r, err)
}
