package tokenserver

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/license/backends"
	"github.com/acme/registry-gateway/internal/tlsx"
	"github.com/acme/registry-gateway/internal/tokenserver/admin"
	"github.com/acme/registry-gateway/internal/tracing"
	"github.com/acme/registry-gateway/pkg/auth"
)

// maxBodyBytes bounds request bodies: a token request form is a few hundred
// bytes.
const maxBodyBytes = 64 << 10

// Options are what a Config cannot say: injected dependencies. The zero
// value is usable.
type Options struct {
	// Logger receives operational logs; default slog.Default().
	Logger *slog.Logger
	// AuditLogger receives one line per issued token and per refused
	// login; default Logger.
	AuditLogger *slog.Logger
	// Clock is the time of tokens, refresh tokens, the licence cache and
	// the rate limiter; default time.Now.
	Clock func() time.Time
	// HTTPClient calls the licence API (licenses.http); default a client
	// the backend builds with the configured timeout.
	HTTPClient *http.Client
	// Backend, if set, replaces the configured licence backend (it is
	// still put behind the cache, and neither run nor closed by the
	// Server); the licenses section may then name no backend.
	Backend license.Backend
	// SigningKey, if set, replaces signing_key and signing_cert.
	SigningKey *auth.SigningKey
	// Listener, if set, is what Run serves on instead of listening on
	// Config.Listen.
	Listener net.Listener
	// MetricsListener, if set, is where Run serves the metrics instead of
	// listening on Config.Metrics.Listen.
	MetricsListener net.Listener
	// AdminListener, if set, is where Run serves the admin API instead of
	// listening on Config.Admin.Listen (which must still be set).
	AdminListener net.Listener
}

// Server is the token service.
type Server struct {
	cfg   Config
	opts  Options
	log   *slog.Logger
	audit *slog.Logger
	now   func() time.Time

	key      *auth.SigningKey
	audience jwt.ClaimStrings
	jwks     []byte
	sealer   *refreshSealer

	licenses *backends.Licenses
	limiter  *loginLimiter // nil when rate limiting is disabled
	clients  *httpx.ClientAddr
	metrics  *metrics
	tls      *tlsx.Server // nil: plain HTTP
	usage    *usageIntake // nil: usage.secret_file not set

	tracer        *tracing.Tracer // nil without tracing.endpoint: no spans
	traceShutdown func()          // flushes the spans held; never nil once New set up tracing

	// The admin API (admin.listen); nil when not configured.
	adminDB      *accounts.DB
	adminTLS     *tlsx.Server // nil: plain HTTP
	adminHandler http.Handler

	closeOnce sync.Once

	errs      httpx.Handler
	challenge string // WWW-Authenticate of a 401
	// The refusals a customer acts on, pointing at customer_help_url.
	badCredentials, emptyPassword string
	handler                       http.Handler
}

