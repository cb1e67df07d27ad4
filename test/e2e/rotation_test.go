package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/acme/registry-gateway/internal/embedreg"
	"github.com/acme/registry-gateway/internal/gateway"
	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
	"github.com/acme/registry-gateway/internal/tokencli"
	"github.com/acme/registry-gateway/internal/tokenserver"
)

// balancer is the Service in front of a set of replicas: round robin over
// the replicas that are in rotation. A roll adds the new replica before it
// takes the old one out, as a Deployment with maxUnavailable 0 does.
type balancer struct {
	mu       sync.Mutex
	backends []*httptest.Server
	next     int
	// picked counts, by backend host, the requests sent there whose
	// round trip has not returned: a replica is stopped only once none is
	// on its way to it.
	picked map[string]*sync.WaitGroup
	srv    *httptest.Server
}

func newBalancer(t *testing.T) *balancer {
	b := &balancer{picked: map[string]*sync.WaitGroup{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(b.pick())
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			defer b.arrived(r.URL.Host)
			return http.DefaultTransport.RoundTrip(r)
		}),
	}
	b.srv = httptest.NewServer(rp)
	t.Cleanup(b.srv.Close)
	return b
}

func (b *balancer) pick() *url.URL {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.backends[b.next%len(b.backends)]
	b.next++
	u, _ := url.Parse(s.URL)
	b.picked[u.Host].Add(1)
	return u
}

// arrived marks a request picked for host as having reached it (or
// failed): the backend's server holds it from here.
func (b *balancer) arrived(host string) {
	b.mu.Lock()
	wg := b.picked[host]
	b.mu.Unlock()
	wg.Done()
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// replace puts next in rotation in place of old (nil: just add), then
// drains old: once the requests already sent its way have reached it,
// Close waits for them to finish. (In Kubernetes the chart's preStop
// sleep covers the time the Service takes to stop sending to the pod;
// here taking it out of rotation is immediate.)
func (b *balancer) replace(old, next *httptest.Server) {
	b.mu.Lock()
	b.backends = append(b.backends, next)
	nu, _ := url.Parse(next.URL)
	b.picked[nu.Host] = &sync.WaitGroup{}
	var drain *sync.WaitGroup
	if old != nil {
		for i, s := range b.backends {
			if s == old {
				b.backends = append(b.backends[:i], b.backends[i+1:]...)
				break
			}
		}
		ou, _ := url.Parse(old.URL)
		drain = b.picked[ou.Host]
	}
	b.mu.Unlock()
	if old != nil {
		drain.Wait()
		old.Close()
	}
}

// rotationStack is two token service replicas and two gateways, each set
// behind a balancer, in front of an embedded upstream.
type rotationStack struct {
	t        *testing.T
	dir      string
	log      *slog.Logger
	tsLB     *balancer
	gwLB     *balancer
	gwHost   string // localhost:PORT of the gateways' balancer
	upstream string
	ts, gw   []*httptest.Server
	gwCfg    string
}

// tokenServer starts a token service replica with signing_key and the
// rest of a rotation step's configuration.
func (s *rotationStack) tokenServer(step string) *httptest.Server {
	s.t.Helper()
	cfg, err := tokenserver.ParseConfig([]byte(fmt.Sprintf(`
issuer: %q
service: %q
token_ttl: 1m
licenses: {file: %q}
%s`, issuer, service, filepath.Join(s.dir, "licenses.yaml"), step)))
	if err != nil {
		s.t.Fatalf("token service config %q: %v", step, err)
	}
	srv, err := tokenserver.New(s.t.Context(), cfg, tokenserver.Options{Logger: s.log})
	if err != nil {
		s.t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	s.t.Cleanup(hs.Close)
	return hs
}

// gateway starts a gateway replica; it fetches the key set at start.
func (s *rotationStack) gateway() *httptest.Server {
	s.t.Helper()
	cfg, err := gateway.ParseConfig([]byte(s.gwCfg))
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	gw, err := gateway.New(ctx, cfg, gateway.Options{Logger: s.log})
	if err != nil {
		cancel()
		s.t.Fatal(err)
	}
	hs := httptest.NewServer(gw.Handler())
	s.t.Cleanup(func() { hs.Close(); gw.Close(); cancel() })
	return hs
}

// roll replaces every token service replica, one at a time, with one
// running the step's configuration, then every gateway the same way.
func (s *rotationStack) roll(step string) {
	s.t.Helper()
	for i, old := range s.ts {
		s.ts[i] = s.tokenServer(step)
		s.tsLB.replace(old, s.ts[i])
	}
	for i, old := range s.gw {
		s.gw[i] = s.gateway()
		s.gwLB.replace(old, s.gw[i])
	}
}

func newRotationStack(t *testing.T, first string) *rotationStack {
	dir := t.TempDir()
	logs := &testutil.SyncBuffer{}
	s := &rotationStack{t: t, dir: dir, log: slog.New(slog.NewJSONHandler(logs, nil))}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs)
		}
	})

	reg, err := embedreg.New(t.Context(), embedreg.Options{RootDir: filepath.Join(dir, "storage"), LogLevel: "fatal"})
	if err != nil {
		t.Fatal(err)
	}
	up := httptest.NewServer(reg)
	t.Cleanup(up.Close)
	s.upstream = up.URL
	img, err := random.Image(32<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, strings.TrimPrefix(up.URL, "http://"), "acme/stable/app:v1"), img, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "licenses.yaml"), fmt.Sprintf("accounts:\n  - username: %q\n    token_sha256: %q\n    channels: [stable]\n",
		aliceUser, license.HashToken(aliceToken)))
	writeFile(t, filepath.Join(dir, "upstream.password"), "unused\n")

	s.tsLB, s.gwLB = newBalancer(t), newBalancer(t)
	s.gwHost = "localhost:" + strings.TrimPrefix(s.gwLB.srv.URL, "http://127.0.0.1:")
	// min_refetch well under the time a rollout takes (the runbook waits
	// for each rollout to finish), as 5s is in a real cluster.
	s.gwCfg = fmt.Sprintf(`
realm: "http://%s/token"
service: %q
issuer: %q
keys: {jwks_url: "%s/.well-known/jwks.json", min_refetch: 100ms}
token_endpoint: "%s/token"
access_log: false
upstream:
  url: %q
  repository_prefix: acme/
  static: {username: gateway, password_file: %q}
`, s.gwHost, service, issuer, s.tsLB.srv.URL, s.tsLB.srv.URL, up.URL, filepath.Join(dir, "upstream.password"))

	for range 2 {
		ts := s.tokenServer(first)
		s.ts = append(s.ts, ts)
		s.tsLB.replace(nil, ts)
	}
	for range 2 {
		gw := s.gateway()
		s.gw = append(s.gw, gw)
		s.gwLB.replace(nil, gw)
	}
	return s
}

