package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/acme/registry-gateway/internal/gateway"
	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/internal/tokenserver"
)

// The profile pass runs the gateway and the token service wired exactly as
// their cmd mains wire them, in a process of this program that also serves
// net/http/pprof on a side listener, drives one workload at them and saves
// a CPU profile (and for the RSS test a heap profile) into the results.
// The binaries measured by the other workloads carry no pprof endpoint.

// ServeProfiled runs `bench serve gateway|tokenserver -config FILE -pprof
// ADDR`.
func ServeProfiled(ctx context.Context, what, configPath, pprofAddr string, stderr io.Writer) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	ln, err := net.Listen("tcp", pprofAddr)
	if err != nil {
		return err
	}
	psrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = psrv.Serve(ln) }()
	defer psrv.Close()

	switch what {
	case "gateway":
		cfg, err := gateway.LoadConfig(configPath)
		if err != nil {
			return err
		}
		log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.SlogLevel()}))
		gw, err := gateway.New(ctx, cfg, gateway.Options{Logger: log})
		if err != nil {
			return err
		}
		defer gw.Close()
		srv := httpx.NewServer(cfg.Listen, gw, gateway.ServerTimeouts(cfg), log)
		return httpx.Serve(ctx, srv, nil, cfg.ShutdownTimeout)
	case "tokenserver":
		cfg, err := tokenserver.LoadConfig(configPath)
		if err != nil {
			return err
		}
		log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.SlogLevel()}))
		srv, err := tokenserver.New(cfg, tokenserver.Options{Logger: log})
		if err != nil {
			return err
		}
		return srv.Run(ctx)
	}
	return fmt.Errorf("bench serve: unknown server %q", what)
}

// profileTarget is one profiled workload.
type profileTarget struct {
	name    string
	server  string // gateway or tokenserver
	config  string
	addr    string
	seconds int
	// load drives the server for about seconds; heap, if set, is called
	// once at the moment of peak memory to save a heap profile.
	load func(ctx context.Context, p *Proc, heap func()) (string, error)
}

// cellLoad is a profile load of one cell at concurrency c.
func cellLoad(c, seconds int, newOp NewOp) func(context.Context, *Proc, func()) (string, error) {
	return func(ctx context.Context, _ *Proc, _ func()) (string, error) {
		res, err := RunCell(ctx, Cell{Concurrency: c, Requests: 1 << 30, MaxTime: time.Duration(seconds)*time.Second - 300*time.Millisecond, Warmup: 2}, newOp)
		if err != nil {
			return "", err
		}
		if res.MBps > 100 {
			return fmt.Sprintf("%.0f MB/s", res.MBps), nil
		}
		return fmt.Sprintf("%.0f requests/s", res.RPS), nil
	}
}

// profile runs t's load while taking a CPU profile (and a heap profile if
// the load asks for one), and returns the top of `go tool pprof -top`.
func (h *harness) profile(ctx context.Context, t profileTarget) (ProfileResult, error) {
	pr := ProfileResult{Name: t.name}
	pprofAddr, err := freeAddr()
	if err != nil {
		return pr, err
	}
	p, err := h.start(ctx, "profiled-"+t.name, h.opts.Self, []string{"serve", t.server, "-config", t.config, "-pprof", pprofAddr},
		"http://"+t.addr+"/healthz", 200)
	if err != nil {
		return pr, err
	}
	defer h.stop(p)
	dir := filepath.Join(h.path(h.opts.Results), "profiles")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return pr, err
	}
	fetch := func(path string, timeout time.Duration) ([]byte, error) {
		client := &http.Client{Timeout: timeout}
		resp, err := client.Get("http://" + pprofAddr + path)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return nil, fmt.Errorf("%s: status %d", path, resp.StatusCode)
		}
		return io.ReadAll(resp.Body)
	}
	type got struct {
		data []byte
		err  error
	}
	ch := make(chan got, 1)
	go func() {
		data, err := fetch(fmt.Sprintf("/debug/pprof/profile?seconds=%d", t.seconds), time.Duration(t.seconds+60)*time.Second)
		ch <- got{data, err}
	}()
	time.Sleep(200 * time.Millisecond) // the profile has started
	cpu0, _ := cpuTime(p.PID())
	var heapErr error
	heap := func() {
		data, err := fetch("/debug/pprof/heap?gc=1", 30*time.Second)
		if err == nil {
			pr.HeapFile = filepath.Join(dir, t.name+".heap.pprof")
			err = os.WriteFile(pr.HeapFile, data, 0o644)
		}
		if err == nil {
			// The text form ends with runtime.MemStats: where the
			// resident memory goes (heap, stacks, GC metadata).
			data, err = fetch("/debug/pprof/heap?debug=1&gc=1", 30*time.Second)
			pr.MemStats = memStatsSummary(string(data))
		}
		heapErr = err
	}
	summary, err := t.load(ctx, p, heap)
	if err != nil {
		return pr, err
	}
	if heapErr != nil {
		return pr, heapErr
	}
	cpu1, _ := cpuTime(p.PID())
	g := <-ch
	if g.err != nil {
		return pr, g.err
	}
	pr.File = filepath.Join(dir, t.name+".cpu.pprof")
	if err := os.WriteFile(pr.File, g.data, 0o644); err != nil {
		return pr, err
	}
	top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=25", pr.File).CombinedOutput()
	if err != nil {
		return pr, fmt.Errorf("go tool pprof: %w: %s", err, top)
	}
	pr.Top = trimTop(string(top))
	if pr.HeapFile != "" {
		top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-sample_index=inuse_space", "-nodecount=15", pr.HeapFile).CombinedOutput()
		if err != nil {
			return pr, fmt.Errorf("go tool pprof: %w: %s", err, top)
		}
		pr.HeapTop = trimTop(string(top))
	}
	pr.Load = fmt.Sprintf("%s, %s of server CPU", summary, (cpu1 - cpu0).Round(10*time.Millisecond))
	h.logf("profile %s: %s, saved %s", t.name, pr.Load, pr.File)
	return pr, nil
}

