package tokenserver

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/acme/registry-gateway/internal/license/backends"
	"github.com/acme/registry-gateway/internal/license/httpbackend"
)

// licenceAPI is a stand-in for the vendor's licence API: it answers the
// channels of a token given as Bearer, in the vendor's JSON shape, and
// counts calls.
type licenceAPI struct {
	*httptest.Server
	calls atomic.Int64
	// gate, when not nil, holds every call until it is closed.
	gate chan struct{}
	// arrived receives one value per call, before the gate.
	arrived chan struct{}
	mode    atomic.Value // "ok", "down", "garbage", "hang"
	tokens  map[string][]string
}

func newLicenceAPI(t *testing.T) *licenceAPI {
	api := &licenceAPI{tokens: map[string][]string{aliceToken: {"stable"}, bobToken: {"stable", "beta"}}}
	api.mode.Store("ok")
	api.Server = httptest.NewServer(http.HandlerFunc(api.serve))
	t.Cleanup(api.Close)
	return api
}

func (a *licenceAPI) serve(w http.ResponseWriter, r *http.Request) {
	a.calls.Add(1)
	if a.arrived != nil {
		a.arrived <- struct{}{}
	}
	if a.gate != nil {
		<-a.gate
	}
	switch a.mode.Load() {
	case "down":
		http.Error(w, "oops", http.StatusInternalServerError)
		return
	case "garbage":
		w.Write([]byte("<html>maintenance</html>"))
		return
	case "hang":
		<-r.Context().Done()
		return
	}
	if r.Header.Get("Accept") != "application/json" {
		http.Error(w, "bad accept", http.StatusNotAcceptable)
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	channels, known := a.tokens[tok]
	if !ok || !known {
		http.Error(w, `{"detail":"invalid token"}`, http.StatusUnauthorized)
		return
	}
	var objs []map[string]string
	for _, c := range channels {
		objs = append(objs, map[string]string{"release": c, "id": "lic-" + c})
	}
	owner := map[string]string{aliceToken: aliceUser, bobToken: bobUser}[tok]
	json.NewEncoder(w).Encode(map[string]any{"count": len(objs), "objects": objs, "user": map[string]string{"email": owner}})
}

func withHTTPBackend(api *licenceAPI, timeout time.Duration) func(*Config) {
	return func(c *Config) {
		c.Licenses = backends.Config{Backends: backends.Sections{"http": &httpbackend.Config{URL: api.URL + "/v1/meta/licenses/", ChannelsPath: "objects[].release", Timeout: timeout}}}
	}
}

func TestHTTPBackend(t *testing.T) {
	t.Parallel()
	api := newLicenceAPI(t)
	f := newFixture(t, withHTTPBackend(api, time.Second))

	a := mustToken(t, get(t, f.url, bobUser, bobToken, scopes("repository:beta/app:pull", "registry:catalog:*")))
	c := f.verify(a.Token)
	if !c.Allows("repository", "beta/app", "pull") || strings.Join(c.Channels, ",") != "beta,stable" {
		t.Errorf("claims %+v", c)
	}
	a = mustToken(t, get(t, f.url, aliceUser, aliceToken, scopes("repository:beta/app:pull")))
	if c := f.verify(a.Token); len(c.Access) != 0 {
		t.Errorf("alice got %+v", c.Access)
	}
	if resp := get(t, f.url, aliceUser, "not-a-token", scopes()); resp.StatusCode != 401 {
		t.Errorf("bad token: status %d", resp.StatusCode)
	}
	if n := api.calls.Load(); n != 3 {
		t.Errorf("%d API calls, want 3", n)
	}
}

// TestCloseDropsLicenceConnections: Close releases the connections the
// licence API client New built keeps open between logins, and may be
// called again.
func TestCloseDropsLicenceConnections(t *testing.T) {
	api := &licenceAPI{tokens: map[string][]string{aliceToken: {"stable"}}}
	api.mode.Store("ok")
	closed := make(chan struct{}, 1)
	api.Server = httptest.NewUnstartedServer(http.HandlerFunc(api.serve))
	api.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			select {
			case closed <- struct{}{}:
			default:
			}
		}
	}
	api.Start()
	t.Cleanup(api.Close)
	f := newFixture(t, withHTTPBackend(api, time.Second))

	mustToken(t, get(t, f.url, aliceUser, aliceToken, scopes()))
	select {
	case <-closed:
		t.Fatal("the licence API connection closed before Close (no keep-alive?)")
	case <-time.After(100 * time.Millisecond):
	}
	f.srv.Close()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close left the licence API connection open")
	}
	f.srv.Close()
}

