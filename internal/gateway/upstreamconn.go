package gateway

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"
)

// UpstreamTransport is net/http's Transport (as NewUpstreamTransport
// configures it) with one guard: a kept-alive connection goes to the next
// request only once the Transport has looked at it while idle.
//
// net/http's Transport closes a connection on which bytes arrive while no
// request waits for an answer: an upstream's bytes past a Content-Length,
// a HEAD's or 204's body, an answer nobody asked for. It looks after it has
// put the connection back in its pool, though, and hands it at once to a
// request that waits for one: when that request counts itself on the
// connection before the Transport's reader looks, the stray bytes, which
// may well be a whole answer to an earlier request of another customer,
// are read as the new request's answer (TestCrossTenantInvariant shows it
// under load). So RoundTrip waits, when the Transport hands it a
// connection (httptrace's GotConn, before the request is counted on it),
// until the connection's reader is back to waiting for bytes and none are
// pending in the kernel: the stray bytes were then either never sent, or
// seen and the connection closed (and the request goes out on another).
// What no HTTP/1.1 client can tell from an answer is left: bytes that
// arrive only after the next request went out.
type UpstreamTransport struct {
	*http.Transport
}

// maxIdleWait bounds the wait for a connection's reader; the Transport's
// takes microseconds. A connection still not idle then is closed.
const maxIdleWait = time.Second

// RoundTrip sends r on a connection whose reader is idle, see
// UpstreamTransport.
func (t *UpstreamTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx := r.Context()
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		if c := upstreamConnOf(info.Conn); c != nil && !c.awaitIdle(ctx) && ctx.Err() == nil {
			// Fail closed: the request then fails on it, or
			// the Transport sends it again on another
			// connection.
			_ = c.Close()
		}
	}}
	return t.Transport.RoundTrip(r.WithContext(httptrace.WithClientTrace(ctx, trace)))
}

// upstreamConnOf is the upstreamConn under a connection of the Transport
// (TLS runs over it); nil for any other.
func upstreamConnOf(c net.Conn) *upstreamConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	uc, _ := c.(*upstreamConn)
	return uc
}

// upstreamConn is a connection NewUpstreamTransport dialed, which knows
// whether its reader (the Transport's) waits in Read.
type upstreamConn struct {
	net.Conn
	mu      sync.Mutex
	reading bool
	closed  bool
	// changed is closed when a Read starts or ends, or on Close; nil
	// while nobody waits for that.
	changed chan struct{}
}

func (c *upstreamConn) Read(p []byte) (int, error) {
	c.setReading(true)
	n, err := c.Conn.Read(p)
	c.setReading(false)
	return n, err
}

func (c *upstreamConn) setReading(reading bool) {
	c.mu.Lock()
	c.reading = reading
	c.signalLocked()
	c.mu.Unlock()
}

func (c *upstreamConn) signalLocked() {
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}

func (c *upstreamConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.signalLocked()
	c.mu.Unlock()
	return c.Conn.Close()
}

// awaitIdle waits until c's reader waits in Read with no bytes pending in
// the kernel (true), or c is closed, maxIdleWait has passed or ctx ended
// (false).
func (c *upstreamConn) awaitIdle(ctx context.Context) bool {
	var timeout <-chan time.Time
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return false
		}
		// A Read that started with bytes pending is about to return
		// them: not idle yet.
		if c.reading && !pendingBytes(c.Conn) {
			c.mu.Unlock()
			return true
		}
		if c.changed == nil {
			c.changed = make(chan struct{})
		}
		changed := c.changed
		c.mu.Unlock()
		if timeout == nil {
			timer := time.NewTimer(maxIdleWait)
			defer timer.Stop()
			timeout = timer.C
		}
		select {
		case <-changed:
		case <-timeout:
			return false
		case <-ctx.Done():
			return false
		}
	}
}
