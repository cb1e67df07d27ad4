package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/acme/registry-gateway/internal/configfile"
	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/internal/tlsx"
	"github.com/acme/registry-gateway/internal/tracing"
	"github.com/acme/registry-gateway/pkg/auth"
	"github.com/acme/registry-gateway/pkg/upstream"
)

// Config is the gateway's configuration file.
type Config struct {
	// Listen is the address to serve on; default "127.0.0.1:5000".
	Listen string `yaml:"listen"`
	// Realm is the absolute URL of the token endpoint, sent in challenges.
	Realm string `yaml:"realm"`
	// Service is the token audience and the challenge's service.
	Service string `yaml:"service"`
	// Issuer is the iss claim tokens must carry.
	Issuer string     `yaml:"issuer"`
	Keys   KeysConfig `yaml:"keys"`
	// Leeway tolerates clock skew on exp and nbf; default 30s, which 0
	// also means (a zero leeway would refuse tokens on any clock skew).
	Leeway time.Duration `yaml:"leeway"`
	// TokenEndpoint, when set, is where /token on the gateway's host is
	// forwarded, so that one hostname serves the whole flow.
	TokenEndpoint string `yaml:"token_endpoint"`
	// CustomerHelpURL, when set, is the page a refused customer is pointed
	// at (the token service's console help page, or the vendor's own):
	// the refusal of a channel the licence lacks links its #channel
	// section.
	CustomerHelpURL string         `yaml:"customer_help_url"`
	Upstream        UpstreamConfig `yaml:"upstream"`
	// CatalogTTL is how long the upstream's repository list is reused;
	// default 30s.
	CatalogTTL time.Duration `yaml:"catalog_ttl"`
	// ManifestCache keeps upstream manifests in memory (see
	// ManifestCacheConfig); on by default for digest references.
	ManifestCache ManifestCacheConfig `yaml:"manifest_cache"`
	// BlobRedirectCache reuses the upstream's blob redirects (see
	// BlobRedirectCacheConfig); on by default, unused with proxy_blobs.
	BlobRedirectCache BlobRedirectCacheConfig `yaml:"blob_redirect_cache"`
	// AccessLog writes one log line a request; default true.
	AccessLog *bool `yaml:"access_log"`
	// ShutdownTimeout bounds the graceful shutdown; default 30s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// TrustedProxies are CIDRs (or addresses) of the load balancers in
	// front of the gateway: their X-Forwarded-For is passed on to the token
	// service with the peer appended; anyone else's is replaced by the
	// peer.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Timeouts bound how long a client may take to send a request, and
	// to take its answer.
	Timeouts TimeoutsConfig `yaml:"timeouts"`
	// Limits bound the client connections held open at once.
	Limits LimitsConfig `yaml:"limits"`
	// Metrics is the operators' listener: /metrics and /debug/pprof/.
	Metrics MetricsConfig `yaml:"metrics"`
	// LogLevel is debug, info (default), warn or error.
	LogLevel string `yaml:"log_level"`
	// TLS is the gateway's own HTTPS and how it trusts an https token
	// service.
	TLS TLSConfig `yaml:"tls"`
	// Usage sends an event per pull, check and denial to the token
	// service's usage intake; off unless Usage.Endpoint is set.
	Usage UsageConfig `yaml:"usage"`
	// Tracing exports OpenTelemetry spans of the requests over OTLP; off
	// unless Tracing.Endpoint is set (docs/tracing.md).
	Tracing tracing.Config `yaml:"tracing"`
}

// UsageConfig is the usage recorder (usage.go): one event per counted
// manifest request, queued in memory and sent in batches to the token
// service, which stores them. It never slows or fails a request: what does
// not fit the queue is dropped and counted.
type UsageConfig struct {
	// Endpoint is the token service's usage intake
	// (http://tokenserver:5001/internal/v1/usage); empty: no recording.
	Endpoint string `yaml:"endpoint"`
	// SecretFile holds the secret shared with the token service's
	// usage.secret_file (at least 32 bytes, trimmed); required with
	// Endpoint.
	SecretFile string `yaml:"secret_file"`
	// Queue bounds the events held (waiting and being sent); default
	// 10000.
	Queue int `yaml:"queue"`
	// Batch is the most events in one POST; default 500, at most 1000.
	Batch int `yaml:"batch"`
	// FlushInterval is the longest an event waits for a batch to fill;
	// default 1s.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// ClientAddress is prefix (default: the client's /24, or IPv6Prefix)
	// or off (no address recorded).
	ClientAddress string `yaml:"client_address"`
	// IPv6Prefix is the prefix length an IPv6 client is recorded by;
	// default 48.
	IPv6Prefix int `yaml:"ipv6_prefix"`
}

