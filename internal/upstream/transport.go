// Package upstream is a lean HTTP/1.1 client transport for the gateway's
// upstream hop. It writes each request and reads its response on the
// caller's goroutine, with no reader or writer goroutine per connection as
// net/http's Transport has, and keeps a bounded pool of kept-alive
// connections per host. The wire format stays the standard library's
// (Request.Write and http.ReadResponse). A Content-Length or close-delimited
// body over plain TCP hands the socket itself to an io.ReaderFrom
// destination, so that io.Copy into a net/http ResponseWriter splices
// kernel to kernel.
package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
	"time"
)

// Config mirrors the settings of the http.Transport it replaces. Zero
// durations and sizes take the defaults documented on each field.
type Config struct {
	// DialTimeout bounds connecting (default 10s).
	DialTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake (default 10s).
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout bounds writing the request and reading the
	// response's headers (default 60s). The body has no timeout: a blob
	// stream lasts as long as the client reads; cancel the context to end it.
	ResponseHeaderTimeout time.Duration
	// IdleConnTimeout closes a kept-alive connection unused this long
	// (default 90s).
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerHost bounds the kept-alive connections per host
	// (default 2, as net/http).
	MaxIdleConnsPerHost int
	// MaxIdleConns bounds the kept-alive connections over all hosts
	// (default 4 × MaxIdleConnsPerHost).
	MaxIdleConns int
	// MaxResponseHeaderBytes bounds the response's status line and headers
	// (default 1 MiB).
	MaxResponseHeaderBytes int64
	// TLSClientConfig is cloned for https upstreams; nil means the system
	// roots. Its NextProtos are replaced: this transport speaks HTTP/1.1.
	TLSClientConfig *tls.Config
	// DialContext connects; nil means a net.Dialer with DialTimeout and TCP
	// keep-alives every 30s.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Proxy picks an HTTP proxy per request (http.ProxyFromEnvironment, as
	// the Transport it replaces). Requests that go through a proxy are
	// handed to Fallback; nil means never a proxy.
	Proxy func(*http.Request) (*url.URL, error)
	// Fallback serves the requests this transport does not: those for a
	// proxy. Required when Proxy is set.
	Fallback http.RoundTripper
}

// Transport is an http.RoundTripper for HTTP/1.1 upstreams (http and https).
//
// Unlike net/http's, a response Body must not be closed concurrently with a
// Read: cancel the request's context to end a Read early.
type Transport struct {
	cfg    Config
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	tlsCfg *tls.Config

	mu    sync.Mutex
	idle  map[connKey][]*persistConn // most recently used last
	nidle int
}

var _ http.RoundTripper = (*Transport)(nil)

// connKey names a pool: the scheme and the URL's host as written, so that
// finding the pool allocates nothing.
type connKey struct {
	https bool
	host  string
}

// New returns a Transport for cfg, or every problem with cfg at once.
func New(cfg Config) (*Transport, error) {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"DialTimeout", cfg.DialTimeout}, {"TLSHandshakeTimeout", cfg.TLSHandshakeTimeout},
		{"ResponseHeaderTimeout", cfg.ResponseHeaderTimeout}, {"IdleConnTimeout", cfg.IdleConnTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("upstream: %s must not be negative", d.name))
		}
	}
	if cfg.MaxIdleConnsPerHost < 0 || cfg.MaxIdleConns < 0 || cfg.MaxResponseHeaderBytes < 0 {
		errs = append(errs, errors.New("upstream: connection and header limits must not be negative"))
	}
	if cfg.Proxy != nil && cfg.Fallback == nil {
		errs = append(errs, errors.New("upstream: Proxy needs a Fallback transport"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	setDefault(&cfg.DialTimeout, 10*time.Second)
	setDefault(&cfg.TLSHandshakeTimeout, 10*time.Second)
	setDefault(&cfg.ResponseHeaderTimeout, 60*time.Second)
	setDefault(&cfg.IdleConnTimeout, 90*time.Second)
	setDefault(&cfg.MaxIdleConnsPerHost, 2)
	setDefault(&cfg.MaxIdleConns, 4*cfg.MaxIdleConnsPerHost)
	setDefault(&cfg.MaxResponseHeaderBytes, 1<<20)
	t := &Transport{cfg: cfg, dial: cfg.DialContext, idle: make(map[connKey][]*persistConn)}
	if t.dial == nil {
		t.dial = (&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	}
	if cfg.TLSClientConfig != nil {
		t.tlsCfg = cfg.TLSClientConfig.Clone()
	} else {
		t.tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	t.tlsCfg.NextProtos = []string{"http/1.1"}
	return t, nil
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// maxInformational bounds the 1xx answers skipped before the final one.
const maxInformational = 5

// RoundTrip sends req and reads the response headers on the caller's
// goroutine. A request without a body that is safe to repeat is sent again,
// once, on a fresh connection when a kept-alive one turns out closed by the
// upstream before it answered anything.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil {
		closeBody(req)
		return nil, errors.New("upstream: request has no URL")
	}
	var key connKey
	switch req.URL.Scheme {
	case "http":
	case "https":
		key.https = true
	default:
		closeBody(req)
		return nil, fmt.Errorf("upstream: unsupported scheme %q", req.URL.Scheme)
	}
	key.host = req.URL.Host
	if key.host == "" {
		closeBody(req)
		return nil, errors.New("upstream: request has no host")
	}
	if t.cfg.Proxy != nil {
		p, err := t.cfg.Proxy(req)
		if err != nil {
			closeBody(req)
			return nil, fmt.Errorf("upstream: proxy: %w", err)
		}
		if p != nil {
			return t.cfg.Fallback.RoundTrip(req)
		}
	}
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			closeBody(req)
			return nil, err
		}
		pc, err := t.getConn(ctx, key)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		resp, err := pc.roundTrip(req)
		if err == nil {
			return resp, nil
		}
		if attempt == 0 && pc.reused && pc.nread == 0 && retriable(req) && isStale(err) && ctx.Err() == nil {
			continue
		}
		return nil, err
	}
}

// retriable reports whether req may be sent twice: an idempotent method and
// no body.
func retriable(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return req.Body == nil || req.Body == http.NoBody
	}
	return false
}

