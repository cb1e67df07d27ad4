// Package tracing is the OpenTelemetry tracing both services share: the
// `tracing` section of their configuration, Setup (an OTLP/HTTP exporter
// behind a batching tracer provider, or nothing at all when the section is
// off), the W3C trace context of incoming requests and of the gateway's
// requests to the token service, and the few helpers the services start
// their spans with.
//
// Off is a nil *Tracer: every method returns at once, leaves the request
// and its context as they are and allocates nothing, so that a service
// without tracing.endpoint pays one nil check per span it would start.
//
// Nothing here is global: the provider and propagator are the Tracer's,
// handed to the service that built it (tests run several services in one
// process). Spans carry route kinds, repository names, outcomes and status
// codes; never a token, an Authorization header, a query string, an e-mail
// address or an error text that could hold one of them.
package tracing

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/acme/registry-gateway/internal/buildinfo"
	"github.com/acme/registry-gateway/internal/tlsx"
)

// Config is a service's `tracing` section. Tracing is off unless Endpoint
// is set.
type Config struct {
	// Endpoint is the OTLP/HTTP (protobuf) traces URL of a collector,
	// e.g. http://otel-collector:4318/v1/traces; a URL without a path gets
	// /v1/traces. http:// is sent in clear, https:// is verified against
	// CAFile or the system's roots. Empty, the default: no tracing.
	Endpoint string `yaml:"endpoint"`
	// SampleRatio is the share (0 to 1) of the traces that start at this
	// service that are recorded; default 1. A request that carries a W3C
	// traceparent follows its caller's decision instead (parent-based
	// sampling): the token service records what the gateway records.
	SampleRatio *float64 `yaml:"sample_ratio"`
	// CAFile is a PEM file of the CAs an https endpoint's certificate is
	// verified against; default the system's roots.
	CAFile string `yaml:"ca_file"`
}

// DefaultSampleRatio is tracing.sample_ratio's default: every trace.
const DefaultSampleRatio = 1.0

// Enabled says whether the section turns tracing on.
func (c Config) Enabled() bool { return c.Endpoint != "" }

// Ratio is SampleRatio or its default.
func (c Config) Ratio() float64 {
	if c.SampleRatio == nil {
		return DefaultSampleRatio
	}
	return *c.SampleRatio
}

// Problems are the section's problems, each naming its key. Without an
// endpoint the other keys must not be set: they would be believed to
// work.
func (c Config) Problems() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Endpoint == "" {
		if c.SampleRatio != nil || c.CAFile != "" {
			bad("tracing: endpoint is not set, so nothing is traced: set tracing.endpoint, or remove the other tracing keys")
		}
		return errs
	}
	u, err := url.Parse(c.Endpoint)
	switch {
	case err != nil:
		bad("tracing.endpoint: %q is not a URL", c.Endpoint)
	case u.Scheme != "http" && u.Scheme != "https":
		bad("tracing.endpoint: %q: scheme must be http or https", c.Endpoint)
	case u.Host == "":
		bad("tracing.endpoint: %q: no host", c.Endpoint)
	case u.User != nil:
		// Collector credentials belong in OTEL_EXPORTER_OTLP_HEADERS, not
		// in a file that is rendered into ConfigMaps and printed by tools.
		bad("tracing.endpoint: %q: must not hold credentials", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		bad("tracing.endpoint: %q: must not have a query or fragment", c.Endpoint)
	case c.CAFile != "" && u.Scheme != "https":
		bad("tracing.ca_file: used only towards an https tracing.endpoint")
	}
	if r := c.Ratio(); !(r >= 0 && r <= 1) { // also NaN
		bad("tracing.sample_ratio: %v is out of range (0 to 1)", r)
	}
	return errs
}

// CheckFiles reads what the section names (ca_file), as Setup will.
func (c Config) CheckFiles() error {
	if c.CAFile == "" {
		return nil
	}
	if _, err := tlsx.LoadCertPool(c.CAFile); err != nil {
		return fmt.Errorf("tracing.ca_file: %w", err)
	}
	return nil
}