// Defaults and bounds of the usage settings.
const (
	defaultUsageQueue      = 10_000
	maxUsageQueue          = 1_000_000
	defaultUsageBatch      = 500
	defaultUsageFlush      = time.Second
	minUsageFlush          = 10 * time.Millisecond
	maxUsageFlush          = time.Minute
	defaultUsageIPv6Prefix = 48
	usageClientPrefix      = "prefix"
	usageClientOff         = "off"
)

// TLSConfig: with cert_file and key_file the gateway serves HTTPS only
// (the pair reloaded when the files change). CAFile and the client pair
// are for the token service (token_endpoint, keys.jwks_url) when it is
// https; the upstream registry (ECR) is always verified against the
// system's roots.
type TLSConfig struct {
	tlsx.ServerConfig `yaml:",inline"`
	// CAFile is a PEM file of the CAs the token service's certificate is
	// verified against; default the system's roots.
	CAFile string `yaml:"ca_file"`
	// ClientCertFile and ClientKeyFile are the certificate the gateway
	// presents to a token service that requires one (its
	// tls.client_ca_file); reloaded when they change.
	ClientCertFile string `yaml:"client_cert_file"`
	ClientKeyFile  string `yaml:"client_key_file"`
}

// SlogLevel is the configured log level.
func (c *Config) SlogLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// KeysConfig says which token signing keys to trust; one or both.
type KeysConfig struct {
	// JWKSURL is the token service's key set, fetched at start and again
	// when a token names an unknown kid (at most every MinRefetch).
	JWKSURL string `yaml:"jwks_url"`
	// PublicKeys are PEM files of public keys or certificates.
	PublicKeys []string `yaml:"public_keys"`
	// MinRefetch bounds JWKS refetches; default 5s.
	MinRefetch time.Duration `yaml:"min_refetch"`
}

// UpstreamConfig is the registry requests are forwarded to.
type UpstreamConfig struct {
	// URL is the registry's base URL (scheme and host, no path).
	URL string `yaml:"url"`
	// RepositoryPrefix is put before every client repository name
	// ("acme/": client stable/app is upstream acme/stable/app).
	RepositoryPrefix string `yaml:"repository_prefix"`
	// ProxyBlobs makes the gateway follow the upstream's blob redirects
	// itself and stream the blob, for clients that can reach only the
	// gateway's host.
	ProxyBlobs bool `yaml:"proxy_blobs"`
	// Providers are the provider sections the file holds (upstream.ecr,
	// upstream.static, …: the keys of providers.go), by key, each decoded
	// by its provider's package; exactly one is valid.
	Providers map[string]upstream.Config `yaml:"-"`
	// Upstream connection limits; zero values take the defaults.
	MaxIdleConnsPerHost   int           `yaml:"max_idle_conns_per_host"` // default 256
	DialTimeout           time.Duration `yaml:"dial_timeout"`            // default 10s
	TLSHandshakeTimeout   time.Duration `yaml:"tls_handshake_timeout"`   // default 10s
	ResponseHeaderTimeout time.Duration `yaml:"response_header_timeout"` // default 60s
}

// ManifestCacheConfig bounds the in-memory manifest cache. It answers
// repeated manifest GETs and HEADs without an upstream round trip, which is
// both the gateway's main cost per request and what ECR rate-limits
// (BatchGetImage). The token check still runs on every request: the cache
// never changes who may read what.
type ManifestCacheConfig struct {
	// Disabled turns the cache off: every manifest request goes upstream.
	// It is the one way to turn it off (max_bytes 0 means the default).
	Disabled bool `yaml:"disabled"`
	// MaxBytes bounds the cached manifests (bodies plus keys and headers);
	// the least recently used are evicted beyond it. Default 32 MiB.
	MaxBytes int64 `yaml:"max_bytes"`
	// TagTTL is how long a manifest fetched by tag is reused; default 5s
	// (unset), so a pushed or moved tag shows within 5 s. An explicit 0
	// sends every tag request upstream, so that a push is visible at once.
	// Manifests by digest are immutable and cached until evicted.
	TagTTL *time.Duration `yaml:"tag_ttl"`
}

