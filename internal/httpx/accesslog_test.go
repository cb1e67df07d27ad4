package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type testRoute string

func (r testRoute) String() string { return string(r) }

// logLines decodes the JSON lines of logs.
func logLines(t *testing.T, logs *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(logs.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// TestOneLinePerFailedRequest: a failure written through WriteError inside
// the access log is one line, the access line, carrying the route, the
// client's code and message, the cause and the handler's fields, at the
// level its status calls for; a panic is one ERROR line too.
func TestOneLinePerFailedRequest(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		err    error
		status int
		level  string
		cause  string
	}{
		{"client error", Errorf(http.StatusBadRequest, CodeNameInvalid, "invalid repository name"), 400, "INFO", ""},
		{"server error", errors.New("disk on fire"), 500, "ERROR", "disk on fire"},
		{"hang-up", ClientClosed(errors.New("context canceled")), StatusClientClosedRequest, "INFO", "context canceled"},
		{"panic", nil, 500, "ERROR", "boom"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&logs, nil))
			h := Handler{Log: log}
			var done *Record
			srv := Chain(h.Func(func(w http.ResponseWriter, r *http.Request) error {
				rec := RecordOf(r.Context())
				rec.Route = testRoute("manifest")
				rec.Add(slog.String("repository", "stable/app"))
				if tt.err == nil {
					panic("boom")
				}
				return tt.err
			}), NewAccessLog(AccessLogOptions{Log: log, Done: func(r *Record) { done = r }}), Recover(h))
			srv.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/v2/stable/app/manifests/v1", nil))
			lines := logLines(t, &logs)
			if len(lines) != 1 {
				t.Fatalf("%d log lines, want 1:\n%s", len(lines), logs.String())
			}
			l := lines[0]
			if l["level"] != tt.level || l["status"] != float64(tt.status) || l["route"] != "manifest" ||
				l["repository"] != "stable/app" || l["code"] == nil || l["message"] == nil {
				t.Errorf("line %v", l)
			}
			if tt.cause != "" && !strings.Contains(l["error"].(string), tt.cause) {
				t.Errorf("cause missing: %v", l)
			}
			if done == nil || done.Status != tt.status || done.Err == nil {
				t.Errorf("Done saw %+v", done)
			}
		})
	}
}

// TestAccessLogFailuresOnly: with FailuresOnly, a success is not logged and
// a failure still is, once.
func TestAccessLogFailuresOnly(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	h := Handler{Log: log}
	srv := Chain(h.Func(func(w http.ResponseWriter, r *http.Request) error {
		if r.URL.Path == "/ok" {
			WriteJSON(w, http.StatusOK, struct{}{})
			return nil
		}
		return Errorf(http.StatusNotFound, CodeUnsupported, "unknown endpoint")
	}), NewAccessLog(AccessLogOptions{Log: log, FailuresOnly: true, Client: func(*http.Request) string { return "client-x" }}))
	srv.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/ok", nil))
	srv.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/nope", nil))
	lines := logLines(t, &logs)
	if len(lines) != 1 || lines[0]["path"] != "/nope" || lines[0]["remote"] != "client-x" {
		t.Fatalf("lines %v", lines)
	}
}

// TestAbortedStreamLogged: the proxy's ErrAbortHandler (a stream cut
// half-way) is logged and goes on to the server, which must drop the
// connection.
func TestAbortedStreamLogged(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	srv := Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("half"))
		panic(http.ErrAbortHandler)
	}), AccessLog(log), Recover(Handler{Log: log}))
	func() {
		defer func() {
			if v := recover(); v != http.ErrAbortHandler {
				t.Errorf("recovered %v, want ErrAbortHandler", v)
			}
		}()
		srv.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/v2/x/blobs/y", nil))
	}()
	if lines := logLines(t, &logs); len(lines) != 1 || lines[0]["bytes"] != float64(4) {
		t.Errorf("lines %v", lines)
	}
}

type testState struct{ n int }

// TestAccessLogState: the handler's state is there for each request, zero
// at its start, found through the request's context (also from a context
// derived from it) while the context's own values and cancellation pass
// through; the line's fields of Attrs are asked for only for lines that
// are written.
func TestAccessLogState(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	type ctxKey struct{}
	var attrsCalls int
	srv := Chain(Handler{Log: log}.Func(func(w http.ResponseWriter, r *http.Request) error {
		rec := RecordOf(r.Context())
		st := StateOf[testState](rec)
		if st == nil || st.n != 0 {
			t.Fatalf("state %+v at the start of a request", st)
		}
		st.n = len(r.URL.Path)
		derived, cancel := context.WithCancel(r.Context())
		defer cancel()
		if RecordOf(derived) != rec || derived.Value(ctxKey{}) != "outer" {
			t.Error("a derived context lost the record or the outer value")
		}
		if StateOf[int](rec) != nil {
			t.Error("StateOf of another type is not nil")
		}
		if r.URL.Path == "/fail" {
			return Errorf(http.StatusNotFound, CodeUnsupported, "unknown endpoint")
		}
		return nil
	}), NewAccessLogOf[testState](AccessLogOptions{Log: log, FailuresOnly: true,
		Attrs: func(rec *Record, attrs []slog.Attr) []slog.Attr {
			attrsCalls++
			return append(attrs, slog.Int("n", StateOf[testState](rec).n))
		}}))
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "outer"))
	defer cancel()
	srv.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/ok", nil).WithContext(ctx))
	srv.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/fail", nil).WithContext(ctx))
	lines := logLines(t, &logs)
	if len(lines) != 1 || lines[0]["n"] != float64(len("/fail")) || attrsCalls != 1 {
		t.Fatalf("lines %v, Attrs called %d times", lines, attrsCalls)
	}
	if StateOf[testState](&Record{}) != nil {
		t.Error("a record outside the middleware has state")
	}
}

