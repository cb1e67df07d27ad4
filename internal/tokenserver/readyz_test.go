package tokenserver

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/acme/registry-gateway/internal/license/backends"
	"github.com/acme/registry-gateway/internal/license/httpbackend"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

// The readiness tests run in a synctest bubble: the probes' interval and
// the cache's TTL pass at once, and a step of one probe interval lets
// exactly one probe run. A socket would keep the bubble's time from
// moving, so the server is asked through its Handler and the licence API
// is reached in memory (licenceAPI.client).

// bubbleServer builds a server on the licence API api, with the shortest
// probe interval, and runs its background work (Watch: the probes) until
// the test ends.
func bubbleServer(t *testing.T, api *licenceAPI) (*Server, *testutil.SyncBuffer) {
	t.Helper()
	key := filepath.Join(t.TempDir(), "token.key")
	writeECKey(t, key)
	cfg := Config{Issuer: testIssuer, Service: testService, SigningKey: key}
	cfg.Licenses.Backends = backends.Sections{"http": &httpbackend.Config{URL: "https://licences.example/v1/meta/licenses/", Timeout: 300 * time.Millisecond}}
	probeFast(&cfg)
	logs := &testutil.SyncBuffer{}
	srv, err := New(t.Context(), &cfg, Options{
		Logger:     slog.New(slog.NewJSONHandler(logs, nil)),
		HTTPClient: api.client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Watch(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
		srv.Close()
	})
	return srv, logs
}

// ask sends a request to srv's Handler in memory.
func ask(srv *Server, r *http.Request) *http.Response {
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, r)
	return rec.Result()
}

// readyz is /readyz's status.
func readyz(srv *Server) int {
	return ask(srv, httptest.NewRequest(http.MethodGet, "/readyz", nil)).StatusCode
}

// login asks for a token for user with no scope.
func login(srv *Server, user, token string) *http.Response {
	r := httptest.NewRequest(http.MethodGet, "/token?"+scopes().Encode(), nil)
	r.SetBasicAuth(user, token)
	return ask(srv, r)
}

// probeFast is the shortest probe interval the configuration allows.
func probeFast(c *Config) { c.Licenses.ProbeInterval = backends.MinProbeInterval }

// probeStep lets one probe interval pass and the probe of it finish.
func probeStep() {
	time.Sleep(backends.MinProbeInterval)
	synctest.Wait()
}

// A replica whose look-up failed while nothing was cached goes unready, and
// comes back by itself once the licence API answers again: no login has to
// reach it (a load balancer sends none to an unready replica). The promise
// of /readyz is within 10 s; the probes keep it within one interval.
func TestReadyzRecoversWithoutLogins(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"down", "hang"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				api := newMemoryLicenceAPI()
				srv, logs := bubbleServer(t, api)
				mustToken(t, login(srv, aliceUser, aliceToken))

				api.mode.Store(mode)
				if resp := login(srv, bobUser, bobToken); resp.StatusCode != http.StatusServiceUnavailable {
					t.Fatalf("login while down: status %d", resp.StatusCode)
				}
				time.Sleep(backends.DefaultCacheTTL) // alice's cached licence is gone
				synctest.Wait()
				if got := readyz(srv); got != http.StatusServiceUnavailable {
					t.Fatalf("/readyz %d with the API down and nothing cached", got)
				}
				probeStep()
				probeStep() // failing probes keep it out
				if got := readyz(srv); got != http.StatusServiceUnavailable {
					t.Fatalf("/readyz %d while the API is down", got)
				}
				if got := scrape(t, srv, "tokenserver_ready"); got != "0" {
					t.Errorf("tokenserver_ready %q while /readyz answers 503", got)
				}

				api.mode.Store("ok")
				calls := api.calls.Load()
				probeStep()
				if got := readyz(srv); got != http.StatusOK {
					t.Fatalf("/readyz %d a probe interval after the API came back", got)
				}
				if got := scrape(t, srv, "tokenserver_ready"); got != "1" {
					t.Errorf("tokenserver_ready %q while /readyz answers 200", got)
				}
				if n := api.calls.Load() - calls; n != 1 {
					t.Errorf("%d licence API calls while recovering, want one probe", n)
				}
				if !strings.Contains(logs.String(), "licence backend answers again") {
					t.Error("recovery not logged")
				}
			})
		})
	}
}

// A replica started while the licence API cannot be reached at all is not
// ready, and becomes ready once the API listens again.
func TestReadyzFreshReplicaWhileBackendDown(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		api := newMemoryLicenceAPI()
		api.mode.Store("refused")
		srv, _ := bubbleServer(t, api)
		synctest.Wait() // the first probe, at start
		if got := readyz(srv); got != http.StatusServiceUnavailable {
			t.Fatalf("/readyz %d with the API unreachable", got)
		}

		api.mode.Store("ok")
		probeStep()
		if got := readyz(srv); got != http.StatusOK {
			t.Fatalf("/readyz %d a probe interval after the API came up", got)
		}
		mustToken(t, login(srv, aliceUser, aliceToken))
	})
}

// newMemoryLicenceAPI is a licenceAPI without a server: reach it through
// client.
func newMemoryLicenceAPI() *licenceAPI {
	api := &licenceAPI{tokens: map[string][]string{aliceToken: {"stable"}, bobToken: {"stable", "beta"}}}
	api.mode.Store("ok")
	return api
}

// client reaches the API in memory: each request is served in the
// caller's goroutine, and mode "refused" fails it as a closed port would.
func (a *licenceAPI) client() *http.Client {
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if a.mode.Load() == "refused" {
			return nil, errors.New("dial tcp: connect: connection refused")
		}
		rec := httptest.NewRecorder()
		a.serve(rec, r)
		if err := r.Context().Err(); err != nil {
			return nil, err
		}
		return rec.Result(), nil
	})}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
