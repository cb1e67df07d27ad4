package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/acme/registry-gateway/bench/fixtures"
	"github.com/acme/registry-gateway/bench/loadgen"
	"github.com/acme/registry-gateway/bench/proc"
	"github.com/acme/registry-gateway/bench/report"
)

func (h *harness) blobPath() string {
	return "/v2/" + fixtures.Repo + "/blobs/" + h.fix.Addrs.BlobDigest
}

func (h *harness) runBlob(ctx context.Context) error {
	fx := h.fix.Addrs
	path := h.blobPath()
	tok, err := fixtures.PullToken(h.keys["ES256"].Key, "bench@bench.example", fixtures.Repo)
	if err != nil {
		return err
	}
	direct := func(int, int) loadgen.NewOp {
		return func(int) (loadgen.Op, func(), error) {
			reg, err := loadgen.NewConn(fx.Registry, 5*time.Minute)
			if err != nil {
				return nil, nil, err
			}
			s3, err := loadgen.NewConn(fx.S3, 5*time.Minute)
			if err != nil {
				return nil, nil, err
			}
			raw := loadgen.RenderGET(fx.Registry, path, "Authorization: Basic "+fixtures.UpstreamBasic())
			op := func(ctx context.Context, _ int) (int64, error) {
				resp, err := reg.Do(ctx, raw, false, nil)
				if err != nil {
					return 0, err
				}
				if err := loadgen.ExpectStatus(resp, http.StatusTemporaryRedirect); err != nil {
					return 0, err
				}
				loc, err := url.Parse(resp.Location)
				if err != nil || loc.Host != fx.S3 {
					return 0, fmt.Errorf("redirect to %q, want the S3 fixture", resp.Location)
				}
				resp, err = s3.Do(ctx, loadgen.RenderGET(loc.Host, loc.RequestURI()), false, nil)
				if err != nil {
					return 0, err
				}
				if err := loadgen.ExpectStatus(resp, 200); err != nil {
					return 0, err
				}
				if resp.Bytes != fx.BlobSize {
					return 0, fmt.Errorf("blob of %d bytes, want %d", resp.Bytes, fx.BlobSize)
				}
				return resp.Bytes, nil
			}
			return op, func() { reg.Close(); s3.Close() }, nil
		}
	}
	cs := []contender{{name: report.ContenderDirect, baseline: true, newOp: direct}}
	gw, gwAddr, err := h.startGateway(ctx, "gateway-blob", fixtures.CacheOff)
	if err != nil {
		return err
	}
	if gw != nil {
		defer h.stop(gw)
		cs = append(cs, contender{name: report.ContenderGatewayBlobs, pids: []int{gw.PID()}, newOp: func(int, int) loadgen.NewOp {
			return loadgen.FixedOp(gwAddr, loadgen.RenderGET(gwAddr, path, "Authorization: Bearer "+tok), 200, fx.BlobSize)
		}})
	}
	cell := func(int) loadgen.Cell { return loadgen.Cell{Concurrency: 1, Requests: 1, MaxTime: 5 * time.Minute} }
	series, err := h.interleave(ctx, WorkloadBlob, cs, []int{1}, h.opts.BlobRounds, cell)
	h.report.Blob = series
	return err
}

// runRSS streams Streams blobs through a fresh gateway at once and reads
// its peak resident set.
func (h *harness) runRSS(ctx context.Context) error {
	gw, addr, err := h.startGateway(ctx, "gateway-rss", fixtures.CacheOff)
	if err != nil {
		return err
	}
	if gw == nil {
		h.note("RSS test skipped: no gateway binary")
		return nil
	}
	defer h.stop(gw)
	direct, err := h.streams(ctx, h.fix.Addrs.S3, loadgen.RenderGET(h.fix.Addrs.S3, "/blobs/"+h.fix.Addrs.BlobDigest), nil)
	if err != nil {
		return err
	}
	rep, err := h.rssLoad(ctx, gw, addr, nil)
	if err != nil {
		return err
	}
	rep.Direct = direct
	h.report.RSS = rep
	h.logf("rss: %d streams, %d flowing at once, peak %.1f MiB (idle %.1f MiB), %d errors, %s", rep.Streams, rep.Started, mib(rep.Peak.HWM), mib(rep.Idle.RSS), rep.Errors, rep.Elapsed.Round(100*time.Millisecond))
	return nil
}

// rssLoad warms the gateway up, then has Streams clients stream the blob
// through it at once; atPeak, if set, runs while all of them are flowing.
func (h *harness) rssLoad(ctx context.Context, gw *proc.Proc, addr string, atPeak func()) (*report.RSSReport, error) {
	if err := loadgen.CheckLoopback(addr); err != nil {
		return nil, err
	}
	tok, err := fixtures.PullToken(h.keys["ES256"].Key, "bench@bench.example", fixtures.Repo)
	if err != nil {
		return nil, err
	}
	bearer := "Authorization: Bearer " + tok
	// Warm-up: the gateway has served manifests.
	if _, err := loadgen.RunCell(ctx, loadgen.Cell{Concurrency: 4, Requests: 100, MaxTime: 10 * time.Second},
		loadgen.FixedOp(addr, loadgen.RenderGET(addr, "/v2/"+fixtures.Repo+"/manifests/"+fixtures.Tag, "Accept: "+h.fix.Addrs.ManifestType, bearer), 200, -1)); err != nil {
		return nil, err
	}
	idle, err := gw.Memory()
	if err != nil {
		return nil, err
	}
	rep, err := h.streams(ctx, addr, loadgen.RenderGET(addr, h.blobPath(), bearer), atPeak)
	if err != nil {
		return nil, err
	}
	if rep.Peak, err = gw.Memory(); err != nil {
		return nil, err
	}
	rep.Idle = idle
	return rep, nil
}

// streams has Streams clients GET raw from addr at once, each reading the
// first 64 KiB, then, once all flow (atPeak runs then), StreamBytes more.
func (h *harness) streams(ctx context.Context, addr string, raw []byte, atPeak func()) (*report.RSSReport, error) {
	res, err := loadgen.Streams(ctx, addr, raw, h.opts.Streams, h.opts.StreamBytes, atPeak)
	if err != nil {
		return nil, err
	}
	return &report.RSSReport{
		Streams: res.Streams, Started: res.Started, StreamBytes: h.opts.StreamBytes, Bytes: res.Bytes,
		Errors: res.Errors, FirstErr: res.FirstErr, Elapsed: res.Elapsed,
	}, nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
