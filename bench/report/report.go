// Package report is the benchmark's results and their rendering: the
// series of each workload with medians over the rounds, the ratios to the
// baseline, the targets met or missed, and BENCHMARKS.md, latest.json and
// latest.csv.
package report

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/acme/registry-gateway/bench/loadgen"
	"github.com/acme/registry-gateway/bench/micro"
	"github.com/acme/registry-gateway/bench/procstat"
	"github.com/acme/registry-gateway/bench/pull"
)

// Names of groups and contenders that the targets look for.
const (
	// Groups of the manifest workload: the same contenders asked by tag
	// (what the targets were set on) and by digest (what docker GETs after
	// resolving the tag with a HEAD).
	GroupTag    = "by tag"
	GroupDigest = "by digest"

	ContenderDirect       = "direct"
	ContenderGateway      = "gateway"
	ContenderGatewayCache = "gateway+cache"
	ContenderNginx        = "nginx"
	ContenderGatewayBlobs = "gateway (proxy_blobs)"
	// The pull workload's: the gateway and token service as shipped, and
	// the article's nginx + Lua licence check.
	ContenderGatewayShipped = "gateway (shipped config)"
	ContenderNginxLua       = "nginx+lua (article)"
	// ContenderGatewayNoCaches is the shipped gateway with tag_ttl 0s and
	// the blob redirect cache off: what the caches save, side by side.
	ContenderGatewayNoCaches = "gateway (no caches)"
	// The usage workload's: the same gateway binary as shipped, with the
	// usage recorder off and on.
	ContenderUsageOff = "gateway, recording off"
	ContenderUsageOn  = "gateway, recording on"
	// TokenShipped is the token service at deploy/tokenserver.yaml's
	// settings (log_level info, signing_cert), file backend.
	TokenShipped = "ES256 file shipped"
)

// licenceCheckers are the pull contenders that check a licence, which the
// gateway must beat.
var licenceCheckers = []string{ContenderNginxLua}

// Params are the settings of a run that the report states.
type Params struct {
	// Notes and Results are the paths of the index of the hand-written
	// notes (linked, not copied) and of the directory of the raw results,
	// as the reader finds them (relative to the module root, where the
	// report is written).
	Notes, Results string
	Rounds         int
	BlobRounds     int
	CellRequests   int
	CellTime       time.Duration
	Warmup         int
	Accounts       int
	BlobSize       int64
	MicroBenchtime string
	ProfileSeconds int
	// CacheOff and CacheOn are the manifest_cache settings of the gateways
	// under test; CacheTagTTL the tag_ttl of CacheOn.
	CacheOff, CacheOn, CacheTagTTL string
}

// Env is the machine a run measured.
type Env struct {
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	CPU       string `json:"cpu"`
	CPUs      int    `json:"cpus"`
	Memory    string `json:"memory"`
	Nginx     string `json:"nginx,omitempty"`
}

// Series is one contender at one concurrency level over all rounds.
type Series struct {
	Workload    string           `json:"workload"`
	Group       string           `json:"group,omitempty"` // ratios are taken within a group
	Contender   string           `json:"contender"`
	Baseline    bool             `json:"baseline,omitempty"`
	Concurrency int              `json:"concurrency"`
	Rounds      []loadgen.Result `json:"rounds"`
	Summary     Summary          `json:"summary"`
}

// Summary is the median over the rounds, with the range.
type Summary struct {
	RPS      float64       `json:"rps"`
	RPSMin   float64       `json:"rps_min"`
	RPSMax   float64       `json:"rps_max"`
	MBps     float64       `json:"mbps"`
	MBpsMin  float64       `json:"mbps_min"`
	MBpsMax  float64       `json:"mbps_max"`
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
	Requests int           `json:"requests"`
	Errors   int           `json:"errors"`
	// Medians of the CPU time per request.
	ServerCPU   time.Duration `json:"server_cpu_per_request_ns"`
	UpstreamCPU time.Duration `json:"upstream_cpu_per_request_ns"`
}

// Summarize sets Summary from Rounds.
func (s *Series) Summarize() {
	var rps, mbps []float64
	var p50, p99, scpu, ucpu []time.Duration
	sum := Summary{}
	for _, r := range s.Rounds {
		rps = append(rps, r.RPS)
		mbps = append(mbps, r.MBps)
		p50 = append(p50, r.P50)
		p99 = append(p99, r.P99)
		scpu = append(scpu, r.ServerCPU)
		ucpu = append(ucpu, r.UpstreamCPU)
		sum.Requests += r.Requests
		sum.Errors += r.Errors
	}
	if len(rps) == 0 {
		s.Summary = sum
		return
	}
	sum.RPS, sum.RPSMin, sum.RPSMax = median(rps), slices.Min(rps), slices.Max(rps)
	sum.MBps, sum.MBpsMin, sum.MBpsMax = median(mbps), slices.Min(mbps), slices.Max(mbps)
	sum.P50, sum.P99 = median(p50), median(p99)
	sum.ServerCPU, sum.UpstreamCPU = median(scpu), median(ucpu)
	s.Summary = sum
}

