package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func (h *harness) blobPath() string { return "/v2/" + benchRepo + "/blobs/" + h.fix.Addrs.BlobDigest }

func (h *harness) runBlob(ctx context.Context) error {
	fx := h.fix.Addrs
	path := h.blobPath()
	tok, err := pullToken(h.keys["ES256"].Key, "bench@bench.example", benchRepo)
	if err != nil {
		return err
	}
	direct := func(int, int) NewOp {
		return func(int) (Op, func(), error) {
			reg, err := NewConn(fx.Registry, 5*time.Minute)
			if err != nil {
				return nil, nil, err
			}
			s3, err := NewConn(fx.S3, 5*time.Minute)
			if err != nil {
				return nil, nil, err
			}
			raw := RenderGET(fx.Registry, path, "Authorization: Basic "+upstreamBasic())
			op := func(ctx context.Context, _ int) (int64, error) {
				resp, err := reg.Do(ctx, raw, false, nil)
				if err != nil {
					return 0, err
				}
				if err := expectStatus(resp, http.StatusTemporaryRedirect); err != nil {
					return 0, err
				}
				loc, err := url.Parse(resp.Location)
				if err != nil || loc.Host != fx.S3 {
					return 0, fmt.Errorf("redirect to %q, want the S3 fixture", resp.Location)
				}
				resp, err = s3.Do(ctx, RenderGET(loc.Host, loc.RequestURI()), false, nil)
				if err != nil {
					return 0, err
				}
				if err := expectStatus(resp, 200); err != nil {
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
	cs := []contender{{name: "direct", baseline: true, newOp: direct}}
	gw, gwAddr, err := h.startGateway(ctx, "gateway-blob", cacheOff)
	if err != nil {
		return err
	}
	if gw != nil {
		defer h.stop(gw)
		cs = append(cs, contender{name: "gateway (proxy_blobs)", pids: []int{gw.PID()}, newOp: func(int, int) NewOp {
			return fixedOp(gwAddr, RenderGET(gwAddr, path, "Authorization: Bearer "+tok), 200, fx.BlobSize)
		}})
	}
	cell := func(int) Cell { return Cell{Concurrency: 1, Requests: 1, MaxTime: 5 * time.Minute} }
	series, err := h.interleave(ctx, WorkloadBlob, cs, []int{1}, h.opts.BlobRounds, cell)
	h.report.Blob = series
	return err
}

// runRSS streams Streams blobs through a fresh gateway at once and reads
// its peak resident set.
func (h *harness) runRSS(ctx context.Context) error {
	gw, addr, err := h.startGateway(ctx, "gateway-rss", cacheOff)
	if err != nil {
		return err
	}
	if gw == nil {
		h.note("RSS test skipped: no gateway binary")
		return nil
	}
	defer h.stop(gw)
	direct, err := h.streams(ctx, h.fix.Addrs.S3, RenderGET(h.fix.Addrs.S3, "/blobs/"+h.fix.Addrs.BlobDigest), nil)
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
func (h *harness) rssLoad(ctx context.Context, gw *Proc, addr string, atPeak func()) (*RSSReport, error) {
	if err := checkLoopback(addr); err != nil {
		return nil, err
	}
	tok, err := pullToken(h.keys["ES256"].Key, "bench@bench.example", benchRepo)
	if err != nil {
		return nil, err
	}
	bearer := "Authorization: Bearer " + tok
	// Warm-up: the gateway has served manifests.
	if _, err := RunCell(ctx, Cell{Concurrency: 4, Requests: 100, MaxTime: 10 * time.Second},
		fixedOp(addr, RenderGET(addr, "/v2/"+benchRepo+"/manifests/"+benchTag, "Accept: "+h.fix.Addrs.ManifestType, bearer), 200, -1)); err != nil {
		return nil, err
	}
	idle, err := gw.Memory()
	if err != nil {
		return nil, err
	}
	rep, err := h.streams(ctx, addr, RenderGET(addr, h.blobPath(), bearer), atPeak)
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
func (h *harness) streams(ctx context.Context, addr string, raw []byte, atPeak func()) (*RSSReport, error) {
	n := h.opts.Streams
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()

	var (
		started  sync.WaitGroup
		done     sync.WaitGroup
		release  = make(chan struct{})
		flowing  atomic.Int64
		total    atomic.Int64
		errCount atomic.Int64
		errOnce  sync.Once
		firstErr string
	)
	fail := func(err error) {
		errCount.Add(1)
		errOnce.Do(func() { firstErr = err.Error() })
	}
	started.Add(n)
	done.Add(n)
	t0 := time.Now()
	for range n {
		go func() {
			defer done.Done()
			once := sync.OnceFunc(started.Done)
			defer once()
			b, err := stream(ctx, addr, raw, 64<<10, h.opts.StreamBytes, func() {
				flowing.Add(1)
				once()
				select {
				case <-release:
				case <-ctx.Done():
				}
			})
			total.Add(b)
			if err != nil {
				fail(err)
			}
		}()
	}
	// All streams flowing (or 60 s): the moment of peak memory.
	allStarted := make(chan struct{})
	go func() { started.Wait(); close(allStarted) }()
	select {
	case <-allStarted:
	case <-time.After(60 * time.Second):
	case <-ctx.Done():
	}
	atOnce := int(flowing.Load())
	time.Sleep(500 * time.Millisecond) // let the buffers fill
	if atPeak != nil {
		atPeak()
	}
	close(release)
	done.Wait()
	return &RSSReport{
		Streams: n, Started: atOnce, StreamBytes: h.opts.StreamBytes, Bytes: total.Load(),
		Errors: int(errCount.Load()), FirstErr: firstErr, Elapsed: time.Since(t0),
	}, nil
}

// streamRcvBuf is the receive buffer of each client of the streams test.
const streamRcvBuf = 64 << 10

// stream GETs a blob, reads first bytes, calls ready (which blocks until
// all streams flow), reads more bytes, and hangs up.
func stream(ctx context.Context, addr string, raw []byte, first, more int64, ready func()) (int64, error) {
	// A small receive buffer, set before connecting so that the window
	// is small from the start: a thousand autotuned loopback buffers of
	// up to 32 MiB would push the kernel into TCP memory pressure, where
	// it drops segments and every stream crawls on retransmission
	// timeouts, measuring the kernel rather than the gateway.
	d := net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, streamRcvBuf)
		})
		return errors.Join(err, serr)
	}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		ready()
		return 0, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	if _, err := conn.Write(raw); err != nil {
		ready()
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 16<<10), getReq)
	if err != nil {
		ready()
		return 0, err
	}
	// No resp.Body.Close: it would read the rest of the blob to the end.
	// Closing the connection hangs up, as a client that stops does.
	if resp.StatusCode != 200 {
		ready()
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	buf := make([]byte, 32<<10)
	n, err := io.CopyBuffer(io.Discard, onlyReader{io.LimitReader(resp.Body, first)}, buf)
	if err == nil && n < first {
		err = io.ErrUnexpectedEOF
	}
	ready()
	if err != nil {
		return n, err
	}
	m, err := io.CopyBuffer(io.Discard, onlyReader{io.LimitReader(resp.Body, more)}, buf)
	if err == nil && m < more {
		err = errors.New("stream ended early")
	}
	return n + m, err
}