// New builds a Server: it loads the signing key, the refresh token key and
// the licence backend. Every problem of cfg, including files that do not
// load, is reported in one error. cfg is not modified (New fills the
// defaults into its own copy). ctx bounds the building (connecting to the
// account database of licenses.sql), not the Server's life: Run's ctx does
// that. Close releases what New opened.
func New(ctx context.Context, config *Config, opts Options) (*Server, error) {
	if config == nil {
		return nil, errors.New("tokenserver: no configuration")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg := *config
	cfg.SetDefaults()
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.AuditLogger == nil {
		opts.AuditLogger = opts.Logger
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	s := &Server{
		cfg:      cfg,
		opts:     opts,
		log:      opts.Logger,
		audit:    opts.AuditLogger,
		now:      opts.Clock,
		audience: jwt.ClaimStrings{cfg.Service},
		errs:     httpx.Handler{Log: opts.Logger},
	}
	s.challenge = fmt.Sprintf("Basic realm=%q", cfg.Service)
	s.badCredentials = s.withHelp("invalid username or API token", "bad-credentials")
	s.emptyPassword = emptyPasswordMessage
	if help := cfg.helpURL(); help != "" {
		s.emptyPassword = strings.TrimSuffix(emptyPasswordMessage, emptyPasswordHelp) + "see " + help + "#kubernetes"
	}

	errs := cfg.problems(opts.SigningKey == nil, opts.Backend == nil)
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	s.metrics = newMetrics(func() int { return s.limiter.Len() })
	add(s.loadKeys())
	add(s.buildLicenses(ctx))
	var err error
	if s.clients, err = httpx.NewClientAddr(cfg.TrustedProxies); err != nil {
		errs = append(errs, fmt.Errorf("trusted_proxies: %w", err))
	}
	if cfg.TLS.CertFile != "" && cfg.TLS.KeyFile != "" {
		s.tls, err = tlsx.NewServer(cfg.TLS.ServerConfig, cfg.TLS.ClientCAFile, opts.Logger)
		add(err)
	}
	if cfg.Admin.Listen != "" && cfg.sqlConfig() != nil {
		add(s.openAdmin(ctx))
	}
	add(s.openUsage(ctx))
	if len(cfg.Tracing.Problems()) == 0 { // else reported with the others above
		s.tracer, s.traceShutdown, err = tracing.Setup(ctx, cfg.Tracing, tracing.Options{Service: "tokenserver", Logger: opts.Logger})
		add(err)
	}
	if len(errs) > 0 {
		s.Close() // what the licence backend opened (the account database)
		return nil, errors.Join(errs...)
	}
	// What /readyz answers, as a series: a Kubernetes probe only takes an
	// unready pod out of the Service, and nobody is told; this is what the
	// TokenServiceUnready alert (deploy/monitoring/alerts.yaml) watches.
	checks := s.readyChecks()
	s.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tokenserver_ready",
		Help: "1 while /readyz answers 200 (a signing key, and the licence backend answering or a recent answer cached), else 0.",
	}, func() float64 {
		for _, check := range checks {
			if check(context.Background()) != nil {
				return 0
			}
		}
		return 1
	}))
	if s.tls != nil {
		s.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tokenserver_tls_certificate_expiry_timestamp_seconds",
			Help: "When the served TLS certificate expires (Unix time); it moves when a renewal is loaded.",
		}, s.tls.NotAfter))
	}
	s.limiter = newLoginLimiter(cfg.RateLimit, s.now)
	s.handler = s.withUsage(s.routes())
	if s.adminDB != nil {
		if s.adminHandler, err = s.adminRoutes(); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// openAdmin connects the admin API to the account database, a pool of its
// own beside the licence backend's, and sets up its HTTPS: the service's
// certificate, without the client certificates of tls.client_ca_file
// (those are the gateway's; admin clients present admin keys).
func (s *Server) openAdmin(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	db, err := accounts.Open(ctx, s.cfg.sqlConfig(), accounts.Options{Clock: s.now})
	if err != nil {
		return fmt.Errorf("admin.listen: %w", err)
	}
	if err := db.CheckSchema(ctx); err != nil {
		db.Close()
		return fmt.Errorf("admin.listen: %w", err)
	}
	s.adminDB = db
	if s.cfg.TLS.CertFile != "" && s.cfg.TLS.KeyFile != "" {
		if s.adminTLS, err = tlsx.NewServer(s.cfg.TLS.ServerConfig, "", s.log); err != nil {
			return fmt.Errorf("admin.listen: %w", err)
		}
	}
	return nil
}

// adminRoutes is the admin API, and the console when enabled, with the
// service's access log and panic recovery.
func (s *Server) adminRoutes() (http.Handler, error) {
	o := admin.Options{DB: s.adminDB, Log: s.log, ClientAddr: s.clients.Of, Clock: s.now,
		ConsoleURL: s.cfg.Console.PublicURL, SignInLinkTTL: s.cfg.Console.SignInLinkTTL}
	if s.limiter != nil {
		o.Limiter = s.limiter
	}
	h := admin.Handler(o)
	if s.cfg.Console.Enabled {
		c, err := s.openConsole()
		if err != nil {
			return nil, err
		}
		h = withConsole(h, c.Handler())
	}
	return httpx.Chain(h, httpx.AccessLog(s.log), httpx.Recover(s.errs)), nil
}

// AdminHandler is what admin.listen serves; nil when it is not
// configured.
func (s *Server) AdminHandler() http.Handler { return s.adminHandler }

// loadKeys loads the signing key and the keys of a rotation, builds the
// JWKS document once, and sets up the refresh token sealer.
func (s *Server) loadKeys() error {
	var errs []error
	s.key = s.opts.SigningKey
	if s.key == nil && s.cfg.SigningKey != "" {
		k, err := auth.LoadSigningKey(s.cfg.SigningKey, s.cfg.SigningCert)
		if err != nil {
			errs = append(errs, fmt.Errorf("signing_key: %w", err))
		}
		s.key = k
	}
	// Published: the signing key, then publish_keys. Refresh tokens open
	// with every private key of a rotation (publish_keys and
	// previous_signing_keys), so that they survive the switch of signer.
	var pubs []crypto.PublicKey
	if s.key != nil {
		pubs = append(pubs, s.key.Signer.Public())
	}
	var others []crypto.Signer
	for i, path := range s.cfg.PublishKeys {
		signer, keys, err := loadRotationKey(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("publish_keys[%d]: %w", i, err))
			continue
		}
		if signer != nil {
			others = append(others, signer)
		}
		pubs = append(pubs, keys...)
	}
	for i, path := range s.cfg.PreviousSigningKeys {
		signer, _, err := loadRotationKey(path)
		if err == nil && signer == nil {
			err = fmt.Errorf("%s: no private key in PEM data", path)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("previous_signing_keys[%d]: %w", i, err))
			continue
		}
		others = append(others, signer)
	}
	if s.key != nil {
		set, err := auth.NewJWKS(uniqueKeys(pubs)...)
		if err == nil {
			s.jwks, err = json.Marshal(set)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("jwks: %w", err))
		}
	}

	var key []byte
	var openOnly [][]byte
	switch {
	case s.cfg.RefreshTokenKeyFile != "":
		k, err := loadRefreshKey(s.cfg.RefreshTokenKeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("refresh_token_key_file: %w", err))
		}
		key = k
	case s.key != nil:
		k, err := deriveRefreshKey(s.key.Signer)
		if err != nil {
			errs = append(errs, err)
		}
		key = k
		for _, o := range others {
			k, err := deriveRefreshKey(o)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			openOnly = append(openOnly, k)
		}
	}
	if key != nil {
		sealer, err := newRefreshSealer(key, openOnly...)
		if err != nil {
			errs = append(errs, fmt.Errorf("refresh_token_key_file: %w", err))
		}
		s.sealer = sealer
	}
	return errors.Join(errs...)
}