func median[T int64 | float64 | time.Duration](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// LicenceReport counts the licence API calls of the token workload.
type LicenceReport struct {
	CacheTTL time.Duration `json:"cache_ttl_ns"`
	// Warm: Accounts accounts asked again and again, per algorithm.
	Warm []LicenceWarm `json:"warm"`
	// Cold: every request a new account.
	ColdRequests int64 `json:"cold_requests"`
	ColdCalls    int64 `json:"cold_calls"`
	// Herd: Accounts fresh accounts asked by many workers at once with a
	// cold cache; the cache must make one call per account.
	Herd *LicenceHerd `json:"herd,omitempty"`
}

// LicenceWarm is the warm accounts of one token server.
type LicenceWarm struct {
	Server      string        `json:"server"`
	Accounts    int           `json:"accounts"`
	Requests    int64         `json:"requests"`
	Calls       int64         `json:"calls"`
	MaxPerAcct  int64         `json:"max_calls_per_account"`
	Elapsed     time.Duration `json:"elapsed_ns"`
	AllowedPerA int64         `json:"allowed_per_account"`
}

// LicenceHerd is the thundering-herd check.
type LicenceHerd struct {
	Accounts    int   `json:"accounts"`
	Concurrency int   `json:"concurrency"`
	Requests    int   `json:"requests"`
	Calls       int64 `json:"calls"`
	MaxPerAcct  int64 `json:"max_calls_per_account"`
}

// RSSReport is the gateway's memory under many concurrent blob streams.
type RSSReport struct {
	Streams     int             `json:"streams"`
	Started     int             `json:"started"` // streams that were all flowing at once
	StreamBytes int64           `json:"stream_bytes"`
	Bytes       int64           `json:"bytes"`
	Errors      int             `json:"errors"`
	FirstErr    string          `json:"first_error,omitempty"`
	Elapsed     time.Duration   `json:"elapsed_ns"`
	Idle        procstat.Memory `json:"idle"`
	Peak        procstat.Memory `json:"peak"`
	// Direct is the same streams straight from the S3 store, for scale.
	Direct *RSSReport `json:"direct,omitempty"`
}

// Target is one goal of issue 5 and how this run did.
type Target struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	// Met is true when every part is met.
	Met bool `json:"met"`
	// Parts, when set, are the same target measured on variants of one
	// server (the manifest targets: pass-through and cached), each with
	// its own verdict, so that neither hides the other.
	Parts []TargetPart `json:"parts,omitempty"`
}

// TargetPart is one variant's result of a Target.
type TargetPart struct {
	Label string `json:"label"`
	Got   string `json:"got"`
	Met   bool   `json:"met"`
}

func newTarget(name, want string, parts []TargetPart) Target {
	t := Target{Name: name, Want: want, Met: true, Parts: parts}
	var got []string
	for _, p := range parts {
		got = append(got, p.Label+" "+p.Got)
		t.Met = t.Met && p.Met
	}
	t.Got = strings.Join(got, " · ")
	return t
}

// mark is the verdict column of a target's row.
func (t Target) mark() string {
	verdict := func(met bool) string {
		if met {
			return "met"
		}
		return "**missed**"
	}
	if len(t.Parts) == 0 {
		return verdict(t.Met)
	}
	var m []string
	for _, p := range t.Parts {
		m = append(m, p.Label+": "+verdict(p.Met))
	}
	return strings.Join(m, " · ")
}

// Report is everything a run measured; results/latest.json holds it whole.
type Report struct {
	Started  time.Time      `json:"started"`
	Duration time.Duration  `json:"duration_ns"`
	Env      Env            `json:"env"`
	Options  map[string]any `json:"options"`
	Pull     []*Series      `json:"pull,omitempty"`
	// PullCounts are what each contender's pulls did (warm-up included),
	// checked to be whole pulls.
	PullCounts []PullCount    `json:"pull_counts,omitempty"`
	Manifest   []*Series      `json:"manifest,omitempty"`
	Token      []*Series      `json:"token,omitempty"`
	Licence    *LicenceReport `json:"licence,omitempty"`
	Blob       []*Series      `json:"blob,omitempty"`
	RSS        *RSSReport     `json:"rss,omitempty"`
	// Usage is the usage workload's pull load, recording off (the
	// baseline) and on; UsageCount what became of the events recorded.
	Usage      []*Series       `json:"usage,omitempty"`
	UsageCount *UsageCount     `json:"usage_count,omitempty"`
	Micro      []micro.Result  `json:"micro,omitempty"`
	Profiles   []ProfileResult `json:"profiles,omitempty"`
	Targets    []Target        `json:"targets,omitempty"`
	Notes      []string        `json:"notes,omitempty"`
	// ManifestInfo describes the request of the manifest workload,
	// PullInfo the pull.
	ManifestInfo string `json:"manifest_info,omitempty"`
	PullInfo     string `json:"pull_info,omitempty"`
}

// UsageCount is the usage workload's load and what became of the events
// of the gateway recording: every successful manifest GET (a pull) and
// HEAD (a check) the load generator counted, warm-up included, must be a
// row of usage_events once the gateway's queue has drained.
type UsageCount struct {
	// Database is the server the token service stored to.
	Database string `json:"database"`
	// Rate is the paced load (requests/s; 0: closed loop), Concurrency
	// its workers, CellTime each cell's length.
	Rate        float64       `json:"rate"`
	Concurrency int           `json:"concurrency"`
	CellTime    time.Duration `json:"cell_time_ns"`
	Pulls       int64         `json:"pulls"`
	Checks      int64         `json:"checks"`
	// Rows are the rows of usage_events after the drain, which took
	// Drain; Drained is false when the queue was not empty in time.
	Rows    int64         `json:"rows"`
	Drain   time.Duration `json:"drain_ns"`
	Drained bool          `json:"drained"`
	// Dropped and Sent are the recording gateway's
	// gateway_usage_dropped_total (all reasons) and
	// gateway_usage_events_sent_total.
	Dropped float64 `json:"dropped"`
	Sent    float64 `json:"sent"`
}

// Lost is the events counted by the load generator that are not rows.
func (u *UsageCount) Lost() int64 { return u.Pulls + u.Checks - u.Rows }

// PullCount is what one contender's pulls did.
type PullCount struct {
	Contender string `json:"contender"`
	pull.Stats
}

// ProfileResult is one profile of the profile pass.
type ProfileResult struct {
	Name     string `json:"name"`
	Workload string `json:"workload"`
	Load     string `json:"load"`
	File     string `json:"file"`
	Top      string `json:"top"`
	HeapFile string `json:"heap_file,omitempty"`
	HeapTop  string `json:"heap_top,omitempty"`
	MemStats string `json:"memstats,omitempty"`
}

