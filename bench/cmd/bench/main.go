// Command bench is `make bench`: it runs the benchmarks of the harness (package bench, this module)
// and rewrites BENCHMARKS.md; with -render-only it rewrites BENCHMARKS.md
// from bench/results/latest.json and runs nothing. `bench fixtures`, `bench signer` and
// `bench serve` are the helper processes the harness starts itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/acme/registry-gateway/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	if code, ok := bench.Helper(ctx, args, stderr); ok {
		return code
	}
	o := bench.DefaultOptions()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Report, "report", o.Report, "Markdown report to write, relative to the module root (empty: none)")
	fs.StringVar(&o.Results, "results", o.Results, "directory of the raw results, relative to the module root")
	fs.StringVar(&o.Notes, "notes", o.Notes, "index of the hand-written notes (profiles, fixes), linked from the report (empty: no link)")
	renderOnly := fs.Bool("render-only", false, "run nothing: rewrite the report from the raw results of the last run (<results>/latest.json)")
	workloads := fs.String("workloads", strings.Join(o.Workloads, ","), "comma-separated workloads: "+strings.Join(bench.AllWorkloads, ","))
	fs.IntVar(&o.Rounds, "rounds", o.Rounds, "interleaved rounds of the request workloads")
	fs.IntVar(&o.BlobRounds, "blob-rounds", o.BlobRounds, "rounds of the blob transfer")
	conc := fs.String("concurrency", joinInts(o.Concurrency), "comma-separated concurrency levels")
	fs.IntVar(&o.CellRequests, "requests", o.CellRequests, "most requests of one cell (contender × concurrency × round)")
	fs.DurationVar(&o.CellTime, "cell-time", o.CellTime, "longest time of one cell")
	fs.IntVar(&o.Warmup, "warmup", o.Warmup, "unmeasured requests per worker before each cell")
	blobMiB := fs.Int64("blob-mib", o.BlobSize>>20, "size of the streamed blob in MiB")
	fs.IntVar(&o.Streams, "streams", o.Streams, "concurrent blob streams of the RSS test")
	streamMiB := fs.Int64("stream-mib", o.StreamBytes>>20, "MiB each stream of the RSS test reads once all flow")
	fs.StringVar(&o.MicroBenchtime, "benchtime", o.MicroBenchtime, "go test -benchtime of the micro-benchmarks")
	fs.IntVar(&o.ProfileSeconds, "profile-seconds", o.ProfileSeconds, "length of each CPU profile of the profile pass")
	fs.IntVar(&o.Accounts, "accounts", o.Accounts, "accounts of the warm token workloads")
	fs.DurationVar(&o.UsageTime, "usage-time", o.UsageTime, "measured time of each configuration of the usage workload, over all rounds")
	fs.IntVar(&o.UsageRate, "usage-rate", o.UsageRate, "paced manifest requests/s of the usage workload (0: closed loop)")
	fs.IntVar(&o.UsageConcurrency, "usage-concurrency", o.UsageConcurrency, "workers of the usage workload")
	gatewayEnv := fs.String("gateway-env", "", "comma-separated VAR=value added to the gateway processes' environment (e.g. GOMEMLIMIT=48MiB)")
	fs.BoolVar(&o.KeepTemp, "keep", false, "keep the temporary directory (configs, server logs)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	o.Workloads = strings.Split(*workloads, ",")
	if *gatewayEnv != "" {
		o.GatewayEnv = strings.Split(*gatewayEnv, ",")
	}
	o.BlobSize, o.StreamBytes = *blobMiB<<20, *streamMiB<<20
	var err error
	if o.Concurrency, err = parseInts(*conc); err != nil {
		fmt.Fprintf(stderr, "bench: -concurrency: %v\n", err)
		return 2
	}
	if *renderOnly {
		if err := bench.Render(o); err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return 1
		}
		return 0
	}
	o.Log = stderr
	if _, err := bench.Run(ctx, o); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}
