package testutil

import (
	"context"
	"net"
	"sync"
	"testing"
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
