package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/acme/registry-gateway/internal/devcert"
	"github.com/acme/registry-gateway/internal/embedreg"
	"github.com/acme/registry-gateway/internal/gateway"
	"github.com/acme/registry-gateway/internal/license/backends"
	"github.com/acme/registry-gateway/internal/license/filebackend"
	"github.com/acme/registry-gateway/internal/testsupport/ecrfake"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
	"github.com/acme/registry-gateway/internal/tlsx"
	"github.com/acme/registry-gateway/internal/tokenserver"
)

// tlsStack is the chain with HTTPS everywhere a customer or the gateway
// connects: the gateway serves HTTPS only, and reaches the token service
// over HTTPS with a client certificate it requires. The upstream stays
// plain HTTP on loopback (it stands for ECR, reached with system roots).
type tlsStack struct {
	gwHost string // localhost:PORT, HTTPS only
	certs  *devcert.Files
	// gwCert and gwKey are the gateway's own certificate files, apart
	// from the token service's, so that a test can renew them.
	gwCert, gwKey string
	image         v1.Hash // stable/app:v1
	logs          *testutil.SyncBuffer
}

const upstreamUser, upstreamPassword = "upstream", "upstream-password"

func newTLSStack(t *testing.T) *tlsStack {
	t.Helper()
	dir := t.TempDir()
	certs, err := devcert.Ensure(filepath.Join(dir, "certs"))
	if err != nil {
		t.Fatal(err)
	}
	s := &tlsStack{certs: certs, logs: &testutil.SyncBuffer{},
		gwCert: filepath.Join(dir, "gateway.crt"), gwKey: filepath.Join(dir, "gateway.key")}
	s.renewGatewayCert(t)
	log := slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})

	// Upstream with one image.
	upURL, digest := upstreamWithImage(t, dir, "acme/stable/app:v1")
	s.image = digest

	// Token service: HTTPS with client certificates required.
	keyPath, licPath := tokenServerFiles(t, dir)
	ts, err := tokenserver.New(ctx, &tokenserver.Config{
		Issuer: issuer, Service: service, SigningKey: keyPath,
		Licenses: backends.Config{Backends: backends.Sections{"file": &filebackend.Config{Path: licPath}}},
		TLS: tokenserver.TLSConfig{
			ServerConfig: tlsx.ServerConfig{CertFile: certs.ServerCert, KeyFile: certs.ServerKey},
			ClientCAFile: certs.CACert,
		},
	}, tokenserver.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	tsURL := "https://" + testutil.Serve(t, ts.Serve)

	// Gateway: HTTPS only, its certificate polled every 50ms.
	passwordFile := filepath.Join(dir, "upstream.password")
	writeFile(t, passwordFile, upstreamPassword)
	gwLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.gwHost = fmt.Sprintf("localhost:%d", gwLn.Addr().(*net.TCPAddr).Port)
	cfg, err := gateway.ParseConfig([]byte(`
realm: "https://` + s.gwHost + `/token"
service: "` + service + `"
issuer: "` + issuer + `"
keys: {jwks_url: "` + tsURL + `/.well-known/jwks.json"}
token_endpoint: "` + tsURL + `/token"
upstream:
  url: "` + upURL + `"
  repository_prefix: "acme/"
  static: {username: ` + upstreamUser + `, password_file: "` + passwordFile + `"}
tls:
  cert_file: "` + s.gwCert + `"
  key_file: "` + s.gwKey + `"
  poll_interval: 50ms
  ca_file: "` + certs.CACert + `"
  client_cert_file: "` + certs.ClientCert + `"
  client_key_file: "` + certs.ClientKey + `"
`))
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(ctx, cfg, gateway.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	wg.Go(func() {
		if err := gw.Serve(ctx, gwLn); err != nil {
			t.Errorf("gateway: %v", err)
		}
	})
	return s
}

// renewGatewayCert writes a new certificate for the gateway, in place, the
// way cert-manager does (the key first, then the certificate: the pair is
// mismatched in between).
func (s *tlsStack) renewGatewayCert(t *testing.T) *x509.Certificate {
	t.Helper()
	p, err := s.certs.CA.Server(devcert.ServerHosts...)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, s.gwKey, string(p.KeyPEM))
	writeFile(t, s.gwCert, string(p.CertPEM))
	return p.Cert
}

// dockerImage is a small random image whose config names this platform,
// so that docker pulls it too.
func dockerImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(256<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// handshakes records the serial number of every certificate the gateway
// presented to a client configured with verify.
type handshakes struct {
	mu   sync.Mutex
	seen map[string]int
}

func (h *handshakes) verify(cs tls.ConnectionState) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen[cs.PeerCertificates[0].SerialNumber.String()]++
	return nil
}

// snapshot is a copy of the counts, read under the lock: a handshake that
// a cancelled pull started may still be verifying after the pullers
// returned (net/http dials on a goroutine of its own).
func (h *handshakes) snapshot() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.seen)
}

