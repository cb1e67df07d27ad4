package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/acme/registry-gateway/internal/testsupport/testutil"
	"github.com/acme/registry-gateway/pkg/auth"
	"github.com/acme/registry-gateway/pkg/ecr"
	"github.com/acme/registry-gateway/pkg/upstream"
	"github.com/acme/registry-gateway/pkg/upstream/static"
)

const (
	testRealm    = "https://auth.example.com/token"
	testService  = "registry.example.com"
	testIssuer   = "test-issuer"
	testUser     = "puller"
	testPassword = "upstream-s3cret-password"
	testPrefix   = "acme/"
)

var testChallenge = `Bearer realm="` + testRealm + `",service="` + testService + `"`

// recorded is what the fake upstream saw of one request.
type recorded struct {
	Method, Path, RawQuery string
	Header                 http.Header
}

// upstreamRecorder counts and records the requests that reach a handler.
type upstreamRecorder struct {
	next http.Handler
	mu   sync.Mutex
	reqs []recorded
}

func (u *upstreamRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.reqs = append(u.reqs, recorded{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Clone()})
	u.mu.Unlock()
	u.next.ServeHTTP(w, r)
}

func (u *upstreamRecorder) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

func (u *upstreamRecorder) last() recorded {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		return recorded{}
	}
	return u.reqs[len(u.reqs)-1]
}

// fakeRegistry is a minimal upstream for the repository acme/stable/app
// that requires Basic credentials.
type fakeRegistry struct {
	mu       sync.Mutex
	password string
	// blobRedirect, when set, is where blob GETs are redirected (307).
	blobRedirect string
	manifest     []byte
	repos        []string
}

