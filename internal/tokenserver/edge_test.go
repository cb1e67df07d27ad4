package tokenserver

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

// floodUnread pipelines requests for the JWKS on a connection to addr and
// never reads an answer, until the service stops reading or closes it.
func floodUnread(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).SetReadBuffer(64 << 10)
	t.Cleanup(func() { c.Close() })
	go func() {
		reqs := strings.Repeat("GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\n\r\n", 1000)
		for {
			if _, err := io.WriteString(c, reqs); err != nil {
				return
			}
		}
	}()
}

// TestSendTimeoutCutsFloodNeverRead: a client that pipelines requests and
// never reads an answer is closed about timeouts.send after the service's
// writes stop moving, well within timeouts.write (30s by default, reset by
// each request read).
func TestSendTimeoutCutsFloodNeverRead(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Timeouts.Send = 200 * time.Millisecond })
	addr, tracked := testutil.ServeTracked(t, f.srv.Serve)
	start := time.Now()
	floodUnread(t, addr)
	tracked.WaitClosed(t, start, 10*time.Second)
}

// TestWriteTimeoutStillHolds: the whole-answer timeouts.write still ends a
// connection whose answers do not go out, though timeouts.send is longer:
// the send timeout never extends it.
func TestWriteTimeoutStillHolds(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Timeouts.Write, c.Timeouts.Send = 300*time.Millisecond, time.Hour })
	addr, tracked := testutil.ServeTracked(t, f.srv.Serve)
	start := time.Now()
	floodUnread(t, addr)
	tracked.WaitClosed(t, start, 10*time.Second)
}

// TestConnectionLimits: over limits.max_connections a new connection is
// closed at once and counted in tokenserver_connections_refused_total;
// over limits.max_connections_per_address likewise, by address.
func TestConnectionLimits(t *testing.T) {
	for _, tc := range []struct {
		name          string
		limits        LimitsConfig
		second, other string
		label         string
	}{
		{"total", LimitsConfig{MaxConnections: 1}, "127.0.0.2", "", "max_connections"},
		{"per address", LimitsConfig{MaxConnectionsPerAddress: 1}, "127.0.0.1", "127.0.0.3", "max_connections_per_address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(c *Config) { c.Limits = tc.limits })
			addr := testutil.Serve(t, f.srv.Serve)
			if !testutil.Served(t, testutil.DialFrom(t, addr, "127.0.0.1"), "/healthz") {
				t.Fatal("the first connection was refused")
			}
			if testutil.Served(t, testutil.DialFrom(t, addr, tc.second), "/healthz") {
				t.Fatal("a connection over the limit was served")
			}
			if tc.other != "" && !testutil.Served(t, testutil.DialFrom(t, addr, tc.other), "/healthz") {
				t.Fatal("another address was refused")
			}
			if got := metricValue(t, f.opsURL, `tokenserver_connections_refused_total{limit="`+tc.label+`"}`); got != "1" {
				t.Errorf("refused under %s: %q, want 1", tc.label, got)
			}
		})
	}
}

// TestMetricsOnlyOnTheirListener: the service's listener answers /metrics
// and /debug/pprof/ with 404; metrics.listen serves them.
func TestMetricsOnlyOnTheirListener(t *testing.T) {
	f := newFixture(t, nil)
	mustToken(t, get(t, f.url, aliceUser, aliceToken, scopes("repository:stable/app:pull")))
	for _, p := range []string{"/metrics", "/debug/pprof/"} {
		resp := do(t, mustRequest(t, http.MethodGet, f.url+p))
		if resp.StatusCode != http.StatusNotFound || strings.Contains(string(bodyOf(resp)), "tokenserver_") {
			t.Errorf("%s on the service's listener: %d", p, resp.StatusCode)
		}
	}
	if got := metricValue(t, f.opsURL, `tokenserver_token_requests_total{grant="basic",outcome="issued"}`); got != "1" {
		t.Errorf("issued tokens on metrics.listen: %q, want 1", got)
	}
	if resp := do(t, mustRequest(t, http.MethodGet, f.opsURL+"/debug/pprof/goroutine?debug=1")); resp.StatusCode != http.StatusOK {
		t.Errorf("pprof on metrics.listen: %d", resp.StatusCode)
	}
}

// TestRunServesBothListeners: Run serves the service on Options.Listener
// and the metrics on Options.MetricsListener, and closes both when its
// context ends.
func TestRunServesBothListeners(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, nil, func(_ *fixture, o *Options) { o.Listener, o.MetricsListener = ln, mln })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.srv.Run(ctx) }()
	base, ops := "http://"+ln.Addr().String(), "http://"+mln.Addr().String()
	for _, c := range []struct {
		url  string
		want int
	}{{base + "/healthz", 200}, {base + "/metrics", 404}, {ops + "/metrics", 200}, {ops + "/healthz", 404}} {
		if resp := do(t, mustRequest(t, http.MethodGet, c.url)); resp.StatusCode != c.want {
			t.Errorf("%s: %d, want %d", c.url, resp.StatusCode, c.want)
		}
	}
	cancel()
	testutil.WaitStopped(t, done, 10*time.Second, ln.Addr().String(), mln.Addr().String())
}

// TestRunMetricsListenBusy: a metrics.listen address that cannot be bound
// fails Run, naming the key, and leaves the service's address free.
func TestRunMetricsListenBusy(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	f := newFixture(t, func(c *Config) { c.Listen, c.Metrics.Listen = listen, busy.Addr().String() })
	if err := f.srv.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "metrics.listen") {
		t.Fatalf("Run = %v, want a metrics.listen error", err)
	}
	again, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatalf("the service's address is still held: %v", err)
	}
	again.Close()
}
