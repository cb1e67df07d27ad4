package tlsx

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/devcert"
	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

// files is a certificate pair on disk, signed by ca.
type files struct {
	ca                *devcert.CA
	dir               string
	certFile, keyFile string
}

func newFiles(t *testing.T) *files {
	t.Helper()
	ca, err := devcert.NewCA("tlsx test CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := &files{ca: ca, dir: dir, certFile: filepath.Join(dir, "tls.crt"), keyFile: filepath.Join(dir, "tls.key")}
	f.renew(t)
	return f
}

// renew writes a new server certificate for 127.0.0.1 and returns it.
func (f *files) renew(t *testing.T) *x509.Certificate {
	t.Helper()
	p, err := f.ca.Server("localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Write(f.certFile, f.keyFile); err != nil {
		t.Fatal(err)
	}
	return p.Cert
}

// serve runs an HTTPS server answering "ok" on a free port until the test
// ends, and returns its address.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	return testutil.Serve(t, func(ctx context.Context, ln net.Listener) error {
		srv := httpx.NewServer(ln.Addr().String(), h, httpx.DefaultTimeouts, slog.New(slog.DiscardHandler))
		return httpx.Serve(ctx, srv, s.Listener(ln), time.Second)
	})
}

// handshake connects with cfg and returns the server's leaf certificate.
func handshake(addr string, cfg *tls.Config) (*x509.Certificate, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	// With TLS 1.3 a refused client certificate shows on the first read.
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

func TestServesTLS12AndLaterOnly(t *testing.T) {
	t.Parallel()
	f := newFiles(t)
	s, err := NewServer(ServerConfig{CertFile: f.certFile, KeyFile: f.keyFile}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s)
	trust := f.ca.Pool()

	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		if _, err := handshake(addr, &tls.Config{RootCAs: trust, MinVersion: v, MaxVersion: v}); err != nil {
			t.Errorf("%s: %v", tls.VersionName(v), err)
		}
	}
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		_, err := handshake(addr, &tls.Config{RootCAs: trust, MinVersion: v, MaxVersion: v})
		if err == nil || !strings.Contains(err.Error(), "protocol version") {
			t.Errorf("%s: err %v, want a protocol version alert", tls.VersionName(v), err)
		}
	}

	t.Run("no HTTP/2", func(t *testing.T) {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: trust, NextProtos: []string{"h2", "http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if p := c.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
			t.Errorf("negotiated %q", p)
		}
	})

	t.Run("plain HTTP is refused", func(t *testing.T) {
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/")
		if err != nil {
			return // refused at the connection: as good
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || string(body) == "ok" {
			t.Errorf("plain HTTP got %d %q", resp.StatusCode, body)
		}
	})

	t.Run("a client without the CA refuses the server", func(t *testing.T) {
		_, err := handshake(addr, &tls.Config{})
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Errorf("err %v, want unknown authority", err)
		}
	})
}

func TestReload(t *testing.T) {
	t.Parallel()
	f := newFiles(t)
	var logs testutil.SyncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	s, err := NewServer(ServerConfig{CertFile: f.certFile, KeyFile: f.keyFile, PollInterval: 20 * time.Millisecond}, "", log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	addr := serve(t, s)
	trust := &tls.Config{RootCAs: f.ca.Pool()}
	first, err := handshake(addr, trust)
	if err != nil {
		t.Fatal(err)
	}

	// A connection opened before the renewal keeps working after it.
	tr := &http.Transport{TLSClientConfig: trust}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	get := func() (*tls.ConnectionState, error) {
		resp, err := client.Get("https://" + addr + "/")
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.TLS, nil
	}
	if _, err := get(); err != nil {
		t.Fatal(err)
	}

	renewed := f.renew(t)
	testutil.WaitFor(t, "the renewed certificate", 5*time.Second, func() bool {
		c, err := handshake(addr, trust)
		return err == nil && c.SerialNumber.Cmp(renewed.SerialNumber) == 0
	})
	if !strings.Contains(logs.String(), "TLS certificate reloaded") {
		t.Errorf("reload not logged:\n%s", logs.String())
	}
	st, err := get()
	if err != nil {
		t.Fatal(err)
	}
	if st.PeerCertificates[0].SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Error("the kept-alive connection was replaced")
	}

	t.Run("a broken pair keeps the previous one", func(t *testing.T) {
		// Checked by hand from here: the poller would also see the
		// half-written states in between (and log them, rightly).
		cancel()
		<-done
		other, err := f.ca.Server("localhost")
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name      string
			cert, key []byte
			want      string
		}{
			{"key of another certificate", other.CertPEM, mustRead(t, f.keyFile), "does not match"},
			{"key not PEM", mustRead(t, f.certFile), []byte("half-written"), "PEM"},
			{"empty certificate", nil, other.KeyPEM, "empty"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				logs.Reset()
				keyBefore := mustRead(t, f.keyFile)
				if err := os.WriteFile(f.certFile, tc.cert, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(f.keyFile, tc.key, 0o600); err != nil {
					t.Fatal(err)
				}
				for range 3 {
					err := s.Certificates().Check()
					if err == nil || !strings.Contains(err.Error(), tc.want) {
						t.Errorf("Check: %v, want %q", err, tc.want)
					}
				}
				c, err := handshake(addr, trust)
				if err != nil || c.SerialNumber.Cmp(renewed.SerialNumber) != 0 {
					t.Errorf("after a broken renewal: %v, serial %v", err, c)
				}
				if n := strings.Count(logs.String(), "do not load"); n != 1 {
					t.Errorf("logged %d times, want once:\n%s", n, logs.String())
				}
				for _, secret := range [][]byte{keyBefore, other.KeyPEM} {
					if strings.Contains(logs.String(), string(secret[30:60])) {
						t.Errorf("log carries key material:\n%s", logs.String())
					}
				}
				if !strings.Contains(logs.String(), `"level":"WARN"`) {
					t.Errorf("not a warning:\n%s", logs.String())
				}
			})
		}
		// Fixed files are picked up again.
		fixed := f.renew(t)
		if err := s.Certificates().Check(); err != nil {
			t.Fatal(err)
		}
		c, err := handshake(addr, trust)
		if err != nil || c.SerialNumber.Cmp(fixed.SerialNumber) != 0 {
			t.Errorf("after the fix: %v, %v", err, c)
		}
	})
}