// trimTop keeps the header and the function lines of pprof -top output.
func trimTop(s string) string {
	var keep []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.HasPrefix(line, "File:") || strings.HasPrefix(line, "Build ID:") || strings.HasPrefix(line, "Type:") || strings.HasPrefix(line, "Time:") {
			continue
		}
		if strings.TrimSpace(line) != "" {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
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

// memStatsSummary picks the MemStats lines that explain a resident set.
func memStatsSummary(heapText string) string {
	var keep []string
	for line := range strings.SplitSeq(heapText, "\n") {
		for _, k := range []string{"# Sys ", "# HeapAlloc ", "# HeapInuse ", "# HeapIdle ", "# HeapReleased ", "# StackInuse ", "# GCSys ", "# NextGC ", "# NumGC ", "# Stack = ", "# MSpan = "} {
			if strings.HasPrefix(line, k) {
				f := strings.Fields(line)
				if len(f) == 4 && k != "# NumGC " {
					if v, err := strconv.ParseFloat(f[3], 64); err == nil {
						keep = append(keep, fmt.Sprintf("%s %.1f MiB", f[1], v/(1<<20)))
						continue
					}
				}
				keep = append(keep, strings.TrimPrefix(line, "# "))
			}
		}
	}
	return strings.Join(keep, ", ")
}

func (h *harness) runProfile(ctx context.Context) error {
	tok, err := pullToken(h.keys["ES256"].Key, "bench@bench.example", benchRepo)
	if err != nil {
		return err
	}
	bearer := "Authorization: Bearer " + tok
	sec := h.opts.ProfileSeconds
	var targets []profileTarget
	var descs []string
	if _, ok := h.bins["gateway"]; ok {
		cfg, addr, err := h.writeGatewayConfig("profiled-gateway-manifest", cacheOff)
		if err != nil {
			return err
		}
		targets = append(targets, profileTarget{name: "gateway-manifest", server: "gateway", config: cfg, addr: addr, seconds: sec,
			load: cellLoad(16, sec, fixedOp(addr, RenderGET(addr, "/v2/"+benchRepo+"/manifests/"+benchTag, "Accept: "+h.fix.Addrs.ManifestType, bearer), 200, int64(h.fix.Addrs.ManifestSize)))})
		descs = append(descs, "manifest GET through the gateway (pass-through, manifest cache off), concurrency 16")
		if cfg, addr, err = h.writeGatewayConfig("profiled-gateway-blob", cacheOff); err != nil {
			return err
		}
		targets = append(targets, profileTarget{name: "gateway-blob", server: "gateway", config: cfg, addr: addr, seconds: sec,
			load: cellLoad(1, sec, fixedOp(addr, RenderGET(addr, h.blobPath(), bearer), 200, h.fix.Addrs.BlobSize))})
		descs = append(descs, fmt.Sprintf("%d MiB blobs through the gateway (proxy_blobs), one at a time", h.fix.Addrs.BlobSize>>20))
		if cfg, addr, err = h.writeGatewayConfig("profiled-gateway-rss", cacheOff); err != nil {
			return err
		}
		targets = append(targets, profileTarget{name: "gateway-streams", server: "gateway", config: cfg, addr: addr, seconds: 2 * sec,
			load: func(ctx context.Context, p *Proc, heap func()) (string, error) {
				rep, err := h.rssLoad(ctx, p, addr, heap)
				if err != nil {
					return "", err
				}
				return fmt.Sprintf("%d streams, peak RSS %.1f MiB, %.0f MiB in %s", rep.Streams, mib(rep.Peak.HWM), mib(rep.Bytes), rep.Elapsed.Round(100*time.Millisecond)), nil
			}})
		descs = append(descs, fmt.Sprintf("%d concurrent blob streams through the gateway (the RSS test)", h.opts.Streams))
	}
	if _, ok := h.bins["tokenserver"]; ok {
		cfg, addr, err := h.writeTokenConfig("ES256", "file")
		if err != nil {
			return err
		}
		name := tokenServerName("ES256", "file")
		reqs := make([][]byte, h.opts.Accounts)
		for i := range reqs {
			u := accountName(name, i)
			reqs[i] = tokenRequest(addr, u, apiToken(u))
		}
		targets = append(targets, profileTarget{name: "tokenserver-es256-file", server: "tokenserver", config: cfg, addr: addr, seconds: sec,
			load: cellLoad(16, sec, varyingOp(addr, func(w, i int) []byte { return reqs[(w*7+i)%len(reqs)] }, 200, -1))})
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
