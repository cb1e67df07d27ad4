package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/registry-gateway/pkg/auth"
	"github.com/acme/registry-gateway/pkg/upstream"
)

func TestHealthReadyMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newFakeRegistry(), func(_ *Config, o *Options) {
		o.Credentials = StaticCredential{Username: testUser, Password: testPassword, ExpiresAt: time.Now().Add(time.Hour)}
	})
	for _, p := range []string{"/healthz", "/readyz"} {
		if resp := e.do("GET", p, nil); resp.StatusCode != 200 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
	e.do("GET", "/v2/stable/app/manifests/latest", bearer(e.token()))
	e.do("GET", "/v2/stable/app/manifests/latest", bearer("bad"))
	body := e.scrape()
	for _, want := range []string{
		`gateway_requests_total{code="200",route="manifest"} 1`,
		`gateway_requests_total{code="401",route="manifest"} 1`,
		`gateway_token_verification_failures_total{reason="malformed"} 1`,
		`gateway_upstream_request_duration_seconds_count 1`,
		`gateway_upstream_credential_expiry_seconds 3`,
		`gateway_upstream_credential_refresh_failures_total 0`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, testPassword) {
		t.Error("metrics show the password")
	}
}

func TestReadyzFailsWhenCredentialExpired(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newFakeRegistry(), func(_ *Config, o *Options) {
		o.Credentials = StaticCredential{Username: testUser, Password: testPassword, ExpiresAt: time.Now().Add(-time.Second)}
	})
	if resp := e.do("GET", "/readyz", nil); resp.StatusCode != 503 {
		t.Errorf("readyz %d", resp.StatusCode)
	}
}

func TestStaticSourceFromConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pw := dir + "/upstream.password"
	writeFile(t, pw, testPassword+"\n")
	e := newEnv(t, newFakeRegistry(), func(c *Config, o *Options) {
		o.Credentials = nil
		c.Upstream.Providers = staticProvider(testUser, pw)
	})
	if resp := e.do("GET", "/v2/stable/app/manifests/latest", bearer(e.token())); resp.StatusCode != 200 {
		t.Fatalf("%d", resp.StatusCode)
	}
	if resp := e.do("GET", "/readyz", nil); resp.StatusCode != 200 {
		t.Errorf("readyz %d", resp.StatusCode)
	}
	// metrics: +Inf expiry for a credential that never expires.
	if body := e.scrape(); !strings.Contains(body, "gateway_upstream_credential_expiry_seconds +Inf") ||
		!strings.Contains(body, "gateway_upstream_credential_refreshes_total 1") {
		t.Errorf("metrics:\n%s", body)
	}
}

func TestNewFailsOnBadKeys(t *testing.T) {
	t.Parallel()
	cfg := &Config{
		Realm: testRealm, Service: testService, Issuer: testIssuer,
		Keys:     KeysConfig{PublicKeys: []string{t.TempDir() + "/missing.pub"}},
		Upstream: UpstreamConfig{URL: "http://127.0.0.1:1", Providers: staticProvider("u", "p")},
	}
	cfg.SetDefaults()
	if _, err := New(context.Background(), cfg, Options{Credentials: StaticCredential{}}); err == nil {
		t.Error("missing key file accepted")
	}
}

// TestJWKSLateStart: a token service that comes up after the gateway. The
// gateway starts unready, the readiness probe refetches the key set, and
// tokens verify once it is there.
func TestJWKSLateStart(t *testing.T) {
	t.Parallel()
	var up atomic.Bool
	var jwks atomic.Value
	jwks.Store([]byte(`{"keys":[]}`))
	ks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(jwks.Load().([]byte))
	}))
	t.Cleanup(ks.Close)
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	e := newEnv(t, newFakeRegistry(), func(c *Config, o *Options) {
		c.Keys = KeysConfig{JWKSURL: ks.URL, MinRefetch: time.Minute}
		o.Clock = func() time.Time { return time.Unix(0, now.Load()) }
	})
	set, err := auth.NewJWKS(e.key.Signer.Public())
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(set)
	jwks.Store(data)
	now.Add(int64(time.Minute)) // the probe refetches, and fails
	resp := e.do("GET", "/readyz", nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz before the token service: %d", resp.StatusCode)
	}
	// The fetch failure names the token service's internal address: the
	// public /readyz must not.
	if body := readBody(t, resp); strings.Contains(body, strings.TrimPrefix(ks.URL, "http://")) || strings.Contains(body, "503") {
		t.Errorf("readyz shows the key set fetch error: %s", body)
	}
	up.Store(true)
	if resp := e.do("GET", "/readyz", nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz refetched within min_refetch: %d", resp.StatusCode)
	}
	now.Add(int64(time.Minute))
	if resp := e.do("GET", "/readyz", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz after: %d %s", resp.StatusCode, readBody(t, resp))
	}
	if resp := e.do("GET", "/v2/stable/app/manifests/latest", bearer(e.token())); resp.StatusCode != http.StatusOK {
		t.Fatalf("pull: %d", resp.StatusCode)
	}
}

func TestMetricsObserver(t *testing.T) {
	t.Parallel()
	m := newMetrics(nil, time.Now)
	var o upstream.Observer = m
	o.RefreshFailed(errors.New("denied"))
	o.Refreshed(upstream.Credential{})
	if counterValue(m.refreshFailures) != 1 || counterValue(m.refreshes) != 1 {
		t.Error("observer did not count")
	}
}
