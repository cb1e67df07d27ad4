package bench

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acme/registry-gateway/bench/nginx"
	"github.com/acme/registry-gateway/bench/procstat"
	"github.com/acme/registry-gateway/bench/report"
)

// TestMain lets the test binary stand in for cmd/bench when the harness
// re-executes itself as `fixtures`, `signer` or `serve`.
func TestMain(m *testing.M) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	code, ok := Helper(ctx, os.Args[1:], os.Stderr)
	stop()
	if ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestSmoke runs the whole harness with tiny counts and checks the shape of
// what it wrote, never a timing.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the servers and starts processes")
	}
	if err := procstat.Supported(); err != nil {
		t.Skip(err)
	}
	out := t.TempDir()
	o := DefaultOptions()
	o.Report = filepath.Join(out, "BENCHMARKS.md")
	o.Results = filepath.Join(out, "results")
	o.Notes = ""
	o.Rounds, o.BlobRounds = 1, 1
	o.Concurrency = []int{1, 4}
	o.CellRequests, o.CellTime, o.Warmup = 20, 10*time.Second, 2
	o.BlobSize = 1 << 20
	o.Streams, o.StreamBytes = 8, 64<<10
	o.MicroBenchtime = "1x"
	o.Accounts = 4
	o.ProfileSeconds = 1
	o.UsageTime, o.UsageRate, o.UsageConcurrency = 2*time.Second, 500, 4
	var log strings.Builder
	o.Log = &log
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, log.String())
	}

	defer func() {
		if t.Failed() {
			t.Logf("harness log:\n%s", log.String())
		}
	}()
	md, err := os.ReadFile(o.Report)
	if err != nil {
		t.Fatal(err)
	}
	if i, j := strings.Index(string(md), "## Targets"), strings.Index(string(md), "## How it is measured"); i < 0 || j < i {
		t.Error("the targets table is not the report's first section")
	}
	for _, want := range []string{"# Benchmarks", "## Targets", "## 1. Manifest GET", "## 2. Token issuance",
		"### Licence API calls", "## 3. Blob streaming", "## 4. Go micro-benchmarks", "| 4 | direct (baseline) |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	data, err := os.ReadFile(filepath.Join(o.Results, "latest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw report.Report
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatalf("latest.json: %v", err)
	}
	if _, err := os.Stat(filepath.Join(o.Results, "latest.csv")); err != nil {
		t.Error(err)
	}

	contenders := func(list []*report.Series) map[string]bool {
		m := map[string]bool{}
		for _, s := range list {
			if len(s.Rounds) != 1 || s.Summary.Requests == 0 {
				t.Errorf("%s %s c=%d: %d rounds, %d requests", s.Workload, s.Contender, s.Concurrency, len(s.Rounds), s.Summary.Requests)
			}
			m[s.Contender] = true
		}
		return m
	}
	wantAll := func(workload string, got map[string]bool, names ...string) {
		for _, n := range names {
			if !got[n] {
				t.Errorf("%s: no results for %q (have %v)", workload, n, got)
			}
		}
	}
	gateway := !strings.Contains(strings.Join(rep.Notes, "\n"), "gateway was not built")
	wantAll("manifest", contenders(rep.Manifest), "direct")
	wantAll("pull", contenders(rep.Pull), "direct")
	wantAll("token", contenders(rep.Token), "ES256 bare", "RS256 bare", "ES256 file", "ES256 sql warm", "ES256 sql cold", "ES256 http warm", "ES256 http cold")
	if gateway {
		wantAll("token", contenders(rep.Token), "ES256 file x5c", "ES256 file info", report.TokenShipped)
		wantAll("pull", contenders(rep.Pull), report.ContenderGatewayShipped, report.ContenderGatewayNoCaches)
		for _, want := range []string{"## Headline: docker pull", "| docker pull mix, gateway (shipped config) vs direct, c=4 | ≥ 0.90× |",
			"| 4 | ES256 file shipped |", "| 4 | gateway (shipped config) |", "| 4 | gateway (no caches) |"} {
			if !strings.Contains(string(md), want) {
				t.Errorf("report lacks %q", want)
			}
		}
		// Every pull was whole (the harness checks it) and counted.
		counted := map[string]bool{}
		for _, c := range rep.PullCounts {
			counted[c.Contender] = c.Pulls > 0 && c.Redirects == 4*c.Pulls // the config and 3 layers
		}
		if !counted[report.ContenderGatewayShipped] || !counted[report.ContenderGatewayNoCaches] || !counted[report.ContenderDirect] {
			t.Errorf("pull counts %+v", rep.PullCounts)
		}
	}
	if nginx.HasLua() {
		wantAll("pull", contenders(rep.Pull), report.ContenderNginxLua, report.ContenderNginx)
		if gateway && !strings.Contains(string(md), "| docker pull mix, gateway (shipped config) vs nginx+lua (article), c=4 | > 1.00× |") {
			t.Error("report lacks the pull target against the article's nginx + Lua")
		}
	}
	wantAll("blob", contenders(rep.Blob), "direct")
	if gateway {
		wantAll("manifest", contenders(rep.Manifest), "gateway", "gateway+cache")
		for _, g := range []string{report.GroupTag, report.GroupDigest} {
			if len(report.InGroup(rep.Manifest, g)) == 0 {
				t.Errorf("manifest: no %q series", g)
			}
		}
		for _, want := range []string{"### By tag", "### By digest", "| manifest GET by tag, gateway vs direct, c=4 | ≥ 0.85× | pass-through ", " · cached (tag_ttl 10s) "} {
			if !strings.Contains(string(md), want) {
				t.Errorf("report lacks %q", want)
			}
		}
		wantAll("blob", contenders(rep.Blob), "gateway (proxy_blobs)")
		if rep.RSS == nil || rep.RSS.Peak.HWM == 0 || rep.RSS.Started != o.Streams || rep.RSS.Errors != 0 {
			t.Errorf("RSS: %+v", rep.RSS)
		}
	} else {
		t.Log("cmd/gateway does not build yet: its contenders were skipped")
	}
	if nginx.Version() != "" {
		wantAll("manifest", contenders(rep.Manifest), "nginx")
	}
	// The usage workload: recording off and on side by side, and every
	// pull and check the load generator counted stored, nothing dropped.
	if strings.Contains(strings.Join(rep.Notes, "\n"), "usage: skipped") {
		t.Log("PostgreSQL is not installed: the usage workload was skipped")
	} else if gateway {
		wantAll("usage", contenders(rep.Usage), report.ContenderUsageOff, report.ContenderUsageOn)
		if u := rep.UsageCount; u == nil || u.Pulls == 0 || u.Checks == 0 || !u.Drained || u.Lost() != 0 || u.Dropped != 0 || u.Sent != float64(u.Rows) {
			t.Errorf("usage count %+v", u)
		}
		for _, want := range []string{"## 5. Usage recording under load", "| pull rate with usage recording vs without, c=4 | ≥ 0.90× |",
			"| usage events lost while the database is up (PostgreSQL ", " | 0 | 0 (", "| 4 | gateway, recording on |"} {
			if !strings.Contains(string(md), want) {
				t.Errorf("report lacks %q", want)
			}
		}
	}
	if l := rep.Licence; l == nil || len(l.Warm) == 0 || l.Herd == nil || l.ColdCalls == 0 {
		t.Errorf("licence report: %+v", l)
	}
	if gateway && len(rep.Profiles) != 5 {
		t.Errorf("%d profiles", len(rep.Profiles))
	}
	for _, p := range rep.Profiles {
		if p.Top == "" {
			t.Errorf("profile %s: empty", p.Name)
		}
	}
	if len(rep.Micro) == 0 || len(rep.Targets) == 0 {
		t.Errorf("%d micro-benchmarks, %d targets", len(rep.Micro), len(rep.Targets))
	}
}

