package tokenserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/configfile"
	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/internal/license/backends"
	"github.com/acme/registry-gateway/internal/license/sqlbackend"
	"github.com/acme/registry-gateway/internal/tlsx"
	"github.com/acme/registry-gateway/internal/tokenserver/console"
	"github.com/acme/registry-gateway/internal/tracing"
)

// Defaults of the optional configuration keys.
const (
	DefaultListen          = "127.0.0.1:5001"
	DefaultMetricsListen   = "127.0.0.1:9091"
	DefaultSendTimeout     = 60 * time.Second
	DefaultTokenTTL        = 5 * time.Minute
	DefaultRefreshTokenTTL = 30 * 24 * time.Hour
)

// Bounds that keep a typo from producing tokens clients mishandle: clients
// need expires_in >= 60, and a registry token that lives for days is a
// credential nobody can revoke.
const (
	minTokenTTL = time.Minute
	maxTokenTTL = 24 * time.Hour
)

// maxSendTimeout bounds timeouts.send, to catch unit mistakes.
const maxSendTimeout = time.Hour

// Config is the service's YAML configuration. Relative paths are relative to
// the working directory, as with the registry itself.
type Config struct {
	// Listen is the address Run listens on.
	Listen string `yaml:"listen"`
	// Issuer is the iss claim; the registry's auth.token.issuer.
	Issuer string `yaml:"issuer"`
	// Service is the aud claim and the only service tokens are issued
	// for; the registry's auth.token.service.
	Service string `yaml:"service"`
	// TokenTTL is the lifetime of access tokens.
	TokenTTL time.Duration `yaml:"token_ttl"`
	// RefreshTokenTTL is the lifetime of refresh tokens.
	RefreshTokenTTL time.Duration `yaml:"refresh_token_ttl"`
	// SigningKey is a PEM private key: EC P-256 signs ES256, RSA RS256.
	SigningKey string `yaml:"signing_key"`
	// SigningCert is an optional PEM certificate chain for SigningKey;
	// when set, tokens carry it in x5c.
	SigningCert string `yaml:"signing_cert"`
	// PublishKeys are PEM files published in the JWKS besides the signing
	// key: the next key before a rotation, the previous one after it. A
	// private key file publishes its public half and also opens the
	// refresh tokens sealed under it; public keys and certificates are
	// only published.
	PublishKeys []string `yaml:"publish_keys"`
	// PreviousSigningKeys are PEM private keys that signed before a
	// rotation and are no longer published: refresh tokens sealed under
	// them still open. Drop one after refresh_token_ttl.
	PreviousSigningKeys []string `yaml:"previous_signing_keys"`
	// RefreshTokenKeyFile holds the 32-byte AES key sealing refresh tokens
	// (64 hex digits or 32 raw bytes). Without it the key is derived from
	// the signing key (tokens sealed under the private keys of
	// publish_keys and previous_signing_keys open too), so a rotation
	// keeps refresh tokens valid as long as the old key is kept.
	RefreshTokenKeyFile string `yaml:"refresh_token_key_file"`
	// TrustedProxies are CIDRs (or addresses) of reverse proxies whose
	// X-Forwarded-For is believed when they are the connecting peer.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// Licenses configures the licence backend and the cache in front of
	// it.
	Licenses backends.Config `yaml:"licenses"`
	// RateLimit configures the throttling of failed logins.
	RateLimit RateLimitConfig `yaml:"rate_limit"`
	// Timeouts of the HTTP server.
	Timeouts TimeoutsConfig `yaml:"timeouts"`
	// Limits bound the client connections held open at once.
	Limits LimitsConfig `yaml:"limits"`
	// Metrics is the operators' listener: /metrics and /debug/pprof/.
	Metrics MetricsConfig `yaml:"metrics"`
	// TLS, with a certificate, makes the service serve HTTPS only.
	TLS TLSConfig `yaml:"tls"`
	// Admin is the admin API's listener.
	Admin AdminConfig `yaml:"admin"`
	// Usage is the intake of the gateway's usage events (usage.go).
	Usage UsageConfig `yaml:"usage"`
	// Tracing exports OpenTelemetry spans of token requests over OTLP; off
	// unless Tracing.Endpoint is set (docs/tracing.md).
	Tracing tracing.Config `yaml:"tracing"`
	// Console is the web console (internal/tokenserver/console), served
	// under /console/ on admin.listen.
	Console console.Config `yaml:"console"`
	// CustomerHelpURL is the page the refusals of /token point customers
	// at; default the console's help page when console.public_url is set.
	CustomerHelpURL string `yaml:"customer_help_url"`
}

