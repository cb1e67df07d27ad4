package httpx

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"time"
)

// Middleware wraps a handler.
type Middleware func(http.Handler) http.Handler

// Chain applies mws so that the first one is the outermost.
func Chain(h http.Handler, mws ...Middleware) http.Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// Recover turns a panic into a 500 JSON error and a log line with the stack.
func Recover(h Handler) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer h.recoverTo(w, r, nil)
			next.ServeHTTP(w, r)
		})
	}
}

// RecoverTo is Recover for a handler that holds its access record: deferred
// (defer h.RecoverTo(w, r, rec)), it answers a panic with a 500 JSON error
// whose cause, with the stack, goes on rec. http.ErrAbortHandler goes on
// to the server.
func (h Handler) RecoverTo(w http.ResponseWriter, r *http.Request, rec *Record) {
	if v := recover(); v != nil {
		if v == http.ErrAbortHandler {
			panic(v)
		}
		h.writeError(w, r, rec, fmt.Errorf("panic: %v\n%s", v, debug.Stack()))
	}
}

// recoverTo is RecoverTo with the record found on r's context (nil: look
// it up).
func (h Handler) recoverTo(w http.ResponseWriter, r *http.Request, rec *Record) {
	if v := recover(); v != nil {
		if v == http.ErrAbortHandler {
			panic(v)
		}
		if rec == nil {
			rec = RecordOf(r.Context())
		}
		h.writeError(w, r, rec, fmt.Errorf("panic: %v\n%s", v, debug.Stack()))
	}
}

// LimitBody refuses request bodies over n bytes: reads past it fail, and a
// declared Content-Length over it is answered 413 at once.
func LimitBody(h Handler, n int64) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > n {
				h.WriteError(w, r, Errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body too large"))
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, n)
			next.ServeHTTP(w, r)
		})
	}
}

// Record is the access record of one request: what the AccessLog
// middleware writes as the request's one log line once it is answered.
// Handlers fill it in through RecordOf: the route that served the request,
// fields of their own, and (through WriteError) the failure, so that a
// failed request is logged once, with its cause, at a level that fits.
type Record struct {
	// Route names what the request asked for, for the log and metrics;
	// nil until a handler routes the request.
	Route fmt.Stringer
	// Msg is the line's message when not "request": a handler whose
	// request is also an event of its own (the token service's "token
	// issued" audit line) names it, and its fields join the line's, so
	// that one line rather than two is written.
	Msg string
	// Err is the failure the client was answered with (set by WriteError).
	Err *Error
	// Status, Bytes and Duration are set once the request is answered.
	Status   int
	Bytes    int64
	Duration time.Duration
	attrs    []slog.Attr
	state    any // the handler's, see NewAccessLogOf
}

// Add puts fields of the handler's on the request's log line. Never a
// secret: headers and tokens stay out of the log.
func (rec *Record) Add(attrs ...slog.Attr) { rec.attrs = append(rec.attrs, attrs...) }

type recordKey struct{}

// RecordOf is the access record of the request of ctx, nil outside the
// AccessLog middleware.
func RecordOf(ctx context.Context) *Record {
	if c, ok := ctx.(*recordCtx); ok {
		// The handler's own context, as the middleware made it: no walk
		// up the chain of contexts.
		return c.rec
	}
	rec, _ := ctx.Value(recordKey{}).(*Record)
	return rec
}

// recordCtx carries a request's Record. It is a context type of its own,
// not context.WithValue, so that it is allocated with the record.
type recordCtx struct {
	context.Context
	rec *Record
}

func (c *recordCtx) Value(key any) any {
	if key == (recordKey{}) {
		return c.rec
	}
	return c.Context.Value(key)
}

// StateOf is the handler's state of type T kept with rec (see
// NewAccessLogOf); nil when the middleware keeps none of that type.
func StateOf[T any](rec *Record) *T {
	p, _ := rec.state.(*T)
	return p
}

// AccessLogOptions configure NewAccessLog; only Log is required.
type AccessLogOptions struct {
	Log *slog.Logger
	// FailuresOnly logs failed requests only (those answered through
	// WriteError), for operators who take access logs elsewhere.
	FailuresOnly bool
	// Client names the client of a request (default: the peer address).
	Client func(*http.Request) string
	// Done sees every finished record, e.g. to count requests by route.
	Done func(*Record)
	// Attrs appends the handler's fields to a request's line. It is called
	// only for a line that is written, so that requests that are not
	// logged pay nothing for them.
	Attrs func(rec *Record, attrs []slog.Attr) []slog.Attr
}

// AccessLog writes one line a request: method, path, status, size, duration
// and client address, and for a failure its code, message and cause.
// Headers and query strings are left out on purpose: they carry
// credentials and tokens.
func AccessLog(log *slog.Logger) Middleware { return NewAccessLog(AccessLogOptions{Log: log}) }

// NewAccessLog is AccessLog with options. The line's level is ERROR for a
// server failure (5xx), INFO for the rest, a client that hung up (499)
// included: nothing is wrong on the server's side then.
func NewAccessLog(o AccessLogOptions) Middleware { return NewAccessLogOf[struct{}](o) }

// exchange is what the access log keeps for one request, in one
// allocation: this runs for every request.
type exchange[T any] struct {
	rw    Recorder
	rec   Record
	ctx   recordCtx
	state T
}