var testManifest = []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}`)

func newFakeRegistry() *fakeRegistry {
	return &fakeRegistry{password: testPassword, manifest: testManifest}
}

func (f *fakeRegistry) setPassword(p string) {
	f.mu.Lock()
	f.password = p
	f.mu.Unlock()
}

func (f *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	pw, redirect, repos := f.password, f.blobRedirect, f.repos
	f.mu.Unlock()
	w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
	if u, p, ok := r.BasicAuth(); !ok || u != testUser || p != pw {
		w.Header().Set("Www-Authenticate", `Basic realm="upstream"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/v2/acme/stable/app/manifests/latest" || p == "/v2/acme/stable/app/manifests/"+dgst:
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Docker-Content-Digest", dgst)
		w.Header().Set("X-Seen-Accept", r.Header.Get("Accept"))
		w.Header().Set("Content-Length", itoa(len(f.manifest)))
		if r.Method == http.MethodGet {
			_, _ = w.Write(f.manifest)
		}
	case strings.HasPrefix(p, "/v2/acme/stable/app/blobs/") && redirect != "":
		w.Header().Set("Location", redirect+"/blob?X-Amz-Signature=abc")
		w.WriteHeader(http.StatusTemporaryRedirect)
	case p == "/v2/acme/stable/app/blobs/"+dgst512:
		// An upstream that redirects to itself, with an absolute URL.
		w.Header().Set("Location", "http://"+r.Host+"/v2/acme/stable/app/blobs/"+dgst)
		w.WriteHeader(http.StatusTemporaryRedirect)
	case p == "/v2/acme/stable/app/tags/list":
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Link", `</v2/acme/stable/app/tags/list?last=v1&n=1>; rel="next"`)
		_, _ = io.WriteString(w, `{"name":"acme/stable/app","tags":["v1"]}`)
	case p == "/v2/_catalog":
		// Two per page, with a Link to the next, like distribution.
		start := 0
		if last := r.URL.Query().Get("last"); last != "" {
			for i, n := range repos {
				if n == last {
					start = i + 1
				}
			}
		}
		end := min(start+2, len(repos))
		if end < len(repos) {
			w.Header().Set("Link", `</v2/_catalog?last=`+repos[end-1]+`&n=2>; rel="next"`)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string][]string{"repositories": repos[start:end]})
	case p == "/v2/acme/stable/app/manifests/boom":
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, "internal detail "+pw)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"name":"acme/stable/app","registry":"123456789012"}}]}`)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// env is a gateway in front of a fake upstream, with a signing key whose
// public half the gateway trusts through a PEM file.
type env struct {
	t        testing.TB
	key      *auth.SigningKey
	cfg      *Config
	gw       *Gateway
	srv      *httptest.Server
	ops      *httptest.Server // MetricsHandler, as metrics.listen serves it
	upstream *upstreamRecorder
	upSrv    *httptest.Server
	logs     *testutil.SyncBuffer
}

type envOption func(*Config, *Options)

func newEnv(t testing.TB, upstream http.Handler, options ...envOption) *env {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := auth.NewSigningKey(priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pubPath := filepath.Join(dir, "token.pub")
	if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	rec := &upstreamRecorder{next: upstream}
	upSrv := httptest.NewServer(rec)
	t.Cleanup(upSrv.Close)

	cfg := &Config{
		Realm: testRealm, Service: testService, Issuer: testIssuer,
		Keys:     KeysConfig{PublicKeys: []string{pubPath}},
		Upstream: UpstreamConfig{URL: upSrv.URL, RepositoryPrefix: testPrefix, Providers: staticProvider(testUser, "unused")},
	}
	logs := &testutil.SyncBuffer{}
	opts := Options{
		Logger:      slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Credentials: StaticCredential{Username: testUser, Password: testPassword},
	}
	for _, o := range options {
		o(cfg, &opts)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	gw, err := New(ctx, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(srv.Close)
	ops := httptest.NewServer(gw.MetricsHandler())
	t.Cleanup(ops.Close)
	e := &env{t: t, key: key, cfg: cfg, gw: gw, srv: srv, ops: ops, upstream: rec, upSrv: upSrv, logs: logs}
	t.Cleanup(func() {
		// Whatever a test did, the upstream credential never shows.
		if strings.Contains(logs.String(), testPassword) {
			t.Errorf("the upstream password appears in the log")
		}
	})
	return e
}

// claims are valid claims granting pull on stable/app.
func (e *env) claims() *auth.Claims {
	now := time.Now()
	return &auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: testIssuer, Audience: jwt.ClaimStrings{testService}, Subject: "alice@example.com",
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
			ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute)), ID: auth.NewTokenID(),
		},
		Access: []auth.ResourceActions{{Type: "repository", Name: "stable/app", Actions: []string{"pull"}}},
	}
}

func (e *env) sign(c *auth.Claims) string {
	e.t.Helper()
	tok, err := e.key.Sign(c)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// token is a valid token for pull on stable/app.
func (e *env) token() string { return e.sign(e.claims()) }

func (e *env) do(method, path string, header http.Header) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// scrape is the gateway's /metrics, from the operators' listener.
func (e *env) scrape() string {
	e.t.Helper()
	resp, err := noRedirects.Get(e.ops.URL + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		e.t.Fatalf("/metrics: %d, %v", resp.StatusCode, err)
	}
	return string(body)
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

var noRedirects = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func readBody(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// errorCode is the code of a registry JSON error body.
func errorCode(t *testing.T, body string) string {
	t.Helper()
	return firstError(t, body).Code
}

// errorMessage is the message of the first error of a registry error body.
func errorMessage(t *testing.T, body string) string {
	t.Helper()
	return firstError(t, body).Message
}

func firstError(t *testing.T, body string) struct{ Code, Message string } {
	t.Helper()
	var e struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("not a registry error: %q", body)
	}
	return e.Errors[0]
}

// fetcherFunc is an upstream.Fetcher for the tests.
type fetcherFunc func(context.Context) (upstream.Credential, error)

func (f fetcherFunc) Fetch(ctx context.Context) (upstream.Credential, error) { return f(ctx) }

// counterValue reads a counter without prometheus/testutil (whose
// dependencies are not in go.mod).
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func mustParse(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// cancelOnArrival sends req (made with the context cancel ends), cancels
// it once arrived yields (the upstream has it), and fails the test if
// the client got an answer anyway.
func cancelOnArrival(t *testing.T, req *http.Request, arrived <-chan struct{}, cancel context.CancelFunc) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-arrived
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("the request was answered, not cancelled")
	}
}

// staticProvider is the upstream.static section of a test's configuration.
func staticProvider(user, passwordFile string) map[string]upstream.Config {
	return map[string]upstream.Config{"static": &static.Config{Username: user, PasswordFile: passwordFile}}
}

// ecrProvider is the upstream.ecr section of a test's configuration.
func ecrProvider(c *ecr.Config) map[string]upstream.Config {
	return map[string]upstream.Config{"ecr": c}
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
