package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/internal/tlsx"
	"github.com/acme/registry-gateway/internal/tracing"
	"github.com/acme/registry-gateway/pkg/auth"
	"github.com/acme/registry-gateway/pkg/upstream"
)

// Options supply what New would otherwise build from the Config; every
// field is optional.
type Options struct {
	Logger *slog.Logger
	Clock  func() time.Time
	// Keys overrides cfg.Keys (the trusted token signing keys).
	Keys auth.KeySource
	// Verifier overrides the token verifier built from the config and Keys.
	Verifier TokenVerifier
	// Credentials overrides the credential of the upstream provider.
	Credentials Credentials
	// Repositories overrides the catalog's upstream lister (the
	// provider's, when it has one).
	Repositories RepositoryLister
	// Transport is the base upstream transport (default
	// NewUpstreamTransport); the gateway wraps it with its credential,
	// retry, redirect and timing round-trippers.
	Transport http.RoundTripper
}

// Gateway is the registry gateway: Handler serves it, Run listens and
// serves, Close stops its background work. Build it with New.
type Gateway struct {
	cfg     *Config
	log     *slog.Logger
	clock   func() time.Time
	errs    httpx.Handler
	metrics *metrics
	clients *httpx.ClientAddr

	creds     Credentials
	provider  upstream.Provider
	source    *upstream.Source // nil with Options.Credentials
	lister    RepositoryLister // the catalog's; nil: the upstream's /v2/_catalog
	authz     *authorizer
	jwks      *auth.RemoteJWKS // nil without keys.jwks_url
	tokenTLS  *tls.Config      // towards the token service; nil: defaults
	upstream  *url.URL
	auth      *authHeader
	plain     http.RoundTripper // the upstream transport, without credential
	proxy     *forwarder
	manifests *manifestCache // nil with manifest_cache.disabled
	redirects *blobRedirects // nil with blob_redirect_cache.disabled or proxy_blobs
	catalog   *catalog
	token     http.Handler // nil without token_endpoint
	tls       *tlsx.Server // nil: plain HTTP
	healthz   http.Handler
	readyz    http.Handler
	metricH   http.Handler    // on metrics.listen, never the clients' listener
	usage     *usageRecorder  // nil without usage.endpoint
	tracer    *tracing.Tracer // nil without tracing.endpoint: no spans
	handler   http.Handler

	closers []func()
}

// New builds a gateway for a validated cfg. With the ecr source it fetches
// a first upstream credential and starts refreshing it in the background
// until ctx ends or Close is called. With a JWKS URL it fetches the token
// service's key set. Neither failure stops New: they are logged, /readyz
// fails until they are overcome (the gateway keeps trying), so that the
// start order of gateway and token service does not matter. Key files that
// do not load are an error, and so are TLS files (tls.*) that do not
// load; those are followed for renewals until ctx ends or Close.
func New(ctx context.Context, cfg *Config, opts Options) (_ *Gateway, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	g := &Gateway{cfg: cfg, log: opts.Logger, clock: opts.Clock, errs: httpx.Handler{Log: opts.Logger}}
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	g.metrics = newMetrics(g.credentialExpiry, opts.Clock)
	for _, step := range []func(context.Context, Options) error{
		g.buildTracing,
		g.buildClientAddr,
		g.buildCredentials,
		g.buildTLS,
		g.buildTokenCheck,
		g.buildUpstream,
		g.buildCatalog,
		g.buildTokenProxy,
		g.buildOps,
		g.buildUsage,
		g.startCredentials,
	} {
		if err := step(ctx, opts); err != nil {
			return nil, err
		}
	}
	g.handler = g.newHandler()
	return g, nil
}

// buildTracing sets up the tracer of tracing.endpoint (nil without). Its
// shutdown is the first closer, so that it runs last: the spans of what
// the other closers end are flushed too.
func (g *Gateway) buildTracing(ctx context.Context, _ Options) (err error) {
	var shutdown func()
	g.tracer, shutdown, err = tracing.Setup(ctx, g.cfg.Tracing, tracing.Options{Service: "gateway", Logger: g.log})
	g.closers = append(g.closers, shutdown)
	return err
}

