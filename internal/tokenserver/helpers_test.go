package tokenserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/license/backends"
	"github.com/acme/registry-gateway/internal/license/filebackend"
	"github.com/acme/registry-gateway/internal/license/httpbackend"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
	"github.com/acme/registry-gateway/pkg/auth"
)

const (
	testService = "registry.example.com"
	testIssuer  = "acme-tokenserver"
	aliceUser   = "alice@example.com"
	aliceToken  = "alice-api-token-0123456789"
	bobUser     = "bob@example.com"
	bobToken    = "bob-api-token-9876543210"
)

// newFakeClock is an injected clock tests move by hand; it starts at the
// present, in whole seconds like the times in a JWT.
func newFakeClock() *testutil.Clock {
	return testutil.NewClock(time.Now().Truncate(time.Second))
}

// writeECKey writes a new P-256 key as PKCS#8 PEM.
func writeECKey(t testing.TB, path string) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	writeKeyPEM(t, path, k)
	return k
}

func writeRSAKey(t testing.TB, path string) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	writeKeyPEM(t, path, k)
	return k
}

func writeKeyPEM(t testing.TB, path string, k crypto.Signer) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeCert writes a self-signed certificate for k, usable both as the
// signing certificate and as a registry's rootcertbundle.
func writeCert(t testing.TB, path string, k crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "token signer"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

type account struct {
	user, token string
	channels    []string
	expires     time.Time
}

// writeLicenses writes a licences file atomically (rename into place), as
// an operator's deployment would.
func writeLicenses(t testing.TB, path string, accounts ...account) {
	t.Helper()
	var b strings.Builder
	b.WriteString("accounts:\n")
	for _, a := range accounts {
		fmt.Fprintf(&b, "  - username: %q\n    token_sha256: %q\n    channels: [%s]\n", a.user, license.HashToken(a.token), strings.Join(a.channels, ", "))
		if !a.expires.IsZero() {
			fmt.Fprintf(&b, "    expires: %s\n", a.expires.UTC().Format(time.RFC3339))
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

var defaultAccounts = []account{
	{user: aliceUser, token: aliceToken, channels: []string{"stable"}},
	{user: bobUser, token: bobToken, channels: []string{"beta", "stable"}},
}

// fixture is a token server with a file backend in a temp dir.
type fixture struct {
	t       testing.TB
	dir     string
	cfg     Config
	srv     *Server
	url     string // base URL
	opsURL  string // base URL of MetricsHandler, as metrics.listen serves it
	clock   *testutil.Clock
	logs    *testutil.SyncBuffer
	keyPath string
	licPath string
	busy    atomic.Int64 // requests in the handler
	// bubble: the fixture runs in a synctest bubble, where a socket would
	// keep time from moving; url and opsURL are then reached in memory.
	bubble bool
}

// inBubble makes newFixture serve in memory, for a test in a synctest
// bubble: the licence file is polled on the bubble's time (watch,
// pollStep).
func inBubble(f *fixture, _ *Options) { f.bubble = true }

// settle waits until no request is in the handler: the access line of an
// answered request is written after the client has the answer.
func (f *fixture) settle() {
	f.t.Helper()
	testutil.WaitFor(f.t, "requests in flight to end", 5*time.Second, func() bool { return f.busy.Load() == 0 })
}

type fixtureOpt func(*fixture, *Options)

// newFixture builds a server with the file backend and serves its Handler
// with httptest. mutate may change the configuration first.
func newFixture(t testing.TB, mutate func(*Config), fopts ...fixtureOpt) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), clock: newFakeClock(), logs: &testutil.SyncBuffer{}}
	f.keyPath = filepath.Join(f.dir, "token.key")
	f.licPath = filepath.Join(f.dir, "licenses.yaml")
	writeECKey(t, f.keyPath)
	writeLicenses(t, f.licPath, defaultAccounts...)
	f.cfg = Config{
		Issuer:     testIssuer,
		Service:    testService,
		SigningKey: f.keyPath,
		Licenses:   backends.Config{Backends: fileLicenses(f.licPath), PollInterval: 10 * time.Millisecond},
	}
	if mutate != nil {
		mutate(&f.cfg)
	}
	opts := Options{
		Logger: slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock:  f.clock.Now,
	}
	for _, o := range fopts {
		o(f, &opts)
	}
	srv, err := New(t.Context(), &f.cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	f.srv = srv
	h := srv.Handler()
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.busy.Add(1)
		defer f.busy.Add(-1)
		h.ServeHTTP(w, r)
	})
	if f.bubble {
		f.url = serveInMemory(t, counted)
		f.opsURL = serveInMemory(t, srv.MetricsHandler())
		return f
	}
	hs := httptest.NewServer(counted)
	t.Cleanup(hs.Close)
	f.url = hs.URL
	ops := httptest.NewServer(srv.MetricsHandler())
	t.Cleanup(ops.Close)
	f.opsURL = ops.URL
	return f
}

// watch runs the server's background work (the licence file's poller)
// until the test ends: what serve does for a fixture inBubble.
func (f *fixture) watch() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.Watch(ctx) }()
	f.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.t.Errorf("Watch: %v", err)
		}
	})
}

// pollStep lets one poll interval of the licence file pass in the bubble
// and the poll finish.
func (f *fixture) pollStep() {
	time.Sleep(f.cfg.Licenses.PollInterval)
	synctest.Wait()
}

