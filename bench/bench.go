package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/acme/registry-gateway/bench/fixtures"
	"github.com/acme/registry-gateway/bench/nginx"
	"github.com/acme/registry-gateway/bench/proc"
	"github.com/acme/registry-gateway/bench/procstat"
	"github.com/acme/registry-gateway/bench/report"
)

// Options of a benchmark run. DefaultOptions are what `make bench` uses.
type Options struct {
	// Root is the repository (where the product's go.mod is); default:
	// found from the working directory upwards.
	Root string
	// Report is the Markdown report written (BENCHMARKS.md); Results the
	// directory of the raw numbers. Relative to Root. Empty Report: none.
	Report  string
	Results string
	// Notes is the index of the hand-written notes (relative to Root),
	// which the report links to: what the profiles showed and what was
	// changed. Empty: no link.
	Notes string
	// Self is this program, re-executed for the fixtures and the bare
	// signer; default os.Executable().
	Self string
	// Workloads to run; default all.
	Workloads []string

	// Rounds of the interleaved request workloads; BlobRounds of the blob
	// transfer.
	Rounds     int
	BlobRounds int
	// Concurrency levels of the request workloads.
	Concurrency []int
	// A cell stops after CellRequests requests or CellTime, whichever
	// comes first, after Warmup unmeasured requests per worker.
	CellRequests int
	CellTime     time.Duration
	Warmup       int
	// BlobSize is the size of the blob of the transfer test.
	BlobSize int64
	// Streams concurrent blob streams in the RSS test, each reading
	// StreamBytes once all have started.
	Streams     int
	StreamBytes int64
	// MicroBenchtime is go test's -benchtime for the micro-benchmarks.
	MicroBenchtime string
	// ProfileSeconds is the length of each CPU profile of the profile
	// pass (the streams profile takes twice as long).
	ProfileSeconds int
	// Accounts is the number of distinct accounts of the warm token
	// workloads and of the usage workload's pulls.
	Accounts int
	// UsageTime is how long the usage workload loads each configuration
	// in all (split over Rounds), at UsageRate requests/s (0: closed loop)
	// from UsageConcurrency workers.
	UsageTime        time.Duration
	UsageRate        int
	UsageConcurrency int
	// GatewayEnv is added to the environment of every gateway process
	// (e.g. GOMEMLIMIT=48MiB), to try runtime settings.
	GatewayEnv []string
	// KeepTemp keeps the temporary directory (configs, logs).
	KeepTemp bool
	// Log receives progress lines; default os.Stderr.
	Log io.Writer
}

// DefaultOptions take about five minutes on 2 cores.
func DefaultOptions() Options {
	return Options{
		Report:         "BENCHMARKS.md",
		Results:        "bench/results",
		Notes:          "bench/notes/README.md",
		Workloads:      AllWorkloads,
		Rounds:         5,
		BlobRounds:     5,
		Concurrency:    []int{1, 16, 64},
		CellRequests:   50_000,
		CellTime:       time.Second,
		Warmup:         20,
		BlobSize:       256 << 20,
		Streams:        1000,
		StreamBytes:    4 << 20,
		MicroBenchtime: "300ms",
		Accounts:       64,
		ProfileSeconds: 5,
		// The load of issue 19: 1,000 pulls/s for 30 s, recording on and
		// off alike.
		UsageTime:        30 * time.Second,
		UsageRate:        1000,
		UsageConcurrency: 32,
	}
}

func (o *Options) validate() error {
	var errs []error
	if o.Rounds < 1 || o.BlobRounds < 1 {
		errs = append(errs, errors.New("rounds must be at least 1"))
	}
	if len(o.Concurrency) == 0 || slices.ContainsFunc(o.Concurrency, func(c int) bool { return c < 1 || c > 4096 }) {
		errs = append(errs, errors.New("concurrency levels must be within 1..4096"))
	}
	if o.CellRequests < 1 || o.CellTime <= 0 || o.CellTime > time.Minute {
		errs = append(errs, errors.New("cell requests must be positive and cell time within (0, 1m]"))
	}
	if o.Warmup < 0 {
		errs = append(errs, errors.New("warm-up must not be negative"))
	}
	if o.BlobSize < 1<<20 || o.BlobSize > 4<<30 {
		errs = append(errs, errors.New("blob size must be within 1 MiB..4 GiB"))
	}
	if o.Streams < 1 || o.Streams > 5000 || o.StreamBytes < 0 {
		errs = append(errs, errors.New("streams must be within 1..5000"))
	}
	if o.ProfileSeconds < 1 || o.ProfileSeconds > 60 {
		errs = append(errs, errors.New("profile seconds must be within 1..60"))
	}
	if o.Accounts < 1 {
		errs = append(errs, errors.New("accounts must be positive"))
	}
	if o.UsageTime <= 0 || o.UsageTime > time.Hour || o.UsageRate < 0 || o.UsageConcurrency < 1 || o.UsageConcurrency > 4096 {
		errs = append(errs, errors.New("usage time must be within (0, 1h], usage rate not negative, usage concurrency within 1..4096"))
	}
	for _, w := range o.Workloads {
		if !slices.Contains(AllWorkloads, w) {
			errs = append(errs, fmt.Errorf("unknown workload %q (have %s)", w, strings.Join(AllWorkloads, ", ")))
		}
	}
	return errors.Join(errs...)
}

