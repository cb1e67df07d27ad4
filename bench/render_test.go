package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/bench/report"
)

// writeLatest writes latest.json of a run made with o under dir, as Run
// would (the options go through newReport), and returns its path.
func writeLatest(t *testing.T, dir string, o Options) string {
	t.Helper()
	r := newReport(o)
	r.Started = time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	r.Duration = 5 * time.Minute
	r.Manifest = []*report.Series{
		{Workload: "manifest", Group: report.GroupTag, Contender: "direct", Baseline: true, Concurrency: 16, Summary: report.Summary{RPS: 10_000}},
		{Workload: "manifest", Group: report.GroupTag, Contender: report.ContenderGateway, Concurrency: 16, Summary: report.Summary{RPS: 6000}},
	}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "latest.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Render writes the report from latest.json alone, stating the run's
// settings (not the defaults), and leaves the raw results alone.
func TestRender(t *testing.T) {
	root := t.TempDir()
	run := DefaultOptions()
	run.Rounds, run.CellTime, run.CellRequests, run.Warmup = 7, 3*time.Second, 12345, 9
	jsonPath := writeLatest(t, filepath.Join(root, "res"), run)
	before, _ := os.ReadFile(jsonPath)

	o := DefaultOptions()
	o.Root, o.Report, o.Results = root, "OUT.md", "res"
	if err := Render(o); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "OUT.md"))
	if err != nil {
		t.Fatal(err)
	}
	md := string(data)
	for _, want := range []string{
		"on 2026-01-02 03:04 UTC in 5m0s", "## Targets\n", "## 1. Manifest GET\n",
		"in each of 7 rounds", "A cell is 12,345 requests or 3s", "after 9 unmeasured warm-up requests",
		"[bench/notes/](bench/notes/README.md)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if after, _ := os.ReadFile(jsonPath); string(after) != string(before) {
		t.Error("Render changed latest.json")
	}
	if _, err := os.Stat(filepath.Join(root, "res", "latest.csv")); !os.IsNotExist(err) {
		t.Errorf("Render wrote latest.csv: %v", err)
	}
}

func TestRenderErrors(t *testing.T) {
	root := t.TempDir()
	o := DefaultOptions()
	o.Root, o.Report, o.Results = root, "OUT.md", "res"
	if err := Render(o); err == nil {
		t.Error("no latest.json: no error")
	}
	writeLatest(t, filepath.Join(root, "res"), DefaultOptions())
	o.Report = ""
	if err := Render(o); err == nil {
		t.Error("no report path: no error")
	}
	bad := DefaultOptions()
	r := newReport(bad)
	r.Options["cell_time"] = "soon"
	data, _ := json.Marshal(r)
	if err := os.WriteFile(filepath.Join(root, "res", "latest.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	o.Report = "OUT.md"
	if err := Render(o); err == nil || !strings.Contains(err.Error(), "cell_time") {
		t.Errorf("bad cell_time: %v", err)
	}
}
