package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acme/registry-gateway/bench/report"
)

// -render-only rewrites the report from latest.json and runs nothing.
func TestRenderOnly(t *testing.T) {
	dir := t.TempDir()
	results := filepath.Join(dir, "results")
	out := filepath.Join(dir, "BENCHMARKS.md")
	r := &report.Report{Options: map[string]any{"rounds": 3}}
	if err := report.Save(r, report.Params{}, report.Files{Results: results}); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	if code := run(context.Background(), []string{"-render-only", "-results", results, "-report", out}, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	md, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(md), "# Benchmarks\n") || !strings.Contains(string(md), "(bench/notes/README.md)") {
		t.Errorf("report:\n%s", md)
	}
	if code := run(context.Background(), []string{"-render-only", "-results", filepath.Join(dir, "none"), "-report", out}, &stderr); code != 1 {
		t.Errorf("without latest.json: exit %d, want 1", code)
	}
}