func (g *Gateway) buildClientAddr(context.Context, Options) (err error) {
	if g.clients, err = httpx.NewClientAddr(g.cfg.TrustedProxies); err != nil {
		return fmt.Errorf("trusted_proxies: %w", err)
	}
	return nil
}

// buildCredentials builds the upstream provider of the configuration, and
// the credential: Options.Credentials, or a Source over the provider.
func (g *Gateway) buildCredentials(ctx context.Context, opts Options) error {
	key, pc, err := g.cfg.Upstream.Provider()
	if err != nil {
		return err
	}
	if g.provider, err = pc.Provider(ctx, upstream.Env{URL: g.cfg.Upstream.URL, MaxRepositories: maxCatalogRepos}); err != nil {
		return fmt.Errorf("upstream.%s: %w", key, err)
	}
	g.lister = opts.Repositories
	if l, ok := g.provider.(upstream.RepositoryLister); ok && g.lister == nil {
		g.lister = l
	}
	if g.creds = opts.Credentials; g.creds != nil {
		return nil
	}
	g.source = upstream.NewSource(g.provider, upstream.Options{Clock: g.clock, Logger: g.log, Observer: g.metrics})
	g.creds = g.source
	g.closers = append(g.closers, g.source.Close)
	return nil
}

// credentialExpiry is when the held upstream credential expires (zero: it
// never does), and whether one is held.
func (g *Gateway) credentialExpiry() (time.Time, bool) {
	if r, ok := g.creds.(readiness); ok {
		return r.ExpiresAt(), r.Ready()
	}
	if g.creds == nil {
		return time.Time{}, false
	}
	c, err := g.creds.Credential(context.Background())
	return c.ExpiresAt, err == nil
}

func (g *Gateway) buildTLS(ctx context.Context, _ Options) (err error) {
	g.tokenTLS, err = g.setupTLS(ctx)
	return err
}

// buildTokenCheck sets up the verification of clients' tokens: the keys of
// the config (PEM files, the token service's JWKS) unless Options bring a
// verifier or keys.
func (g *Gateway) buildTokenCheck(ctx context.Context, opts Options) error {
	verifier := opts.Verifier
	if verifier == nil {
		keys := opts.Keys
		if keys == nil {
			client := &http.Client{Timeout: 10 * time.Second}
			if g.tokenTLS != nil {
				t := &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: g.tokenTLS, TLSHandshakeTimeout: g.cfg.Upstream.TLSHandshakeTimeout}
				g.closers = append(g.closers, t.CloseIdleConnections)
				client.Transport = t
			}
			var err error
			if keys, g.jwks, err = loadKeys(ctx, g.cfg.Keys, client, g.clock, g.log); err != nil {
				return err
			}
		}
		verifier = auth.NewVerifier(auth.VerifierConfig{
			Issuer: g.cfg.Issuer, Audience: g.cfg.Service, Keys: keys, Leeway: g.cfg.Leeway, Clock: g.clock,
		})
	}
	g.authz = newAuthorizer(verifier, g.cfg.Realm, g.cfg.Service, func(reason string) {
		g.metrics.verifyFailures.WithLabelValues(reason).Inc()
	})
	g.authz.help = g.cfg.CustomerHelpURL
	return nil
}

