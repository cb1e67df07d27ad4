package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

// edgeSend is the send timeout of these tests.
const edgeSend = 200 * time.Millisecond

func withSend(c *Config, _ *Options) { c.Timeouts.Send = edgeSend }

// bigBlob is an upstream that answers every blob GET with size bytes.
func bigBlob(size int) http.Handler {
	blob := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	return blobsBy(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Content-Digest", dgst)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(blob))
	})
}

// dialStalled dials addr with a small receive buffer, for a client that
// will not read: the gateway's writes stop soon.
func dialStalled(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).SetReadBuffer(64 << 10)
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSendTimeoutCutsBlobNeverRead: a blob GET whose answer the client
// never reads is closed about timeouts.send after the gateway's writes
// stop moving: its goroutine and descriptor are released, not held for as
// long as the client likes.
func TestSendTimeoutCutsBlobNeverRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, bigBlob(64<<20), withSend)
	addr, tracked := testutil.ServeTracked(t, e.gw.Serve)
	c := dialStalled(t, addr)
	start := time.Now()
	if _, err := io.WriteString(c, "GET /v2/stable/app/blobs/"+dgst+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+e.token()+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	tracked.WaitClosed(t, start, 5*time.Second)
	if !e.logs.WaitFor(`"route":"blob"`, 5*time.Second) {
		t.Fatal("the cut stream has no access line")
	}
	if strings.Contains(e.logs.String(), `"level":"ERROR"`) {
		t.Errorf("a client that stopped reading logged as an error: %s", e.logs)
	}
}

// TestSendTimeoutCutsPipelinedFlood: a client that pipelines GET /v2/
// (small 401 answers) and never reads one is closed as well, once the
// answers fill the socket buffers.
func TestSendTimeoutCutsPipelinedFlood(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newFakeRegistry(), withSend, func(c *Config, _ *Options) { f := false; c.AccessLog = &f })
	addr, tracked := testutil.ServeTracked(t, e.gw.Serve)
	c := dialStalled(t, addr)
	start := time.Now()
	go func() {
		reqs := strings.Repeat("GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n", 1000)
		for {
			if _, err := io.WriteString(c, reqs); err != nil {
				return // the gateway stopped reading, or closed
			}
		}
	}()
	tracked.WaitClosed(t, start, 10*time.Second)
}

// TestSendTimeoutSparesSlowReader: a client that reads a blob slowly but
// steadily gets all of it, though the download lasts many times
// timeouts.send.
func TestSendTimeoutSparesSlowReader(t *testing.T) {
	t.Parallel()
	const size = 8 << 20
	e := newEnv(t, bigBlob(size), withSend)
	addr := testutil.Serve(t, e.gw.Serve)
	c := dialStalled(t, addr)
	start := time.Now()
	if _, err := io.WriteString(c, "GET /v2/stable/app/blobs/"+dgst+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+e.token()+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 64<<10), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// 64 KiB every 20 ms: about 3 MB/s, some 3 s for the whole.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	buf := make([]byte, 64<<10)
	var n int
	for {
		m, err := io.ReadFull(resp.Body, buf)
		n += m
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes, %s: %v", n, time.Since(start), err)
		}
		<-tick.C
	}
	took := time.Since(start)
	if n != size {
		t.Fatalf("%d of %d bytes after %s", n, size, took)
	}
	if took < 5*edgeSend {
		t.Errorf("the download took %s: not several send timeouts, the test proves nothing", took)
	}
}