func (h *handshakes) count(c *x509.Certificate) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen[c.SerialNumber.String()]
}

// TestCertificateRenewalDuringPulls replaces the gateway's certificate
// files while clients pull over HTTPS, verifying the gateway against the
// development CA: no pull fails, connections open before keep working, and
// new connections get the new certificate. A broken pair in between is
// logged and changes nothing.
func TestCertificateRenewalDuringPulls(t *testing.T) {
	s := newTLSStack(t)
	seen := &handshakes{seen: map[string]int{}}
	clientTLS := &tls.Config{RootCAs: s.certs.CA.Pool(), VerifyConnection: seen.verify}
	r, err := name.ParseReference(s.gwHost + "/stable/app:v1") // HTTPS: no name.Insecure
	if err != nil {
		t.Fatal(err)
	}

	var pulls, failures atomic.Int64
	var firstErr atomic.Value
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	puller := func(fresh bool) {
		keep := &http.Transport{TLSClientConfig: clientTLS}
		defer keep.CloseIdleConnections()
		for ctx.Err() == nil {
			tr := keep
			if fresh {
				// A new client each pull: every pull handshakes anew.
				tr = &http.Transport{TLSClientConfig: clientTLS}
			}
			d, err := pull(ctx, r, alice, remote.WithTransport(tr))
			if fresh {
				tr.CloseIdleConnections()
			}
			switch {
			case ctx.Err() != nil:
				return
			case err != nil || d != s.image:
				failures.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Errorf("pull: %v (digest %s)", err, d))
			default:
				pulls.Add(1)
			}
		}
	}
	wg.Go(func() { puller(false) })
	wg.Go(func() { puller(true) })
	wg.Go(func() { puller(true) })
	stopped := false
	stopPulls := func() {
		if !stopped {
			stop()
			wg.Wait()
			stopped = true
		}
	}
	t.Cleanup(stopPulls)

	waitUntil(t, "pulls before the renewal", func() bool { return pulls.Load() >= 3 })
	renewed := s.renewGatewayCert(t)
	waitUntil(t, "a handshake with the renewed certificate", func() bool { return seen.count(renewed) >= 3 })

	// A broken renewal: the new certificate stays in use.
	writeFile(t, s.gwKey, "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
	waitUntil(t, "the broken pair logged", func() bool { return strings.Contains(s.logs.String(), "do not load") })
	before := seen.count(renewed)
	waitUntil(t, "handshakes after the broken pair", func() bool { return seen.count(renewed) >= before+3 })

	fixed := s.renewGatewayCert(t)
	waitUntil(t, "a handshake with the fixed certificate", func() bool { return seen.count(fixed) >= 3 })
	n := pulls.Load()
	waitUntil(t, "pulls after the renewals", func() bool { return pulls.Load() >= n+3 })
	stopPulls()

	if f := failures.Load(); f != 0 {
		t.Fatalf("%d of %d pulls failed; first: %v", f, f+pulls.Load(), firstErr.Load())
	}
	t.Logf("%d pulls, certificates seen: %v", pulls.Load(), seen.snapshot())
	if strings.Contains(s.logs.String(), "broken\\n") {
		t.Error("the broken key file's content is in the log")
	}
}

// TestHTTPSRefusals: a verifying client that does not trust the gateway's
// CA, and a plain HTTP client, get nothing from it.
func TestHTTPSRefusals(t *testing.T) {
	s := newTLSStack(t)
	r, _ := name.ParseReference(s.gwHost + "/stable/app:v1")
	_, err := pull(t.Context(), r, alice)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("pull without the CA: %v, want unknown authority", err)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + s.gwHost + "/v2/")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP: %d", resp.StatusCode)
		}
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, 30*time.Second, cond)
}

// upstreamWithImage serves an embedded registry from dir behind htpasswd
// (upstreamUser, upstreamPassword), with dockerImage pushed as repoTag,
// for the test's length; it returns the registry's URL and the image's
// digest.
func upstreamWithImage(t *testing.T, dir, repoTag string) (string, v1.Hash) {
	t.Helper()
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := ecrfake.WriteHtpasswd(htpasswd, upstreamUser, upstreamPassword); err != nil {
		t.Fatal(err)
	}
	reg, err := embedreg.New(t.Context(), embedreg.Options{
		RootDir: filepath.Join(dir, "storage"), LogLevel: "fatal",
		Htpasswd: &embedreg.HtpasswdAuth{Realm: "upstream", Path: htpasswd},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	img := dockerImage(t)
	if err := remote.Write(ref(t, strings.TrimPrefix(srv.URL, "http://"), repoTag), img,
		remote.WithAuth(&authn.Basic{Username: upstreamUser, Password: upstreamPassword}), remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return srv.URL, digest
}
