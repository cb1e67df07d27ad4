package gateway

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/testsupport/testutil"
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

// TestUpstreamCutMidStream: when the upstream breaks off a blob after its
// headers went out, the client sees the connection end before the declared
// length (never a short body that looks whole), the cause is logged at
// WARN, and the gateway goes on serving.
func TestUpstreamCutMidStream(t *testing.T) {
	t.Parallel()
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
	if !e.logs.WaitFor(`"msg":"upstream body read failed"`, 5*time.Second) {
		t.Errorf("the cut is not logged:\n%s", e.logs)
	}
	if resp := e.do("GET", "/v2/stable/app/manifests/latest", bearer(e.token())); resp.StatusCode != http.StatusOK {
		t.Fatalf("after an upstream cut a stream: %d", resp.StatusCode)
	}
}

// TestServedBlobStreams: on the gateway's own listener (Serve) a blob
// streams whole, ranged too, and the client's connection is kept for the
// next request.
func TestServedBlobStreams(t *testing.T) {
	t.Parallel()
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
			t.Errorf("GET %d on a new connection: the answer before ended the connection", i)
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
// of a blob stream ends it, and that is no warning: nothing is wrong on
// the gateway's side.
func TestServedClientGoneIsNoWarning(t *testing.T) {
	t.Parallel()
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
