package tokenserver

import (
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/devcert"
	"github.com/acme/registry-gateway/internal/license/backends"
	"github.com/acme/registry-gateway/internal/tlsx"
)

// TestServeHTTPSWithClientCertificates serves the token service over
// HTTPS with client certificates required, as the gateway reaches it.
func TestServeHTTPSWithClientCertificates(t *testing.T) {
	t.Parallel()
	certs, err := devcert.Ensure(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) {
		c.TLS = TLSConfig{
			ServerConfig: tlsx.ServerConfig{CertFile: certs.ServerCert, KeyFile: certs.ServerKey, PollInterval: 20 * time.Millisecond},
			ClientCAFile: certs.CACert,
		}
	})
	base := serve(t, f.srv)
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("served at %s", base)
	}
	clientCert, err := tlsx.NewReloader(certs.ClientCert, certs.ClientKey, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := func(cfg *tls.Config) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	gateway := client(tlsx.ClientTLSConfig(certs.CA.Pool(), clientCert))
	tokenURL := base + "/token?service=" + testService + "&scope=repository:stable/app:pull"

	t.Run("with a client certificate", func(t *testing.T) {
		req := mustRequest(t, http.MethodGet, tokenURL)
		req.SetBasicAuth(aliceUser, aliceToken)
		resp, err := gateway.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		tok := mustToken(t, resp)
		if claims := f.verify(tok.Token); len(claims.Access) != 1 {
			t.Errorf("access %+v", claims.Access)
		}
		resp, err = gateway.Get(base + "/.well-known/jwks.json")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("jwks: %v %v", resp, err)
		}
		resp.Body.Close()
	})

	for name, cfg := range map[string]*tls.Config{
		"without a client certificate": tlsx.ClientTLSConfig(certs.CA.Pool(), nil),
		"with TLS 1.1": {RootCAs: certs.CA.Pool(), MaxVersion: tls.VersionTLS11,
			GetClientCertificate: clientCert.GetClientCertificate},
	} {
		t.Run("refused "+name, func(t *testing.T) {
			req := mustRequest(t, http.MethodGet, tokenURL)
			req.SetBasicAuth(aliceUser, aliceToken)
			resp, err := client(cfg).Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("answered %d", resp.StatusCode)
			}
		})
	}

	t.Run("refused over plain HTTP", func(t *testing.T) {
		req := mustRequest(t, http.MethodGet, "http://"+strings.TrimPrefix(tokenURL, "https://"))
		req.SetBasicAuth(aliceUser, aliceToken)
		resp, err := client(nil).Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP: %d", resp.StatusCode)
		}
	})

	t.Run("a renewed certificate is served without a restart", func(t *testing.T) {
		if err := os.Remove(certs.ServerKey); err != nil {
			t.Fatal(err)
		}
		renewed, err := devcert.Ensure(certs.Dir)
		if err != nil || len(renewed.Generated) != 2 {
			t.Fatalf("renew: %v %v", err, renewed)
		}
		want, err := tls.LoadX509KeyPair(certs.ServerCert, certs.ServerKey)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the renewed certificate", func() bool {
			c, err := tls.Dial("tcp", strings.TrimPrefix(base, "https://"), tlsx.ClientTLSConfig(certs.CA.Pool(), clientCert))
			if err != nil {
				return false
			}
			defer c.Close()
			return c.ConnectionState().PeerCertificates[0].Equal(want.Leaf)
		})
		if !strings.Contains(f.logs.String(), "TLS certificate reloaded") {
			t.Error("reload not logged")
		}
		// The expiry metric follows the renewal.
		got, _ := strconv.ParseFloat(metricValue(t, f.opsURL, "tokenserver_tls_certificate_expiry_timestamp_seconds"), 64)
		if int64(got) != want.Leaf.NotAfter.Unix() {
			t.Errorf("expiry metric %v, certificate expires %d", got, want.Leaf.NotAfter.Unix())
		}
	})
}

func TestTLSConfigProblems(t *testing.T) {
	t.Parallel()
	base := "issuer: i\nservice: s\nsigning_key: k\nlicenses: {file: f}\n"
	for yaml, want := range map[string][]string{
		base + "tls: {cert_file: tls.crt, poll_interval: -1s}\n": {"tls.cert_file and tls.key_file: set both or neither", "tls.poll_interval"},
		base + "tls: {client_ca_file: ca.crt}\n":                 {"tls.client_ca_file: client certificates need HTTPS"},
		base + "tls: {cert: a}\n":                                {"field cert not found"},
	} {
		_, err := ParseConfig([]byte(yaml))
		for _, w := range want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %v lacks %q", yaml, err, w)
			}
		}
	}

	// New adds the files that do not load.
	dir := t.TempDir()
	_, err := New(t.Context(), &Config{
		Issuer: "i", Service: "s", SigningKey: filepath.Join(dir, "missing.key"),
		Licenses: backends.Config{Backends: fileLicenses(filepath.Join(dir, "missing.yaml"))},
		TLS: TLSConfig{ServerConfig: tlsx.ServerConfig{CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key")},
			ClientCAFile: filepath.Join(dir, "clients.crt")},
	}, Options{})
	for _, w := range []string{"signing_key", "licenses.file", "tls.cert_file, tls.key_file", "tls.client_ca_file"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("New: error %v lacks %q", err, w)
		}
	}
}