// helpURL is customer_help_url, or the console's help page; "" when
// neither is known.
func (c *Config) helpURL() string {
	if c.CustomerHelpURL != "" {
		return c.CustomerHelpURL
	}
	return c.Console.HelpURL()
}

// AdminConfig is the admin API (internal/tokenserver/admin): accounts,
// tokens and channels of licenses.sql over HTTPS, for the vendor's systems.
type AdminConfig struct {
	// Listen is where the admin API is served, on a listener of its own
	// (HTTPS with the tls settings, without their client certificates:
	// admin keys authenticate); empty, the default: not served.
	Listen string `yaml:"listen"`
}

// TLSConfig is the service's HTTPS: its certificate pair (reloaded when the
// files change) and, optionally, the CAs of the client certificates it
// requires (mTLS from the gateway).
type TLSConfig struct {
	tlsx.ServerConfig `yaml:",inline"`
	// ClientCAFile is a PEM file of the CAs whose client certificates are
	// accepted; set, a client without such a certificate is refused at the
	// handshake.
	ClientCAFile string `yaml:"client_ca_file"`
}

// RateLimitConfig throttles failed logins. Failures are counted per client
// address and per (client address, username); a key is only looked at once
// it has failed, so successful logins never wait for a limiter.
type RateLimitConfig struct {
	// Disabled turns the throttling off.
	Disabled bool `yaml:"disabled"`
	// PerAddress is failures per minute allowed from one client address,
	// and the burst.
	PerAddress      float64 `yaml:"per_address_per_minute"`
	PerAddressBurst int     `yaml:"per_address_burst"`
	// PerUser is failures per minute for one username from one address.
	PerUser      float64 `yaml:"per_user_per_minute"`
	PerUserBurst int     `yaml:"per_user_burst"`
	// MaxEntries bounds the number of keys tracked.
	MaxEntries int `yaml:"max_entries"`
	// IPv6Prefix is the prefix length IPv6 clients are counted by (1–128,
	// default 64); IPv4 clients are counted per address.
	IPv6Prefix int `yaml:"ipv6_prefix"`
}

// TimeoutsConfig are the HTTP server's timeouts.
type TimeoutsConfig struct {
	ReadHeader time.Duration `yaml:"read_header"`
	Read       time.Duration `yaml:"read"`
	// Write bounds a whole answer, from the end of its request.
	Write    time.Duration `yaml:"write"`
	Idle     time.Duration `yaml:"idle"`
	Shutdown time.Duration `yaml:"shutdown"`
	// Send is how long a write to the client may make no progress before
	// the connection is closed (nginx's send_timeout), within Write.
	Send time.Duration `yaml:"send"`
}

// LimitsConfig bounds the client connections open at once; over a limit a
// new connection is closed at once (tokenserver_connections_refused_total).
// Zero is no limit, the default.
type LimitsConfig struct {
	// MaxConnections bounds all client connections together.
	MaxConnections int `yaml:"max_connections"`
	// MaxConnectionsPerAddress bounds the connections from one peer IP
	// address. The gateways and load balancers in front are such peers:
	// size it for all of theirs, or leave it unset.
	MaxConnectionsPerAddress int `yaml:"max_connections_per_address"`
}

// MetricsConfig is the operators' listener.
type MetricsConfig struct {
	// Listen is where /metrics and /debug/pprof/ are served, never on the
	// service's listen address; default DefaultMetricsListen (loopback:
	// set 0.0.0.0:9091 to be scraped from elsewhere).
	Listen string `yaml:"listen"`
}