// buildUpstream sets up the proxy to the upstream and its round-trippers,
// innermost first: the transport, latency, the credential (the one place
// it is set, and retried once after a 401), redirects (proxy_blobs), HEAD
// errors asked again as GET; and the manifest and blob redirect caches.
func (g *Gateway) buildUpstream(_ context.Context, opts Options) (err error) {
	cfg := g.cfg
	if g.upstream, err = url.Parse(cfg.Upstream.URL); err != nil {
		return fmt.Errorf("upstream.url: %w", err)
	}
	base := opts.Transport
	if base == nil {
		t := NewUpstreamTransport(cfg.Upstream)
		base = t
		g.closers = append(g.closers, t.CloseIdleConnections)
	}
	// Each round trip to the upstream (and to the storage it redirects
	// to, with proxy_blobs) is a client span; nil tracer: base itself.
	base = g.tracer.Transport(base, "upstream")
	g.plain = timed(checkedStatus(base), func(d time.Duration) { g.metrics.upstreamLatency.Observe(d.Seconds()) }, time.Now)
	g.auth = &authHeader{creds: g.creds, clock: g.clock}
	var rt http.RoundTripper = &credentialTransport{next: g.plain, auth: g.auth, retried: g.metrics.upstreamRetries.Inc}
	blobs := rt
	if cfg.Upstream.ProxyBlobs {
		blobs = &redirectFollower{next: rt, plain: g.plain}
	}
	up := &upstreamProxy{upstream: g.upstream, prefix: cfg.Upstream.RepositoryPrefix,
		refused: g.metrics.upstreamRefused.Inc, auth: g.auth}
	g.manifests = newManifestCache(cfg.ManifestCache, g.clock, g.log, g.metrics.reg)
	g.redirects = newBlobRedirects(cfg.BlobRedirectCache, cfg.Upstream.ProxyBlobs, g.provider.RedirectExpiry, g.clock, g.metrics.reg)
	g.proxy = &forwarder{proxy: up, transport: headErrorAsGET{next: rt}, blobs: headErrorAsGET{next: blobs},
		redirects: g.redirects, manifests: g.manifests, buffers: newBufferPool(), log: g.log}
	return nil
}

