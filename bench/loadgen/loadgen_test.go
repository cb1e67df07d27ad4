package loadgen

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestCheckLoopback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:80", true},
		{"127.1.2.3:80", true},
		{"[::1]:80", true},
		{"10.0.0.1:80", false},
		{"192.168.1.1:80", false},
		{"example.com:80", false},
		{"localhost:80", false}, // names are not resolved: only literals
		{"127.0.0.1", false},
	} {
		err := CheckLoopback(tc.addr)
		if (err == nil) != tc.ok {
			t.Errorf("CheckLoopback(%q) = %v, want ok=%v", tc.addr, err, tc.ok)
		}
		if _, err := NewConn(tc.addr, time.Second); (err == nil) != tc.ok {
			t.Errorf("NewConn(%q) = %v, want ok=%v", tc.addr, err, tc.ok)
		}
	}
}

func TestConnAndRunCell(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			w.(http.Flusher).Flush() // no Content-Length: chunked
			io.WriteString(w, "hello, world")
		case "/fail":
			http.Error(w, "no", http.StatusServiceUnavailable)
		default:
			io.WriteString(w, "hello")
		}
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	c, err := NewConn(addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		path  string
		head  bool
		bytes int64
	}{{"/", false, 5}, {"/chunked", false, 12}, {"/", true, 0}, {"/", false, 5}} {
		raw := RenderGET(addr, tc.path)
		if tc.head {
			raw = RenderHEAD(addr, tc.path)
		}
		resp, err := c.Do(ctx, raw, tc.head, nil)
		if err != nil || resp.Status != 200 || resp.Bytes != tc.bytes {
			t.Errorf("%s head=%v: %+v, %v", tc.path, tc.head, resp, err)
		}
	}

	res, err := RunCell(ctx, Cell{Concurrency: 3, Requests: 30, MaxTime: 10 * time.Second, Warmup: 2},
		FixedOp(addr, RenderGET(addr, "/"), 200, 5))
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 30 || res.Errors != 0 || res.Bytes != 150 || res.P50 <= 0 || res.P99 < res.P50 || res.RPS <= 0 {
		t.Errorf("result %+v", res)
	}

	// A failing server stops the cell rather than being measured.
	_, err = RunCell(ctx, Cell{Concurrency: 2, Requests: 100, MaxTime: 10 * time.Second},
		FixedOp(addr, RenderGET(addr, "/fail"), 200, -1))
	if err == nil || !strings.Contains(err.Error(), "status 503") {
		t.Errorf("failing cell: %v", err)
	}
	if _, err := RunCell(ctx, Cell{}, nil); err == nil {
		t.Error("empty cell accepted")
	}
}

func TestConnRedialsAfterServerClose(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{}, 3)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		IdleTimeout: time.Millisecond, ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateClosed {
				closed <- struct{}{}
			}
		}}
	go srv.Serve(ln)
	defer srv.Close()
	c, _ := NewConn(ln.Addr().String(), 5*time.Second)
	defer c.Close()
	for i := range 3 {
		if resp, err := c.Do(context.Background(), RenderGET("x", "/"), false, nil); err != nil || resp.Bytes != 2 {
			t.Fatalf("%+v %v", resp, err)
		}
		select {
		case <-closed: // the server closed the idle connection: the next Do redials
		case <-time.After(5 * time.Second):
			t.Fatalf("request %d: the server kept the idle connection", i)
		}
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	if p := Percentile(d, 0.5); p != 50 {
		t.Errorf("p50 = %d", p)
	}
	if p := Percentile(d, 0.99); p != 99 {
		t.Errorf("p99 = %d", p)
	}
	if p := Percentile(d[:1], 0.99); p != 1 {
		t.Errorf("p99 of one = %d", p)
	}
	if p := Percentile(nil, 0.5); p != 0 {
		t.Errorf("p50 of none = %d", p)
	}
}

// A paced cell sends no faster than its rate, however fast the server.
func TestRunCellRate(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	const rate, span = 200, 500 * time.Millisecond
	res, err := RunCell(context.Background(), Cell{Concurrency: 4, Requests: 10_000, MaxTime: span, Warmup: 1, Rate: rate},
		FixedOp(addr, RenderGET(addr, "/"), 200, 2))
	if err != nil {
		t.Fatal(err)
	}
	// 100 due within the span (the first at once); the server could do
	// thousands.
	if want := int(rate * span.Seconds()); res.Requests > want+1 || res.Requests < want*7/10 {
		t.Errorf("%d requests in %s at %d/s, want about %d", res.Requests, res.Elapsed, rate, want)
	}
	// No worker waits past the span for a request it will not send.
	if res.Elapsed > span+100*time.Millisecond {
		t.Errorf("elapsed %s for a span of %s", res.Elapsed, span)
	}
}
