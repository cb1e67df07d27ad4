package report

import (
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/bench/loadgen"
	"github.com/acme/registry-gateway/bench/pull"
)

func pullSeries(contender string, c int, rps float64, p50, p99 time.Duration, cpu time.Duration) *Series {
	s := &Series{Workload: "pull", Contender: contender, Baseline: contender == ContenderDirect, Concurrency: c,
		Rounds: []loadgen.Result{{Requests: 100, RPS: rps, P50: p50, P99: p99, ServerCPU: cpu}}}
	s.Summarize()
	return s
}

// The pull targets: the shipped gateway against the registry itself (≥ 0.9×)
// and against every contender that checks a licence (> 1×), per
// concurrency; plain nginx, which checks nothing, is no target.
func TestPullTargets(t *testing.T) {
	r := &Report{Pull: []*Series{
		pullSeries(ContenderDirect, 16, 1000, 10*time.Millisecond, 30*time.Millisecond, 0),
		pullSeries(ContenderGatewayShipped, 16, 920, 12*time.Millisecond, 40*time.Millisecond, 500*time.Microsecond),
		pullSeries(ContenderNginxLua, 16, 300, 50*time.Millisecond, 90*time.Millisecond, 900*time.Microsecond),
		pullSeries(ContenderNginx, 16, 990, 10*time.Millisecond, 31*time.Millisecond, 200*time.Microsecond),
		pullSeries(ContenderDirect, 64, 1000, 10*time.Millisecond, 30*time.Millisecond, 0),
		pullSeries(ContenderGatewayShipped, 64, 850, 12*time.Millisecond, 40*time.Millisecond, 500*time.Microsecond),
		pullSeries(ContenderNginxLua, 64, 900, 50*time.Millisecond, 90*time.Millisecond, 900*time.Microsecond),
	}}
	got := map[string]Target{}
	for _, tg := range pullTargets(r) {
		got[tg.Name] = tg
	}
	for name, want := range map[string]struct {
		got string
		met bool
	}{
		"docker pull mix, gateway (shipped config) vs direct, c=16":              {"0.92× (0.92–0.92) (920 vs 1000 pulls/s)", true},
		"docker pull mix, gateway (shipped config) vs nginx+lua (article), c=16": {"3.07× (3.07–3.07) (920 vs 300 pulls/s)", true},
		"docker pull mix, gateway (shipped config) vs direct, c=64":              {"0.85× (0.85–0.85) (850 vs 1000 pulls/s)", false},
		"docker pull mix, gateway (shipped config) vs nginx+lua (article), c=64": {"0.94× (0.94–0.94) (850 vs 900 pulls/s)", false},
	} {
		tg, ok := got[name]
		if !ok || tg.Got != want.got || tg.Met != want.met {
			t.Errorf("%s: %+v (present %v), want %q met %v", name, tg, ok, want.got, want.met)
		}
	}
	if len(got) != 4 {
		t.Errorf("%d targets: %v", len(got), got)
	}

	r.Targets = Evaluate(r, testParams)
	r.PullInfo = "`docker pull` of `stable/multi:latest`"
	r.PullCounts = []PullCount{{Contender: ContenderGatewayShipped, Stats: pull.Stats{Pulls: 10, Requests: 70, Redirects: 40, Bytes: 1000, Dials: 2}}}
	md := string(Markdown(r, testParams))
	for _, want := range []string{
		"## Headline: docker pull\n\n`docker pull` of `stable/multi:latest`",
		"| 16 | gateway (shipped config) | 920 (920–920) | 12.0 ms | 40.0 ms | +2.00 ms / +10.0 ms | 0.92× (0.92–0.92) | 500 + 0 |",
		"| 16 | nginx | 990 (990–990) | 10.0 ms | 31.0 ms | ±0 / +1.00 ms |",
		"| 16 | direct (baseline) | 1000 (1000–1000) | 10.0 ms | 30.0 ms | – | – | – + 0 |",
		"gateway (shipped config) 10 pulls, 7 requests and 4 redirects each, 2 connections opened;",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q\n%s", want, md)
		}
	}
	if i, j := strings.Index(md, "## Targets"), strings.Index(md, "## Headline"); i < 0 || j < i {
		t.Error("the targets table does not come first")
	}
}

// The CPU target compares the pass-through gateway's server CPU per manifest
// GET by tag with nginx's of the same run.
func TestCPUTargets(t *testing.T) {
	s := func(contender string, cpu time.Duration) *Series {
		x := &Series{Workload: "manifest", Group: GroupTag, Contender: contender, Concurrency: 16, Rounds: []loadgen.Result{{RPS: 1, ServerCPU: cpu}}}
		x.Summarize()
		return x
	}
	for _, tc := range []struct {
		gw, ngx time.Duration
		got     string
		met     bool
	}{
		{30 * time.Microsecond, 25 * time.Microsecond, "1.20× (30 vs 25 µs)", true},
		{64 * time.Microsecond, 25 * time.Microsecond, "2.56× (64 vs 25 µs)", false},
	} {
		ts := cpuTargets(&Report{Manifest: []*Series{s(ContenderGateway, tc.gw), s(ContenderNginx, tc.ngx), s(ContenderGatewayCache, time.Microsecond)}})
		if len(ts) != 1 || ts[0].Got != tc.got || ts[0].Met != tc.met || ts[0].Name != "pass-through server CPU per manifest GET, gateway vs nginx, c=16" {
			t.Errorf("cpuTargets = %+v, want %q met %v", ts, tc.got, tc.met)
		}
	}
	if ts := cpuTargets(&Report{Manifest: []*Series{s(ContenderGateway, time.Microsecond)}}); len(ts) != 0 {
		t.Errorf("a CPU target without nginx: %+v", ts)
	}
}