// refreshToken logs in like `docker login` and returns the refresh token.
func (s *rotationStack) refreshToken() string {
	s.t.Helper()
	resp, err := http.PostForm("http://"+s.gwHost+"/token", url.Values{
		"grant_type": {"password"}, "username": {aliceUser}, "password": {aliceToken},
		"service": {service}, "client_id": {"e2e"}, "access_type": {"offline"},
	})
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != 200 || tok.RefreshToken == "" {
		s.t.Fatalf("login: %d %v", resp.StatusCode, err)
	}
	return tok.RefreshToken
}

// A signing key rotation done by docs/accounts.md's runbook, with two replicas
// of each service rolled at every step, fails no pull: clients logging in
// with the API token and clients holding a refresh token from before the
// rotation pull without a break, and that refresh token still works after
// the old key is gone from the key set.
func TestKeyRotationWithoutFailedPulls(t *testing.T) {
	if testing.Short() {
		t.Skip("rolls four replicas four times")
	}
	dir := t.TempDir()
	cur, err := tokencli.Keygen(tokencli.KeygenOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	next, err := tokencli.Keygen(tokencli.KeygenOptions{Dir: dir, Name: tokencli.NextName})
	if err != nil {
		t.Fatal(err)
	}
	oldKey, nextKey := cur.Files[0], next.Files[0]

	s := newRotationStack(t, "signing_key: "+oldKey)
	before := s.refreshToken()
	img := ref(t, s.gwHost, "stable/app:v1")

	// The pull loop: two clients with the API token, two with the refresh
	// token from before the rotation (go-containerregistry then uses the
	// refresh grant, as docker does after `docker login`). Every pull gets
	// new tokens, so each is signed by whichever key signs at that moment.
	creds := []authn.Authenticator{
		&authn.Basic{Username: aliceUser, Password: aliceToken},
		&authn.Basic{Username: aliceUser, Password: aliceToken},
		authn.FromConfig(authn.AuthConfig{Username: aliceUser, IdentityToken: before}),
		authn.FromConfig(authn.AuthConfig{Username: aliceUser, IdentityToken: before}),
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	done := make([]atomic.Int64, len(creds)) // pulls each client finished
	var errMu sync.Mutex
	var errs []string
	for i, c := range creds {
		wg.Go(func() {
			for ctx.Err() == nil {
				_, err := pull(context.Background(), img, remote.WithAuth(c))
				if err != nil {
					failed.Add(1)
					errMu.Lock()
					errs = append(errs, fmt.Sprintf("client %d: %v", i, err))
					errMu.Unlock()
				} else {
					ok.Add(1)
				}
				done[i].Add(1)
			}
		})
	}
	// settle lets every client finish at least n pulls that started after
	// this point, so that each has run against the current step.
	settle := func(n int64) {
		t.Helper()
		marks := make([]int64, len(done))
		for i := range done {
			marks[i] = done[i].Load()
		}
		deadline := time.Now().Add(60 * time.Second)
		for i := range done {
			for done[i].Load() < marks[i]+n+1 {
				if time.Now().After(deadline) {
					t.Fatalf("client %d made no progress", i)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	settle(2)

	steps := []struct{ name, config string }{
		// 1. Publish the next key (its private key file, so that refresh
		//    tokens sealed under it open here too); still sign with the old.
		{"publish next key", fmt.Sprintf("signing_key: %s\npublish_keys: [%s]\n", oldKey, nextKey)},
		// 2. Sign with the next key; keep publishing the old one.
		{"switch signer", fmt.Sprintf("signing_key: %s\npublish_keys: [%s]\n", nextKey, oldKey)},
		// 3. After token_ttl (here: once every client has pulled with new
		//    tokens), stop publishing the old key; keep it to open refresh
		//    tokens sealed under it.
		{"unpublish old key", fmt.Sprintf("signing_key: %s\nprevious_signing_keys: [%s]\n", nextKey, oldKey)},
	}
	pullsBefore := ok.Load()
	for _, st := range steps {
		s.roll(st.config)
		settle(2)
		t.Logf("%s: rolled; %d pulls so far, %d failed", st.name, ok.Load(), failed.Load())
	}
	stop()
	wg.Wait()

	if f := failed.Load(); f != 0 {
		t.Errorf("%d of %d pulls failed during the rotation:\n%s", f, f+ok.Load(), strings.Join(errs, "\n"))
	}
	if ok.Load()-pullsBefore < int64(len(steps)*len(creds)*2) {
		t.Errorf("only %d pulls during the rotation", ok.Load()-pullsBefore)
	}

	// After the rotation: the key set holds only the new key, and the
	// refresh token from before the rotation still gets a token that
	// pulls.
	resp, err := http.Get(s.tsLB.srv.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	err = json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	if err != nil || len(set.Keys) != 1 || set.Keys[0].Kid != next.KeyID {
		t.Errorf("key set after the rotation: %+v (%v), want only %s", set, err, next.KeyID)
	}
	resp, err = http.PostForm("http://"+s.gwHost+"/token", url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {before}, "service": {service},
		"client_id": {"e2e"}, "scope": {"repository:stable/app:pull"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || tok.AccessToken == "" {
		t.Fatalf("pre-rotation refresh token after the rotation: %d %v", resp.StatusCode, err)
	}
	if kid := tokenKid(t, tok.AccessToken); kid != next.KeyID {
		t.Errorf("token signed by %s, want the new key %s", kid, next.KeyID)
	}
	if _, err := pull(context.Background(), img, remote.WithAuth(&authn.Bearer{Token: tok.AccessToken})); err != nil {
		t.Errorf("pull with the refreshed token: %v", err)
	}
}

// tokenKid is the kid header of a JWT.
func tokenKid(t *testing.T, raw string) string {
	t.Helper()
	h, _, _ := strings.Cut(raw, ".")
	var hdr struct {
		Kid string `json:"kid"`
	}
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err == nil {
		err = json.Unmarshal(b, &hdr)
	}
	if err != nil {
		t.Fatalf("token header: %v", err)
	}
	return hdr.Kid
}