// buildCatalog sets up /v2/_catalog over the lister of Options or the
// ecr source, else over the upstream's own catalog.
func (g *Gateway) buildCatalog(context.Context, Options) error {
	c := &catalog{lister: g.lister, prefix: g.cfg.Upstream.RepositoryPrefix, ttl: g.cfg.CatalogTTL, clock: g.clock}
	if c.lister == nil {
		c.lister = &RegistryLister{
			// Through the credential transport, but never following
			// redirects to another host with it.
			Client: &http.Client{Transport: &credentialTransport{next: g.plain, auth: g.auth}, Timeout: 30 * time.Second,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
			Base: g.upstream,
		}
	}
	g.catalog = c
	return nil
}

func (g *Gateway) buildTokenProxy(context.Context, Options) error {
	if g.cfg.TokenEndpoint == "" {
		return nil
	}
	target, err := url.Parse(g.cfg.TokenEndpoint)
	if err != nil {
		return fmt.Errorf("token_endpoint: %w", err)
	}
	t := NewUpstreamTransport(g.cfg.Upstream)
	t.TLSClientConfig = g.tokenTLS
	g.closers = append(g.closers, t.CloseIdleConnections)
	g.token = newTokenProxy(target, checkedStatus(t), g.clients, g.errs, g.log, g.tracer)
	return nil
}

// buildOps sets up /healthz and /readyz (the clients' listener, where the
// kubelet probes) and /metrics (metrics.listen).
func (g *Gateway) buildOps(context.Context, Options) error {
	checks := map[string]httpx.Check{"upstream_credential": func(ctx context.Context) error {
		if at, ok := g.credentialExpiry(); !ok || (!at.IsZero() && !g.clock().Before(at)) {
			return errors.New("no unexpired upstream credential")
		}
		return nil
	}}
	if g.jwks != nil {
		checks["token_keys"] = g.tokenKeysReady
	}
	g.healthz = httpx.Healthz()
	g.readyz = httpx.Readyz(checks)
	g.metricH = promhttp.HandlerFor(g.metrics.reg, promhttp.HandlerOpts{})
	return nil
}

// tokenKeysReady is the readiness check of the token service's key set.
func (g *Gateway) tokenKeysReady(ctx context.Context) error {
	if g.jwks.Len() > 0 {
		return nil
	}
	// Asking for a kid that cannot exist refetches the key set, at most
	// once per min_refetch however often this is probed: an unready
	// gateway gets no tokens that would trigger it.
	_, err := g.jwks.PublicKey(ctx, "\x00readiness")
	if g.jwks.Len() > 0 {
		return nil
	}
	if err != nil && !errors.Is(err, auth.ErrUnknownKey) {
		// The cause names the token service's internal URL and network
		// errors: it goes to the log (at most once per min_refetch, when
		// a refetch failed), not to whoever probes /readyz on the public
		// port.
		g.log.Warn("token service key set not fetched", "url", g.cfg.Keys.JWKSURL, "error", err)
	}
	return errors.New("no token signing keys")
}

// startCredentials fetches the first upstream credential and starts the
// background refresh; a failure is retried there, not fatal.
func (g *Gateway) startCredentials(ctx context.Context, _ Options) error {
	if g.source == nil {
		return nil
	}
	if err := g.source.Start(ctx); err != nil {
		g.log.Warn("no upstream credential yet; retrying in the background", "error", err)
	}
	return nil
}

// setupTLS loads the gateway's certificate and its trust in the token
// service, reporting every file that does not load, and starts following
// the certificate files until ctx ends or Close. It returns the client
// configuration towards the token service (/token and the JWKS); nil for
// the defaults (system roots, no client certificate).
func (g *Gateway) setupTLS(ctx context.Context) (*tls.Config, error) {
	c := g.cfg.TLS
	var errs []error
	if c.CertFile != "" && c.KeyFile != "" {
		s, err := tlsx.NewServer(c.ServerConfig, "", g.log)
		if err != nil {
			errs = append(errs, err)
		}
		g.tls = s
	}
	var roots *x509.CertPool
	if c.CAFile != "" {
		var err error
		if roots, err = tlsx.LoadCertPool(c.CAFile); err != nil {
			errs = append(errs, fmt.Errorf("tls.ca_file: %w", err))
		}
	}
	var clientCert *tlsx.Reloader
	if c.ClientCertFile != "" && c.ClientKeyFile != "" {
		var err error
		if clientCert, err = tlsx.NewReloader(c.ClientCertFile, c.ClientKeyFile, c.PollInterval, g.log); err != nil {
			errs = append(errs, fmt.Errorf("tls.client_cert_file, tls.client_key_file: %w", err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var tokenTLS *tls.Config
	if roots != nil || clientCert != nil {
		tokenTLS = tlsx.ClientTLSConfig(roots, clientCert)
	}
	if g.tls != nil {
		g.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gateway_tls_certificate_expiry_timestamp_seconds",
			Help: "When the served TLS certificate expires (Unix time); it moves when a renewal is loaded.",
		}, g.tls.NotAfter))
	}

	ctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if g.tls != nil {
		wg.Go(func() { g.tls.Run(ctx) })
	}
	if clientCert != nil {
		wg.Go(func() { clientCert.Run(ctx) })
	}
	g.closers = append(g.closers, func() { stop(); wg.Wait() })
	return tokenTLS, nil
}

// loadKeys builds the trusted keys of cfg: PEM files and the JWKS URL,
// which is fetched once now with client.
func loadKeys(ctx context.Context, cfg KeysConfig, client *http.Client, clock func() time.Time, log *slog.Logger) (auth.KeySource, *auth.RemoteJWKS, error) {
	var sources auth.KeySources
	if len(cfg.PublicKeys) > 0 {
		static, err := auth.LoadPublicKeys(cfg.PublicKeys...)
		if err != nil {
			return nil, nil, fmt.Errorf("keys.public_keys: %w", err)
		}
		sources = append(sources, static)
	}
	var jwks *auth.RemoteJWKS
	if cfg.JWKSURL != "" {
		jwks = auth.NewRemoteJWKS(cfg.JWKSURL, auth.RemoteJWKSOptions{Client: client, MinRefetch: cfg.MinRefetch, Clock: clock})
		if err := jwks.Refresh(ctx); err != nil {
			log.Warn("token service key set not fetched yet; retrying on demand", "url", cfg.JWKSURL, "error", err)
		}
		sources = append(sources, jwks)
	}
	if len(sources) == 1 {
		return sources[0], jwks, nil
	}
	return sources, jwks, nil
}

// Registry is the gateway's private metrics registry.
func (g *Gateway) Registry() *prometheus.Registry { return g.metrics.reg }

// Close stops the credential refresh, sends the usage events held (for at
// most 5 s) and drops idle upstream connections.
func (g *Gateway) Close() {
	for i := len(g.closers) - 1; i >= 0; i-- {
		g.closers[i]()
	}
	g.closers = nil
}

// ServerTimeouts suit the gateway: no read or write timeout, since a blob
// transfer may last long (a read deadline would also cancel the request's
// context in the middle of a stream). The headers must arrive within
// timeouts.read_header; a declared body is bounded in the handler (see
// httpx.ReadBody); timeouts.send bounds a client that stops reading (on
// Serve's listener), and idle, upstream and shutdown timeouts the rest.
func ServerTimeouts(cfg *Config) httpx.Timeouts {
	return httpx.Timeouts{ReadHeader: cfg.Timeouts.ReadHeader, Idle: cfg.Timeouts.Idle, Shutdown: cfg.ShutdownTimeout}
}

// MetricsHandler is what metrics.listen serves: /metrics and
// /debug/pprof/ (httpx.OpsHandler).
func (g *Gateway) MetricsHandler() http.Handler { return httpx.OpsHandler(g.metricH) }

// Run listens on Config.Listen and Config.Metrics.Listen and serves both
// until ctx ends, then shuts both down gracefully; when either fails the
// other is stopped too.
func (g *Gateway) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return err
	}
	mln, err := net.Listen("tcp", g.cfg.Metrics.Listen)
	if err != nil {
		ln.Close()
		return fmt.Errorf("metrics.listen: %w", err)
	}
	return httpx.RunAll(ctx,
		func(ctx context.Context) error { return g.Serve(ctx, ln) },
		func(ctx context.Context) error { return g.ServeMetrics(ctx, mln) })
}