// loadRotationKey reads a PEM file of publish_keys or
// previous_signing_keys: a private key (returned with its public half) or
// public keys and certificates.
func loadRotationKey(path string) (crypto.Signer, []crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	if bytes.Contains(data, []byte("PRIVATE KEY-----")) {
		signer, err := auth.ParsePrivateKeyPEM(data)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		return signer, []crypto.PublicKey{signer.Public()}, nil
	}
	keys, err := auth.ParsePublicKeysPEM(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return nil, keys, nil
}

// uniqueKeys drops repeated keys (the signing key listed again in
// publish_keys, a key given both as certificate and public key), keeping
// the first: a JWKS with one kid twice confuses verifiers.
func uniqueKeys(pubs []crypto.PublicKey) []crypto.PublicKey {
	seen := map[string]bool{}
	out := pubs[:0:0]
	for _, p := range pubs {
		kid, err := auth.Thumbprint(p)
		if err == nil && seen[kid] {
			continue
		}
		seen[kid] = true
		out = append(out, p)
	}
	return out
}

// buildLicenses opens the configured licence backend (or Options.Backend)
// behind the cache, with the metrics as its observer.
func (s *Server) buildLicenses(ctx context.Context) error {
	lic, err := backends.Open(ctx, s.cfg.Licenses,
		license.Env{Clock: s.now, Logger: s.log, HTTPClient: s.opts.HTTPClient},
		backends.Options{Backend: s.opts.Backend, Observer: s.metrics})
	s.licenses = lic
	return err
}

// routes assembles the router and its middleware, all in one place.
func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(
		httpx.AccessLog(s.log),
		// Inside the access log (its recorder has the status) and outside
		// Recover (a panic is answered 500 before the span ends).
		s.tracer.Middleware(spanName),
		httpx.Recover(s.errs),
		httpx.LimitBody(s.errs, maxBodyBytes),
		s.clients.WarnUntrustedProxy(s.log, "the token service's trusted_proxies"),
	)
	r.NotFound(s.errs.Func(func(http.ResponseWriter, *http.Request) error {
		return httpx.Errorf(http.StatusNotFound, "NOT_FOUND", "no such endpoint")
	}).ServeHTTP)
	r.MethodNotAllowed(s.errs.Func(func(_ http.ResponseWriter, r *http.Request) error {
		allow := "GET"
		if r.URL.Path == "/token" {
			allow = "GET, POST"
		}
		return httpx.Errorf(http.StatusMethodNotAllowed, httpx.CodeUnsupported, "method not allowed").WithHeader("Allow", allow)
	}).ServeHTTP)
	r.Get("/token", s.getToken)
	r.Post("/token", s.postToken)
	r.Get("/.well-known/jwks.json", s.serveJWKS)
	r.Method(http.MethodGet, "/healthz", httpx.Healthz())
	r.Method(http.MethodGet, "/readyz", httpx.Readyz(s.readyChecks()))
	// No /metrics here: it names every client's traffic, and is served on
	// metrics.listen only (MetricsHandler).
	return r
}

