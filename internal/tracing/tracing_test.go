package tracing_test

import (
	"context"
	"encoding/pem"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/acme/registry-gateway/internal/testsupport/otlptest"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
	"github.com/acme/registry-gateway/internal/tracing"
)

func ratio(f float64) *float64 { return &f }

func TestProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  tracing.Config
		want string // "" for none
	}{
		{"off", tracing.Config{}, ""},
		{"on", tracing.Config{Endpoint: "http://collector:4318"}, ""},
		{"on with path and ratio", tracing.Config{Endpoint: "https://collector/otlp/v1/traces", SampleRatio: ratio(0), CAFile: "ca.pem"}, ""},
		{"keys without endpoint", tracing.Config{SampleRatio: ratio(0.5)}, "tracing: endpoint is not set"},
		{"ca without endpoint", tracing.Config{CAFile: "ca.pem"}, "tracing: endpoint is not set"},
		{"no scheme", tracing.Config{Endpoint: "collector:4318"}, "tracing.endpoint: \"collector:4318\": scheme must be http or https"},
		{"grpc scheme", tracing.Config{Endpoint: "grpc://collector:4317"}, "scheme must be http or https"},
		{"no host", tracing.Config{Endpoint: "http:///v1/traces"}, "tracing.endpoint: \"http:///v1/traces\": no host"},
		{"credentials", tracing.Config{Endpoint: "https://user:secret@collector"}, "must not hold credentials"},
		{"query", tracing.Config{Endpoint: "https://collector/v1/traces?key=x"}, "must not have a query"},
		{"bad url", tracing.Config{Endpoint: "http://[::1"}, "is not a URL"},
		{"ca over http", tracing.Config{Endpoint: "http://collector:4318", CAFile: "ca.pem"}, "tracing.ca_file: used only towards an https"},
		{"ratio above 1", tracing.Config{Endpoint: "http://collector:4318", SampleRatio: ratio(1.5)}, "tracing.sample_ratio: 1.5 is out of range"},
		{"negative ratio", tracing.Config{Endpoint: "http://collector:4318", SampleRatio: ratio(-0.1)}, "tracing.sample_ratio: -0.1 is out of range"},
		{"NaN ratio", tracing.Config{Endpoint: "http://collector:4318", SampleRatio: ratio(math.NaN())}, "tracing.sample_ratio: NaN is out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := tc.cfg.Problems()
			if tc.want == "" {
				if len(errs) > 0 {
					t.Fatalf("problems %v", errs)
				}
				return
			}
			if len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.want) {
				t.Fatalf("problems %v, want one saying %q", errs, tc.want)
			}
		})
	}
}

func TestCheckFiles(t *testing.T) {
	if err := (tracing.Config{Endpoint: "https://c"}).CheckFiles(); err != nil {
		t.Fatal(err)
	}
	err := (tracing.Config{Endpoint: "https://c", CAFile: filepath.Join(t.TempDir(), "missing.pem")}).CheckFiles()
	if err == nil || !strings.Contains(err.Error(), "tracing.ca_file") {
		t.Fatalf("err %v", err)
	}
	_, _, err = tracing.Setup(t.Context(), tracing.Config{Endpoint: "https://c", CAFile: filepath.Join(t.TempDir(), "missing.pem")}, tracing.Options{})
	if err == nil || !strings.Contains(err.Error(), "tracing.ca_file") {
		t.Fatalf("Setup: err %v", err)
	}
	_, _, err = tracing.Setup(t.Context(), tracing.Config{Endpoint: "ftp://c"}, tracing.Options{})
	if err == nil || !strings.Contains(err.Error(), "tracing.endpoint") {
		t.Fatalf("Setup of a bad endpoint: err %v", err)
	}
}