// TagTTLOrZero is the configured tag_ttl, 0 while unset.
func (m ManifestCacheConfig) TagTTLOrZero() time.Duration {
	if m.TagTTL == nil {
		return 0
	}
	return *m.TagTTL
}

// BlobRedirectCacheConfig bounds the reuse of the upstream's blob redirects
// (ECR's presigned S3 URLs). Without proxy_blobs, a blob GET whose upstream
// answer was a redirect to another host is answered with the same redirect,
// after the same token check, while the URL is still good for twice the
// time left: every blob GET that reaches ECR costs a
// GetDownloadUrlForLayer call, which ECR rate-limits. A URL whose expiry
// cannot be read from it (SigV4 X-Amz-Date and X-Amz-Expires, or SigV2 and
// CloudFront Expires) is never reused.
type BlobRedirectCacheConfig struct {
	// Disabled sends every blob GET upstream.
	Disabled bool `yaml:"disabled"`
	// TTL is the longest a redirect is reused; default 60s. Never beyond
	// half the URL's remaining validity.
	TTL time.Duration `yaml:"ttl"`
	// MaxEntries bounds the redirects held (one a repository and blob);
	// the least recently used are dropped beyond it. Default 10000.
	MaxEntries int `yaml:"max_entries"`
}

// Bounds of the manifest cache settings, to catch unit mistakes.
const (
	defaultManifestCacheBytes = 32 << 20
	maxManifestCacheBytes     = 8 << 30
	maxManifestTagTTL         = 24 * time.Hour
	defaultManifestTagTTL     = 5 * time.Second
)

// Bounds of the blob redirect cache settings, to catch unit mistakes.
const (
	defaultBlobRedirectTTL     = 60 * time.Second
	maxBlobRedirectTTL         = 24 * time.Hour
	defaultBlobRedirectEntries = 10_000
	maxBlobRedirectEntries     = 1_000_000
)

// TimeoutsConfig bounds a client connection. There is no timeout on a
// whole answer: a blob download may take as long as the client needs, as
// long as it keeps reading.
type TimeoutsConfig struct {
	// ReadHeader is the time a client has to send a request's headers;
	// default 10s.
	ReadHeader time.Duration `yaml:"read_header"`
	// ReadBody is the time a client has, after the headers, to send the
	// body it declared; default 10s.
	ReadBody time.Duration `yaml:"read_body"`
	// Idle is how long a kept-alive connection may wait for its next
	// request; default 120s.
	Idle time.Duration `yaml:"idle"`
	// Send is how long a write to the client may make no progress before
	// the connection is closed (nginx's send_timeout): a client that stops
	// reading frees its connection; one that keeps reading is never cut.
	// Default 60s.
	Send time.Duration `yaml:"send"`
}

// maxReadTimeout bounds the read timeouts, to catch unit mistakes.
const maxReadTimeout = 5 * time.Minute

// Bounds of timeouts.send: a client whose download stalls that long is
// gone (clients retry a layer), and an hour is surely a unit mistake.
const (
	defaultSendTimeout = 60 * time.Second
	maxSendTimeout     = time.Hour
)

// LimitsConfig bounds the client connections open at once; over a limit a
// new connection is closed at once (gateway_connections_refused_total).
// Zero is no limit, the default.
type LimitsConfig struct {
	// MaxConnections bounds all client connections together.
	MaxConnections int `yaml:"max_connections"`
	// MaxConnectionsPerAddress bounds the connections from one peer IP
	// address. Behind a load balancer the peer is the balancer: leave it
	// unset there, or size it for all the balancer's connections.
	MaxConnectionsPerAddress int `yaml:"max_connections_per_address"`
}

// MetricsConfig is the operators' listener.
type MetricsConfig struct {
	// Listen is where /metrics and /debug/pprof/ are served, never on the
	// clients' listen address; default "127.0.0.1:9090" (loopback: set
	// 0.0.0.0:9090 to be scraped from elsewhere).
	Listen string `yaml:"listen"`
}

// DefaultMetricsListen is metrics.listen's default.
const DefaultMetricsListen = "127.0.0.1:9090"