func TestOptionsValidate(t *testing.T) {
	o := DefaultOptions()
	if err := o.validate(); err != nil {
		t.Fatalf("default options: %v", err)
	}
	o.Rounds, o.Concurrency, o.BlobSize, o.Workloads = 0, []int{0}, 1, []string{WorkloadManifest, "nope"}
	o.UsageRate = -1
	err := o.validate()
	for _, want := range []string{"rounds must be at least 1", "concurrency levels", "blob size", `unknown workload "nope"`, "usage rate not negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate = %v, want %q among the problems", err, want)
		}
	}
	if !o.wants(WorkloadManifest) || o.wants(WorkloadToken) {
		t.Errorf("wants: %v", o.Workloads)
	}
}

func TestHelperArgs(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"fixtures", "-dir", "x"}, 2, "usage: bench fixtures"},
		{[]string{"signer"}, 2, "usage: bench signer"},
		{[]string{"signer", "-key", filepath.Join(t.TempDir(), "missing.pem")}, 1, "bench signer: "},
		{[]string{"serve"}, 2, "usage: bench serve"},
		{[]string{"serve", "gateway"}, 2, "usage: bench serve"},
		{[]string{"serve", "nothing", "-config", "x.yaml"}, 1, `unknown server "nothing"`},
	} {
		var stderr strings.Builder
		code, ok := Helper(ctx, tc.args, &stderr)
		if !ok || code != tc.code || !strings.Contains(stderr.String(), tc.msg) {
			t.Errorf("Helper(%q) = %d, %v, %q; want %d and %q", tc.args, code, ok, stderr.String(), tc.code, tc.msg)
		}
	}
	for _, args := range [][]string{nil, {"-test.run", "X"}, {"manifest"}} {
		if _, ok := Helper(ctx, args, io.Discard); ok {
			t.Errorf("Helper(%q) ran a helper", args)
		}
	}
}
