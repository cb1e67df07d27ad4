package tokenserver

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/acme/registry-gateway/internal/buildinfo"
	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/tokenserver/console"
)

// Grant labels of the token metrics: how the client asked.
const (
	grantBasic   = "basic" // GET with Basic credentials
	grantPass    = "password"
	grantRefresh = "refresh_token"
	grantOther   = "other" // POST with a missing or unsupported grant_type
)

// Outcome labels of the token metrics.
const (
	outcomeIssued       = "issued"
	outcomeBadRequest   = "bad_request"
	outcomeUnauthorized = "unauthorized"
	outcomeRateLimited  = "rate_limited"
	outcomeUnavailable  = "unavailable"
	outcomeError        = "error"
)

var (
	allGrants   = []string{grantBasic, grantPass, grantRefresh, grantOther}
	allOutcomes = []string{outcomeIssued, outcomeBadRequest, outcomeUnauthorized, outcomeRateLimited, outcomeUnavailable, outcomeError}
)

// metrics live on a registry of their own so that tests can build many
// servers in one process.
type metrics struct {
	reg *prometheus.Registry

	requests *prometheus.CounterVec
	// requestsBy holds the children of requests, resolved once, so that
	// the hot path does no label lookups.
	requestsBy map[[2]string]prometheus.Counter
	duration   map[string]prometheus.Observer

	backendCalls    *prometheus.CounterVec
	backendErrors   *prometheus.CounterVec
	backendDuration *prometheus.HistogramVec
	cacheHits       *prometheus.CounterVec
	hitPositive     prometheus.Counter
	hitNegative     prometheus.Counter
	connRefused     *prometheus.CounterVec

	loginFailures  *prometheus.CounterVec
	loginFailureBy map[license.Reason]prometheus.Counter

	// consoleSignInFailures has one series per console method and reason
	// (console.SignInFailureReasons), made at the start: nothing else
	// becomes a label.
	consoleSignInFailures  *prometheus.CounterVec
	consoleSignInFailureBy map[[2]string]prometheus.Counter
}

var _ license.Observer = (*metrics)(nil)

