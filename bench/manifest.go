package bench

import (
	"context"
	"fmt"

	"github.com/acme/registry-gateway/bench/fixtures"
	"github.com/acme/registry-gateway/bench/loadgen"
	"github.com/acme/registry-gateway/bench/report"
)

func (h *harness) runManifest(ctx context.Context) error {
	fx := h.fix.Addrs
	tok, err := fixtures.PullToken(h.keys["ES256"].Key, "bench@bench.example", fixtures.Repo)
	if err != nil {
		return err
	}
	accept := "Accept: " + fx.ManifestType
	bearer := "Authorization: Bearer " + tok
	size := int64(fx.ManifestSize)
	tagPath := "/v2/" + fixtures.Repo + "/manifests/" + fixtures.Tag
	digestPath := "/v2/" + fixtures.Repo + "/manifests/" + fx.ManifestDigest
	h.report.ManifestInfo = fmt.Sprintf("`GET %s` (`%s`, %d bytes) as `docker pull` asks it, and the same manifest by digest (`GET /v2/%s/manifests/sha256:…`), on kept-alive connections.",
		tagPath, fx.ManifestType, size, fixtures.Repo)

	// contenders builds the contenders of one request path; the servers
	// are shared by both groups.
	type server struct {
		name, addr string
		pids       []int
	}
	var servers []server
	for _, g := range []struct{ name, proc, cache string }{
		{report.ContenderGateway, "gateway-manifest", fixtures.CacheOff},
		{report.ContenderGatewayCache, "gateway-manifest-cache", fixtures.CacheOn},
	} {
		gw, addr, err := h.startGateway(ctx, g.proc, g.cache)
		if err != nil {
			return err
		}
		if gw == nil {
			continue
		}
		defer h.stop(gw)
		servers = append(servers, server{name: g.name, addr: addr, pids: []int{gw.PID()}})
	}
	ngx, addr, pids, err := h.startNginx(ctx, WorkloadManifest)
	if err != nil {
		return err
	}
	if ngx != nil {
		defer h.stop(ngx)
		servers = append(servers, server{name: report.ContenderNginx, addr: addr, pids: pids})
	}
	for _, g := range []struct{ group, path string }{{report.GroupTag, tagPath}, {report.GroupDigest, digestPath}} {
		p := g.path
		cs := []contender{{name: report.ContenderDirect, baseline: true, newOp: func(int, int) loadgen.NewOp {
			return loadgen.FixedOp(fx.Registry, loadgen.RenderGET(fx.Registry, p, accept, "Authorization: Basic "+fixtures.UpstreamBasic()), 200, size)
		}}}
		for _, sv := range servers {
			cs = append(cs, contender{name: sv.name, pids: sv.pids, newOp: func(int, int) loadgen.NewOp {
				return loadgen.FixedOp(sv.addr, loadgen.RenderGET(sv.addr, p, accept, bearer), 200, size)
			}})
		}
		series, err := h.interleave(ctx, WorkloadManifest, cs, h.opts.Concurrency, h.opts.Rounds, h.cell)
		for _, s := range series {
			s.Group = g.group
		}
		h.report.Manifest = append(h.report.Manifest, series...)
		if err != nil {
			return fmt.Errorf("%s: %w", g.group, err)
		}
	}
	return nil
}
