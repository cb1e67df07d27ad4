// Package devstack runs the whole product on one machine, in one process,
// for `make run` and for the tests that drive it with real clients: an
// upstream registry (distribution, filesystem storage, htpasswd), the token
// service with the file licence backend, and the gateway in front, each on
// its own localhost port, configured by the committed demo configuration
// files (deploy/*.yaml) read with the services' own loaders.
//
// Nothing here is used in production; it exists so that a fresh clone needs
// neither Docker nor an AWS account to see the product work.
package devstack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/acme/registry-gateway/internal/devcert"
	"github.com/acme/registry-gateway/internal/embedreg"
	"github.com/acme/registry-gateway/internal/gateway"
	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/internal/license/filebackend"
	"github.com/acme/registry-gateway/internal/tokencli"
	"github.com/acme/registry-gateway/internal/tokenserver"
	"github.com/acme/registry-gateway/pkg/upstream/static"
)

// The demo account of deploy/licenses.yaml. The file holds only the hash of
// the API token, so the token itself is repeated here to print the commands.
const (
	DemoUser  = "demo@example.com"
	DemoToken = "demo-api-token"
)

// Demo repositories: the account holds the first channel, not the second.
const (
	LicensedRepo   = "stable/hello"
	UnlicensedRepo = "beta/hello"
)

// Options of Start. Zero values read the committed configuration.
type Options struct {
	// Dir is what relative paths in the configuration files are relative
	// to: the repository root. Default ".".
	Dir string
	// TokenServerConfig and GatewayConfig are the configuration files,
	// relative to Dir; default deploy/tokenserver.yaml, deploy/gateway.yaml.
	TokenServerConfig string
	GatewayConfig     string
	// UpstreamHtpasswd is the htpasswd file of the upstream registry; the
	// gateway's upstream.static credential must be in it. Default
	// deploy/upstream.htpasswd.
	UpstreamHtpasswd string
	// DataDir holds the upstream registry's storage; default data/registry.
	DataDir string
	// BinDir holds the built commands (tokenserver) the printed lines run,
	// relative to Dir; default bin.
	BinDir string
	// Addresses override the listen addresses of the configuration files
	// (gateway listen, token service listen, the host of the gateway's
	// upstream.url); "127.0.0.1:0" picks a free port.
	GatewayAddr, TokenServerAddr, UpstreamAddr string
	// GatewayMetricsAddr and TokenServerMetricsAddr are where the two
	// services serve /metrics and /debug/pprof/, in place of their
	// metrics.listen; default "127.0.0.1:0", a free port each, so that
	// stacks (and tests) side by side never collide on a fixed port.
	GatewayMetricsAddr, TokenServerMetricsAddr string
	// UpstreamHandler, when set, wraps the upstream registry's handler:
	// the real-client tests put an upstream with the OCI referrers API
	// (which distribution lacks) in front of it this way.
	UpstreamHandler func(http.Handler) http.Handler
	// AdminAddr is where the token service serves the admin API and the
	// console when its configuration has admin.listen; default that.
	AdminAddr string
	// NoSeed skips pushing the demo images.
	NoSeed bool
	// TLS serves the gateway and the token service over HTTPS only, with
	// a development CA and a certificate for localhost made under
	// CertsDir when missing (`make run TLS=1`).
	TLS bool
	// CertsDir holds the development CA and certificates; default certs.
	CertsDir string
	// Logger receives the services' logs; default discards them.
	Logger *slog.Logger
	// DemoToken is the demo account's API token, for the printed
	// commands; default DemoToken (the file backend's). With the sql
	// backend it is what SQLDemoAccount returned.
	DemoToken string
}

