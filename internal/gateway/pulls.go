package gateway

import (
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/registry-gateway/pkg/auth"
)

// pullKind is what a manifest request was, for gateway_pulls_total and the
// access line's kind.
type pullKind uint8

const (
	kindNone pullKind = iota
	// kindPull is a manifest GET answered 200: the client fetched it.
	kindPull
	// kindCheck is a manifest HEAD answered 200: a client that holds the
	// manifest already (a docker re-pull) asks only for its digest.
	kindCheck
	// kindDenied is a manifest request of a valid token that does not
	// grant the repository (the licence lacks its channel, or the token
	// was issued for other repositories).
	kindDenied
	numKinds
)

var kindNames = [numKinds]string{"", "pull", "check", "denied"}

func (k pullKind) String() string { return kindNames[k] }

// Reasons of a denied manifest request, on its access line.
const (
	// deniedChannel: the token holds nothing of the channel, so the
	// licence does not include it.
	deniedChannel = "channel_not_licensed"
	// deniedRepository: the token holds the channel but not this
	// repository; it was issued for other scopes.
	deniedRepository = "repository_not_in_token"
)

// unknownLabel is the channel and repository label of a denied request for
// a name no client was served: a valid token may ask for any name, and
// those names must not become series. Parentheses are not allowed in a
// repository name, so it never stands for a real one.
const unknownLabel = "(unknown)"

// pullKind classifies a finished request: a manifest request through a
// checked token answered 200 is a pull (GET) or a check (HEAD); a manifest
// request refused for the token's grants is denied; nothing else counts.
// Blobs are not counted: a client fetches them only after a manifest.
func (rt *routed) pullKind(status int) pullKind {
	switch {
	case rt.Kind != RouteManifest:
		return kindNone
	case rt.denied != "":
		return kindDenied
	case rt.subject == "" || status != http.StatusOK:
		return kindNone
	case rt.get:
		return kindPull
	}
	return kindCheck
}

// appendAccessAttrs appends the access line's pull fields for /v2/ reads of
// a checked token, and for manifest requests refused for its grants: the
// token's subject (the customer), the repository and reference as the
// client named them, for manifests the digest served, and the kind (with
// pull=true for a pull, and the reason of a denial). Never the token itself.
func (rt *routed) appendAccessAttrs(out []slog.Attr, kind pullKind) []slog.Attr {
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
	if kind != kindNone {
		out = append(out, slog.String("kind", kind.String()))
	}
	switch kind {
	case kindPull:
		out = append(out, slog.Bool("pull", true))
	case kindDenied:
		out = append(out, slog.String("reason", rt.denied))
	}
	return out
}

// repoCounters are one repository's gateway_pulls_total children, made as
// each kind is first counted.
type repoCounters struct {
	channel, repository string
	kinds               [numKinds]atomic.Pointer[prometheus.Counter]
}

func (rc *repoCounters) inc(vec *prometheus.CounterVec, k pullKind) {
	c := rc.kinds[k].Load()
	if c == nil {
		cc := vec.WithLabelValues(rc.channel, rc.repository, k.String())
		rc.kinds[k].Store(&cc)
		c = &cc
	}
	(*c).Inc()
}

// pullCounters are gateway_pulls_total's children by repository. A
// repository is known once a manifest of it was answered 200; only known
// repositories (and their channels) are labels of denied requests, so that
// the series are bounded by what the upstream holds however many names
// clients ask for.
type pullCounters struct {
	vec      *prometheus.CounterVec
	repos    sync.Map // repository → *repoCounters
	channels sync.Map // channel → *repoCounters of (channel, unknownLabel)
	unknown  repoCounters
}

func newPullCounters(vec *prometheus.CounterVec) *pullCounters {
	return &pullCounters{vec: vec, unknown: repoCounters{channel: unknownLabel, repository: unknownLabel}}
}

// count counts one request of repository of kind k.
func (p *pullCounters) count(repository string, k pullKind) {
	if v, ok := p.repos.Load(repository); ok {
		v.(*repoCounters).inc(p.vec, k)
		return
	}
	channel := auth.Channel(repository)
	if k == kindDenied {
		if v, ok := p.channels.Load(channel); ok {
			v.(*repoCounters).inc(p.vec, k)
			return
		}
		p.unknown.inc(p.vec, k)
		return
	}
	v, _ := p.repos.LoadOrStore(repository, &repoCounters{channel: channel, repository: repository})
	p.channels.LoadOrStore(channel, &repoCounters{channel: channel, repository: unknownLabel})
	v.(*repoCounters).inc(p.vec, k)
}
