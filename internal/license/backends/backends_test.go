package backends

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/license/filebackend"
	"github.com/acme/registry-gateway/internal/license/httpbackend"
	"github.com/acme/registry-gateway/internal/license/sqlbackend"
)

// decode decodes a document holding a licenses section as the token
// service's configuration does: strictly.
func decode(t *testing.T, doc string) (Config, error) {
	t.Helper()
	var v struct {
		Licenses Config `yaml:"licenses"`
	}
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	err := dec.Decode(&v)
	return v.Licenses, err
}

func TestDecodeSections(t *testing.T) {
	t.Parallel()
	c, err := decode(t, `
licenses:
  cache_ttl: 1m
  poll_interval: 3s
  http: {url: "https://api.example.com/", username_path: user.email}
`)
	if err != nil {
		t.Fatal(err)
	}
	h, ok := c.Backends["http"].(*httpbackend.Config)
	if !ok || len(c.Backends) != 1 || h.URL != "https://api.example.com/" || h.UsernamePath != "user.email" ||
		c.CacheTTL != time.Minute || c.PollInterval != 3*time.Second {
		t.Fatalf("%+v %+v", c, c.Backends)
	}
	c.SetDefaults()
	if h.Timeout != httpbackend.DefaultTimeout || h.ChannelsPath != httpbackend.DefaultChannelsPath || c.ProbeInterval != DefaultProbeInterval {
		t.Errorf("defaults: %+v %+v", c, h)
	}
	if errs := c.Problems(true); len(errs) != 0 {
		t.Errorf("problems: %v", errs)
	}

	c, err = decode(t, "licenses:\n  file: /etc/licenses.yaml\n")
	if f, ok := c.Backends["file"].(*filebackend.Config); err != nil || !ok || f.Path != "/etc/licenses.yaml" {
		t.Errorf("file: %+v, %v", c.Backends, err)
	}
	c, err = decode(t, "licenses:\n  sql: {driver: sqlite, dsn: /var/lib/accounts.db}\n")
	if s, ok := c.Backends["sql"].(*sqlbackend.Config); err != nil || !ok || s.Driver != "sqlite" || s.DSN != "/var/lib/accounts.db" {
		t.Errorf("sql: %+v, %v", c.Backends, err)
	}
}

// A key with no value, and an empty licence file path, set nothing, as
// before the sections had packages of their own.
func TestDecodeEmptySections(t *testing.T) {
	t.Parallel()
	c, err := decode(t, "licenses:\n  http:\n  sql: null\n  file: \"\"\n  cache_size: 5\n")
	if err != nil || len(c.Backends) != 0 || c.CacheSize != 5 {
		t.Fatalf("%+v, %v", c, err)
	}
	c.SetDefaults()
	if errs := c.Problems(true); len(errs) != 1 || !strings.Contains(errs[0].Error(), "licenses: set exactly one of file, http and sql") {
		t.Errorf("problems: %v", errs)
	}
	if errs := c.Problems(false); len(errs) != 0 {
		t.Errorf("problems with a backend of the caller's: %v", errs)
	}
}

// Every unknown key is reported with its line, in the licenses section
// and in each backend's section, in one error.
func TestDecodeIsStrict(t *testing.T) {
	t.Parallel()
	_, err := decode(t, `licenses:
  cache_tll: 1m
  http: {url: "https://x/", tiemout: 1s}
  sql:
    driver: sqlite
    dns: x
  file: [a, b]
`)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"line 2: field cache_tll not found", "line 3: field tiemout not found", "line 6: field dns not found",
		"line 7: licenses.file must be the path"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := decode(t, "licenses: [file]\n"); err == nil {
		t.Error("a list accepted")
	}
}

func TestProblems(t *testing.T) {
	t.Parallel()
	c, err := decode(t, `licenses:
  cache_ttl: -1s
  probe_interval: 10ms
  file: a.yaml
  http: {url: "ftp://x", timeout: -1s}
  sql: {driver: mysql}
`)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDefaults()
	msg := errors.Join(c.Problems(true)...).Error()
	for _, want := range []string{"licenses: set exactly one of file, http and sql, not several", "licenses.cache_ttl",
		"licenses.probe_interval: 10ms is outside [1s, 1m0s]", "licenses.http.url", "licenses.http.timeout",
		"licenses.sql.driver", "licenses.sql.dsn"} {
		if !strings.Contains(msg, want) {
			t.Errorf("problems lack %q:\n%s", want, msg)
		}
	}
	c = Config{Backends: Sections{"ldap": &fakeConfig{}}}
	c.SetDefaults()
	if msg := errors.Join(c.Problems(true)...).Error(); !strings.Contains(msg, "licenses.ldap: not a licence backend") {
		t.Errorf("unregistered backend: %s", msg)
	}
}