// Stack is a running stack.
type Stack struct {
	// GatewayHost is host:port as clients name the registry, on the name
	// localhost (see the realm note in deploy/gateway.yaml).
	GatewayHost string
	// GatewayURL, TokenServerURL and UpstreamURL are base URLs.
	GatewayURL, TokenServerURL, UpstreamURL string
	// GatewayMetricsURL and TokenServerMetricsURL are the base URLs of the
	// services' operators' listeners (/metrics, /debug/pprof/).
	GatewayMetricsURL, TokenServerMetricsURL string
	// Realm and JWKSURL are the token endpoint clients use and the token
	// service's key set.
	Realm, JWKSURL string
	// Service and Issuer are what tokens carry in aud and iss.
	Service, Issuer string
	// DataDir is the upstream's storage.
	DataDir string
	// Root and BinDir are Options.Dir and Options.BinDir, absolute: every
	// path a printed command names is absolute, so that it works pasted
	// from any directory.
	Root, BinDir string
	// Keys is set when Start had to generate the signing key.
	Keys *tokencli.KeygenResult
	// TLS is set when the stack serves HTTPS: the development CA and
	// certificates.
	TLS *devcert.Files
	// Images are the demo images pushed, by reference.
	Images map[string]string // "localhost:PORT/stable/hello:1.0" → digest
	// DemoToken is the demo account's API token.
	DemoToken string
	// AccountsConfig is the token service configuration file when it
	// uses the sql licence backend, for the accounts commands; else "".
	AccountsConfig string
	// AdminURL is the admin API's and the console's listener; "" when
	// admin.listen is not configured.
	AdminURL string
	// Console is the web console with its sign-ins; nil when it is not
	// enabled (it needs the sql licence backend).
	Console *Console

	upstreamUser, upstreamPasswordFile string

	done chan struct{}
	err  error
}

// Wait blocks until every server has shut down (after the context given to
// Start ends) and returns the first error any of them stopped with.
func (s *Stack) Wait() error {
	<-s.done
	return s.err
}