// serve runs the server for real (Serve: background work, server timeouts,
// TLS) on a loopback port and returns its base URL with the host
// `localhost`.
func serve(t testing.TB, srv *Server) string {
	t.Helper()
	addr := testutil.Serve(t, srv.Serve)
	_, port, _ := net.SplitHostPort(addr)
	if srv.tls != nil {
		return "https://localhost:" + port
	}
	return "http://localhost:" + port
}

// get sends GET /token with Basic credentials (when user is not empty).
func get(t testing.TB, base, user, pass string, q url.Values, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/token?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" || pass != "" {
		req.SetBasicAuth(user, pass)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

func post(t testing.TB, base string, form url.Values) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, req)
}

var testClient = &http.Client{Timeout: 10 * time.Second}

// memServers are the handlers of serveInMemory, by host.
var (
	memServers sync.Map
	memHosts   atomic.Int64
)

// serveInMemory makes h reachable by do at the base URL it returns, with
// no socket: each request is served in the caller's goroutine.
func serveInMemory(t testing.TB, h http.Handler) string {
	host := fmt.Sprintf("server-%d.memory", memHosts.Add(1))
	memServers.Store(host, h)
	t.Cleanup(func() { memServers.Delete(host) })
	return "http://" + host
}

// memTransport serves a request with the handler serveInMemory registered
// for its host, as a server would receive it.
type memTransport struct{ h http.Handler }

func (m memTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	in := r.Clone(r.Context())
	in.RemoteAddr = "192.0.2.10:40000"
	in.RequestURI = r.URL.RequestURI()
	if in.Body == nil {
		in.Body = http.NoBody
	}
	rec := httptest.NewRecorder()
	m.h.ServeHTTP(rec, in)
	return rec.Result(), nil
}

func do(t testing.TB, req *http.Request) *http.Response {
	t.Helper()
	client := testClient
	if h, ok := memServers.Load(req.URL.Host); ok {
		client = &http.Client{Transport: memTransport{h.(http.Handler)}}
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp
}

func bodyOf(resp *http.Response) []byte {
	b, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return b
}

// tokenAnswer decodes a 200 answer, keeping expires_in's JSON type.
type tokenAnswer struct {
	Token        string          `json:"token"`
	AccessToken  string          `json:"access_token"`
	TokenType    string          `json:"token_type"`
	ExpiresIn    json.RawMessage `json:"expires_in"`
	IssuedAt     string          `json:"issued_at"`
	RefreshToken string          `json:"refresh_token"`
	Scope        string          `json:"scope"`
}

func mustToken(t testing.TB, resp *http.Response) tokenAnswer {
	t.Helper()
	body := bodyOf(resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", resp.StatusCode, body)
	}
	var a tokenAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if a.AccessToken == "" {
		t.Fatalf("no access_token in %s", body)
	}
	return a
}

// registryError is the registry error body plus the OAuth2 fields.
type registryError struct {
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
	Error string `json:"error"`
}

func decodeError(t testing.TB, resp *http.Response) registryError {
	t.Helper()
	body := bodyOf(resp)
	var e registryError
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) != 1 {
		t.Fatalf("status %d: body %q is not a registry error (%v)", resp.StatusCode, body, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	return e
}

// verifier checks tokens against the server's published JWKS.
func (f *fixture) verify(raw string) *auth.Claims {
	f.t.Helper()
	keys, err := auth.ParseJWKS(f.srv.JWKS())
	if err != nil {
		f.t.Fatal(err)
	}
	v := auth.NewVerifier(auth.VerifierConfig{
		Issuer: testIssuer, Audience: testService, Keys: auth.StaticKeys(keys), Clock: f.clock.Now, CacheSize: -1,
	})
	c, err := v.Verify(context.Background(), raw)
	if err != nil {
		f.t.Fatalf("verify: %v", err)
	}
	return c
}

// header decodes a JWT's header.
func header(t testing.TB, raw string) map[string]any {
	t.Helper()
	seg, _, _ := strings.Cut(raw, ".")
	data, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(data, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// rawClaims decodes a JWT's payload without checking it.
func rawClaims(t testing.TB, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	data, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// waitFor polls cond until it holds (the licence file poller).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, 5*time.Second, cond)
}

func scopes(s ...string) url.Values {
	return url.Values{"service": {testService}, "scope": s}
}

// metricValue scrapes /metrics at base (the operators' listener) for one
// sample line.
func metricValue(t testing.TB, base, sample string) string {
	t.Helper()
	resp := do(t, mustRequest(t, http.MethodGet, base+"/metrics"))
	for line := range strings.Lines(string(bodyOf(resp))) {
		if name, val, ok := strings.Cut(strings.TrimSpace(line), " "); ok && name == sample {
			return val
		}
	}
	return ""
}

func mustRequest(t testing.TB, method, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func writeFile(path, content string) error {
	return os.WriteFile(path, []byte(content), 0o644)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// auditLines returns the "token issued" lines logged so far.
func auditLines(t testing.TB, f *fixture) []map[string]any {
	t.Helper()
	f.settle()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(f.logs.String()))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if line["msg"] == "token issued" {
			out = append(out, line)
		}
	}
	return out
}

// fileLicenses is the licenses section of a licence file at path.
func fileLicenses(path string) backends.Sections {
	return backends.Sections{"file": &filebackend.Config{Path: path}}
}

// httpSection is the licenses.http section of c.
func httpSection(c *Config) *httpbackend.Config {
	return c.Licenses.Backends["http"].(*httpbackend.Config)
}

// checkConfigFile is CheckConfig of the file at path, read as
// `check-config` reads it (without -expand-env).
func checkConfigFile(t *testing.T, path string, files bool) error {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return CheckConfig(path, data, files)
}
