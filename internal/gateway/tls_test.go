package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/devcert"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
	"github.com/acme/registry-gateway/internal/tlsx"
	"github.com/acme/registry-gateway/pkg/auth"
)

func httpsClient(cfg *tls.Config) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

// TestServeHTTPSOnly: with a certificate the gateway speaks TLS 1.2 or
// later and nothing else on its port.
func TestServeHTTPSOnly(t *testing.T) {
	t.Parallel()
	certs, err := devcert.Ensure(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, newFakeRegistry(), func(c *Config, _ *Options) {
		c.TLS.CertFile, c.TLS.KeyFile = certs.ServerCert, certs.ServerKey
	})
	addr := testutil.Serve(t, e.gw.Serve)

	resp, err := httpsClient(&tls.Config{RootCAs: certs.CA.Pool()}).Get("https://" + addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Www-Authenticate") != testChallenge {
		t.Errorf("/v2/ over HTTPS: %d %q", resp.StatusCode, resp.Header.Get("Www-Authenticate"))
	}
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 || resp.ProtoMajor != 1 {
		t.Fatalf("connection %+v, %s", resp.TLS, resp.Proto)
	}
	served := resp.TLS.PeerCertificates[0]

	if _, err := httpsClient(&tls.Config{RootCAs: certs.CA.Pool(), MaxVersion: tls.VersionTLS11}).Get("https://" + addr + "/v2/"); err == nil {
		t.Error("TLS 1.1 accepted")
	}
	resp, err = noRedirects.Get("http://" + addr + "/v2/")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Www-Authenticate") != "" {
			t.Errorf("plain HTTP answered %d %s", resp.StatusCode, body)
		}
	}
	if e.upstream.count() != 0 {
		t.Errorf("%d requests reached the upstream", e.upstream.count())
	}

	metrics := e.scrape()
	want := fmt.Sprintf("gateway_tls_certificate_expiry_timestamp_seconds %g\n", float64(served.NotAfter.Unix()))
	if !strings.Contains(metrics, want) {
		t.Errorf("metrics lack %q", want)
	}
}

// TestTokenServiceOverHTTPS: the gateway fetches the key set and forwards
// /token over HTTPS, trusting tls.ca_file and presenting its client
// certificate to a token service that requires one.
func TestTokenServiceOverHTTPS(t *testing.T) {
	t.Parallel()
	certs, err := devcert.Ensure(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	serverCerts, err := tlsx.NewReloader(certs.ServerCert, certs.ServerKey, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	var jwks atomic.Pointer[[]byte]
	jwks.Store(new([]byte))
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/.well-known/jwks.json" {
			_, _ = w.Write(*jwks.Load())
			return
		}
		// The token service sees the gateway's client certificate; each
		// answer closes the connection, so that every request handshakes.
		w.Header().Set("Connection", "close")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"token": "t", "client": r.TLS.PeerCertificates[0].Subject.CommonName})
	}))
	// Not StartTLS: it would put its own certificate first.
	ts.Listener = tls.NewListener(ts.Listener, tlsx.ServerTLSConfig(serverCerts, certs.CA.Pool()))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes below
	ts.Start()
	t.Cleanup(ts.Close)
	tsURL := "https://" + ts.Listener.Addr().String()

	tlsConfig := TLSConfig{CAFile: certs.CACert, ClientCertFile: certs.ClientCert, ClientKeyFile: certs.ClientKey,
		ServerConfig: tlsx.ServerConfig{PollInterval: 20 * time.Millisecond}}
	newGateway := func(t *testing.T, c TLSConfig) *env {
		return newEnv(t, newFakeRegistry(), func(cfg *Config, _ *Options) {
			// A key set refetched for any unknown kid (0 is the default).
			cfg.Keys = KeysConfig{JWKSURL: tsURL + "/.well-known/jwks.json", MinRefetch: time.Nanosecond}
			cfg.TokenEndpoint = tsURL + "/token"
			cfg.TLS = c
		})
	}
	var e *env
	{
		// The env's key signs the tokens; the JWKS publishes it.
		e = newGateway(t, tlsConfig)
		set, err := auth.NewJWKS(e.key.Signer.Public())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(set)
		jwks.Store(&b)
	}
	// The key set is refetched for the unknown kid of the first token.
	resp := e.do("GET", "/v2/", bearer(e.token()))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token verified with the key set fetched over HTTPS: %d %s\n%s", resp.StatusCode, readBody(t, resp), e.logs)
	}
	resp = e.do("GET", "/token?service="+testService, nil)
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"client":"registry-gateway"`) {
		t.Fatalf("/token over mTLS: %d %s", resp.StatusCode, body)
	}

	// A renewed client certificate is presented from then on.
	renewed, err := certs.CA.Client("registry-gateway-renewed")
	if err != nil {
		t.Fatal(err)
	}
	if err := renewed.Write(certs.ClientCert, certs.ClientKey); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the renewed client certificate", 5*time.Second, func() bool {
		resp := e.do("GET", "/token?service="+testService, nil)
		return strings.Contains(readBody(t, resp), `"client":"registry-gateway-renewed"`)
	})

	for name, c := range map[string]TLSConfig{
		"without tls.ca_file (system roots)": {ClientCertFile: certs.ClientCert, ClientKeyFile: certs.ClientKey},
		"without a client certificate":       {CAFile: certs.CACert},
	} {
		t.Run(name, func(t *testing.T) {
			e := newGateway(t, c)
			resp := e.do("GET", "/token?service="+testService, nil)
			if body := readBody(t, resp); resp.StatusCode != http.StatusBadGateway || errorCode(t, body) != "UNAVAILABLE" {
				t.Errorf("/token: %d %s", resp.StatusCode, body)
			}
			resp = e.do("GET", "/readyz", nil)
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("/readyz without the key set: %d", resp.StatusCode)
			}
		})
	}
}

func TestTLSConfigProblems(t *testing.T) {
	t.Parallel()
	_, err := ParseConfig([]byte(`
