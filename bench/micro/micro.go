// Package micro runs the Go micro-benchmarks (the *_bench_test.go files of
// chosen packages) with `go test -bench -benchmem` and parses their output.
package micro

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Packages are the packages whose *_bench_test.go files `make bench` runs.
var Packages = []string{"./pkg/auth", "./internal/gateway", "./internal/tokenserver/console"}

// Result is one line of `go test -bench` output.
type Result struct {
	Package   string  `json:"package"`
	Name      string  `json:"name"`
	N         int64   `json:"n"`
	NsPerOp   float64 `json:"ns_per_op"`
	BPerOp    float64 `json:"bytes_per_op"`
	AllocsOp  float64 `json:"allocs_per_op"`
	Unchanged bool    `json:"-"`
}

// WithBenchmarks are those of pkgs (relative to the module at root) that
// have a *_bench_test.go file.
func WithBenchmarks(root string, pkgs []string) []string {
	var out []string
	for _, p := range pkgs {
		if m, _ := filepath.Glob(filepath.Join(root, p, "*_bench_test.go")); len(m) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// Run runs the benchmarks of pkgs in the module at root for benchtime each
// (go test's -benchtime), for at most five minutes, and returns go test's
// output, also when it fails.
func Run(ctx context.Context, root string, pkgs []string, benchtime string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	args := append([]string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-benchtime", benchtime}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("go test -bench: %w\n%s", err, out)
	}
	return out, nil
}

// benchLine is a result line; metrics a benchmark reports itself
// (b.ReportMetric: cpu-ns/op, tokens/s) come between ns/op and B/op.
var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+([\d.]+) ns/op(?:\s+[\d.e+-]+ [^\s]+?)*?(?:\s+([\d.]+) B/op)?(?:\s+([\d.]+) allocs/op)?\s*$`)

// Parse reads `go test -bench -benchmem` output.
func Parse(out string) []Result {
	var res []Result
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
		r := Result{Package: pkg, Name: strings.TrimPrefix(m[1], "Benchmark")}
		r.N, _ = strconv.ParseInt(m[2], 10, 64)
		r.NsPerOp, _ = strconv.ParseFloat(m[3], 64)
		r.BPerOp, _ = strconv.ParseFloat(m[4], 64)
		r.AllocsOp, _ = strconv.ParseFloat(m[5], 64)
		res = append(res, r)
	}
	return res
}
