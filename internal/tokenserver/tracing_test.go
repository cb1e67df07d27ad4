package tokenserver

import (
	"net/http"
	"strings"
	"testing"

	"github.com/acme/registry-gateway/internal/testsupport/otlptest"
	"github.com/acme/registry-gateway/internal/tracing"
)

// TestTracingSpans: with tracing.endpoint a token request is a server span
// (the caller's child when it sends a traceparent) with the licence
// look-up and the signing under it; a refused login says why; no span
// holds the credentials or the e-mail address.
func TestTracingSpans(t *testing.T) {
	t.Parallel()
	rc := otlptest.Start(t)
	f := newFixture(t, func(c *Config) { c.Tracing = tracing.Config{Endpoint: rc.URL} })
	const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	if resp := get(t, f.url, aliceUser, aliceToken, scopes("repository:stable/app:pull"), "Traceparent", parent); resp.StatusCode != http.StatusOK {
		t.Fatalf("token: %d", resp.StatusCode)
	}
	if resp := get(t, f.url, aliceUser, "wrong-token", scopes("repository:stable/app:pull")); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", resp.StatusCode)
	}
	f.settle()
	f.srv.Close() // flushes the spans

	spans := rc.Spans()
	byName := map[string][]otlptest.Span{}
	for _, s := range spans {
		byName[s.Name] = append(byName[s.Name], s)
		for k, v := range s.Attrs {
			for _, secret := range []string{aliceUser, aliceToken, "wrong-token", "account=", "Basic"} {
				if strings.Contains(v, secret) {
					t.Errorf("span %q: attribute %s=%q holds %q", s.Name, k, v, secret)
				}
			}
		}
	}
	reqs, lookups, signs := byName["GET /token"], byName["licence lookup"], byName["sign token"]
	if len(reqs) != 2 || len(lookups) != 2 || len(signs) != 1 || len(spans) != 5 {
		t.Fatalf("spans %+v", spans)
	}
	ok, refused := reqs[0], reqs[1]
	if ok.TraceID != "0af7651916cd43dd8448eb211c80319c" || ok.ParentID != "b7ad6b7169203331" {
		t.Errorf("the caller's traceparent was not followed: %+v", ok)
	}
	if ok.Attrs["http.response.status_code"] != "200" || ok.Attrs["tokenserver.grant"] != "basic" || ok.Attrs["url.path"] != "/token" {
		t.Errorf("token span %+v", ok)
	}
	if refused.ParentID != "" || refused.Attrs["tokenserver.login.failure"] != "wrong_token" || refused.Attrs["http.response.status_code"] != "401" || refused.Error {
		t.Errorf("refused span %+v", refused)
	}
	if l := lookups[0]; l.ParentID != ok.SpanID || l.Attrs["tokenserver.licence.outcome"] != "granted" {
		t.Errorf("lookup span %+v", l)
	}
	if l := lookups[1]; l.ParentID != refused.SpanID || l.Attrs["tokenserver.licence.outcome"] != "wrong_token" {
		t.Errorf("refused lookup span %+v", l)
	}
	if s := signs[0]; s.ParentID != ok.SpanID || s.Attrs["jwt.alg"] != "ES256" || s.Attrs["tokenserver.granted"] != "1" {
		t.Errorf("sign span %+v", s)
	}
}

// Without tracing.endpoint the service has no tracer.
func TestTracingOffByDefault(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	if f.srv.tracer != nil {
		t.Fatal("a tracer without tracing.endpoint")
	}
}