// Options are what Setup needs besides the section.
type Options struct {
	// Service is the service.name of the spans: "gateway" or
	// "tokenserver".
	Service string
	// Logger receives export failures; default discards them.
	Logger *slog.Logger
}

// shutdownTimeout bounds the flush of the spans held at shutdown.
const shutdownTimeout = 5 * time.Second

// Tracer starts a service's spans and carries their context across HTTP.
// A nil *Tracer is tracing off.
type Tracer struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// Setup builds the tracer of cfg: nil (off) without an endpoint, else an
// OTLP/HTTP exporter behind a batching provider with parent-based ratio
// sampling. The exporter connects lazily: a collector that is down fails
// no start, its spans are dropped and the failure logged. shutdown flushes
// the spans held (for at most 5 s) and stops the exporter; it is never nil
// and may be called once.
func Setup(ctx context.Context, cfg Config, opts Options) (_ *Tracer, shutdown func(), err error) {
	shutdown = func() {}
	if !cfg.Enabled() {
		return nil, shutdown, nil
	}
	if errs := cfg.Problems(); len(errs) > 0 {
		return nil, shutdown, errors.Join(errs...)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u, _ := url.Parse(cfg.Endpoint) // checked by Problems
	if strings.Trim(u.Path, "/") == "" {
		u.Path = "/v1/traces"
	}
	// The endpoint URL overrides OTEL_EXPORTER_OTLP_*ENDPOINT; the
	// exporter still reads OTEL_EXPORTER_OTLP_HEADERS, which is where a
	// collector's credentials go (from a Secret, not the config file).
	eo := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(u.String())}
	if cfg.CAFile != "" {
		roots, err := tlsx.LoadCertPool(cfg.CAFile)
		if err != nil {
			return nil, shutdown, fmt.Errorf("tracing.ca_file: %w", err)
		}
		eo = append(eo, otlptracehttp.WithTLSClientConfig(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}))
	}
	exp, err := otlptracehttp.New(ctx, eo...)
	if err != nil {
		return nil, shutdown, fmt.Errorf("tracing.endpoint: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", opts.Service),
		attribute.String("service.version", buildinfo.Read().Version),
	))
	if err != nil {
		return nil, shutdown, fmt.Errorf("tracing: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(&loggedExporter{SpanExporter: exp, log: log, endpoint: u.Redacted()}),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.Ratio()))),
	)
	shutdown = func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			log.Warn("tracing: spans not flushed at shutdown", slog.String("endpoint", u.Redacted()), slog.Any("error", err))
		}
	}
	log.Info("tracing on", slog.String("endpoint", u.Redacted()), slog.Float64("sample_ratio", cfg.Ratio()))
	return &Tracer{
		tracer: tp.Tracer("github.com/acme/registry-gateway/" + opts.Service),
		prop:   propagation.TraceContext{},
	}, shutdown, nil
}

// loggedExporter logs a failed export with the service's logger and
// drops the batch, rather than handing the error to OpenTelemetry's
// global error handler (a process-wide setting, and the standard log).
type loggedExporter struct {
	sdktrace.SpanExporter
	log      *slog.Logger
	endpoint string
}

func (e *loggedExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if err := e.SpanExporter.ExportSpans(ctx, spans); err != nil {
		e.log.Warn("tracing: spans not exported", slog.String("endpoint", e.endpoint),
			slog.Int("spans", len(spans)), slog.Any("error", err))
	}
	return nil
}

// noSpan is what a nil Tracer hands out: a span that records nothing. A
// zero-size value, so that returning it as a trace.Span allocates nothing.
var noSpan trace.Span = noop.Span{}

// Start starts a span named name as a child of ctx's span. Off, it returns
// ctx as it is and a span that records nothing.
func (t *Tracer) Start(ctx context.Context, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if t == nil {
		return ctx, noSpan
	}
	return t.tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
}

