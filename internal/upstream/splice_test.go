package upstream

import (
	"bytes"
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

// blobServer serves n bytes with a Content-Length, as a registry serves a
// blob.
func blobServer(t testing.TB, n int) *httptest.Server {
	blob := bytes.Repeat([]byte("0123456789abcdef"), n/16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
		_, _ = w.Write(blob)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// proxyHandler fetches target(r) with tr and answers with its status,
// Content-Length and body, which copyBody copies.
func proxyHandler(tr http.RoundTripper, target func(*http.Request) string, copyBody func(http.ResponseWriter, *http.Request, io.Reader)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), "GET", target(r), nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
		w.WriteHeader(resp.StatusCode)
		copyBody(w, r, resp.Body)
	})
}

// recordingDst is a destination backed by a real TCP connection that
// records what its ReadFrom is given before passing it on.
type recordingDst struct {
	*net.TCPConn
	src    io.Reader
	onRead func() // runs when ReadFrom is called
}

func (d *recordingDst) ReadFrom(r io.Reader) (int64, error) {
	d.src = r
	if d.onRead != nil {
		d.onRead()
	}
	return d.TCPConn.ReadFrom(r)
}

// TestWriteToHandsOverTheSocket shows the first half of the splice path:
// io.Copy of a body into an io.ReaderFrom gives it an io.LimitedReader over
// the upstream's *net.TCPConn, which is the argument (*net.TCPConn).ReadFrom
// turns into splice(2) (net/splice_linux.go). The connection is kept after
// the body, so the limit ended the copy at the body's end exactly.
func TestWriteToHandsOverTheSocket(t *testing.T) {
	const size = 4 << 20
	srv := blobServer(t, size)
	tr := newTransport(t, Config{})
	sink, got := sinkConn(t)
	dst := &recordingDst{TCPConn: sink}

	req, _ := http.NewRequest("GET", srv.URL, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	held := true
	dst.onRead = func() { held = resp.Body.(*body).pc.br != nil }
	n, err := io.Copy(dst, resp.Body)
	if err != nil || n != size {
		t.Fatalf("copy: %d, %v; want %d", n, err, size)
	}
	_ = resp.Body.Close()
	lr, ok := dst.src.(*io.LimitedReader)
	if !ok {
		t.Fatalf("ReadFrom got %T, want *io.LimitedReader", dst.src)
	}
	if _, ok := lr.R.(*net.TCPConn); !ok {
		t.Fatalf("the limited reader reads %T, want *net.TCPConn", lr.R)
	}
	if lr.N != 0 {
		t.Errorf("%d bytes left in the limit", lr.N)
	}
	if held {
		t.Error("the connection held its bufio.Reader while the socket was spliced")
	}
	if tr.IdleConns() != 1 {
		t.Error("connection not kept after a spliced body")
	}
	_ = sink.CloseWrite()
	testutil.WaitFor(t, "the sink to get the blob", 5*time.Second, func() bool { return got.Load() == size })
}

// TestProxySplices shows the whole path: a net/http handler that copies an
// upstream body with io.Copy(w, resp.Body) moves the blob with splice(2).
// The proof is the kernel's count of bytes this process read with read(2)
// (rchar): through the splice path the proxy hop adds nothing to it, and
// with the body's WriteTo hidden (the same proxy copying through a buffer,
// as before) it adds the blob's size. The upstream server, proxy and client
// all run in this process, so both runs count the client's reads too.
func TestProxySplices(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 2 × 32 MiB")
	}
	const size = 32 << 20
	upstream := blobServer(t, size)
	tr := newTransport(t, Config{})
	var hide atomic.Bool
	proxy := httptest.NewServer(proxyHandler(tr, func(*http.Request) string { return upstream.URL },
		func(w http.ResponseWriter, _ *http.Request, body io.Reader) {
			if hide.Load() {
				body = struct{ io.Reader }{body}
			}
			_, _ = io.Copy(w, body)
		}))
	t.Cleanup(proxy.Close)
	client := proxy.Client()

	pull := func() int64 {
		before := testutil.ReadChars(t)
		resp, err := client.Get(proxy.URL)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if err != nil || n != size {
			t.Fatalf("pulled %d bytes, %v; want %d", n, err, size)
		}
		return testutil.ReadChars(t) - before
	}
	spliced := pull()
	hide.Store(true)
	copied := pull()
	t.Logf("bytes read with read(2) for a %d-byte blob: %d spliced, %d copied", size, spliced, copied)
	if copied-spliced < size*3/4 {
		t.Errorf("the spliced pull read %d bytes with read(2), the copied one %d: splice not used", spliced, copied)
	}
}

// TestAwaitingHoldsNoReader: requests awaiting their answers hold no
// bufio.Reader (4 KiB each). Measured on kept-alive connections, the heap
// a waiting request takes is about 0.5 KiB without one and 4.8 KiB with
// one.
func TestAwaitingHoldsNoReader(t *testing.T) {
	const n = 300
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var arrived atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 1024)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					arrived.Add(1)
					if _, ok := <-release; !ok {
						return
					}
					_, _ = io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
				}
			}()
		}
	}()
	tr := newTransport(t, Config{MaxIdleConnsPerHost: n, MaxIdleConns: n})
	heap := func() int64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapInuse)
	}
	// n requests at once; the heap they hold while they all wait.
	batch := func() int64 {
		arrived.Store(0)
		errs := make(chan error, n)
		before := heap()
		for range n {
			go func() {
				req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/", nil)
				resp, err := tr.RoundTrip(req)
				if err == nil {
					_ = resp.Body.Close()
				}
				errs <- err
			}()
		}
		testutil.WaitFor(t, "every request to arrive", 10*time.Second, func() bool { return arrived.Load() == n })
		per := (heap() - before) / n
		for range n {
			release <- struct{}{}
		}
		for range n {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		return per
	}
	batch() // connections dialed, pools filled
	per := batch()
	t.Logf("heap per request awaiting its answer: %d bytes", per)
	if per >= readerSize {
		t.Errorf("a request awaiting its answer takes %d bytes of heap: it holds a reader", per)
	}
}
