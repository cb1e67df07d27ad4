package report

import (
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/bench/loadgen"
)

func usageSeries(contender string, rps ...float64) *Series {
	s := &Series{Workload: "usage", Contender: contender, Baseline: contender == ContenderUsageOff, Concurrency: 32}
	for _, r := range rps {
		s.Rounds = append(s.Rounds, loadgen.Result{Requests: 100, RPS: r})
	}
	s.Summarize()
	return s
}

// The usage targets: recording on pulls at least 0.9× as fast as off, and
// every event counted by the load generator is a row, nothing dropped.
func TestUsageTargets(t *testing.T) {
	count := UsageCount{Database: "PostgreSQL 15.18", Rate: 1000, Concurrency: 32, CellTime: 6 * time.Second, Pulls: 15_000, Checks: 15_010, Rows: 30_010, Drained: true, Sent: 30_010}
	for _, tc := range []struct {
		name    string
		on      []float64
		count   UsageCount
		rate    string
		rateMet bool
		lost    string
		lostMet bool
	}{
		{"kept up", []float64{990, 1000}, count, "0.99× (0.99–1.00) (995 vs 1000 requests/s)", true,
			"0 (15,000 pulls + 15,010 checks counted, 30,010 rows; gateway_usage_dropped_total 0)", true},
		{"slow and lossy", []float64{850, 890}, func() UsageCount { c := count; c.Rows, c.Dropped = 29_000, 1010; return c }(),
			"0.87× (0.85–0.89) (870 vs 1000 requests/s)", false,
			"1010 (15,000 pulls + 15,010 checks counted, 29,000 rows; gateway_usage_dropped_total 1010)", false},
		{"not drained", []float64{1000, 1000}, func() UsageCount { c := count; c.Drained = false; return c }(),
			"1.00× (1.00–1.00) (1000 vs 1000 requests/s)", true,
			"0 (15,000 pulls + 15,010 checks counted, 30,010 rows; gateway_usage_dropped_total 0); the queue did not drain", false},
		// Dropped events the store never saw are lost, even when the
		// counts agree.
		{"dropped", []float64{1000, 1000}, func() UsageCount { c := count; c.Dropped = 3; return c }(),
			"1.00× (1.00–1.00) (1000 vs 1000 requests/s)", true,
			"0 (15,000 pulls + 15,010 checks counted, 30,010 rows; gateway_usage_dropped_total 3)", false},
	} {
		c := tc.count
		r := &Report{Usage: []*Series{usageSeries(ContenderUsageOff, 1000, 1000), usageSeries(ContenderUsageOn, tc.on...)}, UsageCount: &c}
		ts := usageTargets(r)
		if len(ts) != 2 {
			t.Fatalf("%s: %d targets: %+v", tc.name, len(ts), ts)
		}
		if ts[0].Name != "pull rate with usage recording vs without, c=32" || ts[0].Want != "≥ 0.90×" || ts[0].Got != tc.rate || ts[0].Met != tc.rateMet {
			t.Errorf("%s: rate target %+v, want %q met %v", tc.name, ts[0], tc.rate, tc.rateMet)
		}
		if ts[1].Name != "usage events lost while the database is up (PostgreSQL 15.18)" || ts[1].Want != "0" || ts[1].Got != tc.lost || ts[1].Met != tc.lostMet {
			t.Errorf("%s: lost target %+v, want %q met %v", tc.name, ts[1], tc.lost, tc.lostMet)
		}
	}
	if ts := usageTargets(&Report{}); len(ts) != 0 {
		t.Errorf("usage targets without the workload: %+v", ts)
	}

	c := count
	r := &Report{Usage: []*Series{usageSeries(ContenderUsageOff, 1000), usageSeries(ContenderUsageOn, 990)}, UsageCount: &c}
	r.Targets = Evaluate(r, Params{Rounds: 5, Accounts: 64})
	md := string(Markdown(r, Params{Rounds: 5, Accounts: 64}))
	for _, want := range []string{"| pull rate with usage recording vs without, c=32 | ≥ 0.90× |", "| usage events lost while the database is up (PostgreSQL 15.18) | 0 |",
		"## 5. Usage recording under load", "32 workers paced at 1000 requests/s, 6s per cell", "interleaved in 5 rounds (30s each in all)",
		"| 32 | gateway, recording off (baseline) |", "| 32 | gateway, recording on |", "**0 lost**"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if csv := string(CSV(r)); !strings.Contains(csv, "usage,,gateway, recording on,32,1,") {
		t.Errorf("CSV lacks the usage cells:\n%s", csv)
	}
}