// Start brings the stack up and returns once every service accepts
// connections and the demo images are pushed. Cancelling ctx stops it; Wait
// says when it has stopped.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	opts.defaults()
	log := opts.Logger
	// Absolute, not only joined to Dir: the banner prints these paths, and a
	// command pasted into a shell elsewhere must still find them.
	root, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(root, p)
	}

	tsCfg, err := tokenserver.LoadConfig(abs(opts.TokenServerConfig))
	if err != nil {
		return nil, err
	}
	gwCfg, err := gateway.LoadConfig(abs(opts.GatewayConfig))
	if err != nil {
		return nil, err
	}
	up, ok := gwCfg.Upstream.Providers["static"].(*static.Config)
	if !ok {
		return nil, errors.New("the gateway configuration must use upstream.static (the local upstream has no ECR API)")
	}
	if gwCfg.Service != tsCfg.Service || gwCfg.Issuer != tsCfg.Issuer {
		return nil, fmt.Errorf("gateway service/issuer %q/%q differ from the token service's %q/%q",
			gwCfg.Service, gwCfg.Issuer, tsCfg.Service, tsCfg.Issuer)
	}
	resolvePaths(tsCfg, gwCfg, abs)

	st := &Stack{
		Service: gwCfg.Service, Issuer: gwCfg.Issuer, DataDir: abs(opts.DataDir),
		Root: root, BinDir: abs(opts.BinDir),
		upstreamUser: up.Username, upstreamPasswordFile: up.PasswordFile,
		DemoToken: opts.DemoToken,
		done:      make(chan struct{}),
	}
	if _, sql := tsCfg.Licenses.Backends["sql"]; sql {
		st.AccountsConfig = abs(opts.TokenServerConfig)
	}
	if st.Keys, err = ensureKeys(tsCfg); err != nil {
		return nil, err
	}
	if opts.TLS {
		// Absolute (abs): the printed commands name the CA file.
		if st.TLS, err = devcert.Ensure(abs(opts.CertsDir)); err != nil {
			return nil, fmt.Errorf("development certificates: %w", err)
		}
		useDevTLS(tsCfg, gwCfg, st.TLS)
	}

	// Listen on all three first, so that every URL below is known and
	// every service can be reached as soon as the next one starts.
	upstreamURL, err := url.Parse(gwCfg.Upstream.URL)
	if err != nil {
		return nil, err
	}
	addrs := []*string{
		or(&opts.UpstreamAddr, upstreamURL.Host),
		or(&opts.TokenServerAddr, tsCfg.Listen),
		or(&opts.GatewayAddr, gwCfg.Listen),
		&opts.TokenServerMetricsAddr,
		&opts.GatewayMetricsAddr,
	}
	if tsCfg.Admin.Listen != "" {
		addrs = append(addrs, or(&opts.AdminAddr, tsCfg.Admin.Listen))
	}
	var lns []net.Listener
	defer func() {
		if err != nil {
			for _, ln := range lns {
				ln.Close()
			}
		}
	}()
	for _, a := range addrs {
		ln, err := net.Listen("tcp", *a)
		if err != nil {
			return nil, fmt.Errorf("%w (is another stack running? pick other ports with the -*-addr flags)", err)
		}
		lns = append(lns, ln)
	}
	upLn, tsLn, gwLn, tsMln, gwMln := lns[0], lns[1], lns[2], lns[3], lns[4]
	var adminLn net.Listener
	if len(lns) > 5 {
		adminLn = lns[5]
	}
	_, gwPort, _ := net.SplitHostPort(gwLn.Addr().String())

	// The configured URLs with the ports actually bound.
	tsCfg.Listen = tsLn.Addr().String()
	gwCfg.Listen = gwLn.Addr().String()
	tsCfg.Metrics.Listen = tsMln.Addr().String()
	gwCfg.Metrics.Listen = gwMln.Addr().String()
	st.TokenServerMetricsURL = "http://" + tsMln.Addr().String()
	st.GatewayMetricsURL = "http://" + gwMln.Addr().String()
	scheme := "http"
	if opts.TLS {
		scheme = "https"
	}
	st.GatewayHost = "localhost:" + gwPort
	st.GatewayURL = scheme + "://" + st.GatewayHost
	st.TokenServerURL = scheme + "://" + tsLn.Addr().String()
	st.UpstreamURL = "http://" + upLn.Addr().String()
	gwCfg.Realm = withHost(gwCfg.Realm, scheme, st.GatewayHost)
	if gwCfg.TokenEndpoint != "" {
		gwCfg.TokenEndpoint = withHost(gwCfg.TokenEndpoint, scheme, tsLn.Addr().String())
	}
	if gwCfg.Keys.JWKSURL != "" {
		gwCfg.Keys.JWKSURL = withHost(gwCfg.Keys.JWKSURL, scheme, tsLn.Addr().String())
	}
	gwCfg.Upstream.URL = st.UpstreamURL
	if st.AccountsConfig != "" && gwCfg.Usage.Endpoint == "" && tsCfg.Usage.SecretFile == "" {
		// On SQL accounts the demo records usage as a deployment would:
		// the gateway sends its events to the token service's intake, with
		// a secret made for this data directory.
		secret, err := ensureUsageSecret(filepath.Join(filepath.Dir(abs(opts.DataDir)), "usage.secret"))
		if err != nil {
			return nil, err
		}
		tsCfg.Usage.SecretFile = secret
		tsCfg.SetDefaults()
		gwCfg.Usage.Endpoint = st.TokenServerURL + tokenserver.UsagePath
		gwCfg.Usage.SecretFile = secret
		gwCfg.SetDefaults()
	}
	if adminLn != nil {
		tsCfg.Admin.Listen = adminLn.Addr().String()
		_, adminPort, _ := net.SplitHostPort(tsCfg.Admin.Listen)
		st.AdminURL = scheme + "://localhost:" + adminPort
		if tsCfg.Console.Enabled {
			configureConsole(tsCfg, gwCfg, st, "localhost:"+adminPort, scheme)
		}
	}
	st.Realm = gwCfg.Realm
	st.JWKSURL = st.TokenServerURL + "/.well-known/jwks.json"
	if err := gwCfg.Validate(); err != nil {
		return nil, fmt.Errorf("gateway configuration with the bound addresses: %w", err)
	}
	if err := tsCfg.Validate(); err != nil {
		return nil, fmt.Errorf("token service configuration with the bound addresses: %w", err)
	}

	// From here on the services run under runCtx, so that a failed start
	// stops what already runs.
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var errMu sync.Mutex
	fail := func(name string, e error) {
		if e == nil || errors.Is(e, http.ErrServerClosed) {
			return
		}
		errMu.Lock()
		if st.err == nil {
			st.err = fmt.Errorf("%s: %w", name, e)
		}
		errMu.Unlock()
		cancel() // one service down takes the stack down: no half stack
	}
	go func() {
		<-runCtx.Done()
		wg.Wait()
		close(st.done)
	}()
	defer func() {
		if err != nil {
			cancel()
			<-st.done
		}
	}()

	// 1. Upstream registry.
	if err := os.MkdirAll(st.DataDir, 0o755); err != nil {
		return nil, err
	}
	reg, err := embedreg.New(runCtx, embedreg.Options{
		RootDir:  st.DataDir,
		Htpasswd: &embedreg.HtpasswdAuth{Realm: "upstream", Path: abs(opts.UpstreamHtpasswd)},
		// distribution logs every 404 (a push probes for tags first) at
		// level error; its access log is replaced by ours below.
		LogLevel: "fatal",
	})
	if err != nil {
		return nil, err
	}
	if opts.UpstreamHandler != nil {
		reg = opts.UpstreamHandler(reg)
	}
	upLog := log.With(slog.String("component", "upstream"))
	upSrv := embedreg.NewServer(upLn.Addr().String(), reg, upLog)
	lns = slices.DeleteFunc(lns, func(l net.Listener) bool { return l == upLn }) // served from now on: Serve closes it
	wg.Go(func() { fail("upstream", httpx.Serve(runCtx, upSrv, upLn, embedreg.Timeouts.Shutdown)) })

	// 2. Token service, with its metrics listener.
	tsLog := log.With(slog.String("component", "tokenserver"))
	ts, err := tokenserver.New(runCtx, tsCfg, tokenserver.Options{Logger: tsLog, Listener: tsLn, MetricsListener: tsMln, AdminListener: adminLn})
	if err != nil {
		return nil, err
	}
	lns = slices.DeleteFunc(lns, func(l net.Listener) bool { return l == tsLn || l == tsMln || (adminLn != nil && l == adminLn) })
	wg.Go(func() {
		defer ts.Close() // with licenses.sql, the account database's connections
		fail("tokenserver", ts.Run(runCtx))
	})

	// 3. Gateway: it fetches the JWKS from the token service on New.
	gwLog := log.With(slog.String("component", "gateway"))
	gw, err := gateway.New(runCtx, gwCfg, gateway.Options{Logger: gwLog})
	if err != nil {
		return nil, err
	}
	lns = slices.DeleteFunc(lns, func(l net.Listener) bool { return l == gwLn || l == gwMln })
	var gwWG sync.WaitGroup
	gwWG.Go(func() { fail("gateway", gw.Serve(runCtx, gwLn)) })
	gwWG.Go(func() { fail("gateway metrics", gw.ServeMetrics(runCtx, gwMln)) })
	wg.Go(func() {
		defer gw.Close()
		gwWG.Wait()
	})

	if tsCfg.Console.Enabled && st.AccountsConfig != "" {
		keyFile := filepath.Join(filepath.Dir(abs(opts.DataDir)), "admin.key")
		if st.Console, err = consoleSignIns(runCtx, abs(opts.TokenServerConfig), keyFile, tsCfg.Console.PublicURL); err != nil {
			return nil, fmt.Errorf("console sign-ins: %w", err)
		}
	}

	if !opts.NoSeed {
		password, err := readPassword(st.upstreamPasswordFile)
		if err != nil {
			return nil, err
		}
		images, err := Seed(runCtx, upLn.Addr().String(), st.upstreamUser, password)
		if err != nil {
			return nil, fmt.Errorf("pushing the demo images: %w", err)
		}
		st.Images = map[string]string{}
		for ref, digest := range images {
			st.Images[st.GatewayHost+"/"+ref] = digest
		}
	}
	return st, nil
}

