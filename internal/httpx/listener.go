package httpx

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// The names of the connection limits, as Refused is told them and as the
// services' connections_refused_total metrics label them: the
// configuration keys (limits.*).
const (
	LimitTotal      = "max_connections"
	LimitPerAddress = "max_connections_per_address"
)

// ListenerOptions are what WrapListener enforces on the connections of a
// listener. The zero value enforces nothing.
type ListenerOptions struct {
	// SendTimeout bounds how long a write to the client may make no
	// progress: each write gets this long, again for as long as bytes
	// keep moving, so a download that keeps moving is never cut however
	// long it lasts, while a client that stops reading gets its
	// connection closed (the server sees the write fail) instead of
	// holding it, its goroutine and its descriptor forever. Like nginx's
	// send_timeout. A deadline the server sets itself (http.Server's
	// WriteTimeout, http.ResponseController) still applies when it is
	// earlier. Zero: no send timeout.
	SendTimeout time.Duration
	// MaxConnections bounds the connections open at once; zero: no bound.
	MaxConnections int
	// MaxConnectionsPerAddress bounds the connections open at once from
	// one peer IP address (the peer: behind a load balancer, that is the
	// balancer); zero: no bound.
	MaxConnectionsPerAddress int
	// Refused, if set, is called with LimitTotal or LimitPerAddress for
	// each connection closed at accept because it was over that limit.
	Refused func(limit string)
}

// WrapListener enforces o on the connections accepted from ln. A
// connection over a limit is closed at once, before anything is read from
// it or written to it, and Accept goes on to the next. Under TLS, wrap the
// plain listener, beneath the TLS one: a refused connection then costs no
// handshake, and the send timeout sees the socket's progress.
func WrapListener(ln net.Listener, o ListenerOptions) net.Listener {
	if o.SendTimeout <= 0 && o.MaxConnections <= 0 && o.MaxConnectionsPerAddress <= 0 {
		return ln
	}
	l := &listener{Listener: ln, o: o}
	if o.MaxConnectionsPerAddress > 0 {
		l.perAddr = map[netip.Addr]int{}
	}
	return l
}

type listener struct {
	net.Listener
	o ListenerOptions

	mu      sync.Mutex
	total   int
	perAddr map[netip.Addr]int // nil without MaxConnectionsPerAddress
}

// Accept returns the next connection within the limits.
func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := peerAddr(c)
		if limit := l.admit(addr); limit != "" {
			_ = c.Close()
			if l.o.Refused != nil {
				l.o.Refused(limit)
			}
			continue
		}
		return &conn{Conn: c, l: l, addr: addr, send: l.o.SendTimeout}, nil
	}
}

// admit takes a slot for a connection from addr; it returns the limit
// that refuses it, or "".
func (l *listener) admit(addr netip.Addr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.o.MaxConnections > 0 && l.total >= l.o.MaxConnections {
		return LimitTotal
	}
	if l.perAddr != nil {
		if l.perAddr[addr] >= l.o.MaxConnectionsPerAddress {
			return LimitPerAddress
		}
		l.perAddr[addr]++
	}
	l.total++
	return ""
}

func (l *listener) release(addr netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perAddr != nil {
		if n := l.perAddr[addr] - 1; n > 0 {
			l.perAddr[addr] = n
		} else {
			delete(l.perAddr, addr)
		}
	}
}

// peerAddr is the IP address of c's peer (the zero Addr when it has none,
// as on a pipe: all such connections then count as one address).
func peerAddr(c net.Conn) netip.Addr {
	switch a := c.RemoteAddr().(type) {
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	case nil:
		return netip.Addr{}
	default:
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.Addr{}
		}
		return ap.Addr().Unmap()
	}
}

// conn is an accepted connection: it gives its slot back on Close and
// holds its writes to the send timeout. It has no ReadFrom, on purpose:
// net/http would hand it a body of declared length to move kernel to
// kernel (splice(2), sendfile(2)) under one deadline for the whole
// transfer, and a ReadFrom that times out has lost what it took from the
// source, so it could not be given another window while bytes move. A
// body therefore goes through Write, where it can (TestSendTimeout*).
type conn struct {
	net.Conn
	l      *listener
	addr   netip.Addr
	send   time.Duration
	closed atomic.Bool
	// deadline is the write deadline the server set itself (Unix
	// nanoseconds; 0: none), which the send timeout never extends.
	deadline atomic.Int64
}

// Close releases the connection's slot, once, and closes it.
func (c *conn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.release(c.addr)
	}
	return c.Conn.Close()
}

// CloseWrite half-closes the connection beneath, when it can: net/http
// does so before closing a connection whose request it did not read whole
// (a 431 for headers over the limit), so that the client reads the answer
// rather than a reset.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// SetDeadline records the write half for Write, and sets both.
func (c *conn) SetDeadline(t time.Time) error {
	c.setOuter(t)
	return c.Conn.SetDeadline(t)
}

// SetWriteDeadline records t for Write, and sets it.
func (c *conn) SetWriteDeadline(t time.Time) error {
	c.setOuter(t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *conn) setOuter(t time.Time) {
	if t.IsZero() {
		c.deadline.Store(0)
	} else {
		c.deadline.Store(t.UnixNano())
	}
}

// windowDeadline is the write deadline of a send window starting now: the
// send timeout, or the server's own deadline when that is earlier (then
// last is true: when it passes, the write is over).
func (c *conn) windowDeadline() (d time.Time, last bool) {
	d = time.Now().Add(c.send)
	if outer := c.deadline.Load(); outer != 0 && outer <= d.UnixNano() {
		return time.Unix(0, outer), true
	}
	return d, false
}

// Write writes p, giving it one send window after another for as long as
// each moves some bytes: it fails only when a whole window passes with
// none written (or the server's own deadline passes).
func (c *conn) Write(p []byte) (int, error) {
	if c.send <= 0 {
		return c.Conn.Write(p)
	}
	written := 0
	for {
		d, last := c.windowDeadline()
		if err := c.Conn.SetWriteDeadline(d); err != nil {
			return written, err
		}
		n, err := c.Conn.Write(p[written:])
		written += n
		// On a timeout the bytes not yet written are still in p: going
		// on with them loses nothing.
		if err == nil || n == 0 || last || !errors.Is(err, os.ErrDeadlineExceeded) {
			return written, err
		}
	}
}