// UnmarshalYAML decodes upstream: strictly, each provider's section into
// the provider's own Config (see providers.go), so that a key unknown to
// the gateway and to every provider is an error like any other.
func (u *UpstreamConfig) UnmarshalYAML(unmarshal func(any) error) error {
	var raw rawNode
	if err := unmarshal(&raw); err != nil {
		return err
	}
	node := raw.node
	// One decode of a struct made for the keys present: the settings
	// inline, then a field per provider section of that provider's type,
	// so that the decoder's strictness and line numbers hold for all.
	fields := []reflect.StructField{{Name: "Settings", Type: reflect.TypeFor[plainUpstream](), Tag: `yaml:",inline"`}}
	sections := map[string]int{} // key: field index
	var problems []string
	if node != nil && node.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(node.Content); i += 2 {
			k := node.Content[i]
			key := k.Value
			if _, dup := sections[key]; dup || upstreamSettingKeys[key] || strings.ContainsAny(key, ",\"") {
				continue // the decoder reports duplicates and odd keys
			}
			typ := reflect.TypeFor[rawNode]()
			if newConfig, ok := providers[key]; ok {
				typ = reflect.TypeOf(newConfig()).Elem()
			} else {
				problems = append(problems, fmt.Sprintf("line %d: field %s not found in type gateway.UpstreamConfig", k.Line, key))
			}
			sections[key] = len(fields)
			fields = append(fields, reflect.StructField{Name: "P" + strconv.Itoa(len(fields)), Type: typ,
				Tag: reflect.StructTag(`yaml:"` + key + `"`)})
		}
	}
	v := reflect.New(reflect.StructOf(fields)).Elem()
	err := unmarshal(v.Addr().Interface())
	var te *yaml.TypeError
	if err != nil && !errors.As(err, &te) {
		return err
	}
	*u = UpstreamConfig(v.Field(0).Interface().(plainUpstream))
	for key, i := range sections {
		if c, ok := v.Field(i).Addr().Interface().(upstream.Config); ok {
			if u.Providers == nil {
				u.Providers = map[string]upstream.Config{}
			}
			u.Providers[key] = c
		}
	}
	if te != nil {
		problems = append(te.Errors, problems...)
	}
	if len(problems) > 0 {
		return &yaml.TypeError{Errors: problems}
	}
	return nil
}

// rawNode keeps the YAML node it is decoded from.
type rawNode struct{ node *yaml.Node }

func (r *rawNode) UnmarshalYAML(n *yaml.Node) error {
	r.node = n
	return nil
}

// plainUpstream is UpstreamConfig without its UnmarshalYAML: its settings.
type plainUpstream UpstreamConfig

// upstreamSettingKeys are the keys of upstream: that are not providers'.
var upstreamSettingKeys = func() map[string]bool {
	keys := map[string]bool{}
	t := reflect.TypeFor[plainUpstream]()
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			keys[name] = true
		}
	}
	return keys
}()

// Provider is the one provider section of the file, and its key.
func (u *UpstreamConfig) Provider() (string, upstream.Config, error) {
	if len(u.Providers) != 1 {
		return "", nil, fmt.Errorf("upstream: set %s", providerChoice())
	}
	for k, c := range u.Providers {
		return k, c, nil
	}
	panic("unreachable")
}

// providerChoice lists the provider keys: "ecr or static".
func providerChoice() string {
	keys := slices.Sorted(maps.Keys(providers))
	if len(keys) < 2 {
		return strings.Join(keys, "")
	}
	return strings.Join(keys[:len(keys)-1], ", ") + " or " + keys[len(keys)-1]
}

