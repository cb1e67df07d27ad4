package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/pullreport"
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
// manifest GETs answered 200 count as pulls, HEADs answered 200 as checks,
// a manifest request refused for the token's grants as denied (with the
// verified subject and the reason on its line); other refusals and misses
// count as nothing.
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
			for _, c := range []struct {
				labels []string
				want   float64
			}{
				{[]string{"stable", "stable/app", "pull"}, 3},
				{[]string{"stable", "stable/app", "check"}, 1},
				{[]string{"stable", "stable/app", "denied"}, 0},
				// Nothing of beta was served: its name is no label.
				{[]string{unknownLabel, unknownLabel, "denied"}, 1},
			} {
				if got := counterValue(e.gw.metrics.pulls.WithLabelValues(c.labels...)); got != c.want {
					t.Errorf("gateway_pulls_total%v = %v, want %v", c.labels, got, c.want)
				}
			}
			recs := accessRecords(t, e.logs.String())
			if len(recs) != 8 {
				t.Fatalf("%d access records", len(recs))
			}
			first := recs[0]
			if first["subject"] != "alice@example.com" || first["repository"] != "stable/app" || first["reference"] != "latest" ||
				first["digest"] != dgst || first["pull"] != true || first["kind"] != "pull" {
				t.Errorf("manifest by tag: %v", first)
			}
			if recs[1]["reference"] != dgst || recs[1]["digest"] != dgst || recs[1]["pull"] != true {
				t.Errorf("manifest by digest: %v", recs[1])
			}
			if recs[3]["pull"] != nil || recs[3]["subject"] != "alice@example.com" || recs[3]["kind"] != "check" {
				t.Errorf("HEAD: %v", recs[3])
			}
			if recs[4]["pull"] != nil || recs[4]["status"] != float64(404) || recs[4]["kind"] != nil {
				t.Errorf("missing manifest: %v", recs[4])
			}
			if recs[5]["repository"] != "stable/app" || recs[5]["reference"] != nil || recs[5]["digest"] != nil || recs[5]["kind"] != nil {
				t.Errorf("tags/list: %v", recs[5])
			}
			if d := recs[6]; d["kind"] != "denied" || d["reason"] != deniedChannel || d["subject"] != "alice@example.com" ||
				d["repository"] != "beta/app" || d["reference"] != "latest" || d["status"] != float64(401) || d["pull"] != nil {
				t.Errorf("denied: %v", d)
			}
			// Without a token nobody is named, and nothing is counted.
			if r := recs[7]; r["subject"] != nil || r["repository"] != nil || r["kind"] != nil {
				t.Errorf("a request without a token names a customer: %v", r)
			}
			if strings.Contains(e.logs.String(), tok) {
				t.Error("the token is in the log")
			}
		})
	}
}

// Denied requests are labelled by repository only once the repository was
// served, and by channel only once one of its repositories was: a valid
// token asking for made-up names adds one series, not one a name.
func TestDeniedLabelsBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newFakeRegistry())
	other := e.claims()
	other.Access[0].Name = "stable/other" // holds stable, not stable/app
	otherTok := e.sign(other)
	// Denied before anything of stable was served: unknown.
	readBody(t, e.do(http.MethodGet, "/v2/stable/app/manifests/latest", bearer(otherTok)))
	readBody(t, e.do(http.MethodHead, "/v2/stable/app/manifests/latest", bearer(e.token())))
	readBody(t, e.do(http.MethodGet, "/v2/stable/app/manifests/latest", bearer(otherTok)))
	readBody(t, e.do(http.MethodHead, "/v2/stable/app/manifests/latest", bearer(otherTok)))
	for i := range 50 {
		readBody(t, e.do(http.MethodGet, fmt.Sprintf("/v2/stable/x%d/manifests/latest", i), bearer(e.token())))
		readBody(t, e.do(http.MethodGet, fmt.Sprintf("/v2/spray%d/x/manifests/latest", i), bearer(e.token())))
	}
	readBody(t, e.do(http.MethodGet, "/v2/stable/app/blobs/"+dgst, bearer(otherTok))) // a blob: not counted

	want := strings.Join([]string{
		`gateway_pulls_total{channel="(unknown)",kind="denied",repository="(unknown)"} 51`,
		`gateway_pulls_total{channel="stable",kind="check",repository="stable/app"} 1`,
		`gateway_pulls_total{channel="stable",kind="denied",repository="(unknown)"} 50`,
		`gateway_pulls_total{channel="stable",kind="denied",repository="stable/app"} 2`,
	}, "\n") + "\n"
	testutil.WaitFor(t, "the counts", 5*time.Second, func() bool {
		return metricsWith(e.scrape(), "gateway_pulls_total{") == want
	})
	recs := accessRecords(t, e.logs.String())
	if d := recs[0]; d["kind"] != "denied" || d["reason"] != deniedRepository || d["repository"] != "stable/app" {
		t.Errorf("denied for the repository: %v", d)
	}
}

