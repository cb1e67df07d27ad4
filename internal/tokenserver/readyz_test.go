package tokenserver

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/license/backends"
	"github.com/acme/registry-gateway/internal/license/httpbackend"
)

// readyWithin is the promise of /readyz: ready again within 10 s of the
// licence backend answering, without any login.
const readyWithin = 10 * time.Second

func readyz(t *testing.T, base string) int {
	t.Helper()
	return do(t, mustRequest(t, http.MethodGet, base+"/readyz")).StatusCode
}

// waitReady polls /readyz until it answers want, and fails after
// readyWithin. It sends nothing else: no login traffic.
func waitReady(t *testing.T, base string, want int) time.Duration {
	t.Helper()
	start := time.Now()
	for readyz(t, base) != want {
		if time.Since(start) > readyWithin {
			t.Fatalf("/readyz not %d within %v", want, readyWithin)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// probeFast is the shortest probe interval the configuration allows.
func probeFast(c *Config) { c.Licenses.ProbeInterval = backends.MinProbeInterval }

// A replica whose look-up failed while nothing was cached goes unready, and
// comes back by itself once the licence API answers again: no login has to
// reach it (a load balancer sends none to an unready replica).
func TestReadyzRecoversWithoutLogins(t *testing.T) {
	for _, mode := range []string{"down", "hang"} {
		t.Run(mode, func(t *testing.T) {
			api := newLicenceAPI(t)
			f := newFixture(t, func(c *Config) { withHTTPBackend(api, 300*time.Millisecond)(c); probeFast(c) })
			base := serve(t, f.srv)
			mustToken(t, get(t, base, aliceUser, aliceToken, scopes()))

			api.mode.Store(mode)
			if resp := get(t, base, bobUser, bobToken, scopes()); resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("login while down: status %d", resp.StatusCode)
			}
			f.clock.Advance(backends.DefaultCacheTTL) // alice's cached licence is gone
			waitReady(t, base, http.StatusServiceUnavailable)
			time.Sleep(2 * backends.MinProbeInterval) // failing probes keep it out
			if got := readyz(t, base); got != http.StatusServiceUnavailable {
				t.Fatalf("/readyz %d while the API is down", got)
			}

			api.mode.Store("ok")
			calls := api.calls.Load()
			took := waitReady(t, base, http.StatusOK)
			t.Logf("ready %v after the API came back", took)
			if n := api.calls.Load() - calls; n > 3 {
				t.Errorf("%d licence API calls while recovering, want a probe a second", n)
			}
			if !strings.Contains(f.logs.String(), "licence backend answers again") {
				t.Error("recovery not logged")
			}
		})
	}
}

// A replica started while the licence API cannot be reached at all is not
// ready, and becomes ready once the API listens again.
func TestReadyzFreshReplicaWhileBackendDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // connection refused from now on

	api := &licenceAPI{tokens: map[string][]string{aliceToken: {"stable"}}}
	api.mode.Store("ok")
	f := newFixture(t, func(c *Config) {
		c.Licenses = backends.Config{Backends: backends.Sections{"http": &httpbackend.Config{URL: "http://" + addr + "/v1/meta/licenses/", Timeout: time.Second}}}
		probeFast(c)
	})
	base := serve(t, f.srv)
	waitReady(t, base, http.StatusServiceUnavailable)

	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(api.serve))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)

	took := waitReady(t, base, http.StatusOK)
	t.Logf("ready %v after the API came up", took)
	mustToken(t, get(t, base, aliceUser, aliceToken, scopes()))
}