func (o *Options) defaults() {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&o.Dir, ".")
	def(&o.TokenServerConfig, "deploy/tokenserver.yaml")
	def(&o.GatewayConfig, "deploy/gateway.yaml")
	def(&o.UpstreamHtpasswd, "deploy/upstream.htpasswd")
	def(&o.DataDir, "data/registry")
	def(&o.BinDir, "bin")
	def(&o.DemoToken, DemoToken)
	def(&o.CertsDir, "certs")
	def(&o.GatewayMetricsAddr, "127.0.0.1:0")
	def(&o.TokenServerMetricsAddr, "127.0.0.1:0")
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// or returns p after filling it with v when empty.
func or(p *string, v string) *string {
	if *p == "" {
		*p = v
	}
	return p
}

// resolvePaths makes the files the configurations name relative to Dir, the
// way they are when the services run from the repository root.
func resolvePaths(ts *tokenserver.Config, gw *gateway.Config, abs func(string) string) {
	ts.SigningKey = abs(ts.SigningKey)
	ts.SigningCert = abs(ts.SigningCert)
	ts.RefreshTokenKeyFile = abs(ts.RefreshTokenKeyFile)
	if f, ok := ts.Licenses.Backends["file"].(*filebackend.Config); ok {
		f.Path = abs(f.Path)
	}
	for i, p := range ts.PublishKeys {
		ts.PublishKeys[i] = abs(p)
	}
	for i, p := range gw.Keys.PublicKeys {
		gw.Keys.PublicKeys[i] = abs(p)
	}
	if up, ok := gw.Upstream.Providers["static"].(*static.Config); ok {
		up.PasswordFile = abs(up.PasswordFile)
	}
}

