package tokenserver

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/devcert"
	"github.com/acme/registry-gateway/internal/license/backends"
	"github.com/acme/registry-gateway/internal/license/sqlbackend"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
	"github.com/acme/registry-gateway/internal/tlsx"
)

// The admin API on admin.listen: served by Run over HTTPS with the
// service's certificate but without asking for the gateway's client
// certificate, with failed admin authentications throttled by the
// customers' login limiter.
func TestAdminListener(t *testing.T) {
	t.Parallel()
	certs, err := devcert.Ensure(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sqlCfg := accountstest.SQLite(t)
	db := accountstest.Open(t, sqlCfg, accounts.Options{})
	_, key, err := db.AddAdminKey(t.Context(), "ops", "crm", accounts.ScopeWrite, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(t.TempDir(), "token.key")
	writeECKey(t, keyPath)
	srv, err := New(t.Context(), &Config{
		Issuer: testIssuer, Service: testService, SigningKey: keyPath,
		Licenses:  backends.Config{Backends: backends.Sections{"sql": &sqlbackend.Config{Config: *sqlCfg}}},
		RateLimit: RateLimitConfig{PerAddress: 1, PerAddressBurst: 2},
		TLS: TLSConfig{ServerConfig: tlsx.ServerConfig{CertFile: certs.ServerCert, KeyFile: certs.ServerKey},
			ClientCAFile: certs.CACert},
		Admin: AdminConfig{Listen: "127.0.0.1:0"},
	}, Options{Logger: discardLogger(), Listener: listen(t), MetricsListener: listen(t), AdminListener: listen(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	adminLn := srv.opts.AdminListener
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	_, port, _ := net.SplitHostPort(adminLn.Addr().String())
	base := "https://localhost:" + port + "/admin/v1"
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsx.ClientTLSConfig(certs.CA.Pool(), nil)}}
	call := func(k string) (int, string) {
		t.Helper()
		req := mustRequest(t, http.MethodGet, base+"/accounts")
		if k != "" {
			req.Header.Set("Authorization", "Bearer "+k)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := call(key); code != http.StatusOK || !strings.Contains(body, `"items":[]`) {
		t.Fatalf("GET /accounts: %d %s", code, body)
	}
	// Plain HTTP is refused.
	if resp, err := http.Get("http://localhost:" + port + "/admin/v1/openapi.json"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP: %d", resp.StatusCode)
		}
	}
	// Two failures are the burst; then even the right key waits.
	for range 2 {
		if code, _ := call("wrong"); code != http.StatusUnauthorized {
			t.Errorf("a wrong key: %d", code)
		}
	}
	if code, body := call(key); code != http.StatusTooManyRequests || !strings.Contains(body, "too many failed authentications") {
		t.Errorf("after the burst: %d %s", code, body)
	}
	// The customers' listener does not serve the admin API.
	_, cport, _ := net.SplitHostPort(srv.opts.Listener.Addr().String())
	resp, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certs.CA.Pool()}}}).Get("https://localhost:" + cport + "/admin/v1/openapi.json")
	if err == nil {
		resp.Body.Close()
		t.Errorf("the customers' listener answered the admin API without a client certificate: %d", resp.StatusCode)
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func TestAdminConfigProblems(t *testing.T) {
	t.Parallel()
	base := "issuer: i\nservice: s\nsigning_key: k\n"
	sql := "licenses: {sql: {driver: sqlite, dsn: a.db}}\n"
	for yaml, want := range map[string]string{
		base + "licenses: {file: f}\nadmin: {listen: 127.0.0.1:5002}\n": "admin.listen: the admin API administers the accounts of licenses.sql",
		base + sql + "admin: {listen: 5002}\n":                          `admin.listen: "5002" is not host:port`,
		base + sql + "admin: {listen: 127.0.0.1:5001}\n":                "admin.listen: \"127.0.0.1:5001\" is the service's or the metrics' listen address",
		base + sql + "admin: {listen: 127.0.0.1:9091}\n":                "admin.listen: \"127.0.0.1:9091\" is the service's or the metrics' listen address",
		base + sql + "admin: {address: x}\n":                            "field address not found",
	} {
		_, err := ParseConfig([]byte(yaml))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v lacks %q", yaml, err, want)
		}
	}
	if _, err := ParseConfig([]byte(base + sql + "admin: {listen: 127.0.0.1:5002}\n")); err != nil {
		t.Errorf("a good admin section: %v", err)
	}
}
