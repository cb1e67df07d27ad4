package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/acme/registry-gateway/internal/embedreg"
	"github.com/acme/registry-gateway/internal/gateway"
	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/license/backends"
	"github.com/acme/registry-gateway/internal/license/filebackend"
	"github.com/acme/registry-gateway/internal/testsupport/ecrfake"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
	"github.com/acme/registry-gateway/internal/tokenserver"
)

const (
	service    = "registry.example.com"
	issuer     = "acme-tokenserver"
	registryID = "123456789012"
	aliceUser  = "alice@example.com"
	aliceToken = "alice-api-token-0123456789"
)

// upstreamCounter counts the requests that reach the upstream registry and
// remembers every Authorization scheme and user it was sent.
type upstreamCounter struct {
	next   http.Handler
	n      atomic.Int64
	writes atomic.Int64 // requests other than GET and HEAD
	mu     sync.Mutex
	users  map[string]int // "<scheme> <user>"
}

func (u *upstreamCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.n.Add(1)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		u.writes.Add(1)
	}
	who := "none"
	if user, _, ok := r.BasicAuth(); ok {
		who = "Basic " + user
	} else if a := r.Header.Get("Authorization"); a != "" {
		who, _, _ = strings.Cut(a, " ")
	}
	u.mu.Lock()
	u.users[who]++
	u.mu.Unlock()
	u.next.ServeHTTP(w, r)
}

// shiftedClock is the token service's clock, which the test can turn back
// to mint tokens that are already expired.
type shiftedClock struct{ offset atomic.Int64 }