// LoadConfig reads, defaults and validates a configuration file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes YAML strictly (unknown keys are errors), fills in the
// defaults and validates the result.
func ParseConfig(data []byte) (*Config, error) {
	var cfg Config
	problems, err := configfile.Decode(data, &cfg)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	cfg.SetDefaults()
	if err := errors.Join(problems, cfg.Validate()); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// SetDefaults fills in the zero values that have defaults.
func (c *Config) SetDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:5000"
	}
	if c.Leeway == 0 {
		c.Leeway = 30 * time.Second
	}
	if c.CatalogTTL == 0 {
		c.CatalogTTL = 30 * time.Second
	}
	if c.AccessLog == nil {
		t := true
		c.AccessLog = &t
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.Timeouts.ReadHeader == 0 {
		c.Timeouts.ReadHeader = 10 * time.Second
	}
	if c.Timeouts.ReadBody == 0 {
		c.Timeouts.ReadBody = 10 * time.Second
	}
	if c.Timeouts.Idle == 0 {
		c.Timeouts.Idle = 120 * time.Second
	}
	if c.Timeouts.Send == 0 {
		c.Timeouts.Send = defaultSendTimeout
	}
	if c.Metrics.Listen == "" {
		c.Metrics.Listen = DefaultMetricsListen
	}
	if c.ManifestCache.MaxBytes == 0 {
		c.ManifestCache.MaxBytes = defaultManifestCacheBytes
	}
	if c.ManifestCache.TagTTL == nil {
		d := defaultManifestTagTTL
		c.ManifestCache.TagTTL = &d
	}
	if c.BlobRedirectCache.TTL == 0 {
		c.BlobRedirectCache.TTL = defaultBlobRedirectTTL
	}
	if c.BlobRedirectCache.MaxEntries == 0 {
		c.BlobRedirectCache.MaxEntries = defaultBlobRedirectEntries
	}
	if c.Keys.MinRefetch == 0 {
		c.Keys.MinRefetch = 5 * time.Second
	}
	if us := &c.Usage; us.Endpoint != "" {
		if us.Queue == 0 {
			us.Queue = defaultUsageQueue
		}
		if us.Batch == 0 {
			us.Batch = min(defaultUsageBatch, max(us.Queue, 1))
		}
		if us.FlushInterval == 0 {
			us.FlushInterval = defaultUsageFlush
		}
		if us.ClientAddress == "" {
			us.ClientAddress = usageClientPrefix
		}
		if us.IPv6Prefix == 0 {
			us.IPv6Prefix = defaultUsageIPv6Prefix
		}
	}
	u := &c.Upstream
	if u.MaxIdleConnsPerHost == 0 {
		u.MaxIdleConnsPerHost = 256
	}
	if u.DialTimeout == 0 {
		u.DialTimeout = 10 * time.Second
	}
	if u.TLSHandshakeTimeout == 0 {
		u.TLSHandshakeTimeout = 10 * time.Second
	}
	if u.ResponseHeaderTimeout == 0 {
		u.ResponseHeaderTimeout = 60 * time.Second
	}
	if p := u.RepositoryPrefix; p != "" && !strings.HasSuffix(p, "/") {
		u.RepositoryPrefix = p + "/"
	}
}

var (
	prefixRe = regexp.MustCompile(`^` + pathComponent + `(?:/` + pathComponent + `)*/$`)
)

