package splice

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/testutil"
)

// upstream is a raw TCP server that answers every connection with body
// (cut after cut bytes when cut > 0), then waits for the peer to close.
// active counts the connections it is serving; the test's end waits for
// none.
func upstream(t testing.TB, body []byte, cut int) (addr string, active *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	active = new(atomic.Int64)
	t.Cleanup(func() {
		_ = ln.Close()
		testutil.WaitFor(t, "the upstream's connections to end", 10*time.Second, func() bool { return active.Load() == 0 })
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			active.Add(1)
			go func() {
				defer active.Add(-1)
				defer c.Close()
				if cut > 0 {
					_, _ = c.Write(body[:cut])
					return
				}
				_, _ = c.Write(body)
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	return ln.Addr().String(), active
}

// proxy serves, on a listener wrapped as the gateway wraps its own (wrap
// false: a plain httptest server), the body of a new upstream connection
// to up for every request: Content-Length, then io.Copy into NewWriter of
// an io.LimitedReader over the upstream's *net.TCPConn. errs gets what the
// copies return; accepted, if set, counts the connections.
func proxy(t testing.TB, up string, size int, wrap bool, errs chan<- error, accepted ...*atomic.Int64) *httptest.Server {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := net.Dial("tcp", up)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.WriteHeader(http.StatusOK)
		_, err = io.Copy(NewWriter(r, w), &io.LimitedReader{R: c, N: int64(size)})
		if errs != nil {
			errs <- err
		}
		if err != nil {
			panic(http.ErrAbortHandler)
		}
	}))
	if len(accepted) > 0 {
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				accepted[0].Add(1)
			}
		}
	}
	if wrap {
		srv.Listener = Listener(srv.Listener)
		srv.Config.ConnContext = ConnContext
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func first(addr string, _ *atomic.Int64) string { return addr }

// get GETs path on conn (a kept-alive connection) and returns the body.
func get(t *testing.T, c net.Conn, br *bufio.Reader, method string) (*http.Response, []byte) {
	t.Helper()
	if _, err := io.WriteString(c, method+" / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(method, "http://x/", nil)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("body: %v after %d bytes", err, len(body))
	}
	return resp, body
}

// TestSplicedBodyKeepsTheConnection: a spliced body arrives whole, twice on
// one kept-alive connection (net/http counted it, so it neither closed
// the connection nor sent anything after it), without going through
// read(2) in this process on the way, and a HEAD gets no body.
func TestSplicedBodyKeepsTheConnection(t *testing.T) {
	const size = 8 << 20
	body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	var accepted atomic.Int64
	srv := proxy(t, first(upstream(t, body, 0)), size, true, nil, &accepted)
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReaderSize(c, 64<<10)
	for i := range 2 {
		before := testutil.ReadChars(t)
		resp, got := get(t, c, br, "GET")
		read := testutil.ReadChars(t) - before
		if resp.StatusCode != 200 || !bytes.Equal(got, body) || resp.Close {
			t.Fatalf("GET %d: %d, %d bytes, close %v", i, resp.StatusCode, len(got), resp.Close)
		}
		// The client's reads count (size); a copy in the proxy would
		// add size again.
		if read > size*3/2 {
			t.Errorf("GET %d: %d bytes read with read(2) for %d: the proxy copied", i, read, size)
		}
	}
	if resp, got := get(t, c, br, "HEAD"); resp.StatusCode != 200 || len(got) != 0 || resp.ContentLength != size {
		t.Errorf("HEAD: %d, %d body bytes, length %d", resp.StatusCode, len(got), resp.ContentLength)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("%d connections for three requests on one", n)
	}
}

// TestNotOnTheListenerStillWorks: without Listener and ConnContext (TLS,
// a test server) NewWriter is net/http's own ReadFrom.
func TestNotOnTheListenerStillWorks(t *testing.T) {
	const size = 1 << 20
	body := bytes.Repeat([]byte("x"), size)
	srv := proxy(t, first(upstream(t, body, 0)), size, false, nil)
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("%v, %d bytes", err, len(got))
	}
}

// TestUpstreamEndsEarly: an upstream that ends before the length is an
// io.ErrUnexpectedEOF, and the client sees the connection end.
func TestUpstreamEndsEarly(t *testing.T) {
	const size = 4 << 20
	body := bytes.Repeat([]byte("y"), size)
	errs := make(chan error, 1)
	srv := proxy(t, first(upstream(t, body, 1<<20)), size, true, errs)
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err == nil || n >= size {
		t.Errorf("client read %d bytes, %v: want a cut body", n, err)
	}
	if err := <-errs; !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("copy: %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestClientGoneEndsTheCopy: a client that hangs up mid-body ends the
// copy with a write error at once.
func TestClientGoneEndsTheCopy(t *testing.T) {
	const size = 64 << 20
	body := make([]byte, size)
	errs := make(chan error, 1)
	srv := proxy(t, first(upstream(t, body, 0)), size, true, errs)
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	_, _ = io.ReadFull(c, make([]byte, 1<<20))
	_ = c.Close()
	select {
	case err := <-errs:
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "write" {
			t.Errorf("copy: %v, want a write error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the copy went on after the client left")
	}
}

// TestStalledStreamsHoldNoBuffer: streams whose clients stop reading cost
// the proxy no user-space copy buffer. Through net/http's ReadFrom each
// holds a 32 KiB one for as long as it lasts.
func TestStalledStreamsHoldNoBuffer(t *testing.T) {
	if testing.Short() {
		t.Skip("64 streams of 64 MiB")
	}
	const streams, size = 64, 64 << 20
	body := make([]byte, size)
	up, active := upstream(t, body, 0)
	perStream := func(wrap bool) (heap, stack float64) {
		srv := proxy(t, up, size, wrap, nil)
		measure := func() runtime.MemStats {
			runtime.GC()
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			return ms
		}
		before := measure()
		var conns []net.Conn
		for range streams {
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			_ = c.(*net.TCPConn).SetReadBuffer(64 << 10)
			conns = append(conns, c)
			_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			_, _ = io.ReadFull(c, make([]byte, 4096))
		}
		// Every stream stalls once the client's and proxy's socket buffers
		// are full.
		time.Sleep(500 * time.Millisecond)
		after := measure()
		for _, c := range conns {
			_ = c.Close()
		}
		// Nothing of these streams is left for the next measurement.
		testutil.WaitFor(t, "the streams to end", 10*time.Second, func() bool { return active.Load() == 0 })
		return float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / streams,
			float64(int64(after.StackInuse)-int64(before.StackInuse)) / streams
	}
	spliced, splicedStack := perStream(true)
	plain, plainStack := perStream(false)
	t.Logf("per stalled stream: heap %.1f KiB, stack %.1f KiB spliced; heap %.1f KiB, stack %.1f KiB through net/http's ReadFrom",
		spliced/1024, splicedStack/1024, plain/1024, plainStack/1024)
	if plain-spliced < 16<<10 {
		t.Errorf("a stalled stream costs %.1f KiB of heap spliced, %.1f KiB through net/http: no buffer saved", spliced/1024, plain/1024)
	}
}
