package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

// accessRecords decodes the gateway's JSON access lines.
func accessRecords(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		if m["msg"] == "request" {
			out = append(out, m)
		}
	}
	return out
}

// Reads through a checked token carry who pulled what (never the token);
// manifest GETs answered 200 count as pulls, HEADs and refusals do not.
func TestAccessRecordAndPullMetric(t *testing.T) {
	t.Parallel()
	for _, cached := range []bool{false, true} {
		name := "uncached"
		if cached {
			name = "manifest cache"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, newFakeRegistry(), func(c *Config, _ *Options) { c.ManifestCache.Disabled = !cached })
			tok := e.token()
			for _, req := range []struct{ method, path string }{
				{http.MethodGet, "/v2/stable/app/manifests/latest"},
				{http.MethodGet, "/v2/stable/app/manifests/" + dgst},
				{http.MethodGet, "/v2/stable/app/manifests/" + dgst},
				{http.MethodHead, "/v2/stable/app/manifests/latest"},
				{http.MethodGet, "/v2/stable/app/manifests/missing"},
				{http.MethodGet, "/v2/stable/app/tags/list"},
			} {
				resp := e.do(req.method, req.path, bearer(tok))
				io.Copy(io.Discard, resp.Body)
			}
			e.do(http.MethodGet, "/v2/beta/app/manifests/latest", bearer(tok)) // refused: not granted
			e.do(http.MethodGet, "/v2/stable/app/manifests/latest", nil)       // refused: no token

			// A request's line (and its metrics before it) is written once
			// the client has the answer.
			testutil.WaitFor(t, "8 access records", 5*time.Second, func() bool { return len(accessRecords(t, e.logs.String())) >= 8 })
			if got := counterValue(e.gw.metrics.pulls.WithLabelValues("stable", "stable/app")); got != 3 {
				t.Errorf("gateway_pulls_total = %v, want 3", got)
			}
			recs := accessRecords(t, e.logs.String())
			if len(recs) != 8 {
				t.Fatalf("%d access records", len(recs))
			}
			first := recs[0]
			if first["subject"] != "alice@example.com" || first["repository"] != "stable/app" || first["reference"] != "latest" ||
				first["digest"] != dgst || first["pull"] != true {
				t.Errorf("manifest by tag: %v", first)
			}
			if recs[1]["reference"] != dgst || recs[1]["digest"] != dgst || recs[1]["pull"] != true {
				t.Errorf("manifest by digest: %v", recs[1])
			}
			if recs[3]["pull"] != nil || recs[3]["subject"] != "alice@example.com" {
				t.Errorf("HEAD: %v", recs[3])
			}
			if recs[4]["pull"] != nil || recs[4]["status"] != float64(404) {
				t.Errorf("missing manifest: %v", recs[4])
			}
			if recs[5]["repository"] != "stable/app" || recs[5]["reference"] != nil || recs[5]["digest"] != nil {
				t.Errorf("tags/list: %v", recs[5])
			}
			for _, r := range recs[6:] {
				if r["subject"] != nil || r["repository"] != nil {
					t.Errorf("a refused request names a customer: %v", r)
				}
			}
			if strings.Contains(e.logs.String(), tok) {
				t.Error("the token is in the log")
			}
		})
	}
}