// readyChecks are what /readyz answers by, and tokenserver_ready reads.
func (s *Server) readyChecks() map[string]httpx.Check {
	return map[string]httpx.Check{
		"signing_key": func(context.Context) error {
			if s.key == nil {
				return errors.New("no signing key")
			}
			return nil
		},
		"licenses": func(context.Context) error {
			if !s.licenses.Healthy() {
				return errors.New("licence backend unavailable and nothing cached recently")
			}
			return nil
		},
	}
}

// spanName names a request's span by its route ("POST /token"), not its
// path: a path that matched no route is "other".
func spanName(r *http.Request) string {
	pattern := "other"
	if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
		pattern = rc.RoutePattern()
	}
	return r.Method + " " + pattern
}

// MetricsHandler is what metrics.listen serves: /metrics and
// /debug/pprof/ (httpx.OpsHandler).
func (s *Server) MetricsHandler() http.Handler { return httpx.OpsHandler(s.metrics.handler()) }

func (s *Server) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(s.jwks)
}

// Handler returns the service's routes with their middleware.
func (s *Server) Handler() http.Handler { return s.handler }

// KeyID is the kid of the tokens the server signs.
func (s *Server) KeyID() string { return s.key.KeyID }

// JWKS is the document served at /.well-known/jwks.json.
func (s *Server) JWKS() []byte { return s.jwks }

// Close releases what New acquired: the account database's connections
// (licenses.sql) and the idle connections of the licence API client New
// built. It does not stop a Run or Serve in progress (their ctx does); call
// it once they have returned. A second call does nothing. A database that
// fails to close is logged: the caller is shutting down and can do nothing
// else about it (the gateway's Close has the same shape).
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		if s.licenses != nil {
			s.licenses.Close()
		}
		if s.adminDB != nil {
			if err := s.adminDB.Close(); err != nil {
				s.log.Warn("closing the admin API's account database", slog.Any("error", err))
			}
		}
		s.closeUsage()
		if s.traceShutdown != nil {
			s.traceShutdown() // last: the spans of the requests above are flushed
		}
	})
}

// Watch does the background work a Handler needs until ctx ends: it polls
// the licence file for changes, or the account database's change counter
// (and writes last_used), prunes the usage store past its retention
// (usage.secret_file), and probes a licence backend that failed so that
// /readyz recovers without logins. Serve and Run call it; call it yourself
// only when serving Handler some other way. Without it the sql backend
// serves no login from the cache.
func (s *Server) Watch(ctx context.Context) error {
	if s.usage != nil {
		var wg sync.WaitGroup
		defer wg.Wait()
		ctx, stop := context.WithCancel(ctx)
		defer stop() // runs before wg.Wait
		wg.Go(func() { s.usage.runRetention(ctx) })
	}
	return s.licenses.Watch(ctx)
}

