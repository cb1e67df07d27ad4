package gateway

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingPool counts the buffers ReverseProxy takes.
type countingPool struct {
	next httputil.BufferPool
	gets atomic.Int64
}

func (p *countingPool) Get() []byte  { p.gets.Add(1); return p.next.Get() }
func (p *countingPool) Put(b []byte) { p.next.Put(b) }

// TestBlobStreamTakesNoProxyBuffer: a blob stream holds no copy buffer of
// the gateway's for its whole length (ReverseProxy's, 8 KiB a stream at
// 1,000 streams), while manifests still use them.
func TestBlobStreamTakesNoProxyBuffer(t *testing.T) {
	blob := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	reg := newFakeRegistry()
	e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Path, "/blobs/") {
			reg.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Docker-Content-Digest", dgst)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(blob))
	}))
	pool := &countingPool{next: e.gw.proxy.BufferPool}
	e.gw.proxy.BufferPool = pool
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
	reg := newFakeRegistry()
	e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Path, "/blobs/") {
			reg.ServeHTTP(w, r)
			return
		}
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
