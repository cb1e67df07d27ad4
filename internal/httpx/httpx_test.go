package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func decodeErrors(t *testing.T, body io.Reader) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.NewDecoder(body).Decode(&v); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	return v
}

func TestHandlerWritesRegistryErrors(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	h := Handler{Log: slog.New(slog.NewJSONHandler(&logs, nil))}
	tests := []struct {
		name       string
		err        error
		method     string
		status     int
		code       string
		message    string
		header     string
		notInBody  string
		wantLogged string
	}{
		{
			name:   "registry error with header",
			err:    Errorf(401, CodeUnauthorized, "authentication required").WithHeader("WWW-Authenticate", `Bearer realm="x"`),
			status: 401, code: CodeUnauthorized, message: "authentication required", header: `Bearer realm="x"`,
		},
		{
			name:   "cause is logged, not sent",
			err:    Errorf(503, CodeUnavailable, "license backend unavailable").Wrap(errors.New("dial tcp 10.0.0.1:443: secret-internal-host")),
			status: 503, code: CodeUnavailable, message: "license backend unavailable",
			notInBody: "secret-internal-host", wantLogged: "secret-internal-host",
		},
		{
			name:   "plain error is a 500 that says nothing",
			err:    errors.New("db password=hunter2 wrong"),
			status: 500, code: CodeUnknown, message: "internal error", notInBody: "hunter2",
		},
		{
			name:   "wrapped registry error keeps its status",
			err:    fmtWrap(Errorf(400, CodeInvalidRequest, "bad")),
			status: 400, code: CodeInvalidRequest, message: "bad",
		},
		{
			name:   "HEAD has no body",
			err:    Errorf(404, CodeNameUnknown, "repository name not known"),
			method: http.MethodHead, status: 404,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs.Reset()
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			rec := httptest.NewRecorder()
			h.Func(func(http.ResponseWriter, *http.Request) error { return tt.err }).
				ServeHTTP(rec, httptest.NewRequest(method, "/v2/x", nil))
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d", rec.Code, tt.status)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tt.header != "" && rec.Header().Get("WWW-Authenticate") != tt.header {
				t.Errorf("WWW-Authenticate %q", rec.Header().Get("WWW-Authenticate"))
			}
			if method == http.MethodHead {
				if rec.Body.Len() != 0 {
					t.Fatalf("HEAD answered a body: %q", rec.Body)
				}
				// The length of the body GET gets.
				get := httptest.NewRecorder()
				h.Func(func(http.ResponseWriter, *http.Request) error { return tt.err }).
					ServeHTTP(get, httptest.NewRequest(http.MethodGet, "/v2/x", nil))
				if cl := rec.Header().Get("Content-Length"); cl != strconv.Itoa(get.Body.Len()) {
					t.Errorf("HEAD Content-Length %q, GET body %d bytes", cl, get.Body.Len())
				}
				return
			}
			body := rec.Body.String()
			if tt.notInBody != "" && strings.Contains(body, tt.notInBody) {
				t.Errorf("body leaks %q: %s", tt.notInBody, body)
			}
			if tt.wantLogged != "" && !strings.Contains(logs.String(), tt.wantLogged) {
				t.Errorf("log lacks the cause: %s", logs.String())
			}
			v := decodeErrors(t, strings.NewReader(body))
			e := v["errors"].([]any)[0].(map[string]any)
			if e["code"] != tt.code || e["message"] != tt.message {
				t.Errorf("error %v, want %s %q", e, tt.code, tt.message)
			}
		})
	}
}

func fmtWrap(err error) error { return errors.Join(errors.New("context"), err) }

func TestErrorExtraFields(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	e := Errorf(400, CodeUnsupported, "grant type not supported")
	e.Extra = map[string]string{"error": "unsupported_grant_type"}
	Handler{}.WriteError(rec, httptest.NewRequest("POST", "/token", nil), e)
	v := decodeErrors(t, rec.Body)
	if v["error"] != "unsupported_grant_type" || v["errors"] == nil {
		t.Fatalf("body %v", v)
	}
}

func TestRecoverAnswers500(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	h := Handler{Log: slog.New(slog.NewTextHandler(&logs, nil))}
	srv := Chain(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }), Recover(h))
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 500 || !strings.Contains(logs.String(), "boom") || strings.Contains(rec.Body.String(), "boom") {
		t.Fatalf("status %d body %q log %q", rec.Code, rec.Body, logs.String())
	}
}

func TestLimitBody(t *testing.T) {
	t.Parallel()
	h := Handler{}
	var readErr error
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, readErr = io.ReadAll(r.Body)
	})
	srv := Chain(next, LimitBody(h, 10))

	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat("x", 11))))
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("declared oversize body: status %d", rec.Code)
	}

	// A body without a declared length is cut at the limit.
	req := httptest.NewRequest("POST", "/", io.MultiReader(strings.NewReader(strings.Repeat("x", 20))))
	req.ContentLength = -1
	srv.ServeHTTP(httptest.NewRecorder(), req)
	var mbe *http.MaxBytesError
	if !errors.As(readErr, &mbe) {
		t.Fatalf("read err = %v, want MaxBytesError", readErr)
	}
}

