package httpx

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
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

// Serve listens on srv.Addr (or uses ln if not nil) and serves until ctx
// ends, then shuts down gracefully within shutdown: in-flight requests
// finish, new connections are refused.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, shutdown time.Duration) error {
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", srv.Addr); err != nil {
			return err
		}
	}
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
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}