// TestOff: without an endpoint there is no tracer, and its helpers hand
// back what they were given, at no allocation.
func TestOff(t *testing.T) {
	tr, shutdown, err := tracing.Setup(t.Context(), tracing.Config{}, tracing.Options{Service: "gateway"})
	if err != nil || tr != nil {
		t.Fatalf("tracer %v, err %v", tr, err)
	}
	shutdown()
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	if h := tr.Middleware(func(*http.Request) string { return "x" })(next); h == nil {
		t.Fatal("nil handler")
	}
	rt := http.DefaultTransport
	if tr.Transport(rt, "upstream") != rt {
		t.Error("Transport wrapped its round-tripper with tracing off")
	}
	r := httptest.NewRequest(http.MethodGet, "/v2/", nil)
	allocs := testing.AllocsPerRun(100, func() {
		r2, span := tr.StartServer(r, "GET")
		r3, span2 := tr.StartRequest(r2, "manifest cache", trace.SpanKindInternal)
		ctx, span3 := tr.Start(r3.Context(), "verify", trace.SpanKindInternal)
		tr.Inject(ctx, r.Header)
		tracing.EndHTTP(span3, 200)
		span2.End()
		tracing.EndHTTP(span, 200)
		if r3 != r {
			t.Fatal("request copied")
		}
	})
	if allocs != 0 {
		t.Errorf("tracing off allocates %v times a request", allocs)
	}
	if _, ok := r.Header["Traceparent"]; ok {
		t.Error("traceparent injected with tracing off")
	}
}

// TestOneTrace is two services as the gateway and the token service are:
// a server span, a client span whose context goes out as traceparent,
// the other service's server span under it, and an upstream round trip;
// exported over OTLP/HTTP to a receiver, flushed by shutdown.
func TestOneTrace(t *testing.T) {
	rc := otlptest.Start(t)
	// No path: /v1/traces is put on.
	endpoint := strings.TrimSuffix(rc.URL, otlptest.TracesPath)
	back, shutBack, err := tracing.Setup(t.Context(), tracing.Config{Endpoint: endpoint}, tracing.Options{Service: "tokenserver"})
	if err != nil {
		t.Fatal(err)
	}
	front, shutFront, err := tracing.Setup(t.Context(), tracing.Config{Endpoint: endpoint}, tracing.Options{Service: "gateway"})
	if err != nil {
		t.Fatal(err)
	}
	var seenTraceparent string
	backend := httptest.NewServer(back.Middleware(func(r *http.Request) string { return r.Method + " /token" })(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seenTraceparent = r.Header.Get("Traceparent")
			w.WriteHeader(http.StatusServiceUnavailable)
		})))
	defer backend.Close()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get("Traceparent"); v != "" {
			t.Errorf("the upstream was sent traceparent %q", v)
		}
	}))
	defer upstream.Close()
	client := &http.Client{Transport: front.Transport(http.DefaultTransport, "upstream")}

	frontend := httptest.NewServer(front.Middleware(func(r *http.Request) string { return r.Method + " token" })(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, span := front.Start(r.Context(), "token service", trace.SpanKindClient)
			out, _ := http.NewRequestWithContext(ctx, http.MethodGet, backend.URL+"/token", nil)
			front.Inject(ctx, out.Header)
			resp, err := http.DefaultClient.Do(out)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			tracing.EndHTTP(span, resp.StatusCode)
			up, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, upstream.URL+"/v2/x/blobs/sha256:00?X-Amz-Signature=secret", nil)
			if resp, err = client.Do(up); err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		})))
	defer frontend.Close()

	req, _ := http.NewRequest(http.MethodGet, frontend.URL+"/token?account=someone@example.com&password=hunter2", nil)
	req.SetBasicAuth("someone@example.com", "hunter2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if rc.Requests() != 0 {
		t.Log("spans exported before shutdown")
	}
	shutFront()
	shutBack()

	spans := rc.Spans()
	byName := map[string]otlptest.Span{}
	for _, s := range spans {
		byName[s.Name] = s
		for k, v := range s.Attrs {
			for _, secret := range []string{"hunter2", "someone@example.com", "secret", "account="} {
				if strings.Contains(v, secret) {
					t.Errorf("span %q attribute %s=%q holds %q", s.Name, k, v, secret)
				}
			}
		}
	}
	if len(spans) != 4 {
		t.Fatalf("%d spans: %+v", len(spans), spans)
	}
	root, client1, server2, up := byName["GET token"], byName["token service"], byName["GET /token"], byName["upstream GET"]
	if root.Service != "gateway" || root.Kind != tracepb.Span_SPAN_KIND_SERVER || root.ParentID != "" {
		t.Errorf("root %+v", root)
	}
	if root.Attrs["url.path"] != "/token" || root.Attrs["http.response.status_code"] != "200" {
		t.Errorf("root attributes %v", root.Attrs)
	}
	if client1.ParentID != root.SpanID || client1.Kind != tracepb.Span_SPAN_KIND_CLIENT || !client1.Error {
		t.Errorf("client span %+v (root %s)", client1, root.SpanID)
	}
	if server2.Service != "tokenserver" || server2.ParentID != client1.SpanID || server2.Kind != tracepb.Span_SPAN_KIND_SERVER || !server2.Error {
		t.Errorf("token service span %+v (client span %s)", server2, client1.SpanID)
	}
	if up.ParentID != root.SpanID || up.Attrs["server.address"] != "127.0.0.1" || up.Attrs["http.response.status_code"] != "200" || up.Error {
		t.Errorf("upstream span %+v", up)
	}
	for _, s := range spans {
		if s.TraceID != root.TraceID {
			t.Errorf("span %q in trace %s, not %s", s.Name, s.TraceID, root.TraceID)
		}
	}
	if want := "00-" + root.TraceID + "-" + client1.SpanID + "-01"; seenTraceparent != want {
		t.Errorf("traceparent %q, want %q", seenTraceparent, want)
	}
}

