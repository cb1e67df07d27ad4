package httpx

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"
)

// OpsHandler is what the operators' listener (metrics.listen) serves,
// never the customers' one: the metrics at /metrics and net/http/pprof
// under /debug/pprof/. Metrics name every repository anyone pulled, and
// profiles show the process's internals: neither is for customers. Anything
// else is 404.
func OpsHandler(metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// OpsTimeouts are the operators' listener's. Neither a read nor a write
// timeout: a CPU profile or a trace answers after the ?seconds it was
// asked for (pprof refuses durations beyond a WriteTimeout, and a read
// deadline passing would cancel the request's context half-way). The
// headers must come within ReadHeader (these requests have no body), and
// the send timeout bounds a scraper that stops reading.
var OpsTimeouts = Timeouts{
	ReadHeader: 5 * time.Second,
	Idle:       120 * time.Second,
	Shutdown:   5 * time.Second,
}

// ServeOps serves OpsHandler(metrics) on ln until ctx ends, with
// OpsTimeouts and the send timeout send; a profile still running at the
// end of the graceful stop is cut, which is no failure.
func ServeOps(ctx context.Context, ln net.Listener, metrics http.Handler, send time.Duration, log *slog.Logger) error {
	srv := NewServer(ln.Addr().String(), OpsHandler(metrics), OpsTimeouts, log)
	log.Info("metrics listening", slog.String("addr", ln.Addr().String()),
		slog.String("paths", "/metrics, /debug/pprof/"))
	err := Serve(ctx, srv, WrapListener(ln, ListenerOptions{SendTimeout: send}), OpsTimeouts.Shutdown)
	var cut *ShutdownCutError
	if errors.Is(err, http.ErrServerClosed) || errors.As(err, &cut) {
		return nil
	}
	return err
}

// RunAll runs each of serves (a service's listeners) until ctx ends or
// one of them returns; then the others are stopped too (their ctx ends),
// so that a service never goes on half served. It returns once all have
// returned, with their errors joined.
func RunAll(ctx context.Context, serves ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(serves))
	var wg sync.WaitGroup
	for i, serve := range serves {
		wg.Go(func() {
			defer cancel()
			errs[i] = serve(ctx)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
