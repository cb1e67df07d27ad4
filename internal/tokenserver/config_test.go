package tokenserver

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/license/backends"
	"github.com/acme/registry-gateway/internal/tracing"
	"github.com/acme/registry-gateway/pkg/auth"
)

// The keys of the contract, with one backend.
const exampleConfig = `
listen: "127.0.0.1:5001"
issuer: "acme-tokenserver"
service: "registry.example.com"
token_ttl: 5m
refresh_token_ttl: 720h
signing_key: "certs/token.key"
signing_cert: "certs/token.crt"
trusted_proxies: ["10.0.0.0/8", "192.0.2.1"]
licenses:
  cache_ttl: 60s
  http:
    url: "https://api.example.com/v1/meta/licenses/"
    channels_path: "objects[].release"
    timeout: 5s
`

func TestParseConfig(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig([]byte(exampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:5001" || cfg.Issuer != "acme-tokenserver" || cfg.Service != "registry.example.com" ||
		cfg.TokenTTL != 5*time.Minute || cfg.RefreshTokenTTL != 720*time.Hour ||
		cfg.SigningKey != "certs/token.key" || cfg.SigningCert != "certs/token.crt" ||
		cfg.Licenses.CacheTTL != time.Minute || httpSection(cfg).URL != "https://api.example.com/v1/meta/licenses/" ||
		httpSection(cfg).ChannelsPath != "objects[].release" || httpSection(cfg).Timeout != 5*time.Second {
		t.Errorf("cfg = %+v", cfg)
	}
	// Defaults.
	min, err := ParseConfig([]byte("issuer: i\nservice: s\nsigning_key: k\nlicenses: {file: l.yaml}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if min.Listen != DefaultListen || min.TokenTTL != 5*time.Minute || min.RefreshTokenTTL != 720*time.Hour ||
		min.Licenses.CacheTTL != 60*time.Second || min.Timeouts.ReadHeader == 0 || min.RateLimit.PerUserBurst == 0 {
		t.Errorf("defaults = %+v", min)
	}
	if min.Metrics.Listen != "127.0.0.1:9091" || min.Timeouts.Send != time.Minute || min.Limits != (LimitsConfig{}) {
		t.Errorf("edge defaults: metrics %+v, send %s, limits %+v", min.Metrics, min.Timeouts.Send, min.Limits)
	}
	edge, err := ParseConfig([]byte("issuer: i\nservice: s\nsigning_key: k\nlicenses: {file: l.yaml}\n" +
		"timeouts: {send: 20s}\nlimits: {max_connections: 5000, max_connections_per_address: 100}\nmetrics: {listen: 0.0.0.0:9091}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if edge.Timeouts.Send != 20*time.Second || edge.Limits != (LimitsConfig{MaxConnections: 5000, MaxConnectionsPerAddress: 100}) ||
		edge.Metrics.Listen != "0.0.0.0:9091" {
		t.Errorf("edge keys: send %s, limits %+v, metrics %+v", edge.Timeouts.Send, edge.Limits, edge.Metrics)
	}
}

// Every problem is reported at once.
func TestParseConfigListsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := ParseConfig([]byte(`
token_ttl: 10s
refresh_token_ttl: 1s
trusted_proxies: ["10.0.0.0/33", "nonsense"]
log_level: loud
licenses:
  cache_ttl: -1s
  probe_interval: 10ms
  file: a.yaml
  http: {url: "ftp://x", timeout: -1s}
rate_limit: {per_user_per_minute: -1, ipv6_prefix: 129}
timeouts: {send: 3h}
limits: {max_connections_per_address: -1}
metrics: {listen: "nope"}
tracing: {endpoint: "http://collector:4318", ca_file: ca.pem, sample_ratio: -1}
`))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"issuer: required", "service: required", "signing_key: required",
		"token_ttl: 10s", "refresh_token_ttl", "trusted_proxies[0]", "trusted_proxies[1]", "log_level",
		"licenses: set exactly one of file, http and sql, not several", "licenses.cache_ttl", "licenses.http.url",
		"licenses.http.timeout", "rate_limit: rates", "rate_limit.ipv6_prefix: 129",
		"licenses.probe_interval: 10ms is outside [1s, 1m0s]",
		"timeouts.send: 3h0m0s is over 1h0m0s", "limits: max_connections", "metrics.listen: \"nope\" is not host:port",
		"tracing.ca_file: used only towards an https tracing.endpoint", "tracing.sample_ratio: -1 is out of range",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestParseConfigRefuses(t *testing.T) {
	t.Parallel()
	for name, yaml := range map[string]string{
		"unknown key":           "issuer: i\nservice: s\nsigning_key: k\nlicenses: {file: f}\nlisten_addr: x\n",
		"no backend":            "issuer: i\nservice: s\nsigning_key: k\n",
		"empty":                 "",
		"not a duration":        "issuer: i\nservice: s\nsigning_key: k\nlicenses: {file: f}\ntoken_ttl: soon\n",
		"creds in URL":          "issuer: i\nservice: s\nsigning_key: k\nlicenses: {http: {url: 'https://u:p@x/'}}\n",
		"token_ttl too big":     "issuer: i\nservice: s\nsigning_key: k\nlicenses: {file: f}\ntoken_ttl: 48h\n",
		"listen not an address": "issuer: i\nservice: s\nsigning_key: k\nlicenses: {file: f}\nlisten: localhost\n",
		"bad username_path":     "issuer: i\nservice: s\nsigning_key: k\nlicenses: {http: {url: 'https://x/', username_path: 'a..b'}}\n",
		"negative ipv6_prefix":  "issuer: i\nservice: s\nsigning_key: k\nlicenses: {file: f}\nrate_limit: {ipv6_prefix: -1}\n",
		"metrics on listen":     "issuer: i\nservice: s\nsigning_key: k\nlicenses: {file: f}\nlisten: 0.0.0.0:5001\nmetrics: {listen: 0.0.0.0:5001}\n",
		"negative send timeout": "issuer: i\nservice: s\nsigning_key: k\nlicenses: {file: f}\ntimeouts: {send: -1s}\n",
		"unknown metrics key":   "issuer: i\nservice: s\nsigning_key: k\nlicenses: {file: f}\nmetrics: {port: 9}\n",
	} {
		if _, err := ParseConfig([]byte(yaml)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// New adds the files that do not load to the problems of the config.
func TestNewListsFileProblems(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := Config{
		Issuer: "i", Service: "s", TokenTTL: -1,
		SigningKey:          filepath.Join(dir, "missing.key"),
		RefreshTokenKeyFile: filepath.Join(dir, "missing-refresh.key"),
		Licenses:            backends.Config{Backends: fileLicenses(filepath.Join(dir, "missing.yaml"))},
		Tracing:             tracing.Config{Endpoint: "https://collector", CAFile: filepath.Join(dir, "missing-ca.pem")},
	}
	_, err := New(t.Context(), &cfg, Options{})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"token_ttl", "signing_key", "missing.key", "refresh_token_key_file", "licenses.file", "tracing.ca_file", "missing-ca.pem"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestNewStopsOnCancelledContext: New builds nothing for a caller that has
// already given up, and refuses a missing configuration.
func TestNewStopsOnCancelledContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := New(ctx, &Config{Issuer: testIssuer, Service: testService}, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if _, err := New(t.Context(), nil, Options{}); err == nil {
		t.Error("nil config accepted")
	}
}

func TestLoadConfigFile(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(exampleConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(p); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(p + ".missing"); err == nil {
		t.Error("missing file accepted")
	}
}

// Options can stand in for the key and backend files: a custom backend is
// still cached and observed.
func TestNewWithInjectedKeyAndBackend(t *testing.T) {
	t.Parallel()
	k := writeECKey(t, filepath.Join(t.TempDir(), "k.pem"))
	key, err := auth.NewSigningKey(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	backend := backendFunc(func(_ context.Context, token string) (license.License, error) {
		calls.Add(1)
		if token == aliceToken {
			return license.License{Account: aliceUser, Channels: []string{"stable"}}, nil
		}
		return license.License{}, license.ErrBadCredentials
	})
	srv, err := New(t.Context(), &Config{Issuer: testIssuer, Service: testService}, Options{SigningKey: key, Backend: backend, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	for range 3 {
		mustToken(t, get(t, hs.URL, aliceUser, aliceToken, scopes("repository:stable/app:pull")))
	}
	if calls.Load() != 1 || srv.KeyID() != key.KeyID {
		t.Errorf("%d backend calls, kid %s", calls.Load(), srv.KeyID())
	}
}

type backendFunc func(ctx context.Context, token string) (license.License, error)

func (f backendFunc) Lookup(ctx context.Context, token string) (license.License, error) {
	return f(ctx, token)
}
