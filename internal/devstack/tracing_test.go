package devstack

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/acme/registry-gateway/internal/testsupport/otlptest"
)

// The trace context of a client that propagates its own (as an
// instrumented CI job would): every request of the pull carries it.
const (
	clientTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpanID  = "00f067aa0ba902b7"
)

// withTraceparent sends the client's traceparent on every request.
type withTraceparent struct{ next http.RoundTripper }

func (t withTraceparent) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Traceparent", "00-"+clientTraceID+"-"+clientSpanID+"-01")
	return t.next.RoundTrip(r)
}

// runTracedStack runs the demo stack with the tracing sections given
// (appended to the committed files; "" for none), lets use drive it, and
// stops it, which flushes the spans held.
func runTracedStack(t *testing.T, gatewayTracing, tokenserverTracing string, use func(*Stack)) {
	t.Helper()
	dir := copyDeploy(t)
	for file, section := range map[string]string{"deploy/gateway.yaml": gatewayTracing, "deploy/tokenserver.yaml": tokenserverTracing} {
		if section == "" {
			continue
		}
		path := filepath.Join(dir, file)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		write(t, path, string(data)+"\n"+section)
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := Start(ctx, testOptions(dir))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	use(st)
	cancel()
	select {
	case <-st.done:
		if err := st.Wait(); err != nil {
			t.Errorf("stack stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("stack did not stop")
	}
}

// pullDemo pulls the licensed demo image's arm64 variant and reads its file,
// every blob included.
func pullDemo(t *testing.T, st *Stack, rt http.RoundTripper) {
	t.Helper()
	img, err := crane.Pull(st.GatewayHost+"/"+LicensedRepo+":1.0", crane.Insecure, crane.WithContext(t.Context()),
		crane.WithAuth(&authn.Basic{Username: DemoUser, Password: DemoToken}), crane.WithTransport(rt),
		crane.WithPlatform(&v1.Platform{OS: "linux", Architecture: "arm64"}))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := crane.Export(img, &buf); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	if h, err := tr.Next(); err != nil || h.Name != DemoFile {
		t.Fatalf("first entry %v, %v", h, err)
	}
	if body, _ := io.ReadAll(tr); !strings.Contains(string(body), "stable channel") {
		t.Errorf("file says %q", body)
	}
}

// TestTracing pulls through the stack with tracing on in both services, to
// an OTLP receiver: the client's trace holds the spans of both services,
// the token service's under the gateway's forward of /token, each
// child under the span it was started in, and no secret in any attribute.
func TestTracing(t *testing.T) {
	rc := otlptest.Start(t)
	section := "tracing:\n  endpoint: " + rc.URL + "\n"
	runTracedStack(t, section, section, func(st *Stack) {
		pullDemo(t, st, withTraceparent{remote.DefaultTransport})
		// A client that sends no trace context: the gateway starts the
		// trace, and the token service's spans still join it.
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, st.Realm+"?service="+st.Service+"&scope=repository:"+LicensedRepo+":pull", nil)
		req.SetBasicAuth(DemoUser, DemoToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("token: %s", resp.Status)
		}
	})

	spans := rc.Spans()
	byID := map[string]otlptest.Span{}
	for _, s := range spans {
		byID[s.SpanID] = s
		for k, v := range s.Attrs {
			for _, secret := range []string{DemoUser, DemoToken, "Basic ", "Bearer ", "eyJ"} {
				if strings.Contains(v, secret) {
					t.Errorf("%s span %q: attribute %s=%q holds %q", s.Service, s.Name, k, v, secret)
				}
			}
		}
	}
	// path names a span by its ancestors' names, e.g.
	// "gateway:GET token > gateway:token service > tokenserver:GET /token".
	path := func(s otlptest.Span) string {
		p := s.Service + ":" + s.Name
		for s.ParentID != "" {
			parent, ok := byID[s.ParentID]
			if !ok {
				return "(" + s.ParentID + ") > " + p
			}
			s = parent
			p = s.Service + ":" + s.Name + " > " + p
		}
		return p
	}
	client, other := map[string]int{}, map[string]int{}
	for _, s := range spans {
		if s.TraceID == clientTraceID {
			client[path(s)]++
		} else {
			other[path(s)]++
		}
	}
	const (
		token   = "(" + clientSpanID + ") > gateway:GET token"
		tsToken = token + " > gateway:token service > tokenserver:GET /token"
	)
	for _, want := range []string{
		"(" + clientSpanID + ") > gateway:GET base",
		token,
		token + " > gateway:token service",
		tsToken,
		tsToken + " > tokenserver:licence lookup",
		tsToken + " > tokenserver:sign token",
		"(" + clientSpanID + ") > gateway:GET manifest > gateway:verify token",
		"(" + clientSpanID + ") > gateway:GET manifest > gateway:manifest cache > gateway:upstream GET",
		"(" + clientSpanID + ") > gateway:GET blob > gateway:verify token",
		"(" + clientSpanID + ") > gateway:GET blob > gateway:blob redirect cache",
		"(" + clientSpanID + ") > gateway:GET blob > gateway:upstream GET",
	} {
		if client[want] == 0 {
			t.Errorf("no span %s in the client's trace", want)
		}
	}
	for _, want := range []string{
		"gateway:GET token > gateway:token service > tokenserver:GET /token > tokenserver:licence lookup",
		"gateway:GET token > gateway:token service > tokenserver:GET /token > tokenserver:sign token",
	} {
		if other[want] != 1 {
			t.Errorf("%d spans %s in the gateway's own traces", other[want], want)
		}
	}
	if t.Failed() {
		for _, m := range []map[string]int{client, other} {
			for _, p := range slices.Sorted(func(yield func(string) bool) {
				for k := range m {
					if !yield(k) {
						return
					}
				}
			}) {
				t.Logf("%3d %s", m[p], p)
			}
		}
	}

	// What a span says, on the spans a pull is made of.
	for _, s := range spans {
		switch {
		case s.Service == "gateway" && s.Name == "GET manifest":
			if s.Kind != tracepb.Span_SPAN_KIND_SERVER || s.Attrs["registry.repository"] != LicensedRepo || s.Attrs["http.response.status_code"] != "200" {
				t.Errorf("manifest span %+v", s)
			}
		case s.Name == "verify token":
			// The client's first /v2/ comes without a token.
			if o := s.Attrs["gateway.token.outcome"]; o != "ok" && (o != "refused" || byID[s.ParentID].Name != "GET base") {
				t.Errorf("verify span %+v", s)
			}
		case s.Name == "licence lookup":
			if s.Attrs["tokenserver.licence.outcome"] != "granted" {
				t.Errorf("licence span %+v", s)
			}
		case s.Name == "upstream GET":
			if s.Kind != tracepb.Span_SPAN_KIND_CLIENT || s.Attrs["server.address"] != "127.0.0.1" || s.Error {
				t.Errorf("upstream span %+v", s)
			}
		case s.Name == "blob redirect cache":
			if s.Attrs["gateway.cache.hit"] != "false" {
				t.Errorf("blob redirect span %+v (the demo upstream redirects nothing)", s)
			}
		}
	}
}

// TestTracingOff: without tracing sections nothing is exported, even with
// the OpenTelemetry environment pointing at a collector: no exporter is
// built.
func TestTracingOff(t *testing.T) {
	rc := otlptest.Start(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", strings.TrimSuffix(rc.URL, otlptest.TracesPath))
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	runTracedStack(t, "", "", func(st *Stack) {
		pullDemo(t, st, withTraceparent{remote.DefaultTransport})
	})
	if n := rc.Requests(); n != 0 {
		t.Errorf("%d exports with tracing off", n)
	}
}
