package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/acme/registry-gateway/bench/fixtures"
	"github.com/acme/registry-gateway/bench/loadgen"
	"github.com/acme/registry-gateway/bench/proc"
	"github.com/acme/registry-gateway/bench/procstat"
	"github.com/acme/registry-gateway/bench/profile"
	"github.com/acme/registry-gateway/bench/pull"
	"github.com/acme/registry-gateway/bench/report"
)

// profileTarget is one profiled workload.
type profileTarget struct {
	name    string
	server  string // gateway or tokenserver
	config  string
	addr    string
	seconds int
	// load drives the server for about seconds; heap, if set, is called
	// once at the moment of peak memory to save a heap profile.
	load func(ctx context.Context, p *proc.Proc, heap func()) (string, error)
}

// cellLoad is a profile load of one cell at concurrency c.
func cellLoad(c, seconds int, newOp loadgen.NewOp) func(context.Context, *proc.Proc, func()) (string, error) {
	return func(ctx context.Context, _ *proc.Proc, _ func()) (string, error) {
		res, err := loadgen.RunCell(ctx, loadgen.Cell{Concurrency: c, Requests: 1 << 30, MaxTime: time.Duration(seconds)*time.Second - 300*time.Millisecond, Warmup: 2}, newOp)
		if err != nil {
			return "", err
		}
		if res.MBps > 100 {
			return fmt.Sprintf("%.0f MB/s", res.MBps), nil
		}
		return fmt.Sprintf("%.0f requests/s", res.RPS), nil
	}
}

// profile starts t's server under `bench serve` and runs t's load while
// taking a CPU profile (and a heap profile if the load asks for one).
func (h *harness) profile(ctx context.Context, t profileTarget) (report.ProfileResult, error) {
	pr := report.ProfileResult{Name: t.name}
	pprofAddr, err := proc.FreeAddr()
	if err != nil {
		return pr, err
	}
	p, err := h.start(ctx, "profiled-"+t.name, h.opts.Self, []string{"serve", t.server, "-config", t.config, "-pprof", pprofAddr},
		"http://"+t.addr+"/healthz", 200)
	if err != nil {
		return pr, err
	}
	defer h.stop(p)
	var summary string
	var cpu time.Duration
	c, err := profile.Collect(ctx, pprofAddr, filepath.Join(h.path(h.opts.Results), "profiles"), t.name, t.seconds, func(heap func()) error {
		cpu0, _ := procstat.CPUTime(p.PID())
		var err error
		if summary, err = t.load(ctx, p, heap); err != nil {
			return err
		}
		cpu1, _ := procstat.CPUTime(p.PID())
		cpu = cpu1 - cpu0
		return nil
	})
	if err != nil {
		return pr, err
	}
	pr.File, pr.Top, pr.HeapFile, pr.HeapTop, pr.MemStats = c.File, c.Top, c.HeapFile, c.HeapTop, c.MemStats
	pr.Load = fmt.Sprintf("%s, %s of server CPU", summary, cpu.Round(10*time.Millisecond))
	h.logf("profile %s: %s, saved %s", t.name, pr.Load, pr.File)
	return pr, nil
}

