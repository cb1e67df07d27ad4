package httpx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Timeouts of a server. WriteTimeout is zero for the gateway, whose blob
// transfers may last long: there IdleTimeout and the upstream's own limits
// bound a connection instead.
type Timeouts struct {
	ReadHeader time.Duration
	Read       time.Duration
	Write      time.Duration
	Idle       time.Duration
	Shutdown   time.Duration
}

// DefaultTimeouts suit a server of short JSON answers.
var DefaultTimeouts = Timeouts{
	ReadHeader: 5 * time.Second,
	Read:       15 * time.Second,
	Write:      30 * time.Second,
	Idle:       120 * time.Second,
	Shutdown:   20 * time.Second,
}

// MaxHeaderBytes bounds request headers; registry requests carry one token
// of a few KiB at most.
const MaxHeaderBytes = 64 << 10

// NewServer returns an http.Server with the timeouts set.
func NewServer(addr string, h http.Handler, t Timeouts, log *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// ShutdownCutError is what Serve returns when requests were still running
// at the end of the graceful stop and were cut.
type ShutdownCutError struct {
	// Requests is how many connections were still serving a request.
	Requests int
}

func (e *ShutdownCutError) Error() string {
	return fmt.Sprintf("shutdown timeout: %d requests cut", e.Requests)
}

// Unwrap makes the error context.DeadlineExceeded, what Shutdown returned.
func (e *ShutdownCutError) Unwrap() error { return context.DeadlineExceeded }

// activeConns counts the connections serving a request, through the
// server's ConnState hook (chained to the one already set).
type activeConns struct {
	mu     sync.Mutex
	active map[net.Conn]struct{}
}

func (a *activeConns) hook(next func(net.Conn, http.ConnState)) func(net.Conn, http.ConnState) {
	return func(c net.Conn, st http.ConnState) {
		a.mu.Lock()
		if st == http.StateActive {
			a.active[c] = struct{}{}
		} else {
			delete(a.active, c)
		}
		a.mu.Unlock()
		if next != nil {
			next(c, st)
		}
	}
}

func (a *activeConns) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.active)
}

// Serve listens on srv.Addr (or uses ln if not nil) and serves until ctx
// ends, then shuts down gracefully within shutdown: in-flight requests
// finish, new connections are refused. Requests still running when
// shutdown has passed are cut, and Serve returns a *ShutdownCutError that
// says how many.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, shutdown time.Duration) error {
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", srv.Addr); err != nil {
			return err
		}
	}
	conns := &activeConns{active: map[net.Conn]struct{}{}}
	srv.ConnState = conns.hook(srv.ConnState)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdown)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		cut := conns.count()
		_ = srv.Close()
		err = &ShutdownCutError{Requests: cut}
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}