// Files are where Save writes; an empty path is not written.
type Files struct {
	Results string // directory of latest.json and latest.csv
	Report  string // BENCHMARKS.md
}

// Save evaluates the targets, then writes the raw numbers and the
// Markdown report.
func Save(r *Report, p Params, f Files) error {
	r.Targets = Evaluate(r, p)
	if f.Results != "" {
		dir := f.Results
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		data, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "latest.json"), append(data, '\n'), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "latest.csv"), CSV(r), 0o644); err != nil {
			return err
		}
	}
	if f.Report == "" {
		return nil
	}
	return os.WriteFile(f.Report, Markdown(r, p), 0o644)
}

// Load reads the raw results Save wrote (latest.json) back, so that the
// report can be rendered again without running the benchmark.
func Load(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// Render evaluates the targets of r and writes its Markdown report only:
// the raw results it was read from stay as they are.
func Render(r *Report, p Params, reportPath string) error {
	r.Targets = Evaluate(r, p)
	return os.WriteFile(reportPath, Markdown(r, p), 0o644)
}

// CSV has one line per measured cell.
func CSV(r *Report) []byte {
	var b bytes.Buffer
	b.WriteString("workload,group,contender,concurrency,round,requests,errors,elapsed_s,rps,mbps,p50_ms,p99_ms,max_ms,server_cpu_us,upstream_cpu_us\n")
	for _, group := range [][]*Series{r.Pull, r.Manifest, r.Token, r.Blob, r.Usage} {
		for _, s := range group {
			for i, x := range s.Rounds {
				fmt.Fprintf(&b, "%s,%s,%s,%d,%d,%d,%d,%.4f,%.1f,%.1f,%.4f,%.4f,%.4f,%.1f,%.1f\n", s.Workload, s.Group, s.Contender, s.Concurrency, i+1,
					x.Requests, x.Errors, x.Elapsed.Seconds(), x.RPS, x.MBps, ms(x.P50), ms(x.P99), ms(x.Max), us(x.ServerCPU), us(x.UpstreamCPU))
			}
		}
	}
	return b.Bytes()
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// find returns the series of workload list for contender at c.
func find(list []*Series, contender string, c int) *Series {
	for _, s := range list {
		if s.Contender == contender && s.Concurrency == c {
			return s
		}
	}
	return nil
}

// findIn is find within one group.
func findIn(list []*Series, group, contender string, c int) *Series {
	for _, s := range list {
		if s.Group == group && s.Contender == contender && s.Concurrency == c {
			return s
		}
	}
	return nil
}

// groups are the groups of list in order of appearance.
func groups(list []*Series) []string {
	var gs []string
	for _, s := range list {
		if !slices.Contains(gs, s.Group) {
			gs = append(gs, s.Group)
		}
	}
	return gs
}

// InGroup are the series of list in group.
func InGroup(list []*Series, group string) []*Series {
	var out []*Series
	for _, s := range list {
		if s.Group == group {
			out = append(out, s)
		}
	}
	return out
}

// baselineOf returns the baseline series of s's group at s's concurrency.
func baselineOf(list []*Series, s *Series) *Series {
	for _, b := range list {
		if b.Baseline && b.Group == s.Group && b.Concurrency == s.Concurrency {
			return b
		}
	}
	return nil
}

// ratio of medians, and of each round's pair (contenders of a round ran
// next to each other, so the paired ratios show how steady the ratio is).
func ratio(s, base *Series, mb bool) (med, lo, hi float64) {
	val := func(x Summary) float64 {
		if mb {
			return x.MBps
		}
		return x.RPS
	}
	if base == nil || val(base.Summary) == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	med = val(s.Summary) / val(base.Summary)
	var pairs []float64
	for i := range min(len(s.Rounds), len(base.Rounds)) {
		a, b := s.Rounds[i], base.Rounds[i]
		if mb && b.MBps > 0 {
			pairs = append(pairs, a.MBps/b.MBps)
		} else if !mb && b.RPS > 0 {
			pairs = append(pairs, a.RPS/b.RPS)
		}
	}
	if len(pairs) == 0 {
		return med, math.NaN(), math.NaN()
	}
	return med, slices.Min(pairs), slices.Max(pairs)
}

// Evaluate checks the targets against what r measured.
func Evaluate(r *Report, p Params) []Target {
	ts := pullTargets(r)
	ts = append(ts, cpuTargets(r)...)
	// Each manifest target row gives the pass-through gateway (cache off:
	// every request upstream, as the first pull of a new tag or digest) and
	// the cached one (repeated pulls) with a verdict each.
	for _, grp := range groups(r.Manifest) {
		cachedLabel := "cached"
		if grp == GroupTag {
			cachedLabel = "cached (tag_ttl " + p.CacheTagTTL + ")"
		}
		for _, c := range concurrencies(r.Manifest) {
			pass, cached := findIn(r.Manifest, grp, ContenderGateway, c), findIn(r.Manifest, grp, ContenderGatewayCache, c)
			for _, cmp := range []struct {
				vs         *Series
				name, want string
				met        func(float64) bool
			}{
				{findIn(r.Manifest, grp, ContenderDirect, c), "direct", "≥ 0.85×", func(q float64) bool { return q >= 0.85 }},
				{findIn(r.Manifest, grp, ContenderNginx, c), "nginx keep-alive", "> 1.00×", func(q float64) bool { return q > 1 }},
			} {
				if cmp.vs == nil || cmp.vs.Summary.RPS == 0 {
					continue
				}
				var parts []TargetPart
				for _, x := range []struct {
					label string
					s     *Series
				}{{"pass-through", pass}, {cachedLabel, cached}} {
					if x.s != nil {
						q := x.s.Summary.RPS / cmp.vs.Summary.RPS
						parts = append(parts, TargetPart{Label: x.label, Got: fmt.Sprintf("%.2f×", q), Met: cmp.met(q)})
					}
				}
				if len(parts) > 0 {
					ts = append(ts, newTarget(fmt.Sprintf("manifest GET %s, gateway vs %s, c=%d", grp, cmp.name, c), cmp.want, parts))
				}
			}
		}
	}
	if len(r.Blob) > 0 {
		gw, direct := find(r.Blob, ContenderGatewayBlobs, 1), find(r.Blob, ContenderDirect, 1)
		if gw != nil && direct != nil {
			q, _, _ := ratio(gw, direct, true)
			ts = append(ts, Target{Name: "256 MiB blob, gateway (proxy_blobs) vs direct", Want: "≥ 0.80×",
				Got: fmt.Sprintf("%.2f× (%.0f vs %.0f MB/s)", q, gw.Summary.MBps, direct.Summary.MBps), Met: q >= 0.8})
		}
	}
	for _, name := range []string{TokenShipped, "ES256 file", "ES256 sql warm", "ES256 http warm"} {
		if s := find(r.Token, name, 16); s != nil {
			ts = append(ts, Target{Name: "tokens/s, " + name + ", c=16", Want: "≥ 10,000/s",
				Got: fmt.Sprintf("%.0f/s", s.Summary.RPS), Met: s.Summary.RPS >= 10_000})
		}
		if s := find(r.Token, name, 64); s != nil {
			ts = append(ts, Target{Name: "token p99, " + name + ", c=64", Want: "≤ 10 ms",
				Got: fmtDur(s.Summary.P99), Met: s.Summary.P99 <= 10*time.Millisecond})
		}
	}
	if l := r.Licence; l != nil {
		for _, w := range l.Warm {
			ts = append(ts, Target{Name: "licence API calls per account, " + w.Server, Want: "≤ 1 per cache_ttl",
				Got: fmt.Sprintf("max %d per account over %s (cache_ttl %s: %d allowed)", w.MaxPerAcct, w.Elapsed.Round(time.Second), l.CacheTTL, w.AllowedPerA),
				Met: w.MaxPerAcct <= w.AllowedPerA})
		}
		if hd := l.Herd; hd != nil {
			ts = append(ts, Target{Name: "licence API calls, cold cache under load (herd)", Want: "1 per account",
				Got: fmt.Sprintf("%d calls for %d accounts (%d requests at c=%d)", hd.Calls, hd.Accounts, hd.Requests, hd.Concurrency),
				Met: hd.MaxPerAcct <= 1})
		}
	}
	ts = append(ts, usageTargets(r)...)
	ts = append(ts, consoleTargets(r)...)
	if s := r.RSS; s != nil {
		ts = append(ts, Target{Name: fmt.Sprintf("gateway peak RSS, %d concurrent blob streams", s.Streams), Want: "≤ 64 MiB",
			Got: fmt.Sprintf("%.1f MiB (idle %.1f MiB)", mib(s.Peak.HWM), mib(s.Idle.HWM)), Met: s.Peak.HWM <= 64<<20 && s.Started == s.Streams})
	}
	return ts
}

// pullTargets: at each concurrency, the gateway as shipped pulls at least
// 0.9× as fast as the registry itself, and faster than every contender
// that checks a licence.
func pullTargets(r *Report) []Target {
	var ts []Target
	for _, c := range concurrencies(r.Pull) {
		gw := find(r.Pull, ContenderGatewayShipped, c)
		if gw == nil {
			continue
		}
		if d := find(r.Pull, ContenderDirect, c); d != nil && d.Summary.RPS > 0 {
			q, lo, hi := ratio(gw, d, false)
			ts = append(ts, Target{Name: fmt.Sprintf("docker pull mix, gateway (shipped config) vs direct, c=%d", c), Want: "≥ 0.90×",
				Got: fmt.Sprintf("%s (%s vs %s pulls/s)", fmtRatio(q, lo, hi), fmtNum(gw.Summary.RPS), fmtNum(d.Summary.RPS)), Met: q >= 0.9})
		}
		for _, name := range licenceCheckers {
			if o := find(r.Pull, name, c); o != nil && o.Summary.RPS > 0 {
				q, lo, hi := ratio(gw, o, false)
				ts = append(ts, Target{Name: fmt.Sprintf("docker pull mix, gateway (shipped config) vs %s, c=%d", name, c), Want: "> 1.00×",
					Got: fmt.Sprintf("%s (%s vs %s pulls/s)", fmtRatio(q, lo, hi), fmtNum(gw.Summary.RPS), fmtNum(o.Summary.RPS)), Met: q > 1})
			}
		}
	}
	return ts
}

// usageTargets: with the usage recorder on, the gateway pulls at least
// 0.9× as fast as with it off, and no event is lost while the database is
// up.
func usageTargets(r *Report) []Target {
	var ts []Target
	for _, c := range concurrencies(r.Usage) {
		on, off := find(r.Usage, ContenderUsageOn, c), find(r.Usage, ContenderUsageOff, c)
		if on == nil || off == nil || off.Summary.RPS == 0 {
			continue
		}
		q, lo, hi := ratio(on, off, false)
		ts = append(ts, Target{Name: fmt.Sprintf("pull rate with usage recording vs without, c=%d", c), Want: "≥ 0.90×",
			Got: fmt.Sprintf("%s (%s vs %s requests/s)", fmtRatio(q, lo, hi), fmtNum(on.Summary.RPS), fmtNum(off.Summary.RPS)), Met: q >= 0.9})
	}
	if u := r.UsageCount; u != nil {
		got := fmt.Sprintf("%d (%s pulls + %s checks counted, %s rows; gateway_usage_dropped_total %.0f)",
			u.Lost(), addCommas(fmt.Sprint(u.Pulls)), addCommas(fmt.Sprint(u.Checks)), addCommas(fmt.Sprint(u.Rows)), u.Dropped)
		if !u.Drained {
			got += "; the queue did not drain"
		}
		ts = append(ts, Target{Name: "usage events lost while the database is up (" + u.Database + ")", Want: "0",
			Got: got, Met: u.Drained && u.Lost() == 0 && u.Dropped == 0})
	}
	return ts
}

// The console's pages as the micro-benchmarks measure them: each
// sub-benchmark of BenchmarkPages (internal/tokenserver/console,
// pages_bench_test.go) is one page on the demo data.
const (
	ConsolePackage    = "internal/tokenserver/console"
	ConsolePagesBench = "Pages/"
	// ConsolePageLimit is issue 20's "render in under 200 ms on the demo
	// data", for every page.
	ConsolePageLimit = 200 * time.Millisecond
)

// consoleTargets: every console page renders in under ConsolePageLimit
// on the demo data; the row names the slowest page, and every page over.
func consoleTargets(r *Report) []Target {
	var pages []micro.Result
	for _, m := range r.Micro {
		if m.Package == ConsolePackage && strings.HasPrefix(m.Name, ConsolePagesBench) {
			pages = append(pages, m)
		}
	}
	if len(pages) == 0 {
		return nil
	}
	slowest := slices.MaxFunc(pages, func(a, b micro.Result) int { return cmp.Compare(a.NsPerOp, b.NsPerOp) })
	limit := float64(ConsolePageLimit.Nanoseconds())
	var over []string
	for _, m := range pages {
		if m.NsPerOp >= limit {
			over = append(over, fmt.Sprintf("%s %s", strings.TrimPrefix(m.Name, ConsolePagesBench), fmtDur(time.Duration(m.NsPerOp))))
		}
	}
	got := fmt.Sprintf("slowest of %d pages: %s %s", len(pages), strings.TrimPrefix(slowest.Name, ConsolePagesBench), fmtDur(time.Duration(slowest.NsPerOp)))
	if len(over) > 0 {
		got += "; over: " + strings.Join(over, ", ")
	}
	return []Target{{Name: "every console page, demo data (" + ConsolePackage + " BenchmarkPages)", Want: "< 200 ms", Got: got, Met: len(over) == 0}}
}

// cpuTargets: the pass-through gateway's server CPU per manifest GET (by
// tag, cache off) is at most nginx's × 1.2, both read in the same run.
func cpuTargets(r *Report) []Target {
	var ts []Target
	for _, c := range concurrencies(r.Manifest) {
		gw, ngx := findIn(r.Manifest, GroupTag, ContenderGateway, c), findIn(r.Manifest, GroupTag, ContenderNginx, c)
		if gw == nil || ngx == nil || gw.Summary.ServerCPU == 0 || ngx.Summary.ServerCPU == 0 {
			continue
		}
		q := float64(gw.Summary.ServerCPU) / float64(ngx.Summary.ServerCPU)
		ts = append(ts, Target{Name: fmt.Sprintf("pass-through server CPU per manifest GET, gateway vs nginx, c=%d", c), Want: "≤ 1.20×",
			Got: fmt.Sprintf("%.2f× (%.0f vs %.0f µs)", q, us(gw.Summary.ServerCPU), us(ngx.Summary.ServerCPU)), Met: q <= 1.2})
	}
	return ts
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func concurrencies(list []*Series) []int {
	var cs []int
	for _, s := range list {
		if !slices.Contains(cs, s.Concurrency) {
			cs = append(cs, s.Concurrency)
		}
	}
	return cs
}

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "–"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", ms(d))
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", ms(d))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func fmtRatio(med, lo, hi float64) string {
	if math.IsNaN(med) {
		return "–"
	}
	if math.IsNaN(lo) {
		return fmt.Sprintf("%.2f×", med)
	}
	return fmt.Sprintf("%.2f× (%.2f–%.2f)", med, lo, hi)
}

func fmtRate(s Summary) string {
	return fmt.Sprintf("%s (%s–%s)", fmtNum(s.RPS), fmtNum(s.RPSMin), fmtNum(s.RPSMax))
}

func fmtNum(v float64) string {
	switch {
	case v >= 100:
		return addCommas(fmt.Sprintf("%.0f", v))
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func addCommas(s string) string {
	if len(s) <= 4 {
		return s
	}
	var b strings.Builder
	pre := len(s) % 3
	b.WriteString(s[:pre])
	for i := pre; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// Markdown renders BENCHMARKS.md: the targets and the tables of one run.
// The hand-written notes are linked, never copied, so that no text of the
// report repeats another file.
func Markdown(r *Report, o Params) []byte {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Benchmarks\n\n")
	p("Generated by `make bench` (`cd bench && go run ./cmd/bench`) on %s in %s; do not edit by hand — ", r.Started.Format("2006-01-02 15:04 UTC"), r.Duration.Round(time.Second))
	p("re-render it from the raw numbers with `cd bench && go run ./cmd/bench -render-only`. Raw numbers: `%s/latest.json` (everything), `%s/latest.csv` (one line per measured cell).", o.Results, o.Results)
	if o.Notes != "" {
		p(" What the profiles showed and what was changed, with the measurements of the time, are in the dated notes: [%s](%s).", path.Dir(o.Notes)+"/", o.Notes)
	}
	p("\n\n")
	p("Machine: %s, %d cores, %s RAM, %s, %s", r.Env.CPU, r.Env.CPUs, r.Env.Memory, r.Env.OS, r.Env.GoVersion)
	if r.Env.Nginx != "" {
		p(", %s", r.Env.Nginx)
	}
	p(".\n\n")
	if len(r.Targets) > 0 {
		p("## Targets\n\n| target | want | this run | |\n|---|---|---|---|\n")
		for _, t := range r.Targets {
			p("| %s | %s | %s | %s |\n", t.Name, t.Want, t.Got, t.mark())
		}
		p("\n")
		if len(r.Pull) > 0 {
			p("Pull rows: the gateway and the token service at their shipped configuration, whole pulls; the licence-checking contender to beat is the article's nginx + Lua.\n\n")
		}
		if len(r.Manifest) > 0 {
			p("Manifest rows: **pass-through** is `gateway`, the manifest cache off, so every request makes the upstream round trip (as the first pull of a new tag or digest does); **cached** is `gateway+cache`, the same gateway with the manifest cache on (`tag_ttl: %s`), answering repeated pulls from memory after the same token check.\n\n", o.CacheTagTTL)
		}
	}

	p("## How it is measured\n\n")
	p("- Every server under test is a separate process: `bin/gateway` and `bin/tokenserver` are built with `go build` from this tree, configured through their YAML files in a temporary directory. ")
	p("The load generator (`bench/loadgen`, a lean HTTP/1.1 keep-alive client) runs in the harness process; the fixtures (the upstream registry — a stock distribution registry, the same one for every contender —, a fake S3 store, a licence API answering in 5 ms) run in another process.\n")
	p("- **Interleaved**: in each of %d rounds every contender is measured at every concurrency level, the order of the contenders rotating from round to round, so that noise hits all alike. Tables give the **median over the rounds** with the **min–max** in brackets; ratios are of medians, with the min–max of the per-round ratios in brackets.\n", o.Rounds)
	p("- A cell is %s requests or %s, whichever ends first, after %d unmeasured warm-up requests per worker on kept-alive connections; a worker is one connection. Latencies are per request, p50/p99 by nearest rank.\n", addCommas(fmt.Sprint(o.CellRequests)), o.CellTime, o.Warmup)
	p("- **%d cores shared**: the load generator, the server under test and the upstream all compete for the same cores. That is inherent to a one-machine benchmark: absolute numbers are lower bounds of what a server does alone, and a contender that costs more CPU per request also takes CPU from the upstream. Ratios from the same run are the meaningful part.\n", r.Env.CPUs)
	p("- **CPU µs/request** is read from /proc/PID/stat around each cell: *server* is the contender's processes (gateway, nginx master and workers, token service), *fixtures* the fixtures process — the upstream registry for manifests, the licence API for tokens. It shows where the 2 cores go.\n")
	p("- All traffic is on 127.0.0.1; every loop is bounded in count and time.\n\n")

	if len(r.Pull) > 0 {
		p("## Headline: docker pull\n\n%s\n\n", r.PullInfo)
		p("- **direct**: the registry itself (the baseline); docker sends its Basic credential on every request, as to ECR.\n")
		p("- **gateway (shipped config)**: `bin/gateway` with nothing but what a user must set (manifest cache, access log, log level and blob redirects as shipped), `/token` forwarded to `bin/tokenserver` as shipped (`log_level: info` with its audit line, `signing_cert` so every token carries `x5c`; file backend); CPU is both processes'.\n")
		p("- **gateway (no caches)**: the same gateway and token service with `manifest_cache: {tag_ttl: 0s}` and `blob_redirect_cache: {disabled: true}`: the index's HEAD and GET by tag and every blob GET go upstream (manifests by digest are still cached): what the two caches save.\n")
		p("- **nginx+lua (article)**: the configuration of the article this product replaces, built in the bench (`bench/nginx/lua.go` lists the few changes needed to run it): Basic credentials on every request, each checked with a licence API sub-request (5 ms), nothing cached.\n")
		p("- **nginx**: `proxy_pass` with keep-alive, checking nothing.\n\n")
		p("A worker is one docker client with its own kept-alive connections (to the contender and to S3), pulling again and again; cells as above, counted in pulls, after at most 2 warm-up pulls per worker. *Added* latency is the contender's p50 (p99) per pull minus the registry's at the same concurrency; CPU is per pull.\n\n")
		pullTable(&b, r.Pull)
		if len(r.PullCounts) > 0 {
			p("Every pull was checked whole (requests, redirects followed, bytes):")
			for _, c := range r.PullCounts {
				p(" %s %s pulls, %.0f requests and %.0f redirects each, %s connections opened;", c.Contender, addCommas(fmt.Sprint(c.Pulls)), float64(c.Requests)/float64(c.Pulls), float64(c.Redirects)/float64(c.Pulls), addCommas(fmt.Sprint(c.Dials)))
			}
			p(" warm-up included.\n\n")
		}
	}
	if len(r.Manifest) > 0 {
		p("## 1. Manifest GET\n\n")
		p("%s\n\n", r.ManifestInfo)
		p("- **direct**: the client asks the upstream registry itself (the baseline).\n")
		p("- **gateway** (pass-through): `bin/gateway` with a valid ES256 token (verified-token cache warm), `manifest_cache: %s`, forwarding every request to the upstream with its static upstream credential, access log off.\n", o.CacheOff)
		p("- **gateway+cache**: the same with `manifest_cache: %s`: the token is still checked on every request, then the manifest comes from the gateway's memory. The warm-up fills the cache; by tag, the entry expires every %s and one request then goes upstream.\n", o.CacheOn, o.CacheTagTTL)
		p("- **nginx**: `proxy_pass` with `keepalive 256` to the upstream, `proxy_http_version 1.1`, the upstream credential set with `proxy_set_header`, one worker per core, access log off — a reverse proxy that checks nothing and caches nothing.\n\n")
		for _, g := range groups(r.Manifest) {
			if g != "" {
				p("### %s\n\n", strings.ToUpper(g[:1])+g[1:])
			}
			seriesTable(&b, InGroup(r.Manifest, g), "requests/s", "× direct", false)
		}
	}
	if len(r.Token) > 0 {
		p("## 2. Token issuance\n\n")
		p("`GET /token?account=…&scope=repository:stable/app:pull&service=…` with Basic credentials, as `docker pull` asks.\n\n")
		p("- **bare** (the baseline of each algorithm): a minimal net/http server (`bench signer`) that parses the scopes and signs the same claims with `pkg/auth`, with no licence look-up, no rate limiting, no metrics and no logs: the floor set by HTTP and the signature.\n")
		p("- **file**: `bin/tokenserver` with the file licence backend (%d accounts, token hashes in YAML), `log_level: warn`, no `signing_cert`: the bare configuration.\n", o.Accounts)
		p("- **file x5c**, **file info**, **file shipped**: the same with `signing_cert` set (every token carries the certificate in `x5c`), with `log_level: info` (the audit line and the access line of every token, written to the process's log file), and with both, as `deploy/tokenserver.yaml` ships them.\n")
		p("- **sql warm**: `bin/tokenserver` with the SQL licence backend on SQLite (%d accounts made by `accounts migrate` and `import`): cache hits, the change counter polled in the background.\n", o.Accounts)
		p("- **sql cold**: the same with `cache_ttl: 1ns`, so every request misses the cache and costs one indexed SQLite query (token hash → account and grants).\n")
		p("- **http warm**: `bin/tokenserver` with the HTTP licence backend against the local licence API (5 ms a call); %d accounts, each asked once before the measurement, so every measured request is a cache hit until `cache_ttl` (default) runs out.\n", o.Accounts)
		p("- **http cold**: the same server, but **every request is a new account** (a username and API token never seen before), so every request misses the cache and waits for one 5 ms licence API call: throughput is bound by concurrency ÷ 5 ms.\n\n")
		seriesTable(&b, r.Token, "tokens/s", "× bare", false)
	}
	if l := r.Licence; l != nil {
		p("### Licence API calls\n\n")
		p("Counted by the licence API itself; `cache_ttl` %s.\n\n", l.CacheTTL)
		p("| server | accounts | token requests | licence API calls | most calls for one account | time | allowed per account |\n|---|---|---|---|---|---|---|\n")
		for _, w := range l.Warm {
			p("| %s | %d | %s | %d | %d | %s | %d |\n", w.Server, w.Accounts, addCommas(fmt.Sprint(w.Requests)), w.Calls, w.MaxPerAcct, w.Elapsed.Round(time.Second), w.AllowedPerA)
		}
		p("\nCold: %s token requests, %s licence API calls (one per request, as defined).\n", addCommas(fmt.Sprint(l.ColdRequests)), addCommas(fmt.Sprint(l.ColdCalls)))
		if hd := l.Herd; hd != nil {
			p("Herd: %d fresh accounts asked by %d workers at once, %d requests with a cold cache: %d licence API calls (most for one account: %d).\n", hd.Accounts, hd.Concurrency, hd.Requests, hd.Calls, hd.MaxPerAcct)
		}
		p("\n")
	}
	if len(r.Blob) > 0 {
		p("## 3. Blob streaming\n\n")
		p("One %d MiB blob per transfer, one client, %d rounds. The upstream answers the blob GET with a 307 to the S3 store (as ECR does), which generates the blob on the fly (Range support, nothing on disk).\n\n", o.BlobSize>>20, o.BlobRounds)
		p("- **direct**: the client GETs the blob from the upstream and follows the redirect to S3 itself (the baseline).\n")
		p("- **gateway (proxy_blobs)**: `bin/gateway` with `proxy_blobs: true` follows the redirect itself and streams the blob to the client.\n\n")
		p("| contender | MB/s median (min–max) | time per blob | × direct |\n|---|---|---|---|\n")
		for _, s := range r.Blob {
			base := baselineOf(r.Blob, s)
			q := "–"
			if !s.Baseline {
				q = fmtRatio(ratio(s, base, true))
			}
			p("| %s | %s (%s–%s) | %s | %s |\n", s.Contender, fmtNum(s.Summary.MBps), fmtNum(s.Summary.MBpsMin), fmtNum(s.Summary.MBpsMax), fmtDur(s.Summary.P50), q)
		}
		p("\n")
	}
	if s := r.RSS; s != nil {
		p("### Gateway memory under %d concurrent blob streams\n\n", s.Streams)
		p("A fresh `bin/gateway` (`proxy_blobs: true`). %d clients each GET the %d MiB blob through it; each reads the first bytes, waits until all %d streams are flowing at once (so that the gateway holds %d client and %d upstream connections), then reads %d MiB more and hangs up. Peak RSS is VmHWM from /proc/PID/status.\n\n",
			s.Streams, o.BlobSize>>20, s.Streams, s.Streams, s.Streams, s.StreamBytes>>20)
		p("| | value |\n|---|---|\n")
		p("| streams flowing at once | %d of %d |\n", s.Started, s.Streams)
		p("| RSS idle (after warm-up) | %.1f MiB |\n", mib(s.Idle.RSS))
		p("| **peak RSS (VmHWM)** | **%.1f MiB** |\n", mib(s.Peak.HWM))
		p("| bytes streamed | %.0f MiB in %s |\n", mib(s.Bytes), s.Elapsed.Round(100*time.Millisecond))
		p("| errors | %d %s |\n\n", s.Errors, s.FirstErr)
	}
	if len(r.Micro) > 0 {
		p("## 4. Go micro-benchmarks\n\n")
		p("`go test -run '^$' -bench . -benchmem -benchtime %s` in the harness's run (GOMAXPROCS %d). `-parallel` variants use `b.RunParallel` on all cores.\n\n", o.MicroBenchtime, r.Env.CPUs)
		p("| package | benchmark | ns/op | B/op | allocs/op |\n|---|---|---|---|---|\n")
		for _, m := range r.Micro {
			p("| %s | %s | %s | %.0f | %.0f |\n", m.Package, m.Name, fmtNum(m.NsPerOp), m.BPerOp, m.AllocsOp)
		}
		p("\n")
	}
	if u := r.UsageCount; u != nil && len(r.Usage) > 0 {
		p("## 5. Usage recording under load\n\n")
		load := "closed loop"
		if u.Rate > 0 {
			load = fmt.Sprintf("paced at %s requests/s", fmtNum(u.Rate))
		}
		p("Manifest requests as a docker re-pull and pull make them — `HEAD` of the manifest by tag (a check) and `GET` by digest (a pull), alternating — with pre-issued tokens of %d accounts, %d workers %s, %s per cell, the two configurations interleaved in %d rounds (%s each in all).\n\n",
			o.Accounts, u.Concurrency, load, u.CellTime, o.Rounds, (u.CellTime * time.Duration(o.Rounds)).Round(time.Second))
		p("- **%s** (the baseline): `bin/gateway` as shipped (manifest cache, access log, log level), `/token` forwarded to `bin/tokenserver` with the SQL licence backend on %s.\n", ContenderUsageOff, u.Database)
		p("- **%s**: the same binary and configuration plus `usage: {endpoint, secret_file}` (queue, batch and flush interval at their defaults): every pull and check is queued and sent in batches to the token service's intake, which stores it in `usage_events` and the daily counts. CPU is the gateway's and the token service's; PostgreSQL's is not counted.\n\n", ContenderUsageOn)
		seriesTable(&b, r.Usage, "requests/s", "× off", false)
		p("Events: the load generator counted %s pulls and %s checks answered 200 by the recording gateway (warm-up included); after its queue drained (%s), `usage_events` held %s rows: **%d lost**. `gateway_usage_dropped_total` %.0f, `gateway_usage_events_sent_total` %.0f.\n\n",
			addCommas(fmt.Sprint(u.Pulls)), addCommas(fmt.Sprint(u.Checks)), u.Drain.Round(10*time.Millisecond), addCommas(fmt.Sprint(u.Rows)), u.Lost(), u.Dropped, u.Sent)
	}
	if len(r.Profiles) > 0 {
		p("## CPU profiles of this run\n\n")
		p("The profile pass runs the same servers, wired as their `cmd` mains wire them, inside `bench serve` with `net/http/pprof` on a side listener, and takes a %d s CPU profile under load (twice that for the streams); the files are in `%s/profiles/` (`go tool pprof -top FILE`). Top of each, by flat time:\n\n", o.ProfileSeconds, o.Results)
		for _, pr := range r.Profiles {
			p("**%s** — %s (%s):\n\n```\n%s\n```\n\n", pr.Name, pr.Workload, pr.Load, headLines(pr.Top, 22))
			if pr.HeapTop != "" {
				p("Heap in use at the peak (`%s`); runtime.MemStats then: %s.\n\n```\n%s\n```\n\n", pr.HeapFile, pr.MemStats, headLines(pr.HeapTop, 16))
			}
		}
	}
	if len(r.Notes) > 0 {
		p("## Notes of this run\n\n")
		for _, n := range r.Notes {
			p("- %s\n", n)
		}
		p("\n")
	}
	return b.Bytes()
}

func headLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

// pullTable is the pull workload's table: pulls/s and the latency a pull
// gains over the registry itself.
func pullTable(b *bytes.Buffer, list []*Series) {
	b.WriteString("| concurrency | contender | pulls/s median (min–max) | p50 | p99 | added p50 / p99 | × direct | CPU µs/pull: server + fixtures |\n|---|---|---|---|---|---|---|---|\n")
	for _, s := range list {
		base := baselineOf(list, s)
		q, added, name := "–", "–", s.Contender
		if s.Baseline {
			name += " (baseline)"
		} else if base != nil {
			q = fmtRatio(ratio(s, base, false))
			added = fmtAdded(s.Summary.P50-base.Summary.P50) + " / " + fmtAdded(s.Summary.P99-base.Summary.P99)
		}
		errs := ""
		if s.Summary.Errors > 0 {
			errs = fmt.Sprintf(" [%d errors]", s.Summary.Errors)
		}
		fmt.Fprintf(b, "| %d | %s | %s%s | %s | %s | %s | %s | %s |\n", s.Concurrency, name, fmtRate(s.Summary), errs,
			fmtDur(s.Summary.P50), fmtDur(s.Summary.P99), added, q, fmtCPU(s.Summary))
	}
	b.WriteString("\n")
}

// fmtAdded is a latency difference, signed.
func fmtAdded(d time.Duration) string {
	switch {
	case d == 0:
		return "±0"
	case d < 0:
		return "−" + fmtDur(-d)
	}
	return "+" + fmtDur(d)
}

func fmtCPU(s Summary) string {
	if s.ServerCPU == 0 {
		return fmt.Sprintf("– + %.0f", us(s.UpstreamCPU))
	}
	return fmt.Sprintf("%.0f + %.0f", us(s.ServerCPU), us(s.UpstreamCPU))
}

func seriesTable(b *bytes.Buffer, list []*Series, unit, vs string, mb bool) {
	fmt.Fprintf(b, "| concurrency | contender | %s median (min–max) | p50 | p99 | %s | CPU µs/request: server + fixtures |\n|---|---|---|---|---|---|---|\n", unit, vs)
	for _, s := range list {
		q := "–"
		if !s.Baseline {
			q = fmtRatio(ratio(s, baselineOf(list, s), mb))
		}
		name := s.Contender
		if s.Baseline {
			name += " (baseline)"
		}
		errs := ""
		if s.Summary.Errors > 0 {
			errs = fmt.Sprintf(" [%d errors]", s.Summary.Errors)
		}
		fmt.Fprintf(b, "| %d | %s | %s%s | %s | %s | %s | %s |\n", s.Concurrency, name, fmtRate(s.Summary), errs, fmtDur(s.Summary.P50), fmtDur(s.Summary.P99), q, fmtCPU(s.Summary))
	}
	b.WriteString("\n")
}