// Run listens on Config.Listen and Config.Metrics.Listen (or uses
// Options.Listener and Options.MetricsListener) and serves both until ctx
// ends, then shuts both down gracefully; when either fails the other is
// stopped too.
func (s *Server) Run(ctx context.Context) error {
	ln, mln, aln := s.opts.Listener, s.opts.MetricsListener, s.opts.AdminListener
	closeAll := func() {
		for _, l := range []net.Listener{ln, mln, aln} {
			if l != nil {
				l.Close()
			}
		}
	}
	var err error
	if ln == nil {
		if ln, err = net.Listen("tcp", s.cfg.Listen); err != nil {
			closeAll()
			return err
		}
	}
	if mln == nil {
		if mln, err = net.Listen("tcp", s.cfg.Metrics.Listen); err != nil {
			closeAll()
			return fmt.Errorf("metrics.listen: %w", err)
		}
	}
	serves := []func(context.Context) error{
		func(ctx context.Context) error { return s.Serve(ctx, ln) },
		func(ctx context.Context) error { return s.ServeMetrics(ctx, mln) },
	}
	if s.adminHandler != nil {
		if aln == nil {
			if aln, err = net.Listen("tcp", s.cfg.Admin.Listen); err != nil {
				closeAll()
				return fmt.Errorf("admin.listen: %w", err)
			}
		}
		serves = append(serves, func(ctx context.Context) error { return s.ServeAdmin(ctx, aln) })
	} else if aln != nil {
		aln.Close()
	}
	return httpx.RunAll(ctx, serves...)
}

// ServeAdmin serves AdminHandler on ln (admin.listen) until ctx ends, with
// the service's timeouts and send timeout, over HTTPS when tls is set.
func (s *Server) ServeAdmin(ctx context.Context, ln net.Listener) error {
	if s.adminHandler == nil {
		return errors.New("admin.listen is not configured")
	}
	srv := httpx.NewServer(ln.Addr().String(), s.adminHandler, s.cfg.Timeouts.httpx(), s.log)
	ln = httpx.WrapListener(ln, httpx.ListenerOptions{SendTimeout: s.cfg.Timeouts.Send})
	var wg sync.WaitGroup
	defer wg.Wait()
	if s.adminTLS != nil {
		tlsCtx, stop := context.WithCancel(ctx)
		defer stop() // runs before wg.Wait
		wg.Go(func() { s.adminTLS.Run(tlsCtx) })
		ln = s.adminTLS.Listener(ln)
	}
	s.log.Info("admin API listening", slog.String("addr", ln.Addr().String()), slog.Bool("tls", s.adminTLS != nil), slog.String("prefix", admin.Prefix))
	err := httpx.Serve(ctx, srv, ln, s.cfg.Timeouts.Shutdown)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// ServeMetrics serves MetricsHandler on ln (metrics.listen) until ctx
// ends.
func (s *Server) ServeMetrics(ctx context.Context, ln net.Listener) error {
	return httpx.ServeOps(ctx, ln, s.metrics.handler(), s.cfg.Timeouts.Send, s.log)
}

// Serve serves the clients on ln until ctx ends, with the server timeouts,
// the send timeout and the connection limits; in-flight requests get
// timeouts.shutdown to finish. It does not serve the metrics
// (ServeMetrics).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	watchCtx, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.Watch(watchCtx); err != nil {
			s.log.Error("licence watch stopped", slog.Any("error", err))
		}
	})
	defer wg.Wait()
	defer stopWatch() // runs before wg.Wait

	srv := httpx.NewServer(ln.Addr().String(), s.handler, s.cfg.Timeouts.httpx(), s.log)
	// Beneath TLS: a refused connection costs no handshake, and the send
	// timeout sees the socket's progress. The whole-answer write timeout
	// (timeouts.write) still holds: the send timeout never extends it.
	ln = httpx.WrapListener(ln, httpx.ListenerOptions{
		SendTimeout:              s.cfg.Timeouts.Send,
		MaxConnections:           s.cfg.Limits.MaxConnections,
		MaxConnectionsPerAddress: s.cfg.Limits.MaxConnectionsPerAddress,
		Refused:                  s.metrics.connectionRefused,
	})
	if s.tls != nil {
		// The certificate files are followed while serving.
		wg.Go(func() { s.tls.Run(watchCtx) })
		ln = s.tls.Listener(ln)
	}
	s.log.Info("token service listening", slog.String("addr", ln.Addr().String()),
		slog.Bool("tls", s.tls != nil), slog.Bool("client_certificates", s.cfg.TLS.ClientCAFile != ""),
		slog.String("service", s.cfg.Service), slog.String("issuer", s.cfg.Issuer),
		slog.String("kid", s.key.KeyID), slog.String("alg", s.key.Method.Alg()))
	err := httpx.Serve(ctx, srv, ln, s.cfg.Timeouts.Shutdown)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