// Validate reports every problem of the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen: %q is not host:port", c.Listen)
	}
	if _, port, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
		bad("metrics.listen: %q is not host:port", c.Metrics.Listen)
	} else if c.Metrics.Listen == c.Listen && port != "0" {
		bad("metrics.listen: %q is the clients' listen address: metrics and profiles must not be served to clients", c.Metrics.Listen)
	}
	if err := checkURL(c.Realm, false); err != nil {
		bad("realm: %v", err)
	}
	if c.Service == "" {
		bad("service: required")
	}
	if strings.ContainsAny(c.Service+c.Realm, "\"\\") {
		bad("realm and service must not contain quotes or backslashes (they go into the challenge)")
	}
	if c.Issuer == "" {
		bad("issuer: required")
	}
	if c.Keys.JWKSURL == "" && len(c.Keys.PublicKeys) == 0 {
		bad("keys: set jwks_url or public_keys (or both)")
	}
	if c.Keys.JWKSURL != "" {
		if err := checkURL(c.Keys.JWKSURL, false); err != nil {
			bad("keys.jwks_url: %v", err)
		}
	}
	for i, p := range c.Keys.PublicKeys {
		if p == "" {
			bad("keys.public_keys[%d]: empty path", i)
		}
	}
	if c.Keys.MinRefetch < 0 {
		bad("keys.min_refetch: must not be negative")
	}
	if c.Leeway < 0 || c.Leeway > 5*time.Minute {
		bad("leeway: %s is out of range (up to 5m; 0 means the default 30s)", c.Leeway)
	}
	if c.TokenEndpoint != "" {
		if err := checkURL(c.TokenEndpoint, false); err != nil {
			bad("token_endpoint: %v", err)
		}
	}
	if c.CustomerHelpURL != "" {
		if err := checkURL(c.CustomerHelpURL, false); err != nil {
			bad("customer_help_url: %v", err)
		} else if strings.Contains(c.CustomerHelpURL, "#") {
			bad("customer_help_url: %q: no #fragment (the refusal adds its section's)", c.CustomerHelpURL)
		}
	}
	if c.CatalogTTL < 0 {
		bad("catalog_ttl: must not be negative")
	}
	if m := c.ManifestCache; m.MaxBytes < 0 || m.MaxBytes > maxManifestCacheBytes {
		bad("manifest_cache.max_bytes: %d is out of range (1 to %d; disable the cache with disabled: true)", m.MaxBytes, int64(maxManifestCacheBytes))
	}
	if ttl := c.ManifestCache.TagTTLOrZero(); ttl < 0 || ttl > maxManifestTagTTL {
		bad("manifest_cache.tag_ttl: %s is out of range (0 to %s)", ttl, maxManifestTagTTL)
	}
	if b := c.BlobRedirectCache; b.TTL < 0 || b.TTL > maxBlobRedirectTTL {
		bad("blob_redirect_cache.ttl: %s is out of range (up to %s; 0 means the default 60s; disable the cache with disabled: true)", b.TTL, maxBlobRedirectTTL)
	}
	if b := c.BlobRedirectCache; b.MaxEntries < 0 || b.MaxEntries > maxBlobRedirectEntries {
		bad("blob_redirect_cache.max_entries: %d is out of range (1 to %d; disable the cache with disabled: true)", b.MaxEntries, maxBlobRedirectEntries)
	}
	if c.LogLevel != "" {
		var l slog.Level
		if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
			bad("log_level: %q is not debug, info, warn or error", c.LogLevel)
		}
	}
	if c.ShutdownTimeout < 0 {
		bad("shutdown_timeout: must not be negative")
	}
	for i, p := range c.TrustedProxies {
		if _, err := httpx.ParsePrefix(p); err != nil {
			bad("trusted_proxies[%d]: %v", i, err)
		}
	}
	for _, t := range []struct {
		name string
		d    time.Duration
	}{{"read_header", c.Timeouts.ReadHeader}, {"read_body", c.Timeouts.ReadBody}, {"idle", c.Timeouts.Idle}} {
		if t.d < 0 || t.d > maxReadTimeout {
			bad("timeouts.%s: %s is out of range (0 to %s)", t.name, t.d, maxReadTimeout)
		}
	}
	if d := c.Timeouts.Send; d < 0 || d > maxSendTimeout {
		bad("timeouts.send: %s is out of range (up to %s; 0 means the default %s)", d, maxSendTimeout, defaultSendTimeout)
	}
	if l := c.Limits; l.MaxConnections < 0 || l.MaxConnectionsPerAddress < 0 {
		bad("limits: max_connections and max_connections_per_address must not be negative (0: no limit)")
	}
	u := c.Upstream
	if err := checkURL(u.URL, true); err != nil {
		bad("upstream.url: %v", err)
	}
	if u.RepositoryPrefix != "" && !prefixRe.MatchString(u.RepositoryPrefix) {
		bad("upstream.repository_prefix: %q is not a repository path (lower-case components joined by /)", u.RepositoryPrefix)
	}
	switch n := len(u.Providers); {
	case n == 0:
		bad("upstream: set %s", providerChoice())
	case n > 1 && len(providers) == 2:
		bad("upstream: set %s, not both", providerChoice())
	case n > 1:
		bad("upstream: set one of %s, not several", providerChoice())
	}
	for _, key := range slices.Sorted(maps.Keys(u.Providers)) {
		for _, err := range u.Providers[key].Validate() {
			bad("upstream.%s.%w", key, err)
		}
	}
	if u.MaxIdleConnsPerHost < 0 || u.DialTimeout < 0 || u.TLSHandshakeTimeout < 0 || u.ResponseHeaderTimeout < 0 {
		bad("upstream: connection limits must not be negative")
	}
	t := c.TLS
	errs = append(errs, t.Problems()...)
	if t.Enabled() && strings.HasPrefix(c.Realm, "http://") {
		bad("realm: %q is plain HTTP while the gateway serves HTTPS: clients would send their API token in clear", c.Realm)
	}
	errs = append(errs, tlsx.PairProblems("tls.client_cert_file", t.ClientCertFile, "tls.client_key_file", t.ClientKeyFile)...)
	if (t.CAFile != "" || t.ClientCertFile != "") && !strings.HasPrefix(c.TokenEndpoint, "https://") && !strings.HasPrefix(c.Keys.JWKSURL, "https://") &&
		!strings.HasPrefix(c.Usage.Endpoint, "https://") {
		bad("tls.ca_file, tls.client_cert_file: used only towards an https token_endpoint, keys.jwks_url or usage.endpoint, and neither is https")
	}
	errs = append(errs, c.Usage.problems()...)
	errs = append(errs, c.Tracing.Problems()...)
	return errors.Join(errs...)
}