// ServeMetrics serves MetricsHandler on ln (metrics.listen) until ctx
// ends.
func (g *Gateway) ServeMetrics(ctx context.Context, ln net.Listener) error {
	return httpx.ServeOps(ctx, ln, g.metricH, g.cfg.Timeouts.Send, g.log)
}

// listenerOptions are the limits of the clients' connections: the send
// timeout and the connection limits.
func (g *Gateway) listenerOptions() httpx.ListenerOptions {
	return httpx.ListenerOptions{
		SendTimeout:              g.cfg.Timeouts.Send,
		MaxConnections:           g.cfg.Limits.MaxConnections,
		MaxConnectionsPerAddress: g.cfg.Limits.MaxConnectionsPerAddress,
		Refused:                  g.metrics.connectionRefused,
	}
}

// Serve serves the clients on ln, with ServerTimeouts, the send timeout,
// the connection limits and HTTPS when configured, until ctx ends;
// in-flight requests get Config.ShutdownTimeout to finish. It does not
// Close the Gateway, nor serve the metrics (ServeMetrics).
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	t := ServerTimeouts(g.cfg)
	srv := httpx.NewServer(ln.Addr().String(), g.handler, t, g.log)
	// Beneath TLS: a refused connection costs no handshake, and the send
	// timeout sees the socket's progress.
	ln = httpx.WrapListener(ln, g.listenerOptions())
	if g.tls != nil {
		ln = g.tls.Listener(ln)
	}
	g.log.Info("gateway listening", slog.String("addr", ln.Addr().String()), slog.Bool("tls", g.tls != nil),
		slog.String("upstream", g.cfg.Upstream.URL))
	err := httpx.Serve(ctx, srv, ln, t.Shutdown)
	var cut *httpx.ShutdownCutError
	switch {
	case errors.Is(err, http.ErrServerClosed):
		err = nil
	case errors.As(err, &cut):
		// Blob downloads may outlast any shutdown_timeout: cutting them
		// is the stop working as configured, not a failure (clients
		// resume them elsewhere).
		g.log.Warn("shutdown_timeout reached: streams cut", slog.Int("streams", cut.Requests),
			slog.Duration("shutdown_timeout", t.Shutdown))
		err = nil
	}
	return err
}
