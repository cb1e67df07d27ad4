package gateway

import (
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/acme/registry-gateway/internal/buildinfo"
	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/pkg/upstream"
)

// metrics are the gateway's Prometheus metrics, on a registry of its own so
// that tests can build many gateways in one process.
type metrics struct {
	reg *prometheus.Registry

	requests        *prometheus.CounterVec
	upstreamLatency prometheus.Histogram
	upstreamRetries prometheus.Counter
	upstreamRefused prometheus.Counter
	refreshes       prometheus.Counter
	refreshFailures prometheus.Counter
	verifyFailures  *prometheus.CounterVec
	pulls           *prometheus.CounterVec
	connRefused     *prometheus.CounterVec

	// counters caches requests' children by route kind and status, so that
	// the hot path does not hash label values.
	counters [len(routeNames) + extraRoutes][600]atomic.Pointer[prometheus.Counter]
	// pullCounts caches pulls' children by repository and kind, and keeps
	// their labels bounded (pulls.go).
	pullCounts *pullCounters
}

// Labels of the requests that are not /v2 routes.
const (
	routeToken = RouteKind(len(routeNames)) + iota
	routeHealth
	routeOther
	extraRoutes = 3
)

var extraRouteNames = [extraRoutes]string{"token", "health", "other"}

var _ upstream.Observer = (*metrics)(nil)

// newMetrics registers the metrics; expiry, when not nil, reports the held
// upstream credential's expiry (zero time: it never expires) and whether one
// is held.
func newMetrics(expiry func() (time.Time, bool), clock func() time.Time) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_requests_total",
			Help: "Requests answered, by route and status code.",
		}, []string{"route", "code"}),
		upstreamLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gateway_upstream_request_duration_seconds",
			Help:    "Time from sending an upstream request to its response headers.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		upstreamRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_upstream_credential_retries_total",
			Help: "Upstream requests retried with a refreshed credential after a 401.",
		}),
		upstreamRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_upstream_credential_refused_total",
			Help: "Upstream 401/403 answers that stood after a credential refresh, or came within 30 s of the last one: answered 502.",
		}),
		refreshes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_upstream_credential_refreshes_total",
			Help: "Upstream credentials obtained.",
		}),
		refreshFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_upstream_credential_refresh_failures_total",
			Help: "Failed attempts to obtain an upstream credential.",
		}),
		verifyFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_token_verification_failures_total",
			Help: "Presented tokens refused, by reason.",
		}, []string{"reason"}),
		pulls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_pulls_total",
			Help: "Manifest requests by channel, repository and kind: pull (GET answered 200, by tag or by digest), check (HEAD answered 200), denied (refused: the token does not grant the repository).",
		}, []string{"channel", "repository", "kind"}),
		connRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_connections_refused_total",
			Help: "Client connections closed at accept, by the limit they were over (limits.max_connections, limits.max_connections_per_address).",
		}, []string{"limit"}),
	}
	m.pullCounts = newPullCounters(m.pulls)
	for _, l := range []string{httpx.LimitTotal, httpx.LimitPerAddress} {
		m.connRefused.WithLabelValues(l)
	}
	reg.MustRegister(m.requests, m.upstreamLatency, m.upstreamRetries, m.upstreamRefused, m.refreshes, m.refreshFailures, m.verifyFailures, m.pulls, m.connRefused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(buildinfo.Collector("gateway_build_info"))
	if expiry != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gateway_upstream_credential_expiry_seconds",
			Help: "Seconds until the held upstream credential expires; 0 while none is held, +Inf if it never expires.",
		}, func() float64 {
			at, ok := expiry()
			switch {
			case !ok:
				return 0
			case at.IsZero():
				return math.Inf(1)
			}
			return max(at.Sub(clock()).Seconds(), 0)
		}))
	}
	return m
}

// request counts one answered request.
func (m *metrics) request(k RouteKind, code int) {
	if int(k) >= len(m.counters) || code < 100 || code >= 600 {
		m.requests.WithLabelValues(k.String(), strconv.Itoa(code)).Inc()
		return
	}
	slot := &m.counters[k][code]
	c := slot.Load()
	if c == nil {
		cc := m.requests.WithLabelValues(k.String(), strconv.Itoa(code))
		slot.Store(&cc)
		c = &cc
	}
	(*c).Inc()
}

// connectionRefused counts a connection closed at accept (see
// httpx.ListenerOptions.Refused).
func (m *metrics) connectionRefused(limit string) { m.connRefused.WithLabelValues(limit).Inc() }

// Refreshed implements upstream.Observer.
func (m *metrics) Refreshed(upstream.Credential) { m.refreshes.Inc() }

// RefreshFailed implements upstream.Observer.
func (m *metrics) RefreshFailed(error) { m.refreshFailures.Inc() }
