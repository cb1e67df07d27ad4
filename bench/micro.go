package bench

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/acme/registry-gateway/bench/micro"
)

func (h *harness) runMicro(ctx context.Context) error {
	pkgs := micro.WithBenchmarks(h.opts.Root, micro.Packages)
	if len(pkgs) == 0 {
		h.note("no micro-benchmarks found")
		return nil
	}
	t := time.Now()
	out, err := micro.Run(ctx, h.opts.Root, pkgs, h.opts.MicroBenchtime)
	if h.opts.Results != "" {
		dir := h.path(h.opts.Results)
		if mkErr := os.MkdirAll(dir, 0o755); mkErr == nil {
			_ = os.WriteFile(filepath.Join(dir, "micro.txt"), out, 0o644)
		}
	}
	if err != nil {
		return err
	}
	h.report.Micro = micro.Parse(string(out))
	h.logf("micro-benchmarks: %d results in %s", len(h.report.Micro), time.Since(t).Round(100*time.Millisecond))
	return nil
}