realm: http://r/token
service: s
issuer: i
keys: {jwks_url: "http://ts/jwks"}
upstream: {url: "https://up", static: {username: u, password_file: p}}
tls: {key_file: k, poll_interval: -1s, ca_file: ca.crt, client_cert_file: c.crt}
`))
	for _, want := range []string{"tls.cert_file and tls.key_file: set both or neither", "tls.poll_interval",
		"tls.client_cert_file and tls.client_key_file: set both or neither", "neither is https",
		`realm: "http://r/token" is plain HTTP while the gateway serves HTTPS`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}

	dir := t.TempDir()
	cfg, err := ParseConfig([]byte(`
realm: https://r/token
service: s
issuer: i
keys: {jwks_url: "https://ts/jwks"}
upstream: {url: "https://up", static: {username: u, password_file: p}}
tls: {cert_file: ` + dir + `/a.crt, key_file: ` + dir + `/a.key, ca_file: ` + dir + `/ca.crt, client_cert_file: ` + dir + `/c.crt, client_key_file: ` + dir + `/c.key}
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(context.Background(), cfg, Options{Credentials: StaticCredential{Username: "u", Password: "p"}})
	for _, want := range []string{"tls.cert_file, tls.key_file", "a.crt", "tls.ca_file", "tls.client_cert_file, tls.client_key_file"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New: error %v lacks %q", err, want)
		}
	}
}

// TestUpstreamKeepsSystemRoots: tls.ca_file is trusted for the token
// service only; an upstream whose certificate that CA signed is still
// verified against the system's roots, and refused.
func TestUpstreamKeepsSystemRoots(t *testing.T) {
	t.Parallel()
	certs, err := devcert.Ensure(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	serverCerts, err := tlsx.NewReloader(certs.ServerCert, certs.ServerKey, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	up := httptest.NewUnstartedServer(newFakeRegistry())
	up.Listener = tls.NewListener(up.Listener, tlsx.ServerTLSConfig(serverCerts, nil))
	up.Config.ErrorLog = log.New(io.Discard, "", 0)
	up.Start()
	t.Cleanup(up.Close)

	e := newEnv(t, newFakeRegistry(), func(c *Config, _ *Options) {
		c.Upstream.URL = "https://" + up.Listener.Addr().String()
		c.TokenEndpoint = "https://" + up.Listener.Addr().String() + "/token"
		c.TLS.CAFile = certs.CACert
	})
	resp := e.do("GET", "/v2/stable/app/manifests/latest", bearer(e.token()))
	if body := readBody(t, resp); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("upstream with a certificate of tls.ca_file: %d %s", resp.StatusCode, body)
	}
	if !e.logs.WaitFor("certificate signed by unknown authority", 5*time.Second) {
		t.Errorf("the refusal is not logged as a certificate error:\n%s", e.logs)
	}
}