// Parallel logins of one account while the backend is slow make one
// backend call; later logins are served from the cache until cache_ttl
// passes.
func TestLicenceCacheAndCollapse(t *testing.T) {
	t.Parallel()
	api := newLicenceAPI(t)
	api.gate = make(chan struct{})
	api.arrived = make(chan struct{}, 100)
	f := newFixture(t, withHTTPBackend(api, 5*time.Second))

	// Count requests that reached the handler, so that the gate opens only
	// once they are all inside (waiting on the one backend call).
	var inside sync.WaitGroup
	const n = 20
	inside.Add(n)
	var entered atomic.Int64
	counting := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if entered.Add(1) <= n {
			inside.Done()
		}
		f.srv.Handler().ServeHTTP(w, r)
	})
	hs := httptest.NewServer(counting)
	defer hs.Close()

	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { mustToken(t, get(t, hs.URL, aliceUser, aliceToken, scopes("repository:stable/app:pull"))) })
	}
	inside.Wait()
	<-api.arrived
	close(api.gate)
	wg.Wait()
	if got := api.calls.Load(); got != 1 {
		t.Errorf("%d backend calls for %d parallel logins, want 1", got, n)
	}

	mustToken(t, get(t, f.url, aliceUser, aliceToken, scopes()))
	if got := api.calls.Load(); got != 1 {
		t.Errorf("cached login called the backend (%d calls)", got)
	}
	if hits := metricValue(t, f.opsURL, `tokenserver_license_cache_hits_total{result="positive"}`); hits == "" || hits == "0" {
		t.Errorf("cache hits = %q", hits)
	}
	f.clock.Advance(backends.DefaultCacheTTL)
	mustToken(t, get(t, f.url, aliceUser, aliceToken, scopes()))
	if got := api.calls.Load(); got != 2 {
		t.Errorf("%d backend calls after cache_ttl, want 2", got)
	}
	if got := metricValue(t, f.opsURL, `tokenserver_license_backend_requests_total{backend="http",outcome="ok"}`); got != "2" {
		t.Errorf("backend calls metric = %q", got)
	}
}

// A backend that cannot answer never grants anything: 503, whatever the
// way it fails. A licence cached before the outage keeps working until it
// expires; readiness reports the outage after that.
func TestFailClosed(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"down", "garbage", "hang", "unreachable"} {
		t.Run(mode, func(t *testing.T) {
			api := newLicenceAPI(t)
			f := newFixture(t, withHTTPBackend(api, 200*time.Millisecond))
			mustToken(t, get(t, f.url, aliceUser, aliceToken, scopes()))

			if mode == "unreachable" {
				api.Close()
			} else {
				api.mode.Store(mode)
			}
			// Cached: still served.
			mustToken(t, get(t, f.url, aliceUser, aliceToken, scopes("repository:stable/app:pull")))

			// Not cached (another account, or after cache_ttl): 503.
			resp := get(t, f.url, bobUser, bobToken, scopes("repository:stable/app:pull"))
			if resp.StatusCode != 503 {
				t.Fatalf("status %d, want 503: %s", resp.StatusCode, bodyOf(resp))
			}
			if e := decodeError(t, resp); e.Errors[0].Code != "UNAVAILABLE" || strings.Contains(e.Errors[0].Message, "127.0.0.1") {
				t.Errorf("error %+v", e)
			}
			f.clock.Advance(backends.DefaultCacheTTL)
			if resp := get(t, f.url, aliceUser, aliceToken, scopes()); resp.StatusCode != 503 {
				t.Errorf("after cache_ttl: status %d", resp.StatusCode)
			}
			if resp := do(t, mustRequest(t, http.MethodGet, f.url+"/readyz")); resp.StatusCode != 503 {
				t.Errorf("readyz %d while the backend is down", resp.StatusCode)
			}
			if got := metricValue(t, f.opsURL, `tokenserver_license_backend_errors_total{backend="http"}`); got != "2" {
				t.Errorf("backend errors metric = %q", got)
			}
			if got := metricValue(t, f.opsURL, `tokenserver_token_requests_total{grant="basic",outcome="unavailable"}`); got != "2" {
				t.Errorf("unavailable metric = %q", got)
			}
		})
	}
}

// The file backend rereads a rewritten file: new channels are granted and
// removed accounts refused once the cached answer expires.
func TestFileBackendReload(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, nil, inBubble)
		f.watch()
		base := f.url
		q := scopes("repository:beta/app:pull")
		if c := f.verify(mustToken(t, get(t, base, aliceUser, aliceToken, q)).Token); len(c.Access) != 0 {
			t.Fatalf("alice has beta before the rewrite: %+v", c.Access)
		}

		writeLicenses(t, f.licPath,
			account{user: aliceUser, token: aliceToken, channels: []string{"stable", "beta"}},
		)
		f.pollStep()
		f.clock.Advance(backends.DefaultCacheTTL)
		if c := f.verify(mustToken(t, get(t, base, aliceUser, aliceToken, q)).Token); len(c.Access) != 1 {
			t.Fatalf("beta not granted after a poll and cache_ttl: %+v", c.Access)
		}
		// Bob was removed by the rewrite.
		if resp := get(t, base, bobUser, bobToken, q); resp.StatusCode != 401 {
			t.Errorf("removed account: status %d", resp.StatusCode)
		}
		// Rewritten in place (truncate + write) with a broken file: the last
		// good list stays.
		if err := writeFile(f.licPath, "accounts: [this is not valid"); err != nil {
			t.Fatal(err)
		}
		f.pollStep()
		if !strings.Contains(f.logs.String(), "license file rejected") {
			t.Fatalf("the broken file not rejected at the next poll: %s", f.logs)
		}
		f.clock.Advance(backends.DefaultCacheTTL)
		mustToken(t, get(t, base, aliceUser, aliceToken, q))
	})
}