func TestAccessLogLeavesOutSecrets(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	srv := Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte("abc"))
	}), AccessLog(log))
	req := httptest.NewRequest("GET", "/token?scope=x&password=hunter2", nil)
	req.Header.Set("Authorization", "Basic c2VjcmV0LXRva2Vu")
	srv.ServeHTTP(httptest.NewRecorder(), req)
	out := logs.String()
	for _, secret := range []string{"hunter2", "c2VjcmV0LXRva2Vu", "Authorization"} {
		if strings.Contains(out, secret) {
			t.Errorf("access log contains %q: %s", secret, out)
		}
	}
	if !strings.Contains(out, `"status":418`) || !strings.Contains(out, `"bytes":3`) {
		t.Errorf("access log lacks status or size: %s", out)
	}
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	ok := func(context.Context) error { return nil }
	bad := func(context.Context) error { return errors.New("no credential") }
	for _, tt := range []struct {
		checks map[string]Check
		status int
	}{
		{map[string]Check{"a": ok}, 200},
		{map[string]Check{"a": ok, "upstream": bad}, 503},
	} {
		rec := httptest.NewRecorder()
		Readyz(tt.checks).ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		if rec.Code != tt.status {
			t.Errorf("status %d, want %d (%s)", rec.Code, tt.status, rec.Body)
		}
	}
}

func TestServeShutsDownGracefully(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = w.Write([]byte("done"))
	})
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &closeSignal{Listener: inner, closed: make(chan struct{})}
	srv := NewServer(ln.Addr().String(), h, DefaultTimeouts, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, srv, ln, 5*time.Second) }()

	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String())
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-started
	cancel()    // SIGTERM arrives while a request is in flight
	<-ln.closed // the graceful stop has begun: no new connections
	close(release)
	if s := <-got; s != "done" {
		t.Fatalf("in-flight request got %q", s)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := http.Get("http://" + ln.Addr().String()); err == nil {
		t.Fatal("server still accepts connections after shutdown")
	}
}

// closeSignal is a listener that closes closed when it is closed.
type closeSignal struct {
	net.Listener
	once   sync.Once
	closed chan struct{}
}

func (l *closeSignal) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() { close(l.closed) })
	return err
}

func TestReadBody(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest("POST", "/token", strings.NewReader("grant_type=password"))
	if err := ReadBody(httptest.NewRecorder(), r, 100, time.Second); err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(r.Body); string(b) != "grant_type=password" || r.ContentLength != int64(len(b)) {
		t.Errorf("body put back as %q (length %d)", b, r.ContentLength)
	}
	for name, r := range map[string]*http.Request{
		"declared": httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat("x", 101))),
		"chunked":  {Method: "POST", URL: r.URL, Header: http.Header{}, ContentLength: -1, Body: io.NopCloser(strings.NewReader(strings.Repeat("x", 101)))},
	} {
		var e *Error
		if err := ReadBody(httptest.NewRecorder(), r, 100, time.Second); !errors.As(err, &e) || e.Status != http.StatusRequestEntityTooLarge || e.Header.Get("Connection") != "close" {
			t.Errorf("%s: oversized body: %v", name, err)
		}
	}
	none := httptest.NewRequest("GET", "/v2/", nil)
	if err := ReadBody(nil, none, 0, time.Second); err != nil || none.Body != http.NoBody {
		t.Errorf("no body: %v", err)
	}
}

func TestServeReportsCutRequests(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("x"))
		http.NewResponseController(w).Flush()
		close(started)
		<-r.Context().Done()
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(ln.Addr().String(), h, Timeouts{ReadHeader: time.Second}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, srv, ln, 100*time.Millisecond) }()
	resp, err := http.Get("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-started
	cancel()
	err = <-served
	var cut *ShutdownCutError
	if !errors.As(err, &cut) || cut.Requests != 1 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Serve = %v, want a ShutdownCutError for 1 request", err)
	}
}

// readFromWriter is a ResponseWriter with a ReadFrom of its own, as
// net/http's is.
type readFromWriter struct {
	*httptest.ResponseRecorder
	got io.Reader
}

func (w *readFromWriter) ReadFrom(r io.Reader) (int64, error) {
	w.got = r
	return io.Copy(w.ResponseRecorder, r)
}

func TestRecorderReadFrom(t *testing.T) {
	t.Parallel()
	src := strings.NewReader("blob bytes")
	inner := &readFromWriter{ResponseRecorder: httptest.NewRecorder()}
	rec := NewRecorder(inner)
	n, err := io.Copy(rec, io.LimitReader(src, 4))
	if err != nil || n != 4 {
		t.Fatalf("copy: %d, %v", n, err)
	}
	if _, ok := inner.got.(*io.LimitedReader); !ok {
		t.Errorf("the wrapped writer's ReadFrom got %T, want the source itself", inner.got)
	}
	// Without a ReadFrom underneath, plain writes.
	plain := httptest.NewRecorder()
	rec2 := NewRecorder(plain)
	if _, err := rec2.ReadFrom(src); err != nil {
		t.Fatal(err)
	}
	if rec.Status() != 200 || rec.Bytes() != 4 || inner.Body.String() != "blob" ||
		rec2.Bytes() != 6 || plain.Body.String() != " bytes" {
		t.Errorf("status %d bytes %d %q; bytes %d %q", rec.Status(), rec.Bytes(), inner.Body.String(), rec2.Bytes(), plain.Body.String())
	}
}

// A JSON answer over 2 KB (a token with x5c) goes with its length, not
// chunked as net/http would send it.
func TestWriteJSONDeclaresLength(t *testing.T) {
	t.Parallel()
	big := map[string]string{"token": strings.Repeat("a", 3000)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, big)
	}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(big)
	if resp.ContentLength != int64(len(want)+1) || len(resp.TransferEncoding) != 0 || string(body) != string(want)+"\n" {
		t.Fatalf("Content-Length %d, Transfer-Encoding %v, %d bytes", resp.ContentLength, resp.TransferEncoding, len(body))
	}
}
