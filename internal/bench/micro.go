package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// MicroPackages are the packages whose *_bench_test.go files `make bench`
// runs.
var MicroPackages = []string{"./pkg/auth", "./internal/gateway"}

func (h *harness) runMicro(ctx context.Context) error {
	var pkgs []string
	for _, p := range MicroPackages {
		if m, _ := filepath.Glob(filepath.Join(h.opts.Root, p, "*_bench_test.go")); len(m) > 0 {
			pkgs = append(pkgs, p)
		}
	}
	if len(pkgs) == 0 {
		h.note("no micro-benchmarks found")
		return nil
	}
	t := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	args := append([]string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-benchtime", h.opts.MicroBenchtime}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = h.opts.Root
	out, err := cmd.CombinedOutput()
	if h.opts.Results != "" {
		dir := h.path(h.opts.Results)
		if mkErr := os.MkdirAll(dir, 0o755); mkErr == nil {
			_ = os.WriteFile(filepath.Join(dir, "micro.txt"), out, 0o644)
		}
	}
	if err != nil {
		return fmt.Errorf("go test -bench: %w\n%s", err, out)
	}
	h.report.Micro = parseBench(string(out))
	h.logf("micro-benchmarks: %d results in %s", len(h.report.Micro), time.Since(t).Round(100*time.Millisecond))
	return nil
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+([\d.]+) ns/op(?:\s+([\d.]+) B/op)?(?:\s+([\d.]+) allocs/op)?`)

// parseBench reads `go test -bench -benchmem` output.
func parseBench(out string) []MicroResult {
	var res []MicroResult
	pkg := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimPrefix(p, "github.com/acme/registry-gateway/")
			continue
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		r := MicroResult{Package: pkg, Name: strings.TrimPrefix(m[1], "Benchmark")}
		r.N, _ = strconv.ParseInt(m[2], 10, 64)
		r.NsPerOp, _ = strconv.ParseFloat(m[3], 64)
		r.BPerOp, _ = strconv.ParseFloat(m[4], 64)
		r.AllocsOp, _ = strconv.ParseFloat(m[5], 64)
		res = append(res, r)
	}
	return res
}
