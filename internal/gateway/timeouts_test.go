package gateway

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

func shortTimeouts(c *Config, _ *Options) {
	c.Timeouts = TimeoutsConfig{ReadHeader: 200 * time.Millisecond, ReadBody: 200 * time.Millisecond}
	c.ShutdownTimeout = 2 * time.Second
}

// rawExchange writes req on a new connection and returns what comes back
// until the gateway closes it; it fails if that takes longer than limit.
func rawExchange(t *testing.T, addr, req string, limit time.Duration) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(limit))
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("connection still open after %s (%v); got %q", limit, err, got)
	}
	return string(got)
}

// TestSlowRequestsAreCut: a client that never finishes its headers, or
// declares a body it never sends, is answered or closed within the
// configured timeouts (finding 3), instead of holding a connection and a
// graceful stop forever.
func TestSlowRequestsAreCut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newFakeRegistry(), shortTimeouts)
	addr := testutil.Serve(t, e.gw.Serve)

	start := time.Now()
	got := rawExchange(t, addr, "GET /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", 3*time.Second)
	if !strings.HasPrefix(got, "HTTP/1.1 408 ") || !strings.Contains(got, `"SIZE_INVALID"`) {
		t.Errorf("declared body never sent: got %q", got)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("answered after %s, before the body timeout", d)
	}

	got = rawExchange(t, addr, "GET /v2/ HTTP/1.1\r\nHost: x\r\n", 3*time.Second)
	if strings.Contains(got, "200 OK") {
		t.Errorf("unfinished headers: got %q", got)
	}

	got = rawExchange(t, addr, "GET /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", 3*time.Second)
	if !strings.HasPrefix(got, "HTTP/1.1 413 ") {
		t.Errorf("oversized declared body: got %q", got)
	}

	// A chunked body that stops half-way.
	got = rawExchange(t, addr, "GET /v2/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", 3*time.Second)
	if !strings.HasPrefix(got, "HTTP/1.1 408 ") {
		t.Errorf("unfinished chunked body: got %q", got)
	}
	// A chunked body that is not chunked.
	got = rawExchange(t, addr, "GET /v2/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 3*time.Second)
	if !strings.HasPrefix(got, "HTTP/1.1 400 ") || !strings.Contains(got, "request body could not be read") {
		t.Errorf("malformed chunked body: got %q", got)
	}
	if strings.Contains(e.logs.String(), `"level":"ERROR"`) {
		t.Errorf("slow clients logged as errors: %s", e.logs)
	}
}

// TestDefaultTimeoutsBoundSlowClients: at the defaults, headers and a
// declared body together get at most 20 s.
func TestDefaultTimeoutsBoundSlowClients(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig([]byte("realm: http://localhost/token\nservice: s\nissuer: i\nkeys: {public_keys: [k]}\nupstream: {url: http://u, static: {username: u, password_file: p}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	st := ServerTimeouts(cfg)
	if st.ReadHeader <= 0 || cfg.Timeouts.ReadBody <= 0 || st.ReadHeader+cfg.Timeouts.ReadBody > 20*time.Second {
		t.Errorf("header %s + body %s: want both set, at most 20 s together", st.ReadHeader, cfg.Timeouts.ReadBody)
	}
	if st.Read != 0 || st.Write != 0 {
		t.Errorf("read %s / write %s timeouts would cut blob streams", st.Read, st.Write)
	}
}

// slowBlobs streams every blob slowly, for longer than the gateway's read
// timeouts, and records whether a request body ever reached it.
type slowBlobs struct {
	next     http.Handler
	gotBody  atomic.Int64
	requests atomic.Int64
}

const slowChunks, slowChunk = 6, 1 << 10

func (s *slowBlobs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.Contains(r.URL.Path, "/blobs/") {
		s.next.ServeHTTP(w, r)
		return
	}
	s.requests.Add(1)
	b, _ := io.ReadAll(r.Body)
	if len(b) > 0 || r.ContentLength > 0 || len(r.TransferEncoding) > 0 {
		s.gotBody.Add(1)
	}
	w.Header().Set("Content-Length", itoa(slowChunks*slowChunk))
	for range slowChunks {
		_, _ = w.Write([]byte(strings.Repeat("x", slowChunk)))
		http.NewResponseController(w).Flush()
		time.Sleep(150 * time.Millisecond)
	}
}

// TestLongDownloadsAreNotCut: a blob that streams for longer than both
// read timeouts arrives whole, whether the GET carried a (small, pointless)
// body or not; and such a body never goes upstream.
func TestLongDownloadsAreNotCut(t *testing.T) {
	t.Parallel()
	up := &slowBlobs{next: newFakeRegistry()}
	e := newEnv(t, up, shortTimeouts)
	addr := testutil.Serve(t, e.gw.Serve)
	tok := e.token()
	for _, body := range []string{"", "ignored body"} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/v2/stable/app/blobs/"+dgst, strings.NewReader(body))
		if body == "" {
			req.Body, req.ContentLength = nil, 0
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := noRedirects.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, bufio.NewReader(resp.Body))
		resp.Body.Close()
		if err != nil || n != slowChunks*slowChunk || resp.StatusCode != http.StatusOK {
			t.Errorf("body %q: status %d, %d bytes, %v; want the whole blob", body, resp.StatusCode, n, err)
		}
	}
	if up.requests.Load() != 2 || up.gotBody.Load() != 0 {
		t.Errorf("upstream saw %d requests, %d with a body; want 2, none", up.requests.Load(), up.gotBody.Load())
	}
}

// TestClientHangUpIs499: a client that hangs up before the upstream (or
// the token service) answers is logged as 499 at INFO, not as a 502 at
// ERROR (finding 9); the upstream request is cancelled with it.
func TestClientHangUpIs499(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"/v2/stable/app/manifests/latest", "/token"} {
		t.Run(path, func(t *testing.T) {
			arrived, upstreamDone := make(chan struct{}), make(chan struct{})
			hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(arrived)
				<-r.Context().Done()
				close(upstreamDone)
			})
			ts := httptest.NewServer(hang)
			t.Cleanup(ts.Close)
			e := newEnv(t, hang, func(c *Config, _ *Options) { c.TokenEndpoint = ts.URL + "/token" })
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+path, nil)
			req.Header.Set("Authorization", "Bearer "+e.token())
			cancelOnArrival(t, req, arrived, cancel)
			select {
			case <-upstreamDone:
			case <-time.After(5 * time.Second):
				t.Fatal("the upstream request was not cancelled")
			}
			if !e.logs.WaitFor(`"status":499`, 5*time.Second) {
				t.Fatalf("no 499 in the log: %s", e.logs)
			}
			for line := range strings.Lines(e.logs.String()) {
				if strings.Contains(line, `"level":"ERROR"`) || (strings.Contains(line, `"status":499`) && !strings.Contains(line, `"level":"INFO"`)) {
					t.Errorf("hang-up logged as: %s", line)
				}
			}
			if strings.Contains(e.logs.String(), `"status":502`) {
				t.Errorf("hang-up logged as a 502: %s", e.logs)
			}
		})
	}
}
