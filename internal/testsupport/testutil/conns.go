package testutil

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// ConnListener is a listener that tells when the server closes the
// connections it accepted: what a server's http.StateClosed says (its
// goroutine and descriptor released), seen from below, for servers whose
// http.Server a test cannot reach.
type ConnListener struct {
	net.Listener
	// Closed receives the peer address of each accepted connection once
	// the server has closed it. It holds 1024; closes beyond that while
	// nobody reads it are not reported.
	Closed chan net.Addr
}

// TrackConns wraps ln.
func TrackConns(ln net.Listener) *ConnListener {
	return &ConnListener{Listener: ln, Closed: make(chan net.Addr, 1024)}
}

// Accept implements net.Listener.
func (l *ConnListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &trackedConn{Conn: c, closed: l.Closed}, nil
}

type trackedConn struct {
	net.Conn
	closed chan net.Addr
	once   sync.Once
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		select {
		case c.closed <- c.RemoteAddr():
		default:
		}
	})
	return err
}

// CloseWrite half-closes the connection beneath, as net/http expects of a
// TCP connection.
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ServeTracked is Serve on a ConnListener, which it returns with the
// address.
func ServeTracked(t testing.TB, serve func(context.Context, net.Listener) error) (string, *ConnListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tracked := TrackConns(ln)
	return ServeOn(t, tracked, serve), tracked
}

// DialFrom connects to addr from the local IP address local (on Linux any
// of 127.0.0.0/8 works without set-up), for tests of per-address limits;
// the connection is closed at the test's end.
func DialFrom(t testing.TB, addr, local string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Served sends GET path on c and reports whether it was answered 200;
// false when the server closed the connection instead (a refused one
// reads EOF or a reset at once). Neither within 5 s fails the test.
func Served(t testing.TB, c net.Conn, path string) bool {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return false
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("neither answered nor closed")
		}
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// WaitClosed waits, up to limit, for the server to close one of the
// listener's connections, and logs how long after start it did; still
// open after limit fails the test.
func (l *ConnListener) WaitClosed(t testing.TB, start time.Time, limit time.Duration) {
	t.Helper()
	select {
	case <-l.Closed:
		t.Logf("closed %s after the first request", time.Since(start))
	case <-time.After(limit):
		t.Fatalf("the server still holds the connection %s after the first request", limit)
	}
}

// WaitStopped waits, up to limit, for a Run or Serve whose context ended
// to send its result on done, and fails the test if that is an error or
// does not come; then it fails it for each of addrs that still accepts
// connections.
func WaitStopped(t testing.TB, done <-chan error, limit time.Duration, addrs ...string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stopped with %v", err)
		}
	case <-time.After(limit):
		t.Fatalf("still running %s after its context ended", limit)
	}
	for _, addr := range addrs {
		if c, err := net.Dial("tcp", addr); err == nil {
			_ = c.Close()
			t.Errorf("%s still accepts connections after it stopped", addr)
		}
	}
}
