package gateway

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/registry-gateway/pkg/auth"
)

// pull reports whether the request counts as a pull: a GET of a manifest,
// by tag or by digest, through a checked token, answered 200. HEADs
// (clients checking for updates), blobs and refusals do not count; a
// multi-platform image pulled by tag counts twice (the index by tag, then
// the platform's manifest by digest).
func (rt *routed) pull(status int) bool {
	return rt.Kind == RouteManifest && rt.subject != "" && rt.get && status == http.StatusOK
}

// appendAccessAttrs appends the access line's pull fields for /v2/ reads of
// a checked token: the token's subject (the customer), the repository and
// reference as the client named them and, for manifests, the digest
// served. Never the token itself.
func (rt *routed) appendAccessAttrs(out []slog.Attr, pull bool) []slog.Attr {
	if rt.subject == "" || rt.Name == "" {
		return out
	}
	out = append(out, slog.String("subject", rt.subject), slog.String("repository", rt.Name))
	if rt.Reference != "" {
		out = append(out, slog.String("reference", rt.Reference))
	}
	if rt.digest != "" {
		out = append(out, slog.String("digest", rt.digest))
	}
	if pull {
		out = append(out, slog.Bool("pull", true))
	}
	return out
}

// pull counts one pull of repository, by channel and repository (no
// customer label: that is unbounded; the access lines carry it).
func (m *metrics) pull(repository string) {
	if c, ok := m.pullCounters.Load(repository); ok {
		c.(prometheus.Counter).Inc()
		return
	}
	c := m.pulls.WithLabelValues(auth.Channel(repository), repository)
	m.pullCounters.Store(repository, c)
	c.Inc()
}