// A handler that names its line (Record.Msg) gets its message on the one
// access line, with the request's fields and its own.
func TestAccessLogNamedLine(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	srv := AccessLog(slog.New(slog.NewJSONHandler(&logs, nil)))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := RecordOf(r.Context())
		rec.Msg = "token issued"
		rec.Add(slog.String("jti", "abc"))
		_, _ = w.Write([]byte("ok"))
	}))
	srv.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/token", nil))
	lines := logLines(t, &logs)
	if len(lines) != 1 || lines[0]["msg"] != "token issued" || lines[0]["jti"] != "abc" || lines[0]["path"] != "/token" || lines[0]["status"] != float64(200) {
		t.Fatalf("lines = %v", lines)
	}
}

// gatedWriter is a log destination whose writes wait until open is closed.
type gatedWriter struct {
	open chan struct{}
	buf  bytes.Buffer
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	<-g.open
	return g.buf.Write(p)
}

// TestAccessLineAfterAnswer: a whole answer reaches the client before its
// access line is written (a write(2) that is not the client's to wait
// for), while one of undeclared length still gets its Content-Length from
// net/http, not a chunked body; either way the line is written.
func TestAccessLineAfterAnswer(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		method   string
		handler  http.HandlerFunc
		early    bool // answered before the line is written
		wantBody string
	}{
		{"declared length", "GET", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", "5")
			_, _ = w.Write([]byte("hello"))
		}, true, "hello"},
		{"redirect", "GET", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Location", "http://s3.example/blob")
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusTemporaryRedirect)
		}, true, ""},
		{"HEAD", "HEAD", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", "1234")
			w.WriteHeader(http.StatusOK)
		}, true, ""},
		{"undeclared length", "GET", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte("hello"))
		}, false, "hello"},
		{"short of its length", "GET", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", "10")
			_, _ = w.Write([]byte("hello"))
		}, false, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logs := &gatedWriter{open: make(chan struct{})}
			srv := httptest.NewServer(AccessLog(slog.New(slog.NewJSONHandler(logs, nil)))(tt.handler))
			t.Cleanup(srv.Close)
			// Opened at the latest before the server closes, which waits
			// for the handler writing the line.
			release := sync.OnceFunc(func() { close(logs.open) })
			t.Cleanup(release)
			client := &http.Client{Timeout: 500 * time.Millisecond,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			req, _ := http.NewRequest(tt.method, srv.URL+"/x", nil)
			type answer struct {
				resp *http.Response
				body string
				err  error
			}
			got := make(chan answer, 1)
			go func() {
				resp, err := client.Do(req)
				if err != nil {
					got <- answer{err: err}
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				got <- answer{resp, string(b), err}
			}()
			var a answer
			select {
			case a = <-got:
				if !tt.early {
					t.Fatal("answered before the access line was written")
				}
			case <-time.After(200 * time.Millisecond):
				if tt.early {
					t.Fatal("no answer before the access line was written")
				}
				release()
				a = <-got
			}
			release()
			if tt.wantBody == "" && tt.name == "short of its length" {
				// net/http cuts the connection: the client sees a short body.
				if a.err == nil {
					t.Errorf("short answer read whole: %q", a.body)
				}
				return
			}
			if a.err != nil {
				t.Fatal(a.err)
			}
			if a.body != tt.wantBody || len(a.resp.TransferEncoding) != 0 {
				t.Errorf("body %q, transfer encoding %v", a.body, a.resp.TransferEncoding)
			}
			if tt.method == "GET" && a.resp.ContentLength != int64(len(tt.wantBody)) {
				t.Errorf("Content-Length %d, want %d", a.resp.ContentLength, len(tt.wantBody))
			}
		})
	}
}

// TestAccessLogged: the handler is handed the request's record and its
// state, the ones Done sees; an error written with WriteErrorTo and a
// panic recovered with RecoverTo go on that record, one line each.
func TestAccessLogged(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	h := Handler{Log: log}
	var handed *Record
	srv := AccessLogged(AccessLogOptions{Log: log, Done: func(rec *Record) {
		if rec != handed || StateOf[testState](rec).n != 7 {
			t.Errorf("Done sees another record or state: %p, handed %p", rec, handed)
		}
	}}, func(w http.ResponseWriter, r *http.Request, rec *Record, st *testState) {
		defer h.RecoverTo(w, r, rec)
		handed = rec
		if st == nil || st.n != 0 || StateOf[testState](rec) != st {
			t.Fatalf("state %p at the start of a request", st)
		}
		st.n = 7
		rec.Route = testRoute(r.URL.Path)
		switch r.URL.Path {
		case "/fail":
			h.WriteErrorTo(w, r, rec, Errorf(http.StatusNotFound, CodeUnsupported, "unknown endpoint"))
		case "/panic":
			panic("boom")
		}
	})
	for path, status := range map[string]int{"/ok": 200, "/fail": 404, "/panic": 500} {
		logs.Reset()
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		lines := logLines(t, &logs)
		if w.Code != status || len(lines) != 1 || lines[0]["route"] != path || lines[0]["status"] != float64(status) {
			t.Errorf("%s: %d, lines %v", path, w.Code, lines)
		}
		if status == 500 && !strings.Contains(lines[0]["error"].(string), "panic: boom") {
			t.Errorf("%s: the panic is not on the line: %v", path, lines[0])
		}
	}
}