// NewAccessLogOf is NewAccessLog for a handler that keeps state of its own
// for each request: a zero T is allocated together with the request's
// record, recorder and context, and StateOf finds it.
func NewAccessLogOf[T any](o AccessLogOptions) Middleware {
	return func(next http.Handler) http.Handler {
		return AccessLogged(o, func(w http.ResponseWriter, r *http.Request, _ *Record, _ *T) {
			next.ServeHTTP(w, r)
		})
	}
}

// AccessLogged is NewAccessLogOf for a handler that is handed the request's
// record and its state (a zero T, allocated with the record) as arguments
// rather than finding them on the request's context. The record still
// rides on the context, for WriteError of handlers that are not handed it.
func AccessLogged[T any](o AccessLogOptions, next func(w http.ResponseWriter, r *http.Request, rec *Record, state *T)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		st := &exchange[T]{rw: Recorder{ResponseWriter: w}}
		rw, rec := &st.rw, &st.rec
		rec.state = &st.state
		st.ctx = recordCtx{Context: r.Context(), rec: rec}
		r = r.WithContext(&st.ctx)
		defer func() {
			// A panic (the proxy's ErrAbortHandler for a stream cut
			// half-way) is still logged, then goes on to the server,
			// which drops the connection.
			v := recover()
			rec.Status, rec.Bytes, rec.Duration = rw.Status(), rw.Bytes(), time.Since(start)
			if rec.Err != nil && rec.Err.Status == StatusClientClosedRequest {
				rec.Status = StatusClientClosedRequest
			}
			// Metrics first (no I/O): a client that has its answer
			// finds the request counted. Then the answer goes out,
			// and only then the line's write(2).
			if o.Done != nil {
				o.Done(rec)
			}
			if v == nil {
				rw.flushWhole(r.Method)
			}
			if !o.FailuresOnly || rec.Err != nil {
				o.write(r, rec)
			}
			if v != nil {
				panic(v)
			}
		}()
		next(rw, r, rec, &st.state)
	})
}

func (o AccessLogOptions) write(r *http.Request, rec *Record) {
	level := slog.LevelInfo
	if rec.Status >= 500 && rec.Status != StatusClientClosedRequest {
		level = slog.LevelError
	}
	ctx := r.Context()
	if !o.Log.Enabled(ctx, level) {
		return
	}
	client := r.RemoteAddr
	if o.Client != nil {
		client = o.Client(r)
	}
	// Room for the fields below and for a handler's few.
	attrs := make([]slog.Attr, 0, 16+len(rec.attrs))
	attrs = append(attrs, slog.String("method", r.Method), slog.String("path", r.URL.Path))
	if rec.Route != nil {
		attrs = append(attrs, slog.String("route", rec.Route.String()))
	}
	attrs = append(attrs, slog.Int("status", rec.Status), slog.Int64("bytes", rec.Bytes),
		slog.Duration("duration", rec.Duration), slog.String("remote", client))
	if e := rec.Err; e != nil {
		attrs = append(attrs, slog.String("code", e.Code), slog.String("message", e.Message))
		if e.Err != nil {
			attrs = append(attrs, slog.String("error", e.Err.Error()))
		}
	}
	attrs = append(attrs, rec.attrs...)
	if o.Attrs != nil {
		attrs = o.Attrs(rec, attrs)
	}
	msg := "request"
	if rec.Msg != "" {
		msg = rec.Msg
	}
	o.Log.LogAttrs(ctx, level, msg, attrs...)
}

// Recorder remembers the status and size of a response. It keeps the
// http.Flusher and io.ReaderFrom of the writer it wraps reachable through
// Unwrap, which http.ResponseController uses.
type Recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

// NewRecorder wraps w.
func NewRecorder(w http.ResponseWriter) *Recorder { return &Recorder{ResponseWriter: w} }

// WriteHeader implements http.ResponseWriter.
func (r *Recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (r *Recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// ReadFrom implements io.ReaderFrom, so that io.Copy through the recorder
// still reaches the connection's ReadFrom: net/http's splice(2) and
// sendfile(2) paths.
func (r *Recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		// HTTP/2 and test writers: a pooled buffer, not one io.Copy
		// allocates per call.
		buf := copyBufs.Get().(*[32 << 10]byte)
		n, err = io.CopyBuffer(writerOnly{r.ResponseWriter}, src, buf[:])
		copyBufs.Put(buf)
	}
	r.bytes += n
	return n, err
}

var copyBufs = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// writerOnly hides every method of a writer but Write, so that io.Copy
// does not call back into a ReadFrom.
type writerOnly struct{ io.Writer }

// Flush implements http.Flusher, which the gateway's forwarder uses to
// stream answers of unknown length.
func (r *Recorder) Flush() {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

// flushWhole sends an answer that is whole (its status written, and as
// many body bytes as its Content-Length says, or none to send) to the
// client now, rather than when the handler has returned: the access line
// is then written while the client already reads the answer, not before it
// gets any of it. An answer of no declared length is left to net/http,
// which sets the Content-Length of a short body itself, where a flush now
// would make it chunked.
func (r *Recorder) flushWhole(method string) {
	if r.status < 200 {
		return
	}
	if method != http.MethodHead && r.status != http.StatusNoContent && r.status != http.StatusNotModified {
		cl := r.ResponseWriter.Header()["Content-Length"]
		if len(cl) != 1 {
			return
		}
		if n, err := strconv.ParseInt(cl[0], 10, 64); err != nil || n != r.bytes {
			return
		}
	}
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the wrapped writer.
func (r *Recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Status is the status written, 200 if none was written explicitly.
func (r *Recorder) Status() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// Bytes is the number of body bytes written.
func (r *Recorder) Bytes() int64 { return r.bytes }
