package embedreg

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/acme/registry-gateway/internal/httpx"
)

// Timeouts of a registry server: pushing a big layer takes longer than
// httpx.DefaultTimeouts allow a request.
var Timeouts = httpx.Timeouts{
	ReadHeader: 10 * time.Second, Read: 10 * time.Minute, Write: 10 * time.Minute,
	Idle: 2 * time.Minute, Shutdown: 10 * time.Second,
}

// NewServer returns the server of a registry handler (from New) at addr:
// bounded headers and Timeouts, an access log, and GET /healthz answered by
// this process, because the registry's own /v2/ needs credentials and a
// container health check has none.
func NewServer(addr string, reg http.Handler, log *slog.Logger) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", httpx.Healthz())
	mux.Handle("/", reg)
	return httpx.NewServer(addr, httpx.Chain(mux, httpx.AccessLog(log)), Timeouts, log)
}
