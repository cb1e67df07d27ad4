package gateway

import (
	"log/slog"
	"net/http"

	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/pkg/auth"
)

// access is what the access record says about a request beyond method,
// path and status: set by serve as it learns it.
type access struct {
	kind RouteKind
	// route and subject are set once the token is checked: they are the
	// customer's, never before.
	route   Route
	subject string
}

// pull reports whether the request counts as a pull: a GET of a manifest,
// by tag or by digest, answered 200. HEADs (clients checking for updates),
// blobs and refusals do not count; a multi-platform image pulled by tag
// counts twice (the index by tag, then the platform's manifest by digest).
func (a *access) pull(r *http.Request, rec *httpx.Recorder) bool {
	return a.kind == RouteManifest && a.subject != "" && r.Method == http.MethodGet && rec.Status() == http.StatusOK
}

// attrs are the access record's pull fields for /v2/ reads of a checked
// token: the token's subject (the customer), repository, reference and,
// for manifests, the digest served. Never the token itself.
func (a *access) attrs(rec *httpx.Recorder, pull bool) []slog.Attr {
	if a.subject == "" || a.route.Name == "" {
		return nil
	}
	out := []slog.Attr{slog.String("subject", a.subject), slog.String("repository", a.route.Name)}
	if a.route.Reference != "" {
		out = append(out, slog.String("reference", a.route.Reference))
	}
	if a.kind == RouteManifest {
		if d := rec.Header().Get("Docker-Content-Digest"); d != "" {
			out = append(out, slog.String("digest", d))
		}
	}
	if pull {
		out = append(out, slog.Bool("pull", true))
	}
	return out
}

// pull counts one pull of repository, by channel and repository (no
// customer label: that is unbounded; the access records carry it).
func (m *metrics) pull(repository string) {
	m.pulls.WithLabelValues(auth.Channel(repository), repository).Inc()
}