// isStale reports whether err is what a connection closed by the peer while
// idle gives.
func isStale(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// getConn takes the most recently used idle connection for key, or dials.
func (t *Transport) getConn(ctx context.Context, key connKey) (*persistConn, error) {
	t.mu.Lock()
	for list := t.idle[key]; len(list) > 0; list = t.idle[key] {
		pc := list[len(list)-1]
		list[len(list)-1] = nil
		t.setIdle(key, list[:len(list)-1])
		if pc.idleTimer.Stop() {
			t.mu.Unlock()
			pc.reused = true
			return pc, nil
		}
		// Its idle timer fired and is closing it.
	}
	t.mu.Unlock()
	return t.dialConn(ctx, key)
}

// maxPools bounds the hosts whose emptied idle lists are kept for reuse;
// past it they are dropped, so that hosts seen once (redirect targets) do
// not pile up in the map.
const maxPools = 64

// setIdle stores a host's idle list.
func (t *Transport) setIdle(key connKey, list []*persistConn) {
	t.nidle += len(list) - len(t.idle[key])
	if len(list) == 0 && len(t.idle) > maxPools {
		delete(t.idle, key)
		return
	}
	t.idle[key] = list
}

// putIdle keeps pc for reuse, or closes it when the pools are full.
func (t *Transport) putIdle(pc *persistConn) {
	t.mu.Lock()
	list := t.idle[pc.key]
	if len(list) >= t.cfg.MaxIdleConnsPerHost || t.nidle >= t.cfg.MaxIdleConns {
		t.mu.Unlock()
		pc.close()
		return
	}
	t.setIdle(pc.key, append(list, pc))
	if pc.idleTimer == nil {
		pc.idleTimer = time.AfterFunc(t.cfg.IdleConnTimeout, func() { t.expire(pc) })
	} else {
		pc.idleTimer.Reset(t.cfg.IdleConnTimeout)
	}
	t.mu.Unlock()
}

// expire closes pc when it has been idle too long, unless getConn took it.
func (t *Transport) expire(pc *persistConn) {
	t.mu.Lock()
	list := t.idle[pc.key]
	for i, c := range list {
		if c == pc {
			copy(list[i:], list[i+1:])
			list[len(list)-1] = nil
			t.setIdle(pc.key, list[:len(list)-1])
			break
		}
	}
	t.mu.Unlock()
	pc.close()
}

// CloseIdleConnections closes every kept-alive connection not in use, the
// Fallback's too.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.cfg.Fallback.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	t.mu.Lock()
	var all []*persistConn
	for key, list := range t.idle {
		for _, pc := range list {
			if pc.idleTimer.Stop() {
				all = append(all, pc)
			}
		}
		t.setIdle(key, nil)
	}
	t.mu.Unlock()
	for _, pc := range all {
		pc.close()
	}
}

// IdleConns is the number of kept-alive connections waiting for a request.
func (t *Transport) IdleConns() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nidle
}

// dialConn connects on a goroutine of its own, which ends with the dial.
// Dialing and the TLS handshake need more than 8 KiB of stack; on the
// request's goroutine they would double its stack to 16 KiB for as long
// as it lives (the runtime halves a stack only while a quarter of it is in
// use, and a blob stream waits at about 5 KiB deep): 8 KiB more for every
// stream on a new connection, 8 MiB at 1,000 streams.
func (t *Transport) dialConn(ctx context.Context, key connKey) (*persistConn, error) {
	type dialed struct {
		pc  *persistConn
		err error
	}
	done := make(chan dialed, 1)
	go func() {
		pc, err := t.connect(ctx, key)
		done <- dialed{pc, err}
	}()
	d := <-done
	return d.pc, d.err
}

// connect dials key's host and, for https, completes the TLS handshake,
// within ctx.
func (t *Transport) connect(ctx context.Context, key connKey) (*persistConn, error) {
	addr := key.host
	if _, _, err := net.SplitHostPort(addr); err != nil {
		if key.https {
			addr = net.JoinHostPort(addr, "443")
		} else {
			addr = net.JoinHostPort(addr, "80")
		}
	}
	conn, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("upstream: dial %s: %w", addr, err)
	}
	pc := &persistConn{t: t, key: key, conn: conn}
	if key.https {
		cfg := t.tlsCfg
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				host = addr
			}
			cfg.ServerName = host
		}
		tc := tls.Client(conn, cfg)
		hctx, cancel := context.WithTimeout(ctx, t.cfg.TLSHandshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("upstream: TLS handshake with %s: %w", addr, err)
		}
		pc.conn = tc
	} else if tcp, ok := conn.(*net.TCPConn); ok {
		pc.tcp = tcp
		pc.raw, _ = tcp.SyscallConn()
		pc.peekFunc = pc.peek
	}
	pc.cr.pc = pc
	pc.interrupt = func() { _ = pc.conn.SetDeadline(aLongTimeAgo) }
	return pc, nil
}
