package gateway

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/acme/registry-gateway/internal/testsupport/otlptest"
	"github.com/acme/registry-gateway/internal/tracing"
)

// TestTracingSpans: with tracing.endpoint, a manifest request fetched
// upstream and the same one answered from the cache, and a refused token,
// are exported as spans that say which, and hold no token and no subject.
func TestTracingSpans(t *testing.T) {
	t.Parallel()
	rc := otlptest.Start(t)
	reg := newManifestRegistry()
	d := reg.put("", testManifest)
	e := newEnv(t, reg, func(c *Config, _ *Options) { c.Tracing = tracing.Config{Endpoint: rc.URL} })
	if e.gw.tracer == nil {
		t.Fatal("no tracer with tracing.endpoint")
	}
	tok := e.token()
	// The client's trace context is the parent of the gateway's spans; it
	// is not passed to the upstream, and neither is the gateway's.
	const clientTrace, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	h := bearer(tok)
	h.Set("Traceparent", "00-"+clientTrace+"-"+clientSpan+"-01")
	for range 2 {
		resp := e.do(http.MethodGet, "/v2/stable/app/manifests/"+d, h)
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("manifest: %d", resp.StatusCode)
		}
	}
	if up := e.upstream.last(); up.Header.Get("Traceparent") != "" || up.Header.Get("Tracestate") != "" {
		t.Errorf("the upstream was sent trace context: %v", up.Header)
	}
	c := e.claims()
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
	expired := e.sign(c)
	if resp := e.do(http.MethodGet, "/v2/stable/app/manifests/"+d, bearer(expired)); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("expired token: %d", resp.StatusCode)
	}
	e.gw.Close() // flushes the spans

	spans := rc.Spans()
	count := map[string]int{}
	var hits, outcomes []string
	for _, s := range spans {
		count[s.Name]++
		for k, v := range s.Attrs {
			for _, secret := range []string{tok, expired, "alice@example.com", testPassword, "Bearer"} {
				if strings.Contains(v, secret) {
					t.Errorf("span %q: attribute %s holds %q", s.Name, k, secret)
				}
			}
		}
		switch s.Name {
		case "manifest cache":
			hits = append(hits, s.Attrs["gateway.cache.hit"])
		case "verify token":
			outcomes = append(outcomes, s.Attrs["gateway.token.outcome"])
		case "GET manifest":
			if s.Attrs["registry.repository"] != "stable/app" || s.Attrs["url.path"] != "/v2/stable/app/manifests/"+d {
				t.Errorf("request span %+v", s)
			}
			if s.TraceID == clientTrace && s.ParentID != clientSpan {
				t.Errorf("request span %+v is not the client's span's child", s)
			}
		case "upstream GET":
			if s.Attrs["http.response.status_code"] != "200" {
				t.Errorf("upstream span %+v", s)
			}
		}
	}
	if n := countTrace(spans, clientTrace); n != 2+2+1+2 { // requests, verify, upstream, cache
		t.Errorf("%d spans in the client's trace", n)
	}
	if count["GET manifest"] != 3 || count["upstream GET"] != 1 || count["manifest cache"] != 2 || count["verify token"] != 3 {
		t.Errorf("spans %v", count)
	}
	if strings.Join(hits, ",") != "false,true" {
		t.Errorf("cache hits %v", hits)
	}
	if strings.Join(outcomes, ",") != "ok,ok,expired" {
		t.Errorf("token outcomes %v", outcomes)
	}
}

// Without tracing.endpoint the gateway has no tracer: its round-trippers
// and handler are the untraced ones.
func TestTracingOffByDefault(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newManifestRegistry())
	if e.gw.tracer != nil {
		t.Fatal("a tracer without tracing.endpoint")
	}
}

// A tracing.ca_file that does not load stops New and fails check-config
// with files, naming the key.
func TestTracingCAFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing-ca.pem")
	conf := filepath.Join(dir, "gateway.yaml")
	writeFile(t, conf, exampleConfig+"tracing:\n  endpoint: https://collector\n  ca_file: "+missing+"\n")
	if err := checkConfigFile(t, conf, false); err != nil {
		t.Errorf("check-config without files: %v", err)
	}
	if err := checkConfigFile(t, conf, true); err == nil || !strings.Contains(err.Error(), "tracing.ca_file: ") {
		t.Errorf("check-config with files: %v", err)
	}
	e := newEnv(t, newManifestRegistry())
	cfg := *e.cfg
	cfg.Tracing = tracing.Config{Endpoint: "https://collector", CAFile: missing}
	gw, err := New(t.Context(), &cfg, Options{Credentials: StaticCredential{Username: testUser, Password: testPassword}})
	if err == nil {
		gw.Close()
		t.Fatal("New accepted a missing tracing.ca_file")
	}
	if !strings.Contains(err.Error(), "tracing.ca_file: ") {
		t.Errorf("error %v does not name tracing.ca_file", err)
	}
}

func countTrace(spans []otlptest.Span, traceID string) int {
	n := 0
	for _, s := range spans {
		if s.TraceID == traceID {
			n++
		}
	}
	return n
}
