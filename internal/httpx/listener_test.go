package httpx

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

// sendTimeout is the send timeout of these tests: short, so that a stalled
// client is cut quickly, while the steady readers below move a window's
// worth of bytes many times over within it.
const sendTimeout = 200 * time.Millisecond

// connServer serves h on a loopback listener wrapped with o and reports
// each connection the server has closed (http.StateClosed: its goroutine
// and descriptor released) on closed.
type connServer struct {
	addr   string
	closed chan struct{}
	srv    *http.Server
}

func newConnServer(t *testing.T, o ListenerOptions, h http.Handler, configure ...func(*http.Server)) *connServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cs := &connServer{addr: ln.Addr().String(), closed: make(chan struct{}, 100)}
	cs.srv = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ConnState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			cs.closed <- struct{}{}
		}
	}}
	for _, c := range configure {
		c(cs.srv)
	}
	go func() { _ = cs.srv.Serve(WrapListener(ln, o)) }()
	t.Cleanup(func() { _ = cs.srv.Close() })
	return cs
}

// waitClosed waits for the server to close a connection within limit and
// returns how long that took from start.
func (cs *connServer) waitClosed(t *testing.T, start time.Time, limit time.Duration) time.Duration {
	t.Helper()
	select {
	case <-cs.closed:
		return time.Since(start)
	case <-time.After(limit):
		t.Fatalf("the server still holds the connection after %s", limit)
		return 0
	}
}

// dialSmall dials addr with a small receive buffer, so that a client that
// does not read stops the server's writes soon.
func dialSmall(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tc := c.(*net.TCPConn)
	_ = tc.SetReadBuffer(64 << 10)
	t.Cleanup(func() { _ = tc.Close() })
	return tc
}

// bigBody answers with size bytes in one Write (what net/http hands a large
// Write: straight to the connection), or, on /socket, copied from a socket
// as the gateway streams an upstream's blob (net/http's ReadFrom, which
// would splice(2) on a plain connection); the handler's write error goes
// to writeErr.
func bigBody(t *testing.T, size int, writeErr chan<- error) http.Handler {
	data := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = c.Write(data)
			}()
		}
	}()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		var err error
		if r.URL.Path == "/socket" {
			var c net.Conn
			if c, err = net.Dial("tcp", up.Addr().String()); err == nil {
				_, err = io.Copy(w, &io.LimitedReader{R: c, N: int64(size)})
				c.Close()
			}
		} else {
			_, err = w.Write(data)
		}
		if writeErr != nil {
			writeErr <- err
		}
	})
}

// TestSendTimeoutClosesStalledClient: a client that asks for a big answer
// and never reads it has its connection closed by the server about one
// send timeout after the writes stop moving, whether the body is written
// or copied from a socket; the handler's write fails.
func TestSendTimeoutClosesStalledClient(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"/write", "/socket"} {
		t.Run(path[1:], func(t *testing.T) {
			t.Parallel()
			werr := make(chan error, 1)
			cs := newConnServer(t, ListenerOptions{SendTimeout: sendTimeout}, bigBody(t, 64<<20, werr))
			c := dialSmall(t, cs.addr)
			start := time.Now()
			if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			took := cs.waitClosed(t, start, 5*time.Second)
			t.Logf("closed %s after the request", took)
			if took < sendTimeout {
				t.Errorf("closed after %s, before the send timeout", took)
			}
			if err := <-werr; !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("the handler's write: %v, want a deadline error", err)
			}
		})
	}
}

// TestSendTimeoutClosesPipelinedFlood: a client that pipelines requests
// for small answers and never reads one is closed as well, once the
// answers have filled the socket buffers.
func TestSendTimeoutClosesPipelinedFlood(t *testing.T) {
	t.Parallel()
	cs := newConnServer(t, ListenerOptions{SendTimeout: sendTimeout}, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
	}))
	c := dialSmall(t, cs.addr)
	start := time.Now()
	go func() {
		// Until the server stops reading (its writes are stuck) or has
		// closed the connection.
		req := strings.Repeat("GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n", 1000)
		for {
			if _, err := io.WriteString(c, req); err != nil {
				return
			}
		}
	}()
	cs.waitClosed(t, start, 10*time.Second)
}

// steadyRead reads everything from r, chunk bytes every interval, and
// returns how many bytes came.
func steadyRead(t *testing.T, r io.Reader, chunk int, interval time.Duration) int64 {
	t.Helper()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var n int64
	buf := make([]byte, chunk)
	for {
		m, err := io.ReadFull(r, buf)
		n += int64(m)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return n
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", n, err)
		}
		<-tick.C
	}
}

// TestSendTimeoutSpareSlowSteadyReader: a client that reads slowly but
// steadily gets the whole answer, though it takes many times the send
// timeout, from one Write and copied from a socket alike.
func TestSendTimeoutSpareSlowSteadyReader(t *testing.T) {
	t.Parallel()
	const size = 8 << 20
	for _, path := range []string{"/write", "/socket"} {
		t.Run(path[1:], func(t *testing.T) {
			t.Parallel()
			werr := make(chan error, 1)
			cs := newConnServer(t, ListenerOptions{SendTimeout: sendTimeout}, bigBody(t, size, werr))
			c := dialSmall(t, cs.addr)
			start := time.Now()
			if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReaderSize(c, 64<<10)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			// 64 KiB every 20 ms: about 3 MB/s, some 3 s for the whole.
			n := steadyRead(t, resp.Body, 64<<10, 20*time.Millisecond)
			took := time.Since(start)
			if n != size {
				t.Fatalf("%d of %d bytes after %s", n, size, took)
			}
			if took < 5*sendTimeout {
				t.Errorf("the download took %s: not several send timeouts, the test proves nothing", took)
			}
			if err := <-werr; err != nil {
				t.Errorf("the handler's write: %v", err)
			}
		})
	}
}

