package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/pkg/ecr"
	"github.com/acme/registry-gateway/pkg/upstream/static"
)

const exampleConfig = `
listen: "127.0.0.1:5000"
realm: "https://registry.example.com/token"
service: "registry.example.com"
issuer: "acme-tokenserver"
keys:
  jwks_url: "http://127.0.0.1:5001/.well-known/jwks.json"
  public_keys: ["certs/token.pub"]
token_endpoint: "http://127.0.0.1:5001/token"
upstream:
  url: "https://123456789012.dkr.ecr.us-east-1.amazonaws.com"
  repository_prefix: "acme"
  proxy_blobs: false
  ecr:
    region: us-east-1
    registry_id: "123456789012"
`

func TestLoadConfigExample(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(path, []byte(exampleConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Upstream.RepositoryPrefix != "acme/" {
		t.Errorf("prefix = %q, want a trailing slash added", cfg.Upstream.RepositoryPrefix)
	}
	if e, ok := cfg.Upstream.Providers["ecr"].(*ecr.Config); !ok || e.RegistryID != "123456789012" || e.Region != "us-east-1" || len(cfg.Upstream.Providers) != 1 {
		t.Errorf("providers = %+v", cfg.Upstream.Providers)
	}
	if cfg.Leeway != 30*time.Second || cfg.CatalogTTL != 30*time.Second || !*cfg.AccessLog || cfg.Upstream.MaxIdleConnsPerHost != 256 {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	if m := cfg.ManifestCache; m.Disabled || m.MaxBytes != 32<<20 || m.TagTTLOrZero() != 5*time.Second {
		t.Errorf("manifest cache defaults: %+v", m)
	}
	if b := cfg.BlobRedirectCache; b != (BlobRedirectCacheConfig{TTL: time.Minute, MaxEntries: 10_000}) {
		t.Errorf("blob redirect cache defaults: %+v", b)
	}
	// Headers and a declared body must arrive within 20 s at the defaults.
	if to := cfg.Timeouts; to.ReadHeader != 10*time.Second || to.ReadBody != 10*time.Second || to.Idle != 120*time.Second {
		t.Errorf("timeouts defaults: %+v", to)
	}
	if len(cfg.TrustedProxies) != 0 {
		t.Errorf("trusted_proxies default: %v", cfg.TrustedProxies)
	}
}

func TestParseConfigStatic(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig([]byte(`
realm: "http://localhost:5000/token"
service: "s"
issuer: "i"
keys: {public_keys: [k.pem]}
leeway: 10s
access_log: false
manifest_cache: {max_bytes: 1048576, tag_ttl: 10s}
trusted_proxies: ["10.0.0.0/8", "192.0.2.7", "::1"]
timeouts: {read_header: 2s, read_body: 3s, idle: 1m}
upstream:
  url: "http://127.0.0.1:5002"
  static: {username: puller, password_file: pw}
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:5000" || cfg.Leeway != 10*time.Second || *cfg.AccessLog || cfg.Upstream.Providers["static"].(*static.Config).Username != "puller" {
		t.Errorf("cfg = %+v", cfg)
	}
	if m := cfg.ManifestCache; m.Disabled || m.MaxBytes != 1<<20 || m.TagTTLOrZero() != 10*time.Second {
		t.Errorf("manifest_cache = %+v", m)
	}
	if len(cfg.TrustedProxies) != 3 || cfg.Timeouts != (TimeoutsConfig{ReadHeader: 2 * time.Second, ReadBody: 3 * time.Second, Idle: time.Minute, Send: time.Minute}) {
		t.Errorf("trusted_proxies %v, timeouts %+v", cfg.TrustedProxies, cfg.Timeouts)
	}
	// Defaults of the edge: metrics on loopback, no connection limits.
	if cfg.Metrics.Listen != "127.0.0.1:9090" || cfg.Limits != (LimitsConfig{}) {
		t.Errorf("metrics %+v, limits %+v", cfg.Metrics, cfg.Limits)
	}
}

func TestParseConfigEdge(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig([]byte(`
realm: "http://localhost:5000/token"
service: "s"
issuer: "i"
keys: {public_keys: [k.pem]}
timeouts: {send: 90s}
limits: {max_connections: 10000, max_connections_per_address: 200}
metrics: {listen: "0.0.0.0:9100"}
upstream: {url: "http://127.0.0.1:5002", static: {username: puller, password_file: pw}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Timeouts.Send != 90*time.Second || cfg.Limits != (LimitsConfig{MaxConnections: 10000, MaxConnectionsPerAddress: 200}) ||
		cfg.Metrics.Listen != "0.0.0.0:9100" {
		t.Errorf("timeouts %+v, limits %+v, metrics %+v", cfg.Timeouts, cfg.Limits, cfg.Metrics)
	}
}

func TestParseConfigListsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := ParseConfig([]byte(`
listen: "nope"
realm: "/token"
keys: {jwks_url: "ftp://x"}
token_endpoint: "http://user:pw@host/token"
leeway: 1h
manifest_cache: {max_bytes: -1, tag_ttl: -1s}
blob_redirect_cache: {ttl: -1s, max_entries: -1}
trusted_proxies: ["10.0.0.0/8", "10.0.0.0/40", "lb.example.com"]
timeouts: {read_header: -1s, read_body: 1h, send: 2h}
limits: {max_connections: -1}
metrics: {listen: "9090"}
tracing: {endpoint: "grpc://collector:4317", sample_ratio: 2}
upstream:
  url: "https://ecr.example.com/v2/"
  repository_prefix: "Acme/"
  ecr: {registry_id: "12"}
  static: {}
`))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"listen:", "realm:", "service: required", "issuer: required", "keys.jwks_url:", "token_endpoint:",
		"leeway:", "upstream.url:", "upstream.repository_prefix:", "not both", "upstream.ecr.region: required",
		"upstream.ecr.registry_id:", "upstream.static.username: required", "upstream.static.password_file: required",
		"manifest_cache.max_bytes:", "manifest_cache.tag_ttl:", "trusted_proxies[1]:", "trusted_proxies[2]:",
		"timeouts.read_header:", "timeouts.read_body:", "blob_redirect_cache.ttl:", "blob_redirect_cache.max_entries:",
		"timeouts.send:", "limits:", "metrics.listen:", "tracing.endpoint:", "tracing.sample_ratio:",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "pw@") {
		t.Errorf("error shows the URL's password: %v", err)
	}
}

func TestParseConfigRefuses(t *testing.T) {
	t.Parallel()
	base := "realm: http://localhost/token\nservice: s\nissuer: i\nkeys: {public_keys: [k]}\n"
	for name, doc := range map[string]string{
		"unknown key":                     base + "upstream: {url: http://u, static: {username: u, password_file: p}}\nupstrem: {}\n",
		"no source":                       base + "upstream: {url: http://u}\n",
		"no keys":                         "realm: http://localhost/token\nservice: s\nissuer: i\nupstream: {url: http://u, static: {username: u, password_file: p}}\n",
		"quote":                           strings.Replace(base, "service: s", `service: "a\"b"`, 1) + "upstream: {url: http://u, static: {username: u, password_file: p}}\n",
		"empty":                           "",
		"bad duration":                    base + "catalog_ttl: soon\nupstream: {url: http://u, static: {username: u, password_file: p}}\n",
		"cache key":                       base + "manifest_cache: {size: 1}\nupstream: {url: http://u, static: {username: u, password_file: p}}\n",
		"tag_ttl week":                    base + "manifest_cache: {tag_ttl: 168h}\nupstream: {url: http://u, static: {username: u, password_file: p}}\n",
		"max_bytes":                       base + "manifest_cache: {max_bytes: 1099511627776}\nupstream: {url: http://u, static: {username: u, password_file: p}}\n",
		"redirect ttl":                    base + "blob_redirect_cache: {ttl: 48h}\nupstream: {url: http://u, static: {username: u, password_file: p}}\n",
		"redirects":                       base + "blob_redirect_cache: {max_entries: 2000000}\nupstream: {url: http://u, static: {username: u, password_file: p}}\n",
		"redirect key":                    base + "blob_redirect_cache: {size: 1}\nupstream: {url: http://u, static: {username: u, password_file: p}}\n",
		"metrics on the clients' address": base + "listen: 0.0.0.0:5000\nmetrics: {listen: 0.0.0.0:5000}\nupstream: {url: http://u, static: {username: u, password_file: p}}\n",
		"negative per address":            base + "limits: {max_connections_per_address: -5}\nupstream: {url: http://u, static: {username: u, password_file: p}}\n",
		"metrics key":                     base + "metrics: {path: /m}\nupstream: {url: http://u, static: {username: u, password_file: p}}\n",
		"tracing key":                     base + "tracing: {endpoint: http://c:4318, headers: {a: b}}\nupstream: {url: http://u, static: {username: u, password_file: p}}\n",
		"tracing without endpoint":        base + "tracing: {sample_ratio: 0.5}\nupstream: {url: http://u, static: {username: u, password_file: p}}\n",
	} {
		if _, err := ParseConfig([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestParseConfigTagTTL: unset is the 5 s default, an explicit 0 stays 0
// (tags always go upstream), and a value is taken as given.
func TestParseConfigTagTTL(t *testing.T) {
	t.Parallel()
	base := "realm: http://localhost/token\nservice: s\nissuer: i\nkeys: {public_keys: [k]}\nupstream: {url: http://u, static: {username: u, password_file: p}}\n"
	for doc, want := range map[string]time.Duration{
		"":                                  5 * time.Second,
		"manifest_cache: {max_bytes: 1024}": 5 * time.Second,
		"manifest_cache: {tag_ttl: }":       5 * time.Second,
		"manifest_cache: {tag_ttl: 0s}":     0,
		"manifest_cache: {tag_ttl: 90s}":    90 * time.Second,
	} {
		cfg, err := ParseConfig([]byte(base + doc))
		if err != nil {
			t.Errorf("%q: %v", doc, err)
			continue
		}
		if got := cfg.ManifestCache.TagTTLOrZero(); got != want {
			t.Errorf("%q: tag_ttl %s, want %s", doc, got, want)
		}
	}
}

// TestParseConfigProviderSections: a provider's section is decoded by its
// package as strictly as the rest of the file, with the file's line
// numbers; a key that is neither a setting nor a provider is refused.
func TestParseConfigProviderSections(t *testing.T) {
	t.Parallel()
	base := "realm: http://localhost/token\nservice: s\nissuer: i\nkeys: {public_keys: [k]}\n"
	for doc, want := range map[string]string{
		"upstream:\n  url: http://u\n  staticc: {username: u, password_file: p}\n":                  "line 7: field staticc not found in type gateway.UpstreamConfig",
		"upstream:\n  url: http://u\n  static:\n    username: u\n    pasword: p\n":                  "line 9: field pasword not found in type static.Config",
		"upstream:\n  url: http://u\n  ecr: {region: [1]}\n":                                        "line 7: cannot unmarshal !!seq into string",
		"upstream:\n  url: http://u\n  ecr: {region: r}\n  ecr: {region: r}\n":                      "already defined",
		"upstream:\n  url: http://u\n  ecr: {region: r}\n  static: {username: u, password_file: p}": "not both",
		"upstream:\n  url: http://u\n  ecr: {region: r}\n  max_idle_conns_per_host: x\n":            "line 8: cannot unmarshal !!str `x` into int",
	} {
		_, err := ParseConfig([]byte(base + doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", doc, err, want)
		}
	}
	cfg, err := ParseConfig([]byte(base + "upstream:\n  url: http://u\n  proxy_blobs: true\n  ecr: {region: eu-west-1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := cfg.Upstream.Providers["ecr"].(*ecr.Config); !ok || e.Region != "eu-west-1" || !cfg.Upstream.ProxyBlobs || cfg.Upstream.URL != "http://u" {
		t.Errorf("upstream = %+v", cfg.Upstream)
	}
}