func newMetrics(limiterLen func() int) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenserver_token_requests_total",
			Help: "Token requests by grant (basic = GET, password, refresh_token, other) and outcome (issued, bad_request, unauthorized, rate_limited, unavailable, error).",
		}, []string{"grant", "outcome"}),
		backendCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenserver_license_backend_requests_total",
			Help: "Calls to the licence backend (cache misses) by backend and outcome (ok, bad_credentials, unavailable).",
		}, []string{"backend", "outcome"}),
		backendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenserver_license_backend_errors_total",
			Help: "Licence backend calls that gave no usable answer.",
		}, []string{"backend"}),
		backendDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tokenserver_license_backend_duration_seconds",
			Help:    "Latency of licence backend calls.",
			Buckets: []float64{.0005, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"backend"}),
		cacheHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenserver_license_cache_hits_total",
			Help: "Licence look-ups answered from the cache, by result (positive = licence, negative = bad credentials).",
		}, []string{"result"}),
		// Beside tokenserver_token_requests_total, not instead of it: its
		// outcomes stay what dashboards read.
		loginFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenserver_login_failures_total",
			Help: "Refused logins by reason (unknown_account, wrong_token, disabled, expired, backend_unavailable, rate_limited, malformed), as the \"login failed\" log line says; clients get the same answer for every reason.",
		}, []string{"reason"}),
	}
	hist := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tokenserver_token_request_duration_seconds",
		Help:    "Latency of token requests by grant.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"grant"})

	m.requestsBy = make(map[[2]string]prometheus.Counter)
	m.duration = make(map[string]prometheus.Observer)
	for _, g := range allGrants {
		m.duration[g] = hist.WithLabelValues(g)
		for _, o := range allOutcomes {
			m.requestsBy[[2]string{g, o}] = m.requests.WithLabelValues(g, o)
		}
	}
	m.hitPositive = m.cacheHits.WithLabelValues("positive")
	m.hitNegative = m.cacheHits.WithLabelValues("negative")
	// Every reason from the start, at 0, so that rate() sees the first one.
	m.loginFailureBy = make(map[license.Reason]prometheus.Counter)
	for _, r := range license.Reasons() {
		m.loginFailureBy[r] = m.loginFailures.WithLabelValues(string(r))
	}
	m.consoleSignInFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenserver_console_sign_in_failures_total",
		Help: "Refused sign-ins of the web console other than customers' e-mail and API token (those count in tokenserver_login_failures_total), by method (oidc, admin_key, link) and reason.",
	}, []string{"method", "reason"})
	m.consoleSignInFailureBy = make(map[[2]string]prometheus.Counter)
	for method, reasons := range console.SignInFailureReasons() {
		for _, r := range reasons {
			m.consoleSignInFailureBy[[2]string{method, r}] = m.consoleSignInFailures.WithLabelValues(method, r)
		}
	}
	m.connRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenserver_connections_refused_total",
		Help: "Client connections closed at accept, by the limit they were over (limits.max_connections, limits.max_connections_per_address).",
	}, []string{"limit"})
	for _, l := range []string{httpx.LimitTotal, httpx.LimitPerAddress} {
		m.connRefused.WithLabelValues(l)
	}

	reg.MustRegister(m.requests, hist, m.backendCalls, m.backendErrors, m.backendDuration, m.cacheHits, m.connRefused, m.loginFailures, m.consoleSignInFailures,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tokenserver_rate_limiter_keys",
			Help: "Client addresses and usernames currently tracked for failed logins.",
		}, func() float64 { return float64(limiterLen()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	reg.MustRegister(buildinfo.Collector("tokenserver_build_info"))
	return m
}

// observe records one token request.
func (m *metrics) observe(grant, outcome string, d time.Duration) {
	if c, ok := m.requestsBy[[2]string{grant, outcome}]; ok {
		c.Inc()
	}
	if h, ok := m.duration[grant]; ok {
		h.Observe(d.Seconds())
	}
}

// loginFailed counts a refused login.
func (m *metrics) loginFailed(r license.Reason) {
	if c, ok := m.loginFailureBy[r]; ok {
		c.Inc()
		return
	}
	m.loginFailures.WithLabelValues(string(r)).Inc() // a custom backend's own
}

// consoleSignInFailed counts a refused console sign-in; a pair outside
// console.SignInFailureReasons is not counted (no label from elsewhere).
func (m *metrics) consoleSignInFailed(method, reason string) {
	if c, ok := m.consoleSignInFailureBy[[2]string{method, reason}]; ok {
		c.Inc()
	}
}

// LookupDone implements license.Observer.
func (m *metrics) LookupDone(backend, outcome string, d time.Duration) {
	m.backendCalls.WithLabelValues(backend, outcome).Inc()
	if outcome == license.OutcomeUnavailable {
		m.backendErrors.WithLabelValues(backend).Inc()
	}
	m.backendDuration.WithLabelValues(backend).Observe(d.Seconds())
}

// CacheHit implements license.Observer.
func (m *metrics) CacheHit(positive bool) {
	if positive {
		m.hitPositive.Inc()
	} else {
		m.hitNegative.Inc()
	}
}

// connectionRefused counts a connection closed at accept (see
// httpx.ListenerOptions.Refused).
func (m *metrics) connectionRefused(limit string) { m.connRefused.WithLabelValues(limit).Inc() }

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, Timeout: 10 * time.Second})
}

func outcomeOf(status int) string {
	switch {
	case status < 300:
		return outcomeIssued
	case status == http.StatusUnauthorized:
		return outcomeUnauthorized
	case status == http.StatusTooManyRequests:
		return outcomeRateLimited
	case status == http.StatusServiceUnavailable:
		return outcomeUnavailable
	case status < 500:
		return outcomeBadRequest
	default:
		return outcomeError
	}
}
