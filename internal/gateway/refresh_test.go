package gateway

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/internal/testsupport/ecrfake"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
	"github.com/acme/registry-gateway/pkg/ecr"
)

// TestRefreshHoldOff: with the real AWS SDK against the ECR fake, an
// upstream that refuses every credential costs one GetAuthorizationToken
// call per 30 s, not one per request (ECR throttles that API); the refused
// requests are answered 502 with a clear message and counted (finding 8).
func TestRefreshHoldOff(t *testing.T) {
	fake := ecrfake.New(ecrfake.Options{RegistryID: "123456789012"})
	t.Cleanup(fake.Close)
	fake.SetEnv(t)
	clock := testutil.NewClock(time.Now())
	// fakeRegistry accepts only testPassword: it refuses every credential
	// ECR hands out.
	e := newEnv(t, newFakeRegistry(), func(c *Config, o *Options) {
		c.Upstream.Providers = ecrProvider(&ecr.Config{Region: "us-east-1", RegistryID: "123456789012"})
		o.Credentials = nil
		o.Clock = clock.Now
	})
	calls := func() int { return fake.Calls("GetAuthorizationToken") }
	if calls() != 1 {
		t.Fatalf("%d GetAuthorizationToken calls at start, want 1", calls())
	}
	tok := e.token()
	pull := func(round string) {
		t.Helper()
		resp := e.do("GET", "/v2/stable/app/manifests/latest", bearer(tok))
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusBadGateway || errorCode(t, body) != httpx.CodeUnavailable ||
			!strings.Contains(body, "upstream refused the registry credential") {
			t.Errorf("%s: %d %s", round, resp.StatusCode, body)
		}
	}
	pull("first 401")
	if calls() != 2 {
		t.Fatalf("after the first 401: %d calls, want 2 (one refresh)", calls())
	}
	for i := range 20 {
		clock.Advance(time.Second)
		pull("within the hold-off " + itoa(i))
	}
	if calls() != 2 {
		t.Errorf("401s within 30 s of the refresh: %d calls, want still 2", calls())
	}
	clock.Advance(11 * time.Second)
	pull("after the hold-off")
	if calls() != 3 {
		t.Errorf("a 401 after 30 s: %d calls, want 3 (one more refresh)", calls())
	}
	if n := counterValue(e.gw.metrics.upstreamRefused); n != 22 {
		t.Errorf("gateway_upstream_credential_refused_total = %v, want 22", n)
	}
	if !e.logs.WaitFor("upstream refused the registry credential", 5*time.Second) {
		t.Errorf("refusals not logged: %s", e.logs)
	}
}