// ensureKeys generates the signing key (and certificate, public key, JWKS)
// next to where the configuration expects it, unless it is there.
func ensureKeys(cfg *tokenserver.Config) (*tokencli.KeygenResult, error) {
	_, err := os.Stat(cfg.SigningKey)
	if err == nil {
		if cfg.SigningCert != "" {
			if _, err := os.Stat(cfg.SigningCert); err != nil {
				return nil, fmt.Errorf("signing key %s is there but its certificate is not (%v): run `bin/tokenserver keygen -dir %s -force` to make both",
					cfg.SigningKey, err, filepath.Dir(cfg.SigningKey))
			}
		}
		return nil, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	dir := filepath.Dir(cfg.SigningKey)
	if filepath.Base(cfg.SigningKey) != tokencli.KeyFile ||
		(cfg.SigningCert != "" && cfg.SigningCert != filepath.Join(dir, tokencli.CertFile)) {
		return nil, fmt.Errorf("no signing key at %s, and keygen writes %s and %s: generate the key yourself or point signing_key there",
			cfg.SigningKey, tokencli.KeyFile, tokencli.CertFile)
	}
	return tokencli.Keygen(tokencli.KeygenOptions{Dir: dir})
}

// useDevTLS makes both services serve HTTPS with the development
// certificate, and the gateway trust the development CA for the token
// service. The token service does not require the gateway's client
// certificate here, so that the printed operator commands can fetch its
// JWKS with --cacert alone; production adds tls.client_ca_file (docs/tls.md).
func useDevTLS(ts *tokenserver.Config, gw *gateway.Config, f *devcert.Files) {
	ts.TLS.CertFile, ts.TLS.KeyFile = f.ServerCert, f.ServerKey
	gw.TLS.CertFile, gw.TLS.KeyFile = f.ServerCert, f.ServerKey
	gw.TLS.CAFile = f.CACert
}

// withHost replaces the scheme and host:port of a URL, keeping the path.
func withHost(raw, scheme, host string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw // validated already; cannot happen
	}
	u.Scheme, u.Host = scheme, host
	return u.String()
}

func readPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	p := strings.TrimRight(string(b), "\r\n")
	if p == "" {
		return "", fmt.Errorf("password file %s is empty", path)
	}
	return p, nil
}

// ensureUsageSecret makes the secret the demo's gateway and token service
// share for usage events at path (0600, 32 random bytes as hex), unless
// one is there, and returns path.
func ensureUsageSecret(path string) (string, error) {
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("usage secret: %w", err)
	}
	_, err = fmt.Fprintln(f, hex.EncodeToString(b))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return path, err
}