// StartRequest is Start for the work of serving r: r with the span's
// context, and the span. Off, r as it is (no copy).
func (t *Tracer) StartRequest(r *http.Request, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (*http.Request, trace.Span) {
	if t == nil {
		return r, noSpan
	}
	ctx, span := t.Start(r.Context(), name, kind, attrs...)
	return r.WithContext(ctx), span
}

// StartServer starts the server span of an incoming request, as the child
// of the span its W3C traceparent names (a client's, or the gateway's on
// the token service), and returns r with the span's context. Only the
// method and the path are recorded: the query may hold credentials.
func (t *Tracer) StartServer(r *http.Request, name string) (*http.Request, trace.Span) {
	if t == nil {
		return r, noSpan
	}
	ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		attribute.String("http.request.method", r.Method),
		attribute.String("url.path", r.URL.Path),
	))
	return r.WithContext(ctx), span
}

// Inject puts ctx's trace context on h (traceparent), for a request to a
// service of ours; off, it does nothing.
func (t *Tracer) Inject(ctx context.Context, h http.Header) {
	if t == nil {
		return
	}
	t.prop.Inject(ctx, propagation.HeaderCarrier(h))
}

// EndHTTP ends a server or client span with the status answered: an error
// from 500 on (a 4xx is the client's doing, not this span's failure).
func EndHTTP(span trace.Span, status int) {
	if !span.IsRecording() {
		span.End()
		return
	}
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}

// Fail marks span failed with a description of ours (a reason word, a
// status), never an error's text: those can carry URLs with credentials,
// e-mail addresses or tokens.
func Fail(span trace.Span, description string) {
	span.SetStatus(codes.Error, description)
}

// Middleware gives every request through next a server span named by
// name(r) once next has served it (e.g. "GET /token": the route, not the
// path, so that names stay few). Off, it returns next.
func (t *Tracer) Middleware(name func(*http.Request) string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if t == nil {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r, span := t.StartServer(r, r.Method)
			sw, ok := w.(statusWriter)
			if !ok {
				rec := &statusRecorder{ResponseWriter: w}
				w, sw = rec, rec
			}
			defer func() {
				span.SetName(name(r))
				EndHTTP(span, sw.Status())
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// statusWriter is a response writer that knows the status it wrote, such
// as httpx.Recorder.
type statusWriter interface {
	http.ResponseWriter
	Status() int
}

// statusRecorder remembers the status written, for a writer that does not.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) Status() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

// Transport records a client span for each round trip through next, named
// name ("upstream GET"): the peer's host, the method and the status. It
// does not inject a traceparent (the upstream is not ours: ECR and the
// storage it redirects to learn nothing of our traces) and records neither
// the URL's path and query (a presigned storage URL carries a signature)
// nor an error's text. Off, it returns next.
func (t *Tracer) Transport(next http.RoundTripper, name string) http.RoundTripper {
	if t == nil {
		return next
	}
	return &tracedTransport{next: next, t: t, name: name}
}

type tracedTransport struct {
	next http.RoundTripper
	t    *Tracer
	name string
}

func (tt *tracedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	_, span := tt.t.tracer.Start(req.Context(), tt.name+" "+req.Method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("http.request.method", req.Method),
			attribute.String("server.address", req.URL.Hostname()),
		))
	resp, err := tt.next.RoundTrip(req)
	if err != nil {
		desc := "round trip failed"
		if ctxErr := req.Context().Err(); ctxErr != nil {
			desc = "round trip cancelled"
		} else if ne, ok := errors.AsType[interface {
			error
			Timeout() bool
		}](err); ok && ne.Timeout() {
			desc = "round trip timed out"
		}
		Fail(span, desc)
		span.End()
		return resp, err
	}
	EndHTTP(span, resp.StatusCode)
	return resp, nil
}