func (h *harness) runProfile(ctx context.Context) error {

	tok, err := fixtures.PullToken(h.keys["ES256"].Key, "bench@bench.example", fixtures.Repo)
	if err != nil {
		return err
	}
	bearer := "Authorization: Bearer " + tok
	sec := h.opts.ProfileSeconds
	var targets []profileTarget
	var descs []string
	if _, ok := h.bins["gateway"]; ok {
		cfg, addr, err := h.writeGatewayConfig("profiled-gateway-manifest", fixtures.CacheOff)
		if err != nil {
			return err
		}
		targets = append(targets, profileTarget{name: "gateway-manifest", server: "gateway", config: cfg, addr: addr, seconds: sec,
			load: cellLoad(16, sec, loadgen.FixedOp(addr, loadgen.RenderGET(addr, "/v2/"+fixtures.Repo+"/manifests/"+fixtures.Tag, "Accept: "+h.fix.Addrs.ManifestType, bearer), 200, int64(h.fix.Addrs.ManifestSize)))})
		descs = append(descs, "manifest GET through the gateway (pass-through, manifest cache off), concurrency 16")
		if cfg, addr, err = h.writeGatewayConfig("profiled-gateway-blob", fixtures.CacheOff); err != nil {
			return err
		}
		targets = append(targets, profileTarget{name: "gateway-blob", server: "gateway", config: cfg, addr: addr, seconds: sec,
			load: cellLoad(1, sec, loadgen.FixedOp(addr, loadgen.RenderGET(addr, h.blobPath(), bearer), 200, h.fix.Addrs.BlobSize))})
		descs = append(descs, fmt.Sprintf("%d MiB blobs through the gateway (proxy_blobs), one at a time", h.fix.Addrs.BlobSize>>20))
		if cfg, addr, err = h.writeGatewayConfig("profiled-gateway-rss", fixtures.CacheOff); err != nil {
			return err
		}
		targets = append(targets, profileTarget{name: "gateway-streams", server: "gateway", config: cfg, addr: addr, seconds: 2 * sec,
			load: func(ctx context.Context, p *proc.Proc, heap func()) (string, error) {
				rep, err := h.rssLoad(ctx, p, addr, heap)
				if err != nil {
					return "", err
				}
				return fmt.Sprintf("%d streams, peak RSS %.1f MiB, %.0f MiB in %s", rep.Streams, mib(rep.Peak.HWM), mib(rep.Bytes), rep.Elapsed.Round(100*time.Millisecond)), nil
			}})
		descs = append(descs, fmt.Sprintf("%d concurrent blob streams through the gateway (the RSS test)", h.opts.Streams))

		if _, ok := h.bins["tokenserver"]; ok {
			ts, err := h.startTokenServer(ctx, "ES256", "file", tokenShipped)
			if err != nil {
				return err
			}
			defer h.stop(ts.proc)
			pullCfg, pullAddr, err := h.writeShippedGatewayConfig("profiled-gateway-pull", ts.addr, "", "")
			if err != nil {
				return err
			}
			im := &h.fix.Addrs.Pull
			targets = append(targets, profileTarget{name: "gateway-pull", server: "gateway", config: pullCfg, addr: pullAddr, seconds: sec,
				load: cellLoad(16, sec, pull.NewOp(pullAddr, im, h.pullAuth(ts, im.Repo), nil))})
			descs = append(descs, "docker pulls through the gateway as shipped (token service as shipped behind /token), concurrency 16; a request of the load is a whole pull")
		}
	}
	if _, ok := h.bins["tokenserver"]; ok {
		cfg, addr, err := h.writeTokenConfig("ES256", "file", tokenBare)
		if err != nil {
			return err
		}
		name := tokenServerName("ES256", "file", tokenBare)
		reqs := make([][]byte, h.opts.Accounts)
		for i := range reqs {
			u := accountName(name, i)
			reqs[i] = tokenRequest(addr, u, fixtures.APIToken(u))
		}
		targets = append(targets, profileTarget{name: "tokenserver-es256-file", server: "tokenserver", config: cfg, addr: addr, seconds: sec,
			load: cellLoad(16, sec, loadgen.VaryingOp(addr, func(w, i int) []byte { return reqs[(w*7+i)%len(reqs)] }, 200, -1))})
		descs = append(descs, "ES256 token issuance, file backend, concurrency 16")
	}
	for i, t := range targets {
		pr, err := h.profile(ctx, t)
		if err != nil {
			return fmt.Errorf("profile %s: %w", t.name, err)
		}
		pr.Workload = descs[i]
		pr.File = filepath.Join(h.opts.Results, "profiles", filepath.Base(pr.File))
		if pr.HeapFile != "" {
			pr.HeapFile = filepath.Join(h.opts.Results, "profiles", filepath.Base(pr.HeapFile))
		}
		h.report.Profiles = append(h.report.Profiles, pr)
	}
	return nil
}