// TestConnectionLimits: over limits.max_connections, or over
// limits.max_connections_per_address from one address, a new connection
// is closed at once and counted in gateway_connections_refused_total.
func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		limits LimitsConfig
		second string // the address of the connection over the limit
		other  string // an address still served
		label  string
	}{
		{"total", LimitsConfig{MaxConnections: 1}, "127.0.0.2", "", "max_connections"},
		{"per address", LimitsConfig{MaxConnectionsPerAddress: 1}, "127.0.0.1", "127.0.0.3", "max_connections_per_address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, newFakeRegistry(), func(c *Config, _ *Options) { c.Limits = tc.limits })
			addr := testutil.Serve(t, e.gw.Serve)
			if !testutil.Served(t, testutil.DialFrom(t, addr, "127.0.0.1"), "/healthz") {
				t.Fatal("the first connection was refused")
			}
			if testutil.Served(t, testutil.DialFrom(t, addr, tc.second), "/healthz") {
				t.Fatal("a connection over the limit was served")
			}
			if tc.other != "" && !testutil.Served(t, testutil.DialFrom(t, addr, tc.other), "/healthz") {
				t.Fatal("another address was refused")
			}
			want := `gateway_connections_refused_total{limit="` + tc.label + `"} 1`
			if m := e.scrape(); !strings.Contains(m, want) {
				t.Errorf("metrics lack %s:\n%s", want, metricsWith(m, "gateway_connections_refused_total"))
			}
		})
	}
}

func metricsWith(m, prefix string) string {
	var b strings.Builder
	for line := range strings.Lines(m) {
		if strings.HasPrefix(line, prefix) {
			b.WriteString(line)
		}
	}
	return b.String()
}

// TestMetricsOnlyOnTheirListener: the clients' listener answers /metrics
// and /debug/pprof/ with 404 (they list every repository pulled, and the
// process's internals); metrics.listen serves both. /healthz and /readyz
// stay with the clients' listener, where the kubelet probes.
func TestMetricsOnlyOnTheirListener(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newFakeRegistry())
	readBody(t, e.do("GET", "/v2/stable/app/manifests/latest", bearer(e.token())))
	for _, p := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/goroutine"} {
		resp := e.do("GET", p, nil)
		if body := readBody(t, resp); resp.StatusCode != http.StatusNotFound || strings.Contains(body, "gateway_") {
			t.Errorf("%s on the clients' listener: %d %.200s", p, resp.StatusCode, body)
		}
	}
	if m := e.scrape(); !strings.Contains(m, `gateway_pulls_total{channel="stable",kind="pull",repository="stable/app"} 1`) {
		t.Errorf("metrics.listen lacks the pull: %s", metricsWith(m, "gateway_pulls_total"))
	}
	resp, err := noRedirects.Get(e.ops.URL + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, "goroutine profile") {
		t.Errorf("pprof on metrics.listen: %d %.200s", resp.StatusCode, body)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if resp := e.do("GET", p, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("%s on the clients' listener: %d", p, resp.StatusCode)
		}
	}
}

// freeAddr is a loopback address nothing listens on (just now).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestRunServesBothListeners: Run serves the clients on listen and the
// metrics on metrics.listen, and stops both when its context ends.
func TestRunServesBothListeners(t *testing.T) {
	listen, metrics := freeAddr(t), freeAddr(t)
	e := newEnv(t, newFakeRegistry(), func(c *Config, _ *Options) { c.Listen, c.Metrics.Listen = listen, metrics })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.gw.Run(ctx) }()
	get := func(addr, path string) int {
		t.Helper()
		// Run listens on its own: nothing says when it does.
		var resp *http.Response
		testutil.WaitFor(t, "Run to serve "+addr+path, 5*time.Second, func() bool {
			var err error
			resp, err = noRedirects.Get("http://" + addr + path)
			return err == nil
		})
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		addr, path string
		want       int
	}{{listen, "/healthz", 200}, {listen, "/metrics", 404}, {metrics, "/metrics", 200}, {metrics, "/healthz", 404}} {
		if got := get(c.addr, c.path); got != c.want {
			t.Errorf("%s%s: %d, want %d", c.addr, c.path, got, c.want)
		}
	}
	cancel()
	testutil.WaitStopped(t, done, 10*time.Second, listen, metrics)
}

// TestRunMetricsListenBusy: a metrics.listen address that cannot be bound
// fails Run, naming the key, and leaves the clients' address free.
func TestRunMetricsListenBusy(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	listen := freeAddr(t)
	e := newEnv(t, newFakeRegistry(), func(c *Config, _ *Options) { c.Listen, c.Metrics.Listen = listen, busy.Addr().String() })
	if err := e.gw.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "metrics.listen") {
		t.Fatalf("Run = %v, want a metrics.listen error", err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatalf("the clients' address is still held: %v", err)
	}
	ln.Close()
}