// problems are the usage section's problems. Without an endpoint nothing
// is recorded, and the other keys must not be set: they would be
// believed to work.
func (us UsageConfig) problems() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if us.Endpoint == "" {
		if us != (UsageConfig{}) {
			bad("usage: endpoint is not set, so nothing is recorded: set usage.endpoint, or remove the other usage keys")
		}
		return errs
	}
	if err := checkURL(us.Endpoint, false); err != nil {
		bad("usage.endpoint: %v", err)
	}
	if us.SecretFile == "" {
		bad("usage.secret_file: required with usage.endpoint (the secret shared with the token service's usage.secret_file)")
	}
	if us.Queue < 1 || us.Queue > maxUsageQueue {
		bad("usage.queue: %d is out of range (1 to %d)", us.Queue, maxUsageQueue)
	}
	switch {
	case us.Batch < 1 || us.Batch > maxUsageBatch:
		bad("usage.batch: %d is out of range (1 to %d)", us.Batch, maxUsageBatch)
	case us.Batch > us.Queue && us.Queue >= 1:
		bad("usage.batch: %d is larger than usage.queue (%d)", us.Batch, us.Queue)
	}
	if d := us.FlushInterval; d < minUsageFlush || d > maxUsageFlush {
		bad("usage.flush_interval: %s is out of range (%s to %s)", d, minUsageFlush, maxUsageFlush)
	}
	if us.ClientAddress != usageClientPrefix && us.ClientAddress != usageClientOff {
		bad("usage.client_address: %q is not prefix or off", us.ClientAddress)
	}
	if us.IPv6Prefix < 1 || us.IPv6Prefix > 128 {
		bad("usage.ipv6_prefix: %d is out of range (1 to 128)", us.IPv6Prefix)
	}
	return errs
}

// checkURL requires an absolute http(s) URL; with bare, one without path,
// query or user info.
func checkURL(s string, bare bool) error {
	if s == "" {
		return errors.New("required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", s)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: scheme must be http or https", s)
	}
	if u.Host == "" {
		return fmt.Errorf("%q: no host", s)
	}
	if u.User != nil {
		return fmt.Errorf("%q: must not hold credentials", u.Redacted())
	}
	if bare && (strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "") {
		return fmt.Errorf("%q: must be scheme://host[:port] only", s)
	}
	return nil
}

// CheckConfig validates data, the configuration file at path as read by
// checkconfig.Run (path only names it in messages), as the gateway does
// at start; with files, it also loads keys.public_keys and reads
// the files of the upstream provider's section, and usage.secret_file. It contacts nothing (not
// the JWKS URL, not the upstream, not AWS, not the usage intake). It is `gateway check-config`.
func CheckConfig(path string, data []byte, files bool) error {
	cfg, err := ParseConfig(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if !files {
		return nil
	}
	var errs []error
	if len(cfg.Keys.PublicKeys) > 0 {
		if _, err := auth.LoadPublicKeys(cfg.Keys.PublicKeys...); err != nil {
			errs = append(errs, fmt.Errorf("keys.public_keys: %w", err))
		}
	}
	for _, key := range slices.Sorted(maps.Keys(cfg.Upstream.Providers)) {
		// The provider judges its files exactly as it will at start
		// (a password file's trailing newlines, or an empty one).
		if err := cfg.Upstream.Providers[key].CheckFiles(context.Background()); err != nil {
			errs = append(errs, fmt.Errorf("upstream.%s.%w", key, err))
		}
	}
	if cfg.Usage.Endpoint != "" {
		if _, err := readUsageSecret(cfg.Usage.SecretFile); err != nil {
			errs = append(errs, fmt.Errorf("usage.secret_file: %w", err))
		}
	}
	if err := cfg.Tracing.CheckFiles(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