// TestSendTimeoutKeepsServerDeadline: a deadline the server sets itself
// (http.Server's WriteTimeout) still ends a response when it is earlier
// than the send timeout: the windows never extend it.
func TestSendTimeoutKeepsServerDeadline(t *testing.T) {
	t.Parallel()
	werr := make(chan error, 1)
	cs := newConnServer(t, ListenerOptions{SendTimeout: time.Minute}, bigBody(t, 64<<20, werr),
		func(s *http.Server) { s.WriteTimeout = sendTimeout })
	c := dialSmall(t, cs.addr)
	start := time.Now()
	if _, err := io.WriteString(c, "GET /write HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	cs.waitClosed(t, start, 5*time.Second)
	if err := <-werr; err == nil {
		t.Error("the write outlived the server's WriteTimeout")
	}
}

// TestConnectionLimits: over max_connections, or over
// max_connections_per_address from one peer address, a new connection is
// closed at once and counted under its limit; a slot freed is taken again.
func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	var mu sync.Mutex
	refused := map[string]int{}
	count := func(limit string) {
		mu.Lock()
		refused[limit]++
		mu.Unlock()
	}
	refusedOf := func(limit string) int {
		mu.Lock()
		defer mu.Unlock()
		return refused[limit]
	}
	// refusedOnce checks that one refusal was counted under limit. The
	// listener counts it just after closing the connection, which the
	// client may see first: the count is waited for.
	refusedOnce := func(t *testing.T, limit string) {
		t.Helper()
		testutil.WaitFor(t, "the refusal counted under "+limit, 5*time.Second, func() bool { return refusedOf(limit) >= 1 })
		if n := refusedOf(limit); n != 1 {
			t.Errorf("refused %d under %s, want one", n, limit)
		}
	}

	t.Run("total", func(t *testing.T) {
		cs := newConnServer(t, ListenerOptions{MaxConnections: 2, Refused: count}, ok)
		a, b := testutil.DialFrom(t, cs.addr, "127.0.0.1"), testutil.DialFrom(t, cs.addr, "127.0.0.2")
		if !testutil.Served(t, a, "/") || !testutil.Served(t, b, "/") {
			t.Fatal("connections within the limit refused")
		}
		if testutil.Served(t, testutil.DialFrom(t, cs.addr, "127.0.0.3"), "/") {
			t.Fatal("a third connection was served")
		}
		refusedOnce(t, LimitTotal)
		a.Close()
		cs.waitClosed(t, time.Now(), 5*time.Second)
		if !testutil.Served(t, testutil.DialFrom(t, cs.addr, "127.0.0.3"), "/") {
			t.Error("the slot a closed connection freed is not taken again")
		}
	})
	t.Run("per address", func(t *testing.T) {
		cs := newConnServer(t, ListenerOptions{MaxConnectionsPerAddress: 1, Refused: count}, ok)
		a := testutil.DialFrom(t, cs.addr, "127.0.0.4")
		if !testutil.Served(t, a, "/") {
			t.Fatal("first connection refused")
		}
		if testutil.Served(t, testutil.DialFrom(t, cs.addr, "127.0.0.4"), "/") {
			t.Fatal("a second connection from one address was served")
		}
		if !testutil.Served(t, testutil.DialFrom(t, cs.addr, "127.0.0.5"), "/") {
			t.Fatal("another address was refused")
		}
		refusedOnce(t, LimitPerAddress)
		a.Close()
		cs.waitClosed(t, time.Now(), 5*time.Second)
		if !testutil.Served(t, testutil.DialFrom(t, cs.addr, "127.0.0.4"), "/") {
			t.Error("the address's freed slot is not taken again")
		}
	})
}

// TestWrapListenerZeroIsPlain: without options the listener is returned as
// it is, and a closed connection releases its slot only once however often
// it is closed.
func TestWrapListenerZeroIsPlain(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if WrapListener(ln, ListenerOptions{}) != ln {
		t.Error("a zero ListenerOptions wraps the listener")
	}
	l := WrapListener(ln, ListenerOptions{MaxConnections: 1}).(*listener)
	var accepted atomic.Pointer[net.Conn]
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err == nil {
			accepted.Store(&c)
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-done
	sc := *accepted.Load()
	_ = sc.Close()
	_ = sc.Close()
	l.mu.Lock()
	total := l.total
	l.mu.Unlock()
	if total != 0 {
		t.Errorf("%d connections counted after one was closed twice", total)
	}
}

// TestWrappedConnCloseWrite: a wrapped connection half-closes as the TCP
// connection beneath does. net/http relies on it before closing a
// connection whose request it did not read whole (a 431 for headers over
// the limit): without it the client reads a reset instead of the answer
// (the token service's TestOversizedHeaders).
func TestWrappedConnCloseWrite(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	wl := WrapListener(ln, ListenerOptions{SendTimeout: time.Minute, MaxConnections: 10})
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := wl.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sc, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	defer sc.Close()
	cw, ok := sc.(interface{ CloseWrite() error })
	if !ok {
		t.Fatal("a wrapped connection cannot half-close")
	}
	if _, err := io.WriteString(sc, "answer"); err != nil {
		t.Fatal(err)
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(client)
	if err != nil || string(got) != "answer" {
		t.Errorf("client read %q, %v; want the answer, then EOF", got, err)
	}
}
