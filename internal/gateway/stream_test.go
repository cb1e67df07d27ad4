package gateway

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/testutil"
)

// blobsBy is an upstream whose blob GETs blob answers, and the rest the
// fake registry.
func blobsBy(blob http.HandlerFunc) http.Handler {
	reg := newFakeRegistry()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Path, "/blobs/") {
			reg.ServeHTTP(w, r)
			return
		}
		blob(w, r)
	})
}

// countingPool counts the buffers the forwarder takes.
type countingPool struct {
	next copyBuffers
	gets atomic.Int64
}

func (p *countingPool) Get() []byte  { p.gets.Add(1); return p.next.Get() }
func (p *countingPool) Put(b []byte) { p.next.Put(b) }

// TestBlobStreamTakesNoProxyBuffer: a blob stream holds no copy buffer of
// the gateway's for its whole length (the forwarder's, 8 KiB a stream at
// 1,000 streams), while manifests still use them.
func TestBlobStreamTakesNoProxyBuffer(t *testing.T) {
	blob := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	e := newEnv(t, blobsBy(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Content-Digest", dgst)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(blob))
	}))
	pool := &countingPool{next: e.gw.proxy.buffers}
	e.gw.proxy.buffers = pool
	// A server started after the change, so that its goroutines see it.
	e.srv = httptest.NewServer(e.gw.Handler())
	t.Cleanup(e.srv.Close)

	resp := e.do("GET", "/v2/stable/app/blobs/"+dgst, bearer(e.token()))
	got, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(got, blob) || resp.Header.Get("Docker-Content-Digest") != dgst {
		t.Fatalf("blob: %v, %d bytes, digest %q", err, len(got), resp.Header.Get("Docker-Content-Digest"))
	}
	if n := pool.gets.Load(); n != 0 {
		t.Errorf("a blob stream took %d buffers from the proxy's pool, want 0", n)
	}
	if resp := e.do("GET", "/v2/stable/app/manifests/latest", bearer(e.token())); resp.StatusCode != http.StatusOK {
		t.Fatalf("manifest: %d", resp.StatusCode)
	}
	if pool.gets.Load() == 0 {
		t.Error("a manifest took no buffer: the count proves nothing")
	}
}

// TestUpstreamCutMidStream: when the upstream breaks off a blob after its
// headers went out, the client sees the connection end before the declared
// length (never a short body that looks whole), the cause is logged at
// WARN, and the gateway goes on serving.
func TestUpstreamCutMidStream(t *testing.T) {
	e := newEnv(t, blobsBy(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000000")
		_, _ = w.Write(make([]byte, 1<<16))
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}))
	resp := e.do("GET", "/v2/stable/app/blobs/"+dgst, bearer(e.token()))
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, %d bytes, %v: want a 200 whose body fails", resp.StatusCode, n, err)
	}
	if !e.logs.WaitFor(`"msg":"blob stream cut"`, 5*time.Second) {
		t.Errorf("the cut is not logged:\n%s", e.logs)
	}
	if resp := e.do("GET", "/v2/stable/app/manifests/latest", bearer(e.token())); resp.StatusCode != http.StatusOK {
		t.Fatalf("after an upstream cut a stream: %d", resp.StatusCode)
	}
}

// TestServedBlobStreams: on the gateway's own listener (Serve) a blob goes
// to the client whole, ranged too, and the client's connection is kept for
// the next request. Not with splice(2) there: the send timeout's
// connections (httpx.WrapListener) take every byte through their writes,
// so that a client that stops reading is cut and one that reads is not.
func TestServedBlobStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 2 × 32 MiB")
	}
	const size = 32 << 20
	blob := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	e := newEnv(t, blobsBy(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Content-Digest", dgst)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(blob))
	}))
	addr := testutil.Serve(t, e.gw.Serve)
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	tok := e.token()
	get := func(rng string) (*http.Response, []byte, bool) {
		t.Helper()
		var reused bool
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), "GET", "http://"+addr+"/v2/stable/app/blobs/"+dgst, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatalf("body: %v after %d bytes", err, len(body))
		}
		return resp, body, reused
	}
	for i := range 2 {
		resp, body, reused := get("")
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, blob) || resp.Header.Get("Docker-Content-Digest") != dgst {
			t.Fatalf("GET %d: %d, %d bytes", i, resp.StatusCode, len(body))
		}
		if i > 0 && !reused {
			t.Errorf("GET %d on a new connection: the streamed answer ended the last one", i)
		}
	}
	resp, body, reused := get("bytes=16-" + strconv.Itoa(16+1<<20-1))
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, blob[16:16+1<<20]) || !reused {
		t.Errorf("range: %d, %d bytes, reused %v", resp.StatusCode, len(body), reused)
	}
	if resp := e.do("GET", "/v2/stable/app/manifests/latest", bearer(tok)); resp.StatusCode != http.StatusOK {
		t.Errorf("manifest after the streams: %d", resp.StatusCode)
	}
}

// TestServedClientGoneIsNoWarning: a client that hangs up in the middle
// of a spliced stream ends it, and that is no warning: nothing is wrong on
// the gateway's side.
func TestServedClientGoneIsNoWarning(t *testing.T) {
	e := newEnv(t, blobsBy(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(256<<20))
		buf := make([]byte, 1<<20)
		for range 256 {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	}))
	addr := testutil.Serve(t, e.gw.Serve)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(conn, "GET /v2/stable/app/blobs/"+dgst+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+e.token()+"\r\n\r\n")
	if _, err := io.ReadFull(conn, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()
	if !e.logs.WaitFor(`"route":"blob"`, 5*time.Second) {
		t.Fatal("no access line for the cut stream")
	}
	for line := range strings.Lines(e.logs.String()) {
		if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
			t.Errorf("a client that hung up logged as: %s", line)
		}
	}
}

// TestBlobStreamStackUnder8KiB: a blob stream through Gateway.Serve, with
// the upstream's redirect followed to the storage on new connections, runs
// within 8 KiB of goroutine stack: the stack a stream keeps for as long as
// it waits (16 KiB a stream, 8 MiB more at 1,000 streams, once anything on
// its path — a dial, net/http's header writing — goes deeper). It runs in
// a child process, since the runtime ends a process whose goroutine passes
// debug.SetMaxStack.
func TestBlobStreamStackUnder8KiB(t *testing.T) {
	if raceEnabled {
		t.Skip("-race makes stacks bigger; make test runs this test without it")
	}
	if os.Getenv("GATEWAY_TEST_STACK_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestBlobStreamStackUnder8KiB$", "-test.count=1")
		cmd.Env = append(os.Environ(), "GATEWAY_TEST_STACK_CHILD=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		return
	}
	host, hostSrv := newBlobHost(t)
	reg := newFakeRegistry()
	reg.blobRedirect = hostSrv.URL
	tr, err := NewUpstreamTransport(UpstreamConfig{MaxIdleConnsPerHost: 2})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, reg, func(c *Config, o *Options) { c.Upstream.ProxyBlobs = true; o.Transport = tr })
	addr := testutil.Serve(t, e.gw.Serve)
	tok := e.token()
	pull := func() {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = io.WriteString(conn, "GET /v2/stable/app/blobs/"+dgst+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tok+"\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, resp.Body); err != nil || n != int64(len(host.blob)) {
			t.Fatalf("%d: %d bytes, %v", resp.StatusCode, n, err)
		}
	}
	// The token's first check (ECDSA) is deep, and done once a token.
	pull()
	tr.CloseIdleConnections() // the next pull dials

	defer debug.SetMaxStack(debug.SetMaxStack(8 << 10))
	pull()
}
