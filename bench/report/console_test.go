package report

import (
	"strings"
	"testing"

	"github.com/acme/registry-gateway/bench/micro"
)

// The console target: every page of BenchmarkPages under 200 ms, the
// slowest named, every page over listed; the other console benchmarks
// (at scale) and other packages do not count.
func TestConsoleTargets(t *testing.T) {
	page := func(name string, ns float64) micro.Result {
		return micro.Result{Package: ConsolePackage, Name: "Pages/" + name, N: 10, NsPerOp: ns}
	}
	others := []micro.Result{
		{Package: ConsolePackage, Name: "DashboardAtScale/vendor-dashboard", NsPerOp: 900e6},
		{Package: "internal/gateway", Name: "Pages/x", NsPerOp: 900e6},
	}
	for _, tc := range []struct {
		name  string
		pages []micro.Result
		got   string
		met   bool
	}{
		{"all fast", []micro.Result{page("sign-in", 200e3), page("vendor-dashboard", 64.2e6), page("customer-home", 1.9e6)},
			"slowest of 3 pages: vendor-dashboard 64.2 ms", true},
		{"two slow", []micro.Result{page("sign-in", 200e3), page("vendor-dashboard", 390e6), page("vendor-account", 200e6)},
			"slowest of 3 pages: vendor-dashboard 390.0 ms; over: vendor-dashboard 390.0 ms, vendor-account 200.0 ms", false},
	} {
		r := &Report{Micro: append(append([]micro.Result{}, others...), tc.pages...)}
		ts := consoleTargets(r)
		if len(ts) != 1 {
			t.Fatalf("%s: %d targets: %+v", tc.name, len(ts), ts)
		}
		if ts[0].Want != "< 200 ms" || ts[0].Got != tc.got || ts[0].Met != tc.met || !strings.Contains(ts[0].Name, "every console page, demo data") {
			t.Errorf("%s: %+v, want %q met %v", tc.name, ts[0], tc.got, tc.met)
		}
	}
	if ts := consoleTargets(&Report{Micro: others}); len(ts) != 0 {
		t.Errorf("a target without the console's pages: %+v", ts)
	}

	r := &Report{Micro: []micro.Result{page("vendor-dashboard", 64.2e6)}}
	r.Targets = Evaluate(r, testParams)
	md := string(Markdown(r, testParams))
	for _, want := range []string{"| every console page, demo data (internal/tokenserver/console BenchmarkPages) | < 200 ms | slowest of 1 pages: vendor-dashboard 64.2 ms | met |",
		"| internal/tokenserver/console | Pages/vendor-dashboard | 64,200,000 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