func TestMutualTLS(t *testing.T) {
	t.Parallel()
	f := newFiles(t)
	caFile := filepath.Join(f.dir, "clients.crt")
	if err := os.WriteFile(caFile, f.ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(ServerConfig{CertFile: f.certFile, KeyFile: f.keyFile}, caFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s)

	client, err := f.ca.Client("gateway")
	if err != nil {
		t.Fatal(err)
	}
	clientCert, clientKey := filepath.Join(f.dir, "client.crt"), filepath.Join(f.dir, "client.key")
	if err := client.Write(clientCert, clientKey); err != nil {
		t.Fatal(err)
	}
	reloader, err := NewReloader(clientCert, clientKey, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(addr, ClientTLSConfig(f.ca.Pool(), reloader)); err != nil {
		t.Errorf("with a client certificate: %v", err)
	}

	if _, err := handshake(addr, ClientTLSConfig(f.ca.Pool(), nil)); err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("without a client certificate: %v, want certificate required", err)
	}

	stranger, err := devcert.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := stranger.Client("gateway")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := foreign.TLS()
	if err != nil {
		t.Fatal(err)
	}
	// GetClientCertificate: with Certificates, crypto/tls would send
	// nothing, as the server names the CAs it accepts.
	_, err = handshake(addr, &tls.Config{RootCAs: f.ca.Pool(),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }})
	if err == nil || !strings.Contains(err.Error(), "unknown certificate authority") {
		t.Errorf("with a certificate of another CA: %v, want unknown certificate authority", err)
	}
}

func TestNewServerReportsEveryFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(notPEM, []byte("no certificate here"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := NewServer(ServerConfig{CertFile: filepath.Join(dir, "missing.crt"), KeyFile: filepath.Join(dir, "missing.key")}, notPEM, nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"tls.cert_file, tls.key_file:", "missing.crt", "tls.client_ca_file:", "no PEM certificate"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	f := newFiles(t)
	other := newFiles(t)
	if _, err := NewServer(ServerConfig{CertFile: f.certFile, KeyFile: other.keyFile}, "", nil); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("mismatched pair: %v", err)
	}
}

func TestServerConfigProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  ServerConfig
		want []string
	}{
		{ServerConfig{}, nil},
		{ServerConfig{CertFile: "a", KeyFile: "b"}, nil},
		{ServerConfig{CertFile: "a"}, []string{"tls.cert_file and tls.key_file: set both or neither"}},
		{ServerConfig{KeyFile: "b", PollInterval: -time.Second}, []string{"set both or neither", "tls.poll_interval: -1s is out of range"}},
		{ServerConfig{CertFile: "a", KeyFile: "b", PollInterval: time.Nanosecond}, []string{"tls.poll_interval: 1ns is out of range (at least 10ms"}},
		{ServerConfig{CertFile: "a", KeyFile: "b", PollInterval: time.Hour}, nil},
	} {
		errs := ServerConfig.Problems(tc.cfg)
		if len(errs) != len(tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, errs, tc.want)
			continue
		}
		for i, w := range tc.want {
			if !strings.Contains(errs[i].Error(), w) {
				t.Errorf("%+v: %v, want %q", tc.cfg, errs[i], w)
			}
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