// LoadConfig reads, defaults and validates the configuration file at path.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes YAML (unknown keys are errors), applies the defaults
// and validates the result.
func ParseConfig(data []byte) (*Config, error) {
	var cfg Config
	problems, err := configfile.Decode(data, &cfg)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty configuration")
		}
		return nil, err
	}
	cfg.SetDefaults()
	if err := errors.Join(problems, cfg.Validate()); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// SetDefaults fills in the optional keys left empty.
func (c *Config) SetDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Metrics.Listen == "" {
		c.Metrics.Listen = DefaultMetricsListen
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = DefaultTokenTTL
	}
	if c.RefreshTokenTTL == 0 {
		c.RefreshTokenTTL = DefaultRefreshTokenTTL
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	c.Licenses.SetDefaults()
	c.Usage.setDefaults()
	c.Console.SetDefaults()
	r := &c.RateLimit
	if r.PerAddress == 0 {
		r.PerAddress = 30
	}
	if r.PerAddressBurst == 0 {
		r.PerAddressBurst = 30
	}
	if r.PerUser == 0 {
		r.PerUser = 5
	}
	if r.PerUserBurst == 0 {
		r.PerUserBurst = 10
	}
	if r.MaxEntries == 0 {
		r.MaxEntries = 100_000
	}
	if r.IPv6Prefix == 0 {
		r.IPv6Prefix = DefaultIPv6Prefix
	}
	t := &c.Timeouts
	d := httpx.DefaultTimeouts
	for _, p := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&t.ReadHeader, d.ReadHeader}, {&t.Read, d.Read}, {&t.Write, d.Write}, {&t.Idle, d.Idle}, {&t.Shutdown, d.Shutdown}, {&t.Send, DefaultSendTimeout}} {
		if *p.v == 0 {
			*p.v = p.def
		}
	}
}

// Validate reports every problem of the configuration at once. It reads no
// files; New reports the files that do not load.
func (c *Config) Validate() error {
	return errors.Join(c.problems(true, true)...)
}