func (c *shiftedClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

type stack struct {
	t         *testing.T
	gwHost    string // localhost:PORT
	gw        *gateway.Gateway
	gwOps     string // base URL of the gateway's metrics.listen
	ecr       *ecrfake.Server
	upstream  *upstreamCounter
	upHost    string
	tsClock   *shiftedClock
	gwClock   *shiftedClock // the gateway's
	logs      *testutil.SyncBuffer
	passwords chan string
	pushed    map[string]v1.Hash
}

func newStack(t *testing.T) *stack {
	t.Helper()
	dir := t.TempDir()
	s := &stack{t: t, logs: &testutil.SyncBuffer{}, tsClock: &shiftedClock{}, gwClock: &shiftedClock{}, passwords: make(chan string, 100), pushed: map[string]v1.Hash{}}
	log := slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	// The ECR-protocol fake; every password it hands out goes into the
	// upstream's htpasswd file.
	htpasswd := filepath.Join(dir, "htpasswd")
	s.ecr = ecrfake.New(ecrfake.Options{
		RegistryID:   registryID,
		Repositories: []string{"acme/stable/app", "acme/stable/db", "acme/beta/app", "other/stable/x"},
		OnRotate: func(user, password string) {
			if err := ecrfake.WriteHtpasswd(htpasswd, user, password); err != nil {
				t.Error(err)
			}
			s.passwords <- password
		},
	})
	t.Cleanup(s.ecr.Close)

	// The upstream: a distribution registry with htpasswd auth.
	reg, err := embedreg.New(t.Context(), embedreg.Options{
		RootDir: filepath.Join(dir, "storage"), LogLevel: "fatal",
		Htpasswd: &embedreg.HtpasswdAuth{Realm: "upstream", Path: htpasswd},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.upstream = &upstreamCounter{next: reg, users: map[string]int{}}
	upSrv := httptest.NewServer(s.upstream)
	t.Cleanup(upSrv.Close)
	s.upHost = strings.TrimPrefix(upSrv.URL, "http://")

	upAuth := remote.WithAuth(&authn.Basic{Username: s.ecr.User(), Password: s.ecr.Password()})
	for _, r := range []string{"acme/stable/app:v1", "acme/stable/db:v1", "acme/beta/app:v1"} {
		img, err := random.Image(64<<10, 3)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref(t, s.upHost, r), img, upAuth, remote.WithContext(t.Context())); err != nil {
			t.Fatalf("push %s: %v", r, err)
		}
		s.pushed[r], _ = img.Digest()
	}

	// From here on, count only what comes through the gateway.
	s.upstream.writes.Store(0)
	s.upstream.mu.Lock()
	clear(s.upstream.users)
	s.upstream.mu.Unlock()

	// The token service, with a file licence backend.
	keyPath, licPath := tokenServerFiles(t, dir)
	ts, err := tokenserver.New(t.Context(), &tokenserver.Config{
		Issuer: issuer, Service: service, SigningKey: keyPath,
		Licenses: backends.Config{Backends: backends.Sections{"file": &filebackend.Config{Path: licPath}}},
	}, tokenserver.Options{Logger: log, Clock: s.tsClock.Now})
	if err != nil {
		t.Fatal(err)
	}
	tsSrv := httptest.NewServer(ts.Handler())
	t.Cleanup(tsSrv.Close)

	// The gateway, with the real AWS SDK pointed at the fake.
	s.ecr.SetEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.gwHost = "localhost:" + fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	cfg, err := gateway.ParseConfig([]byte(`
listen: "` + ln.Addr().String() + `"
realm: "http://` + s.gwHost + `/token"
service: "` + service + `"
issuer: "` + issuer + `"
keys:
  jwks_url: "` + tsSrv.URL + `/.well-known/jwks.json"
token_endpoint: "` + tsSrv.URL + `/token"
upstream:
  url: "` + upSrv.URL + `"
  repository_prefix: "acme/"
  ecr:
    region: us-east-1
    registry_id: "` + registryID + `"
`))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s.gw, err = gateway.New(ctx, cfg, gateway.Options{Logger: log, Clock: s.gwClock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.gw.Close)
	gwSrv := httptest.NewUnstartedServer(s.gw.Handler())
	gwSrv.Listener.Close()
	gwSrv.Listener = ln
	gwSrv.Start()
	t.Cleanup(gwSrv.Close)
	ops := httptest.NewServer(s.gw.MetricsHandler())
	t.Cleanup(ops.Close)
	s.gwOps = ops.URL
	return s
}

// metrics is the gateway's /metrics, from its metrics listener.
func (s *stack) metrics() string {
	s.t.Helper()
	resp, err := http.Get(s.gwOps + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		s.t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// tokenServerFiles writes a signing key and a licence file granting alice
// the stable channel, and returns their paths.
func tokenServerFiles(t *testing.T, dir string) (keyPath, licPath string) {
	t.Helper()
	keyPath = filepath.Join(dir, "token.key")
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	writeFile(t, keyPath, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	licPath = filepath.Join(dir, "licenses.yaml")
	writeFile(t, licPath, fmt.Sprintf("accounts:\n  - username: %q\n    token_sha256: %q\n    channels: [stable]\n",
		aliceUser, license.HashToken(aliceToken)))
	return keyPath, licPath
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func ref(t *testing.T, host, r string) name.Reference {
	t.Helper()
	n, err := name.ParseReference(host+"/"+r, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

var alice = remote.WithAuth(&authn.Basic{Username: aliceUser, Password: aliceToken})

// pull fetches a manifest and every layer; go-containerregistry checks each
// layer's digest as it reads it.
func pull(ctx context.Context, r name.Reference, opts ...remote.Option) (v1.Hash, error) {
	img, err := remote.Image(r, append(opts, remote.WithContext(ctx))...)
	if err != nil {
		return v1.Hash{}, err
	}
	if _, err := img.RawConfigFile(); err != nil {
		return v1.Hash{}, err
	}
	layers, err := img.Layers()
	if err != nil {
		return v1.Hash{}, err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return v1.Hash{}, err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return v1.Hash{}, err
		}
	}
	return img.Digest()
}

func statusOf(err error) int {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode
	}
	return 0
}

// token gets a token from the token service through the gateway's /token.
func (s *stack) token(scope string) string {
	s.t.Helper()
	q := url.Values{"service": {service}, "scope": {scope}}
	req, _ := http.NewRequest("GET", "http://"+s.gwHost+"/token?"+q.Encode(), nil)
	req.SetBasicAuth(aliceUser, aliceToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		Token     string `json:"token"`
		ExpiresIn int    `json:"expires_in"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != 200 || tok.Token == "" {
		s.t.Fatalf("token: %d %v", resp.StatusCode, err)
	}
	return tok.Token
}

// get sends one raw request to the gateway.
func (s *stack) do(method, path, token string) (*http.Response, string) {
	s.t.Helper()
	req, err := http.NewRequest(method, "http://"+s.gwHost+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestEndToEnd(t *testing.T) {
	s := newStack(t)
	ctx := t.Context()

	// Pull by tag and by digest through the real challenge flow.
	want := s.pushed["acme/stable/app:v1"]
	got, err := pull(ctx, ref(t, s.gwHost, "stable/app:v1"), alice)
	if err != nil || got != want {
		t.Fatalf("pull by tag: %s, %v; pushed %s", got, err, want)
	}
	got, err = pull(ctx, ref(t, s.gwHost, "stable/app@"+want.String()), alice)
	if err != nil || got != want {
		t.Fatalf("pull by digest: %s, %v", got, err)
	}

	// HEAD of a manifest: digest and size as pushed.
	desc, err := remote.Head(ref(t, s.gwHost, "stable/app:v1"), alice, remote.WithContext(ctx))
	if err != nil || desc.Digest != want || desc.Size == 0 {
		t.Fatalf("head: %+v, %v", desc, err)
	}

	// Tags, under the client's name.
	repo, _ := name.NewRepository(s.gwHost+"/stable/app", name.Insecure)
	tags, err := remote.List(repo, alice, remote.WithContext(ctx))
	if err != nil || !slices.Equal(tags, []string{"v1"}) {
		t.Fatalf("tags: %v, %v", tags, err)
	}

	// The catalog: from ECR's DescribeRepositories, prefix stripped,
	// filtered to alice's channel.
	reg, _ := name.NewRegistry(s.gwHost, name.Insecure)
	catalog, err := remote.Catalog(ctx, reg, alice)
	if err != nil || !slices.Equal(catalog, []string{"stable/app", "stable/db"}) {
		t.Fatalf("catalog: %v, %v", catalog, err)
	}
	if s.ecr.Calls("DescribeRepositories") == 0 {
		t.Error("the catalog did not come from DescribeRepositories")
	}

	// Refusals, each without a single upstream request.
	before := s.upstream.n.Load()
	_, err = pull(ctx, ref(t, s.gwHost, "beta/app:v1"), alice)
	if statusOf(err) != http.StatusUnauthorized {
		t.Errorf("unlicensed channel: %v", err)
	}

	s.tsClock.offset.Store(int64(-time.Hour))
	expired := s.token("repository:stable/app:pull")
	s.tsClock.offset.Store(0)
	resp, body := s.do("GET", "/v2/stable/app/manifests/v1", expired)
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("Www-Authenticate"), `error="invalid_token"`) {
		t.Errorf("expired token: %d %q %s", resp.StatusCode, resp.Header.Get("Www-Authenticate"), body)
	}

	dbToken := s.token("repository:stable/db:pull")
	resp, body = s.do("GET", "/v2/stable/app/manifests/v1", dbToken)
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("Www-Authenticate"), `error="insufficient_scope"`) ||
		!strings.Contains(resp.Header.Get("Www-Authenticate"), `scope="repository:stable/app:pull"`) {
		t.Errorf("token for another repository: %d %q %s", resp.StatusCode, resp.Header.Get("Www-Authenticate"), body)
	}
	if resp, _ := s.do("GET", "/v2/stable/db/manifests/v1", dbToken); resp.StatusCode != 200 {
		t.Errorf("the same token on its own repository: %d", resp.StatusCode)
	}
	before++ // that one was forwarded, on purpose

	appToken := s.token("repository:stable/app:pull")
	for _, m := range []string{"PUT", "POST", "PATCH", "DELETE"} {
		if resp, body := s.do(m, "/v2/stable/app/manifests/v1", appToken); resp.StatusCode != 405 || !strings.Contains(body, "UNSUPPORTED") {
			t.Errorf("%s: %d %s", m, resp.StatusCode, body)
		}
	}
	for _, p := range []string{"/v2/stable%2Fapp/manifests/v1", "/v2/stable/x/../app/manifests/v1", "/v2/stable//app/manifests/v1", "/v2/Stable/app/manifests/v1"} {
		req, _ := http.NewRequest("GET", "http://"+s.gwHost+"/", nil)
		req.URL.Opaque = p // sent as is, not cleaned or re-encoded
		req.Header.Set("Authorization", "Bearer "+appToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(b), "NAME_INVALID") {
			t.Errorf("%s: %d %s", p, resp.StatusCode, b)
		}
	}
	if after := s.upstream.n.Load(); after != before {
		t.Errorf("refused requests reached the upstream: %d requests", after-before)
	}

	// A real push: its existence probes (HEAD, a pull) may go upstream,
	// its uploads may not.
	img, _ := random.Image(1024, 1)
	if err := remote.Write(ref(t, s.gwHost, "stable/app:evil"), img, alice, remote.WithContext(ctx)); err == nil {
		t.Error("push went through")
	}
	if n := s.upstream.writes.Load(); n != 0 {
		t.Errorf("%d writes reached the upstream", n)
	}

	// Password rotation in the middle of concurrent pulls: the gateway's
	// credential is refused once, refreshed through the SDK, and the
	// request retried; no pull fails. The gateway refreshes at most once
	// every 30 s after a 401 (ECR throttles GetAuthorizationToken), so its
	// clock moves on by that much before each rotation, and the next
	// rotation waits until a pull has gone through on the new password:
	// under load the refresh can otherwise come after the next clock jump,
	// and that rotation would fall within the hold-off.
	fetchesBefore := s.ecr.Calls("GetAuthorizationToken")
	stop := make(chan struct{})
	var pulls, failures atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := pull(ctx, ref(t, s.gwHost, "stable/app:v1"), alice)
				pulls.Add(1)
				if err != nil || got != want {
					failures.Add(1)
					t.Errorf("pull during rotation: %s, %v", got, err)
				}
			}
		})
	}
	// pullsRun waits until the pullers have made a pull each (as many as
	// there are pullers) since it was called: pulls ran on this password.
	pullsRun := func() {
		t.Helper()
		mark := pulls.Load()
		testutil.WaitFor(t, "pulls during the rotation", 60*time.Second, func() bool { return pulls.Load() >= mark+8 })
	}
	const rotations = 4
	for range rotations {
		pullsRun()
		s.gwClock.offset.Add(int64(31 * time.Second))
		s.ecr.Rotate()
		// The gateway refreshes now, before the clock moves again.
		got, err := pull(ctx, ref(t, s.gwHost, "stable/app:v1"), alice)
		pulls.Add(1)
		if err != nil || got != want {
			failures.Add(1)
			t.Errorf("pull right after a rotation: %s, %v", got, err)
		}
	}
	pullsRun()
	close(stop)
	wg.Wait()
	if failures.Load() != 0 || pulls.Load() < 2*rotations {
		t.Errorf("%d of %d pulls failed", failures.Load(), pulls.Load())
	}
	if n := s.ecr.Calls("GetAuthorizationToken") - fetchesBefore; n < 1 || n > 2*rotations {
		t.Errorf("%d credential fetches for %d rotations", n, rotations)
	}
	if _, err := pull(ctx, ref(t, s.gwHost, "stable/app:v1"), alice); err != nil {
		t.Errorf("pull after rotations: %v", err)
	}
	metrics := s.metrics()
	if !strings.Contains(metrics, "gateway_upstream_credential_retries_total ") ||
		strings.Contains(metrics, "gateway_upstream_credential_retries_total 0\n") {
		t.Error("no request was retried: the rotation was not exercised")
	}

	// The upstream saw only the gateway's ECR credential, never a client's.
	s.upstream.mu.Lock()
	for who, n := range s.upstream.users {
		if who != "Basic "+s.ecr.User() {
			t.Errorf("upstream was sent %q %d times", who, n)
		}
	}
	s.upstream.mu.Unlock()

	// Ready, and no secret in the logs.
	if resp, _ := s.do("GET", "/readyz", ""); resp.StatusCode != 200 {
		t.Errorf("readyz %d", resp.StatusCode)
	}
	logs := s.logs.String()
	close(s.passwords)
	for pw := range s.passwords {
		if strings.Contains(logs, pw) {
			t.Error("an upstream password is in the logs")
		}
	}
	for _, secret := range []string{aliceToken, appToken, expired} {
		if strings.Contains(logs, secret) {
			t.Error("a client secret is in the logs")
		}
	}
}
