package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for cmd/bench when the harness
// re-executes itself as `fixtures` or `signer`.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		ctx := context.Background()
		var err error
		switch os.Args[1] {
		case "fixtures":
			var size int64
			if size, err = strconv.ParseInt(flagValue("-blob-size"), 10, 64); err == nil {
				err = ServeFixtures(ctx, flagValue("-dir"), size, flagValue("-addrs"))
			}
		case "signer":
			err = ServeSigner(ctx, flagValue("-listen"), flagValue("-key"))
		case "serve":
			err = ServeProfiled(ctx, os.Args[2], flagValue("-config"), flagValue("-pprof"), os.Stderr)
		default:
			os.Exit(m.Run())
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func flagValue(name string) string {
	for i, a := range os.Args {
		if a == name && i+1 < len(os.Args) {
			return os.Args[i+1]
		}
	}
	return ""
}

// TestSmoke runs the whole harness with tiny counts and checks the shape of
// what it wrote, never a timing.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the servers and starts processes")
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
	var raw Report
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatalf("latest.json: %v", err)
	}
	if _, err := os.Stat(filepath.Join(o.Results, "latest.csv")); err != nil {
		t.Error(err)
	}

	contenders := func(list []*Series) map[string]bool {
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
	wantAll("token", contenders(rep.Token), "ES256 bare", "RS256 bare", "ES256 file", "ES256 sql warm", "ES256 sql cold", "ES256 http warm", "ES256 http cold")
	wantAll("blob", contenders(rep.Blob), "direct")
	if gateway {
		wantAll("manifest", contenders(rep.Manifest), "gateway", "gateway+cache")
		for _, g := range []string{GroupTag, GroupDigest} {
			if len(inGroup(rep.Manifest, g)) == 0 {
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
	if nginxVersion() != "" {
		wantAll("manifest", contenders(rep.Manifest), "nginx")
	}
	if l := rep.Licence; l == nil || len(l.Warm) == 0 || l.Herd == nil || l.ColdCalls == 0 {
		t.Errorf("licence report: %+v", l)
	}
	if gateway && len(rep.Profiles) != 4 {
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