const testBlob = "layer bytes"

// `gateway report` on what the gateway really writes, with slog's JSON
// handler (production) and its text handler (`make run`): the same pulls,
// checks and refusals either way.
func TestReportOnBothLogFormats(t *testing.T) {
	t.Parallel()
	reports := map[string]string{}
	for _, format := range []string{"json", "text"} {
		logs := &testutil.SyncBuffer{}
		fake := newFakeRegistry()
		upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v2/acme/stable/app/blobs/"+dgst {
				_, _ = io.WriteString(w, testBlob)
				return
			}
			fake.ServeHTTP(w, r)
		})
		e := newEnv(t, upstream, func(_ *Config, o *Options) {
			if format == "json" {
				o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
			} else {
				o.Logger = slog.New(slog.NewTextHandler(logs, nil)).With("component", "gateway")
			}
		})
		tok := e.token()
		reqs := []struct{ method, path string }{
			{http.MethodGet, "/v2/stable/app/manifests/latest"},
			{http.MethodGet, "/v2/stable/app/blobs/" + dgst},
			{http.MethodHead, "/v2/stable/app/manifests/latest"},
			{http.MethodHead, "/v2/stable/app/manifests/latest"},
			{http.MethodGet, "/v2/stable/app/manifests/" + dgst},
			{http.MethodHead, "/v2/beta/app/manifests/latest"},
			{http.MethodGet, "/v2/beta/app/manifests/latest"},
		}
		for _, req := range reqs {
			readBody(t, e.do(req.method, req.path, bearer(tok)))
		}
		readBody(t, e.do(http.MethodGet, "/v2/stable/app/manifests/latest", nil)) // no token: nobody's
		testutil.WaitFor(t, "the access lines", 5*time.Second, func() bool {
			return strings.Count(logs.String(), "request") >= len(reqs)+1
		})
		t.Logf("%s log:\n%s", format, logs.String())
		var report string
		for _, args := range [][]string{{"--format", "json"}, {"--format", "json", "--refused"}} {
			var out, errb bytes.Buffer
			if code := pullreport.Run(args, strings.NewReader(logs.String()), &out, &errb); code != 0 {
				t.Fatalf("%s %v: exit %d: %s", format, args, code, errb.String())
			}
			var rows []map[string]any
			if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				delete(r, "first")
				delete(r, "last")
				b, _ := json.Marshal(r)
				report += string(b) + "\n"
			}
			if len(args) == 2 && !strings.Contains(errb.String(), "2 manifest requests refused for the token's grants are not listed") {
				t.Errorf("%s: stderr %q", format, errb.String())
			}
		}
		reports[format] = report
	}
	want := `{"bytes":` + itoa(len(testManifest)+len(testBlob)) + `,"checks":2,"customer":"alice@example.com","digest":"` + dgst + `","pulls":1,"reference":"latest","repository":"stable/app"}` + "\n" +
		`{"bytes":` + itoa(len(testManifest)) + `,"checks":0,"customer":"alice@example.com","digest":"` + dgst + `","pulls":1,"reference":"` + dgst + `","repository":"stable/app"}` + "\n" +
		`{"attempts":2,"customer":"alice@example.com","reason":"channel_not_licensed","reference":"latest","repository":"beta/app"}` + "\n"
	for format, got := range reports {
		if got != want {
			t.Errorf("%s log: report\n%swant\n%s", format, got, want)
		}
	}
}