func (o *Options) wants(w string) bool { return slices.Contains(o.Workloads, w) }

// params are what the report states of the options.
func (o *Options) params() report.Params {
	return report.Params{
		Notes: o.Notes, Results: o.Results, Rounds: o.Rounds, BlobRounds: o.BlobRounds,
		CellRequests: o.CellRequests, CellTime: o.CellTime, Warmup: o.Warmup, Accounts: o.Accounts,
		BlobSize: o.BlobSize, MicroBenchtime: o.MicroBenchtime, ProfileSeconds: o.ProfileSeconds,
		CacheOff: fixtures.CacheOff, CacheOn: fixtures.CacheOn, CacheTagTTL: fixtures.CacheTagTTL,
	}
}

// harness is the state of one run.
type harness struct {
	opts   Options
	tmp    string
	bins   map[string]string // cmd name → binary
	fix    *fixtures.Process
	keys   map[string]fixtures.KeyFiles
	report *report.Report
	procs  []*proc.Proc
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.opts.Log, "bench: "+format+"\n", args...)
}

func (h *harness) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	h.report.Notes = append(h.report.Notes, msg)
	h.logf("note: %s", msg)
}

// Run runs the selected workloads and writes the report and raw results.
func Run(ctx context.Context, opts Options) (*report.Report, error) {
	if opts.Log == nil {
		opts.Log = os.Stderr
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	// CPU and memory are read from /proc: elsewhere the report would show
	// zeros as if they were measurements.
	if err := procstat.Supported(); err != nil {
		return nil, fmt.Errorf("the benchmark runs on Linux only: %w", err)
	}
	if opts.Root == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		if opts.Root, err = moduleRoot(wd); err != nil {
			return nil, err
		}
	}
	if opts.Self == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		opts.Self = self
	}
	tmp, err := os.MkdirTemp("", "registry-bench-")
	if err != nil {
		return nil, err
	}
	h := &harness{opts: opts, tmp: tmp, bins: map[string]string{}, keys: map[string]fixtures.KeyFiles{}}
	h.report = newReport(opts)
	defer func() {
		for i := len(h.procs) - 1; i >= 0; i-- {
			h.procs[i].Stop()
		}
		if h.fix != nil {
			h.fix.Stop()
		}
		if opts.KeepTemp {
			h.logf("kept %s", tmp)
		} else {
			_ = os.RemoveAll(tmp)
		}
	}()
	start := time.Now()
	if err := h.run(ctx); err != nil {
		return h.report, err
	}
	h.report.Duration = time.Since(start)
	files := report.Files{Report: h.path(opts.Report), Results: h.path(opts.Results)}
	if err := report.Save(h.report, opts.params(), files); err != nil {
		return h.report, err
	}
	h.logf("done in %s", h.report.Duration.Round(time.Second))
	return h.report, nil
}

// Render rewrites the report from the raw results of the last run
// (Results/latest.json) without running anything: for a change to the
// report's text or targets. The settings the report states are the run's,
// as latest.json recorded them; opts gives Root, Report, Results and Notes.
func Render(opts Options) error {
	if opts.Report == "" {
		return errors.New("bench: -render-only needs a report to write")
	}
	if opts.Root == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		if opts.Root, err = moduleRoot(wd); err != nil {
			return err
		}
	}
	h := &harness{opts: opts}
	r, err := report.Load(filepath.Join(h.path(opts.Results), "latest.json"))
	if err != nil {
		return err
	}
	run, err := optionsOf(r, opts)
	if err != nil {
		return err
	}
	return report.Render(r, run.params(), h.path(opts.Report))
}

// optionsOf returns base with the settings a run recorded in its report
// (Report.Options, as newReport writes them) in place of base's.
func optionsOf(r *report.Report, base Options) (Options, error) {
	data, err := json.Marshal(r.Options)
	if err != nil {
		return base, err
	}
	var rec struct {
		Rounds         *int    `json:"rounds"`
		BlobRounds     *int    `json:"blob_rounds"`
		CellRequests   *int    `json:"cell_requests"`
		CellTime       *string `json:"cell_time"`
		Warmup         *int    `json:"warmup"`
		BlobSize       *int64  `json:"blob_size"`
		MicroBenchtime *string `json:"micro_benchtime"`
		ProfileSeconds *int    `json:"profile_seconds"`
		Accounts       *int    `json:"accounts"`
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return base, fmt.Errorf("options of the run: %w", err)
	}
	o := base
	setInt := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	setInt(&o.Rounds, rec.Rounds)
	setInt(&o.BlobRounds, rec.BlobRounds)
	setInt(&o.CellRequests, rec.CellRequests)
	setInt(&o.Warmup, rec.Warmup)
	setInt(&o.ProfileSeconds, rec.ProfileSeconds)
	setInt(&o.Accounts, rec.Accounts)
	if rec.BlobSize != nil {
		o.BlobSize = *rec.BlobSize
	}
	if rec.MicroBenchtime != nil {
		o.MicroBenchtime = *rec.MicroBenchtime
	}
	if rec.CellTime != nil {
		d, err := time.ParseDuration(*rec.CellTime)
		if err != nil {
			return base, fmt.Errorf("options of the run: cell_time: %w", err)
		}
		o.CellTime = d
	}
	return o, nil
}

