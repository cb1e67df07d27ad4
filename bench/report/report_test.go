package report

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/bench/loadgen"
	"github.com/acme/registry-gateway/bench/procstat"
)

var testParams = Params{
	Notes: "bench/notes/README.md", Results: "bench/results", Rounds: 3, BlobRounds: 2, CellRequests: 50_000,
	CellTime: time.Second, Warmup: 20, Accounts: 64, BlobSize: 256 << 20, MicroBenchtime: "300ms", ProfileSeconds: 5,
	CacheOff: "{disabled: true}", CacheOn: "{tag_ttl: 10s}", CacheTagTTL: "10s",
}

// The manifest targets show the pass-through and the cached gateway with a
// verdict each; the row is met only when both are.
func TestManifestTargets(t *testing.T) {
	series := func(group, contender string, rps float64) *Series {
		return &Series{Workload: "manifest", Group: group, Contender: contender, Baseline: contender == "direct",
			Concurrency: 16, Summary: Summary{RPS: rps}}
	}
	r := &Report{Manifest: []*Series{
		series(GroupTag, "direct", 10_000), series(GroupTag, ContenderGateway, 6000),
		series(GroupTag, ContenderGatewayCache, 20_000), series(GroupTag, "nginx", 8000),
		series(GroupDigest, "direct", 10_000), series(GroupDigest, ContenderGatewayCache, 9000),
	}}
	got := map[string]Target{}
	for _, tg := range Evaluate(r, testParams) {
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

func TestMedian(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
	if m := median([]time.Duration{}); m != 0 {
		t.Errorf("median of none = %v", m)
	}
}

func rounds(rps ...float64) []loadgen.Result {
	var out []loadgen.Result
	for i, r := range rps {
		out = append(out, loadgen.Result{Requests: 100, Errors: i, RPS: r, MBps: r / 10, P50: time.Duration(r) * time.Microsecond,
			P99: 2 * time.Duration(r) * time.Microsecond, ServerCPU: time.Duration(r), UpstreamCPU: 1})
	}
	return out
}

func TestSummarizeAndRatio(t *testing.T) {
	base := &Series{Contender: "direct", Baseline: true, Concurrency: 1, Rounds: rounds(100, 300, 200)}
	s := &Series{Contender: "gateway", Concurrency: 1, Rounds: rounds(50, 60, 200)}
	base.Summarize()
	s.Summarize()
	want := Summary{RPS: 200, RPSMin: 100, RPSMax: 300, MBps: 20, MBpsMin: 10, MBpsMax: 30, P50: 200 * time.Microsecond,
		P99: 400 * time.Microsecond, Requests: 300, Errors: 3, ServerCPU: 200, UpstreamCPU: 1}
	if base.Summary != want {
		t.Errorf("summary %+v, want %+v", base.Summary, want)
	}
	// Median of s is 60: 60/200; the per-round ratios are 0.5, 0.2, 1.
	med, lo, hi := ratio(s, base, false)
	if med != 0.3 || lo != 0.2 || hi != 1 {
		t.Errorf("ratio = %v (%v–%v)", med, lo, hi)
	}
	if med, _, _ := ratio(s, base, true); med != 0.3 {
		t.Errorf("MB/s ratio = %v", med)
	}
	if med, _, _ := ratio(s, nil, false); !math.IsNaN(med) {
		t.Errorf("ratio without baseline = %v", med)
	}
	if got := fmtRatio(ratio(s, base, false)); got != "0.30× (0.20–1.00)" {
		t.Errorf("fmtRatio = %q", got)
	}
	empty := &Series{}
	empty.Summarize()
	if empty.Summary != (Summary{}) {
		t.Errorf("empty summary %+v", empty.Summary)
	}
}

func TestFormats(t *testing.T) {
	for in, want := range map[float64]string{1234567: "1,234,567", 12345: "12,345", 1234: "1234", 123.4: "123", 12.34: "12.3", 1.234: "1.23"} {
		if got := fmtNum(in); got != want {
			t.Errorf("fmtNum(%v) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[time.Duration]string{0: "–", 1234 * time.Microsecond: "1.23 ms", 45 * time.Millisecond: "45.0 ms", 2 * time.Second: "2.00 s"} {
		if got := fmtDur(in); got != want {
			t.Errorf("fmtDur(%v) = %q, want %q", in, got, want)
		}
	}
}

// testReport has a series of every kind, two rounds each.
func testReport() *Report {
	mk := func(workload, group, contender string, baseline bool, c int, rps ...float64) *Series {
		s := &Series{Workload: workload, Group: group, Contender: contender, Baseline: baseline, Concurrency: c, Rounds: rounds(rps...)}
		s.Summarize()
		return s
	}
	return &Report{
		Started: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), Duration: 5 * time.Minute,
		Env: Env{GoVersion: "go1.26", OS: "linux/amd64", CPU: "Test CPU", CPUs: 2, Memory: "8 GiB"},
		Manifest: []*Series{
			mk("manifest", GroupTag, ContenderDirect, true, 16, 10_000, 12_000),
			mk("manifest", GroupTag, ContenderGateway, false, 16, 6000, 6000),
			mk("manifest", GroupTag, ContenderGatewayCache, false, 16, 30_000, 30_000),
		},
		Token: []*Series{
			mk("token", "ES256", "ES256 bare", true, 16, 20_000, 20_000),
			mk("token", "ES256", "ES256 file", false, 16, 12_000, 12_000),
		},
		Blob: []*Series{
			mk("blob", "", ContenderDirect, true, 1, 1000, 1000),
			mk("blob", "", ContenderGatewayBlobs, false, 1, 700, 700),
		},
		Licence: &LicenceReport{CacheTTL: time.Minute, Warm: []LicenceWarm{{Server: "tokenserver-es256-http", Accounts: 4, Requests: 1000, Calls: 4, MaxPerAcct: 1, Elapsed: 30 * time.Second, AllowedPerA: 1}},
			Herd: &LicenceHerd{Accounts: 16, Concurrency: 64, Requests: 256, Calls: 17, MaxPerAcct: 2}},
		RSS:          &RSSReport{Streams: 10, Started: 10, StreamBytes: 1 << 20, Peak: procstat.Memory{RSS: 30 << 20, HWM: 40 << 20}, Idle: procstat.Memory{RSS: 10 << 20, HWM: 12 << 20}},
		ManifestInfo: "`GET /v2/stable/app/manifests/latest`",
		Notes:        []string{"something happened"},
	}
}

func TestEvaluate(t *testing.T) {
	got := map[string]Target{}
	for _, tg := range Evaluate(testReport(), testParams) {
		got[tg.Name] = tg
	}
	for name, met := range map[string]bool{
		"manifest GET by tag, gateway vs direct, c=16":          false,
		"256 MiB blob, gateway (proxy_blobs) vs direct":         false,
		"tokens/s, ES256 file, c=16":                            true,
		"licence API calls per account, tokenserver-es256-http": true,
		"licence API calls, cold cache under load (herd)":       false,
		"gateway peak RSS, 10 concurrent blob streams":          true,
	} {
		if tg, ok := got[name]; !ok || tg.Met != met {
			t.Errorf("%s: %+v (present %v), want met %v", name, tg, ok, met)
		}
	}
	if g := got["256 MiB blob, gateway (proxy_blobs) vs direct"].Got; g != "0.70× (70 vs 100 MB/s)" {
		t.Errorf("blob target: %q", g)
	}
}

func TestMarkdown(t *testing.T) {
	r := testReport()
	r.Targets = Evaluate(r, testParams)
	md := string(Markdown(r, testParams))
	for _, want := range []string{
		"# Benchmarks\n", "on 2026-01-02 03:04 UTC in 5m0s", "Machine: Test CPU, 2 cores, 8 GiB RAM, linux/amd64, go1.26.\n",
		"## Targets\n", "| manifest GET by tag, gateway vs direct, c=16 | ≥ 0.85× | pass-through 0.55× · cached (tag_ttl 10s) 2.73× | pass-through: **missed** · cached (tag_ttl 10s): met |",
		"## 1. Manifest GET\n", "### By tag\n", "`manifest_cache: {disabled: true}`", "| 16 | direct (baseline) | 11,000 (10,000–12,000) [1 errors] | 11.0 ms | 22.0 ms | – | 11 + 0 |",
		"| 16 | gateway | 6000 (6000–6000) [1 errors] | 6.00 ms | 12.0 ms | 0.55× (0.50–0.60) | 6 + 0 |",
		"## 2. Token issuance\n", "### Licence API calls\n", "Herd: 16 fresh accounts asked by 64 workers at once",
		"## 3. Blob streaming\n", "One 256 MiB blob per transfer, one client, 2 rounds.", "| gateway (proxy_blobs) | 70.0 (70.0–70.0) |",
		"| **peak RSS (VmHWM)** | **40.0 MiB** |", "## Notes of this run\n\n- something happened\n",
		"dated notes: [bench/notes/](bench/notes/README.md).", "`cd bench && go run ./cmd/bench -render-only`",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(md, "%!") {
		t.Error("formatting error in the report")
	}
	for _, absent := range []string{"## 4. Go micro-benchmarks", "## CPU profiles of this run"} {
		if strings.Contains(md, absent) {
			t.Errorf("report has %q without results", absent)
		}
	}
}

func TestCSV(t *testing.T) {
	lines := strings.Split(strings.TrimSpace(string(CSV(testReport()))), "\n")
	if len(lines) != 1+7*2 {
		t.Fatalf("%d lines", len(lines))
	}
	if lines[0] != "workload,group,contender,concurrency,round,requests,errors,elapsed_s,rps,mbps,p50_ms,p99_ms,max_ms,server_cpu_us,upstream_cpu_us" {
		t.Errorf("header %q", lines[0])
	}
	if want := "manifest,by tag,gateway,16,2,100,1,0.0000,6000.0,600.0,6.0000,12.0000,0.0000,6.0,0.0"; lines[4] != want {
		t.Errorf("line 4 = %q, want %q", lines[4], want)
	}
}

// Without a notes index the report names none.
func TestMarkdownWithoutNotes(t *testing.T) {
	p := testParams
	p.Notes = ""
	if md := string(Markdown(testReport(), p)); strings.Contains(md, "notes/") {
		t.Errorf("report links notes it was not given:\n%s", md[:min(len(md), 600)])
	}
}

func TestSave(t *testing.T) {
	dir := t.TempDir()
	f := Files{Results: filepath.Join(dir, "results"), Report: filepath.Join(dir, "BENCHMARKS.md")}
	r := testReport()
	if err := Save(r, testParams, f); err != nil {
		t.Fatal(err)
	}
	if len(r.Targets) == 0 {
		t.Error("targets not evaluated")
	}
	var back Report
	data, err := os.ReadFile(filepath.Join(f.Results, "latest.json"))
	if err != nil || json.Unmarshal(data, &back) != nil || len(back.Manifest) != 3 || back.RSS.Peak.HWM != 40<<20 {
		t.Errorf("latest.json: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.Results, "latest.csv")); err != nil {
		t.Error(err)
	}
	if md, err := os.ReadFile(f.Report); err != nil || !strings.Contains(string(md), "(bench/notes/README.md)") {
		t.Errorf("report: %v", err)
	}
}

// Load reads back what Save wrote, and Render makes the same report from
// it as Save did, without touching the raw results.
func TestLoadRender(t *testing.T) {
	dir := t.TempDir()
	f := Files{Results: filepath.Join(dir, "results"), Report: filepath.Join(dir, "BENCHMARKS.md")}
	if err := Save(testReport(), testParams, f); err != nil {
		t.Fatal(err)
	}
	saved, err := os.ReadFile(f.Report)
	if err != nil {
		t.Fatal(err)
	}
	jsonPath := filepath.Join(f.Results, "latest.json")
	before, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Load(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	r.Targets = nil // Render evaluates them again
	again := filepath.Join(dir, "again.md")
	if err := Render(r, testParams, again); err != nil {
		t.Fatal(err)
	}
	rendered, err := os.ReadFile(again)
	if err != nil {
		t.Fatal(err)
	}
	if string(rendered) != string(saved) {
		t.Errorf("rendered from latest.json:\n%s\nsaved by the run:\n%s", rendered, saved)
	}
	if after, _ := os.ReadFile(jsonPath); string(after) != string(before) {
		t.Error("Render changed latest.json")
	}
	if _, err := Load(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("Load of a missing file: no error")
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(filepath.Join(dir, "bad.json")); err == nil {
		t.Error("Load of broken JSON: no error")
	}
}
