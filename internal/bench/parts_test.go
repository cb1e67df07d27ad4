package bench

import (
	"bytes"
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
		err := checkLoopback(tc.addr)
		if (err == nil) != tc.ok {
			t.Errorf("checkLoopback(%q) = %v, want ok=%v", tc.addr, err, tc.ok)
		}
		if _, err := NewConn(tc.addr, time.Second); (err == nil) != tc.ok {
			t.Errorf("NewConn(%q) = %v, want ok=%v", tc.addr, err, tc.ok)
		}
	}
}

func TestConnAndRunCell(t *testing.T) {
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
		fixedOp(addr, RenderGET(addr, "/"), 200, 5))
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 30 || res.Errors != 0 || res.Bytes != 150 || res.P50 <= 0 || res.P99 < res.P50 || res.RPS <= 0 {
		t.Errorf("result %+v", res)
	}

	// A failing server stops the cell rather than being measured.
	_, err = RunCell(ctx, Cell{Concurrency: 2, Requests: 100, MaxTime: 10 * time.Second},
		fixedOp(addr, RenderGET(addr, "/fail"), 200, -1))
	if err == nil || !strings.Contains(err.Error(), "status 503") {
		t.Errorf("failing cell: %v", err)
	}
	if _, err := RunCell(ctx, Cell{}, nil); err == nil {
		t.Error("empty cell accepted")
	}
}

func TestConnRedialsAfterServerClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		IdleTimeout: time.Millisecond}
	go srv.Serve(ln)
	defer srv.Close()
	c, _ := NewConn(ln.Addr().String(), 5*time.Second)
	defer c.Close()
	for range 3 {
		if resp, err := c.Do(context.Background(), RenderGET("x", "/"), false, nil); err != nil || resp.Bytes != 2 {
			t.Fatalf("%+v %v", resp, err)
		}
		time.Sleep(20 * time.Millisecond) // the server closes the idle connection
	}
}

func TestPercentileAndMedian(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	if p := percentile(d, 0.5); p != 50 {
		t.Errorf("p50 = %d", p)
	}
	if p := percentile(d, 0.99); p != 99 {
		t.Errorf("p99 = %d", p)
	}
	if p := percentile(d[:1], 0.99); p != 1 {
		t.Errorf("p99 of one = %d", p)
	}
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
}

func TestParseBench(t *testing.T) {
	out := `goos: linux
pkg: github.com/acme/registry-gateway/pkg/auth
BenchmarkParseScope/repository-2         	 2837660	       420.5 ns/op	      32 B/op	       2 allocs/op
BenchmarkSign/ES256-parallel-2           	   73816	     17665 ns/op	   10379 B/op	     104 allocs/op
BenchmarkNoMem 	 100	 12 ns/op
PASS
`
	got := parseBench(out)
	if len(got) != 3 {
		t.Fatalf("%+v", got)
	}
	if g := got[1]; g.Package != "pkg/auth" || g.Name != "Sign/ES256-parallel" || g.NsPerOp != 17665 || g.BPerOp != 10379 || g.AllocsOp != 104 {
		t.Errorf("%+v", g)
	}
	if g := got[2]; g.Name != "NoMem" || g.NsPerOp != 12 {
		t.Errorf("%+v", g)
	}
}

func TestSyntheticBlobRange(t *testing.T) {
	b := newSyntheticBlob(3<<20 + 5)
	srv := httptest.NewServer(b.handler())
	defer srv.Close()
	full, err := http.Get(srv.URL + "/blobs/" + b.digest)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := io.ReadAll(full.Body)
	full.Body.Close()
	if int64(len(all)) != b.size {
		t.Fatalf("%d bytes", len(all))
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/blobs/"+b.digest, nil)
	req.Header.Set("Range", "bytes=1048570-1048580")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, all[1048570:1048581]) {
		t.Errorf("range: %d, %d bytes", resp.StatusCode, len(part))
	}
	if again := newSyntheticBlob(b.size); again.digest != b.digest {
		t.Error("blob is not deterministic")
	}
	if r, _ := http.Get(srv.URL + "/blobs/sha256:other"); r.StatusCode != 404 {
		t.Errorf("unknown blob: %d", r.StatusCode)
	}
}

// The manifest targets show the pass-through and the cached gateway with a
// verdict each; the row is met only when both are.
func TestManifestTargets(t *testing.T) {
	series := func(group, contender string, rps float64) *Series {
		return &Series{Workload: WorkloadManifest, Group: group, Contender: contender, Baseline: contender == "direct",
			Concurrency: 16, Summary: Summary{RPS: rps}}
	}
	r := &Report{Manifest: []*Series{
		series(GroupTag, "direct", 10_000), series(GroupTag, ContenderGateway, 6000),
		series(GroupTag, ContenderGatewayCache, 20_000), series(GroupTag, "nginx", 8000),
		series(GroupDigest, "direct", 10_000), series(GroupDigest, ContenderGatewayCache, 9000),
	}}
	got := map[string]Target{}
	for _, tg := range evaluateTargets(r) {
		got[tg.Name] = tg
	}
	for name, want := range map[string]struct{ got, mark string }{
		"manifest GET by tag, gateway vs direct, c=16": {"pass-through 0.60× · cached (tag_ttl 10s) 2.00×",
			"pass-through: **missed** · cached (tag_ttl 10s): met"},
		"manifest GET by tag, gateway vs nginx keep-alive, c=16": {"pass-through 0.75× · cached (tag_ttl 10s) 2.50×",
			"pass-through: **missed** · cached (tag_ttl 10s): met"},
		"manifest GET by digest, gateway vs direct, c=16": {"cached 0.90×", "cached: met"},
	} {
		tg, ok := got[name]
		if !ok {
			t.Errorf("no target %q (have %v)", name, got)
			continue
		}
		if tg.Got != want.got || tg.mark() != want.mark {
			t.Errorf("%s: %q, %q; want %q, %q", name, tg.Got, tg.mark(), want.got, want.mark)
		}
		if tg.Met != (name == "manifest GET by digest, gateway vs direct, c=16") {
			t.Errorf("%s: met %v", name, tg.Met)
		}
	}
	if len(got) != 3 {
		t.Errorf("%d targets: %v", len(got), got)
	}
}