// problems lists what is wrong; New passes false for what its Options
// supply instead (a signing key, a licence backend).
func (c *Config) problems(needKey, needLicenses bool) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		add("listen: %q is not host:port", c.Listen)
	}
	if _, port, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
		add("metrics.listen: %q is not host:port", c.Metrics.Listen)
	} else if c.Metrics.Listen == c.Listen && port != "0" {
		add("metrics.listen: %q is the service's listen address: metrics and profiles must not be served to clients", c.Metrics.Listen)
	}
	if strings.TrimSpace(c.Issuer) == "" {
		add("issuer: required")
	}
	if strings.TrimSpace(c.Service) == "" {
		add("service: required")
	}
	if c.TokenTTL < minTokenTTL || c.TokenTTL > maxTokenTTL {
		add("token_ttl: %v is outside [%v, %v]", c.TokenTTL, minTokenTTL, maxTokenTTL)
	}
	if c.RefreshTokenTTL < c.TokenTTL {
		add("refresh_token_ttl: %v is shorter than token_ttl %v", c.RefreshTokenTTL, c.TokenTTL)
	}
	if c.SigningKey == "" && needKey {
		add("signing_key: required")
	}
	for i, p := range c.PublishKeys {
		if strings.TrimSpace(p) == "" {
			add("publish_keys[%d]: empty path", i)
		}
	}
	for i, p := range c.PreviousSigningKeys {
		if strings.TrimSpace(p) == "" {
			add("previous_signing_keys[%d]: empty path", i)
		}
	}
	for i, p := range c.TrustedProxies {
		if _, err := httpx.ParsePrefix(p); err != nil {
			add("trusted_proxies[%d]: %v", i, err)
		}
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		add("log_level: %v", err)
	}

	errs = append(errs, c.Licenses.Problems(needLicenses)...)
	if a := c.Admin.Listen; a != "" {
		if _, port, err := net.SplitHostPort(a); err != nil {
			add("admin.listen: %q is not host:port", a)
		} else if port != "0" && (a == c.Listen || a == c.Metrics.Listen) {
			add("admin.listen: %q is the service's or the metrics' listen address: the admin API needs a listener of its own", a)
		}
		if _, ok := c.Licenses.Backends["sql"]; !ok {
			add("admin.listen: the admin API administers the accounts of licenses.sql: configure that licence backend, or leave admin.listen unset")
		}
	}
	errs = append(errs, c.Usage.problems(c.usageSQL() != nil)...)
	errs = append(errs, c.Console.Problems()...)
	if u := c.CustomerHelpURL; u != "" {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.Fragment != "" {
			add("customer_help_url: %q is not an http or https URL without a #fragment", u)
		}
	}
	if c.Console.Enabled && c.Admin.Listen == "" {
		add("console.enabled: the console is served on admin.listen: set it too")
	}

	r := c.RateLimit
	if r.PerAddress < 0 || r.PerUser < 0 {
		add("rate_limit: rates must not be negative")
	}
	if r.PerAddressBurst < 0 || r.PerUserBurst < 0 {
		add("rate_limit: bursts must not be negative")
	}
	if r.MaxEntries < 0 {
		add("rate_limit.max_entries: %d is negative", r.MaxEntries)
	}
	if r.IPv6Prefix < 1 || r.IPv6Prefix > 128 {
		add("rate_limit.ipv6_prefix: %d is outside [1, 128]", r.IPv6Prefix)
	}

	t := c.Timeouts
	if t.ReadHeader < 0 || t.Read < 0 || t.Write < 0 || t.Idle < 0 || t.Shutdown < 0 || t.Send < 0 {
		add("timeouts: must not be negative")
	}
	if t.Send > maxSendTimeout {
		add("timeouts.send: %v is over %v", t.Send, maxSendTimeout)
	}
	if l := c.Limits; l.MaxConnections < 0 || l.MaxConnectionsPerAddress < 0 {
		add("limits: max_connections and max_connections_per_address must not be negative (0: no limit)")
	}
	errs = append(errs, c.Tracing.Problems()...)
	errs = append(errs, c.TLS.Problems()...)
	if c.TLS.ClientCAFile != "" && !c.TLS.Enabled() {
		add("tls.client_ca_file: client certificates need HTTPS: set tls.cert_file and tls.key_file too")
	}
	return errs
}

func (t TimeoutsConfig) httpx() httpx.Timeouts {
	return httpx.Timeouts{ReadHeader: t.ReadHeader, Read: t.Read, Write: t.Write, Idle: t.Idle, Shutdown: t.Shutdown}
}

// SlogLevel returns the configured slog level (info if unset or invalid).
func (c *Config) SlogLevel() slog.Level {
	l, _ := parseLevel(c.LogLevel)
	return l
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return slog.LevelInfo, fmt.Errorf("%q is not one of debug, info, warn, error", s)
}

// CheckConfig validates data, the configuration file at path as read by
// checkconfig.Run (path only names it in messages), as the service does
// at start; with files, it also loads the signing key, certificate, published
// keys, refresh token key and licence file, as New would. It reports every
// problem at once. It is `tokenserver check-config`.
func CheckConfig(path string, data []byte, files bool) error {
	cfg, err := ParseConfig(data)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if !files {
		return nil
	}
	// New loads every file and reports each one that fails (with
	// licenses.sql, it connects and checks the schema); the server it
	// builds is not started, so nothing listens and nothing is polled.
	srv, err := New(context.Background(), cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	srv.Close()
	return nil
}

// sqlConfig is the licenses.sql section, nil when another backend is
// configured.
func (c *Config) sqlConfig() *accounts.Config {
	if sql, ok := c.Licenses.Backends["sql"].(*sqlbackend.Config); ok {
		return &sql.Config
	}
	return nil
}

// AccountsConfig loads the configuration file at path as the service does
// and returns its licenses.sql section, nil when the file configures
// another licence backend: the account database `tokenserver accounts`
// administers (tokencli.AccountsConfig).
func AccountsConfig(path string) (*accounts.Config, error) {
	cfg, err := LoadConfig(path)
	if err != nil {
		return nil, err
	}
	return cfg.sqlConfig(), nil
}