// fakeConfig is the section of a backend that is not in the tree: what a
// new backend package provides.
type fakeConfig struct {
	Greeting string `yaml:"greeting"`
	opened   *fakeBackend
}

func decodeFake(section *yaml.Node) (license.BackendConfig, error) {
	var c fakeConfig
	if err := license.DecodeSection(section, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *fakeConfig) SetDefaults() {
	if c.Greeting == "" {
		c.Greeting = "hello"
	}
}

func (c *fakeConfig) Problems(where string) []error {
	if c.Greeting == "bye" {
		return []error{errors.New(where + ".greeting: bye")}
	}
	return nil
}

func (c *fakeConfig) Open(context.Context, license.Env) (license.Backend, error) {
	c.opened = &fakeBackend{greeting: c.Greeting}
	return c.opened, nil
}

type fakeBackend struct {
	greeting string
	ran      atomic.Bool
	closed   atomic.Bool
}

func (b *fakeBackend) Lookup(context.Context, string) (license.License, error) {
	return license.License{Channels: []string{b.greeting}}, nil
}

func (b *fakeBackend) Run(ctx context.Context) error {
	b.ran.Store(true)
	<-ctx.Done()
	return nil
}

func (b *fakeBackend) Close() { b.closed.Store(true) }

// A backend is one registry entry: its section is decoded by its Decode,
// checked, opened behind the cache, run while the service watches, and
// closed with it.
func TestRegistryEntry(t *testing.T) {
	registry["fake"] = decodeFake // not parallel: the registry is shared
	t.Cleanup(func() { delete(registry, "fake") })

	if _, err := decode(t, "licenses:\n  fake: {greting: hi}\n"); err == nil || !strings.Contains(err.Error(), "field greting not found") {
		t.Errorf("strict: %v", err)
	}
	c, err := decode(t, "licenses:\n  fake: {}\n")
	if err != nil {
		t.Fatal(err)
	}
	c.SetDefaults()
	if errs := c.Problems(true); len(errs) != 0 {
		t.Fatal(errs)
	}
	synctest.Test(t, func(t *testing.T) {
		l, err := Open(t.Context(), c, license.Env{Logger: discard()}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		lic, err := l.Lookup(t.Context(), license.Credentials{Username: "a@b", Token: "tok"})
		if err != nil || !lic.Holds("hello") {
			t.Errorf("lookup: %+v, %v", lic, err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- l.Watch(ctx) }()
		synctest.Wait()
		b := c.Backends["fake"].(*fakeConfig).opened
		if !b.ran.Load() {
			t.Error("Watch did not run the backend")
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
		l.Close()
		if !b.closed.Load() {
			t.Error("Close did not close the backend")
		}
	})
}

// A backend of the caller's replaces the configured one; it is neither
// run nor closed: it is the caller's.
func TestOpenWithCallersBackend(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := &fakeBackend{greeting: "mine"}
		l, err := Open(t.Context(), Config{}, license.Env{Logger: discard()}, Options{Backend: b})
		if err != nil {
			t.Fatal(err)
		}
		if lic, err := l.Lookup(t.Context(), license.Credentials{Username: "a@b", Token: "tok"}); err != nil || !lic.Holds("mine") {
			t.Errorf("lookup: %+v, %v", lic, err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- l.Watch(ctx) }()
		synctest.Wait()
		cancel()
		<-done
		l.Close()
		if b.ran.Load() || b.closed.Load() {
			t.Error("the caller's backend was run or closed")
		}
	})
	// Without a backend the configuration has said what is wrong.
	if l, err := Open(t.Context(), Config{}, license.Env{}, Options{}); l != nil || err != nil {
		t.Errorf("no backend: %v, %v", l, err)
	}
}

func TestNames(t *testing.T) {
	t.Parallel()
	if got := Names(); got != "file, http and sql" {
		t.Errorf("Names() = %q", got)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