// TestSampling: at ratio 0 a trace that starts here is not recorded, one
// whose caller sampled it is (parent-based).
func TestSampling(t *testing.T) {
	rc := otlptest.Start(t)
	tr, shutdown, err := tracing.Setup(t.Context(), tracing.Config{Endpoint: rc.URL, SampleRatio: ratio(0)}, tracing.Options{Service: "tokenserver"})
	if err != nil {
		t.Fatal(err)
	}
	h := tr.Middleware(func(*http.Request) string { return "GET /token" })(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/token", nil))
	const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	r := httptest.NewRequest(http.MethodGet, "/token", nil)
	r.Header.Set("Traceparent", parent)
	h.ServeHTTP(httptest.NewRecorder(), r)
	shutdown()
	spans := rc.Spans()
	if len(spans) != 1 {
		t.Fatalf("%d spans: %+v", len(spans), spans)
	}
	if s := spans[0]; s.TraceID != "0af7651916cd43dd8448eb211c80319c" || s.ParentID != "b7ad6b7169203331" {
		t.Errorf("span %+v is not the caller's child", s)
	}
}

// TestTLSEndpoint: an https collector is verified against ca_file; without
// it the export fails (a self-signed certificate), and that is logged,
// not fatal.
func TestTLSEndpoint(t *testing.T) {
	rc, cert := otlptest.StartTLS(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	emit := func(cfg tracing.Config, log *slog.Logger) {
		t.Helper()
		tr, shutdown, err := tracing.Setup(context.Background(), cfg, tracing.Options{Service: "gateway", Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		_, span := tr.Start(t.Context(), "work", trace.SpanKindInternal)
		span.End()
		shutdown()
	}
	emit(tracing.Config{Endpoint: rc.URL, CAFile: ca}, nil)
	if n := len(rc.Spans()); n != 1 {
		t.Fatalf("%d spans over https with ca_file", n)
	}

	var buf testutil.SyncBuffer
	emit(tracing.Config{Endpoint: rc.URL}, slog.New(slog.NewTextHandler(&buf, nil)))
	if n := len(rc.Spans()); n != 1 {
		t.Fatalf("%d spans: exported to an unverified collector", n)
	}
	if !strings.Contains(buf.String(), "tracing: spans not exported") || !strings.Contains(buf.String(), "certificate") {
		t.Errorf("log %q", buf.String())
	}
}
