package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Workload names, as -workloads takes them.
const (
	WorkloadManifest = "manifest"
	WorkloadToken    = "token"
	WorkloadBlob     = "blob"
	WorkloadRSS      = "rss"
	WorkloadMicro    = "micro"
	WorkloadProfile  = "profile"
)

// AllWorkloads in the order they run.
var AllWorkloads = []string{WorkloadMicro, WorkloadManifest, WorkloadToken, WorkloadBlob, WorkloadRSS, WorkloadProfile}

// Options of a benchmark run. DefaultOptions are what `make bench` uses.
type Options struct {
	// Root is the module root (where go.mod is); default: found from the
	// working directory.
	Root string
	// Report is the Markdown report written (BENCHMARKS.md); Results the
	// directory of the raw numbers. Relative to Root. Empty Report: none.
	Report  string
	Results string
	// Notes is a hand-written Markdown file (relative to Root) copied into
	// the report: what the profiles showed and what was changed.
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
	// workloads.
	Accounts int
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
		Notes:          "bench/notes.md",
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
	for _, w := range o.Workloads {
		if !slices.Contains(AllWorkloads, w) {
			errs = append(errs, fmt.Errorf("unknown workload %q (have %s)", w, strings.Join(AllWorkloads, ", ")))
		}
	}
	return errors.Join(errs...)
}

func (o *Options) wants(w string) bool { return slices.Contains(o.Workloads, w) }

// harness is the state of one run.
type harness struct {
	opts   Options
	tmp    string
	bins   map[string]string // cmd name → binary
	fix    *fixturesProc
	keys   map[string]keyFiles
	report *Report
	procs  []*Proc
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
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.Log == nil {
		opts.Log = os.Stderr
	}
	if err := opts.validate(); err != nil {
		return nil, err
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
	h := &harness{opts: opts, tmp: tmp, bins: map[string]string{}, keys: map[string]keyFiles{}}
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
	if err := h.write(); err != nil {
		return h.report, err
	}
	h.logf("done in %s", h.report.Duration.Round(time.Second))
	return h.report, nil
}

func (h *harness) run(ctx context.Context) error {
	o := h.opts
	needServers := o.wants(WorkloadManifest) || o.wants(WorkloadToken) || o.wants(WorkloadBlob) || o.wants(WorkloadRSS) || o.wants(WorkloadProfile)
	if o.wants(WorkloadMicro) {
		if err := h.runMicro(ctx); err != nil {
			return err
		}
	}
	if !needServers {
		return nil
	}
	for _, alg := range []string{"ES256", "RS256"} {
		k, err := writeKey(h.tmp, alg)
		if err != nil {
			return err
		}
		h.keys[alg] = k
	}
	if err := h.build(ctx); err != nil {
		return err
	}
	h.logf("starting fixtures (upstream registry, S3, licence API)")
	fix, err := startFixturesProc(ctx, o.Self, h.tmp, o.BlobSize)
	if err != nil {
		return err
	}
	h.fix = fix
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{WorkloadManifest, h.runManifest},
		{WorkloadToken, h.runToken},
		{WorkloadBlob, h.runBlob},
		{WorkloadRSS, h.runRSS},
		{WorkloadProfile, h.runProfile},
	}
	for _, s := range steps {
		if !o.wants(s.name) {
			continue
		}
		t := time.Now()
		if err := s.run(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		h.logf("%s done in %s", s.name, time.Since(t).Round(100*time.Millisecond))
	}
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
func (h *harness) start(ctx context.Context, name, bin string, args []string, readyURL string, want ...int) (*Proc, error) {
	var env []string
	if strings.Contains(name, "gateway") {
		env = h.opts.GatewayEnv
	}
	p, err := startProc(name, bin, args, filepath.Join(h.tmp, name+".log"), env, nil)
	if err != nil {
		return nil, err
	}
	h.procs = append(h.procs, p)
	if err := waitReady(ctx, p, readyURL, 30*time.Second, want...); err != nil {
		return nil, err
	}
	return p, nil
}

// stop stops p and forgets it.
func (h *harness) stop(p *Proc) {
	p.Stop()
	h.procs = slices.DeleteFunc(h.procs, func(q *Proc) bool { return q == p })
}

// contender is one server (or path) a workload measures.
type contender struct {
	name     string
	baseline bool
	// newOp builds the op of worker w in a cell of round r at concurrency c.
	newOp func(r, c int) NewOp
	// pids are the processes that serve this contender (besides the
	// upstream fixtures), whose CPU time is read around each cell.
	pids []int
}

// cpuOf sums the CPU time of pids (0 for any that cannot be read).
func cpuOf(pids []int) time.Duration {
	var t time.Duration
	for _, pid := range pids {
		d, _ := cpuTime(pid)
		t += d
	}
	return t
}

// interleave runs every contender at every concurrency level in every
// round, the contenders' order rotating from round to round, so that noise
// of the machine (other processes, thermal limits, GC of the load generator)
// falls on all of them alike.
func (h *harness) interleave(ctx context.Context, workload string, cs []contender, concs []int, rounds int, cell func(c int) Cell) ([]*Series, error) {
	series := map[string]*Series{}
	var order []*Series
	for _, c := range concs {
		for _, ct := range cs {
			s := &Series{Workload: workload, Contender: ct.name, Baseline: ct.baseline, Concurrency: c}
			series[fmt.Sprint(ct.name, "/", c)] = s
			order = append(order, s)
		}
	}
	for r := range rounds {
		for _, c := range concs {
			for i := range cs {
				ct := cs[(i+r)%len(cs)]
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				fixPID := []int{h.fix.PID()}
				srv0, fix0 := cpuOf(ct.pids), cpuOf(fixPID)
				res, err := RunCell(ctx, cell(c), ct.newOp(r, c))
				if err == nil && res.Requests > 0 {
					n := time.Duration(res.Requests + res.Errors)
					if len(ct.pids) > 0 {
						res.ServerCPU = (cpuOf(ct.pids) - srv0) / n
					}
					res.UpstreamCPU = (cpuOf(fixPID) - fix0) / n
				}
				if err != nil {
					return nil, fmt.Errorf("%s at concurrency %d, round %d: %w", ct.name, c, r+1, err)
				}
				if res.Errors > 0 {
					h.note("%s: %s at concurrency %d, round %d: %d errors (first: %s)", workload, ct.name, c, r+1, res.Errors, res.FirstErr)
				}
				s := series[fmt.Sprint(ct.name, "/", c)]
				s.Rounds = append(s.Rounds, res)
			}
		}
		h.logf("%s: round %d/%d", workload, r+1, rounds)
	}
	for _, s := range order {
		s.summarize()
	}
	return order, nil
}

// environment describes the machine for the report.
func environment() Env {
	e := Env{GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, Nginx: nginxVersion()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				e.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		line, _, _ := strings.Cut(string(data), "\n")
		var kb int64
		if _, err := fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "MemTotal:")), "%d kB", &kb); err == nil {
			e.Memory = fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
		}
	}
	return e
}
