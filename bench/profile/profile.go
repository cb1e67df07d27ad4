// Package profile takes the CPU and heap profiles of the benchmark's
// profile pass: `bench serve` runs the gateway or the token service wired
// as their cmd mains wire them, with net/http/pprof on a side listener, and
// Collect saves a profile taken while a load runs, with the top of
// `go tool pprof`.
package profile

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
	"github.com/acme/registry-gateway/internal/tokenserver"
)

// The profile pass runs the gateway and the token service wired exactly as
// their cmd mains wire them, in a process of this program that also serves
// net/http/pprof on a side listener, drives one workload at them and saves
// a CPU profile (and for the RSS test a heap profile) into the results.
// The binaries measured by the other workloads carry no pprof endpoint.

// Serve runs `bench serve gateway|tokenserver -config FILE -pprof ADDR`.
func Serve(ctx context.Context, what, configPath, pprofAddr string, stderr io.Writer) error {
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
		return gw.Run(ctx)
	case "tokenserver":
		cfg, err := tokenserver.LoadConfig(configPath)
		if err != nil {
			return err
		}
		log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.SlogLevel()}))
		srv, err := tokenserver.New(ctx, cfg, tokenserver.Options{Logger: log})
		if err != nil {
			return err
		}
		defer srv.Close()
		return srv.Run(ctx)
	}
	return fmt.Errorf("bench serve: unknown server %q", what)
}

// Capture is what Collect saved.
type Capture struct {
	File     string // CPU profile
	Top      string // its `go tool pprof -top`
	HeapFile string // heap profile, if the load asked for one
	HeapTop  string
	MemStats string // the runtime.MemStats lines that explain the resident set
}

// Collect takes a CPU profile of seconds from the pprof listener at
// pprofAddr while load runs, and saves it into dir as NAME.cpu.pprof with
// the top of `go tool pprof -top`. load may call heap once, at the moment of
// peak memory, to save a heap profile (NAME.heap.pprof) as well.
func Collect(ctx context.Context, pprofAddr, dir, name string, seconds int, load func(heap func()) error) (Capture, error) {
	var c Capture
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return c, err
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
		data, err := fetch(fmt.Sprintf("/debug/pprof/profile?seconds=%d", seconds), time.Duration(seconds+60)*time.Second)
		ch <- got{data, err}
	}()
	time.Sleep(200 * time.Millisecond) // the profile has started
	var heapErr error
	heap := func() {
		data, err := fetch("/debug/pprof/heap?gc=1", 30*time.Second)
		if err == nil {
			c.HeapFile = filepath.Join(dir, name+".heap.pprof")
			err = os.WriteFile(c.HeapFile, data, 0o644)
		}
		if err == nil {
			// The text form ends with runtime.MemStats: where the
			// resident memory goes (heap, stacks, GC metadata).
			data, err = fetch("/debug/pprof/heap?debug=1&gc=1", 30*time.Second)
			c.MemStats = memStatsSummary(string(data))
		}
		heapErr = err
	}
	if err := load(heap); err != nil {
		return c, err
	}
	if heapErr != nil {
		return c, heapErr
	}
	g := <-ch
	if g.err != nil {
		return c, g.err
	}
	c.File = filepath.Join(dir, name+".cpu.pprof")
	if err := os.WriteFile(c.File, g.data, 0o644); err != nil {
		return c, err
	}
	top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=25", c.File).CombinedOutput()
	if err != nil {
		return c, fmt.Errorf("go tool pprof: %w: %s", err, top)
	}
	c.Top = trimTop(string(top))
	if c.HeapFile != "" {
		top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-sample_index=inuse_space", "-nodecount=15", c.HeapFile).CombinedOutput()
		if err != nil {
			return c, fmt.Errorf("go tool pprof: %w: %s", err, top)
		}
		c.HeapTop = trimTop(string(top))
	}
	return c, nil
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