func (h *harness) run(ctx context.Context) error {
	for _, w := range workloads {
		if !h.opts.wants(w.name) {
			continue
		}
		if w.servers && h.fix == nil {
			if err := h.setUp(ctx); err != nil {
				return err
			}
		}
		t := time.Now()
		if err := w.run(h, ctx); err != nil {
			return fmt.Errorf("%s: %w", w.name, err)
		}
		h.logf("%s done in %s", w.name, time.Since(t).Round(100*time.Millisecond))
	}
	return nil
}

// setUp makes what the workloads with servers stand on: the signing keys,
// the server binaries and the fixtures process.
func (h *harness) setUp(ctx context.Context) error {
	for _, alg := range []string{"ES256", "RS256"} {
		k, err := fixtures.WriteKey(h.tmp, alg)
		if err != nil {
			return err
		}
		h.keys[alg] = k
	}
	if err := h.build(ctx); err != nil {
		return err
	}
	h.logf("starting fixtures (upstream registry, S3, licence API)")
	fix, err := fixtures.StartProcess(ctx, h.opts.Self, h.tmp, h.opts.BlobSize)
	if err != nil {
		return err
	}
	h.fix = fix
	return nil
}

// build compiles the servers under test, so that they run as processes of
// their own with their own Go runtime.
func (h *harness) build(ctx context.Context) error {
	binDir := filepath.Join(h.tmp, "bin")
	for _, name := range []string{"gateway", "tokenserver"} {
		out := filepath.Join(binDir, name)
		t := time.Now()
		if err := goBuild(ctx, h.opts.Root, "./cmd/"+name, out); err != nil {
			h.note("%s was not built, its contenders are skipped: %v", name, firstLine(err.Error()))
			continue
		}
		h.bins[name] = out
		h.logf("built %s in %s", name, time.Since(t).Round(100*time.Millisecond))
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// start starts a server process and waits for readyURL.
func (h *harness) start(ctx context.Context, name, bin string, args []string, readyURL string, want ...int) (*proc.Proc, error) {
	var env []string
	if strings.Contains(name, "gateway") {
		env = h.opts.GatewayEnv
	}
	p, err := proc.Start(name, bin, args, filepath.Join(h.tmp, name+".log"), env)
	if err != nil {
		return nil, err
	}
	h.procs = append(h.procs, p)
	if err := proc.WaitReady(ctx, p, readyURL, 30*time.Second, want...); err != nil {
		return nil, err
	}
	return p, nil
}

// stop stops p and forgets it.
func (h *harness) stop(p *proc.Proc) {
	p.Stop()
	h.procs = slices.DeleteFunc(h.procs, func(q *proc.Proc) bool { return q == p })
}

// newReport is an empty report of a run with options o.
func newReport(o Options) *report.Report {
	return &report.Report{
		Started: time.Now().UTC(),
		Env:     environment(),
		Options: map[string]any{
			"rounds": o.Rounds, "blob_rounds": o.BlobRounds, "concurrency": o.Concurrency,
			"cell_requests": o.CellRequests, "cell_time": o.CellTime.String(), "warmup": o.Warmup,
			"blob_size": o.BlobSize, "streams": o.Streams, "stream_bytes": o.StreamBytes,
			"micro_benchtime": o.MicroBenchtime, "profile_seconds": o.ProfileSeconds, "accounts": o.Accounts, "workloads": o.Workloads, "gateway_env": o.GatewayEnv,
			"usage_time": o.UsageTime.String(), "usage_rate": o.UsageRate, "usage_concurrency": o.UsageConcurrency,
		},
	}
}

// environment describes the machine for the report.
func environment() report.Env {
	e := report.Env{GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, Nginx: nginx.Version()}
	host := procstat.ReadHost()
	e.CPU = host.CPU
	if host.MemoryBytes > 0 {
		e.Memory = fmt.Sprintf("%.0f GiB", float64(host.MemoryBytes)/(1<<30))
	}
	return e
}

// path resolves p against the module root unless it is absolute or empty.
func (h *harness) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(h.opts.Root, p)
}

// goBuild builds the package pkg of the module at root into out.
func goBuild(ctx context.Context, root, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	outb, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, outb)
	}
	return nil
}

// moduleRoot finds the repository: the directory upwards from dir whose
// go.mod declares the product's module (the bench is a module of its own
// inside it, with a go.mod of its own, which is skipped).
func moduleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && productModule.Match(data) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("bench: the product's go.mod not found; run from the repository")
		}
		dir = parent
	}
}

// productModule matches the module line of the product's go.mod.
var productModule = regexp.MustCompile(`(?m)^module github\.com/acme/registry-gateway\s*$`)
