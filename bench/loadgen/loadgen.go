// Package loadgen is the benchmark's HTTP/1.1 load generator: kept-alive
// connections to loopback addresses only, requests rendered to bytes up
// front, cells of N workers bounded in count and time with a warm-up, and
// the latency percentiles and rates of each cell. It also drives the
// long-lived concurrent blob streams of the memory test.
package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The load generator speaks HTTP/1.1 over kept-alive connections with
// requests rendered to bytes up front, so that on a 2-core machine it takes
// as little CPU from the servers under test as it can; net/http's client
// costs several times more per request. Responses are parsed with
// http.ReadResponse, which handles Content-Length, chunked and HEAD alike.

// CheckLoopback refuses any address that is not on this machine's loopback:
// the harness must never send load anywhere else.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("bench: %q is not a loopback address; the load generator only talks to 127.0.0.1", addr)
	}
	return nil
}

// Conn is one kept-alive client connection to addr.
type Conn struct {
	addr    string
	timeout time.Duration
	c       net.Conn
	br      *bufio.Reader
	buf     []byte
	dials   int
}

// Dials is how many connections c has opened: one while the server keeps
// it alive.
func (c *Conn) Dials() int { return c.dials }

// NewConn returns a connection to addr (host:port, loopback only) that dials
// lazily; timeout bounds each request.
func NewConn(addr string, timeout time.Duration) (*Conn, error) {
	if err := CheckLoopback(addr); err != nil {
		return nil, err
	}
	return &Conn{addr: addr, timeout: timeout, buf: make([]byte, 64<<10)}, nil
}

var (
	getReq  = &http.Request{Method: http.MethodGet}
	headReq = &http.Request{Method: http.MethodHead}
)

// Response is what the load generator keeps of an answer.
type Response struct {
	Status   int
	Bytes    int64
	Location string
}

// Do sends raw (a complete request) and reads the answer, discarding the
// body through sink (nil: io.Discard). A request that fails on a reused
// connection is retried once on a fresh one: the server may have closed it
// while idle.
func (c *Conn) Do(ctx context.Context, raw []byte, head bool, sink io.Writer) (Response, error) {
	reused := c.c != nil
	resp, err := c.do(ctx, raw, head, sink)
	if err != nil && reused && ctx.Err() == nil {
		c.Close()
		resp, err = c.do(ctx, raw, head, sink)
	}
	if err != nil {
		c.Close()
	}
	return resp, err
}

func (c *Conn) do(ctx context.Context, raw []byte, head bool, sink io.Writer) (Response, error) {
	if c.c == nil {
		d := net.Dialer{Timeout: 5 * time.Second}
		conn, err := d.DialContext(ctx, "tcp", c.addr)
		if err != nil {
			return Response{}, err
		}
		c.c = conn
		c.dials++
		if c.br == nil {
			c.br = bufio.NewReaderSize(conn, 16<<10)
		} else {
			c.br.Reset(conn)
		}
	}
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.c.SetDeadline(deadline)
	if _, err := c.c.Write(raw); err != nil {
		return Response{}, err
	}
	req := getReq
	if head {
		req = headReq
	}
	resp, err := http.ReadResponse(c.br, req)
	if err != nil {
		return Response{}, err
	}
	if sink == nil {
		sink = io.Discard
	}
	n, err := io.CopyBuffer(sink, onlyReader{resp.Body}, c.buf)
	resp.Body.Close()
	if err != nil {
		return Response{}, err
	}
	out := Response{Status: resp.StatusCode, Bytes: n, Location: resp.Header.Get("Location")}
	if resp.Close {
		c.Close()
	}
	return out, nil
}

// onlyReader hides WriterTo so that CopyBuffer uses our buffer.
type onlyReader struct{ io.Reader }

// Close closes the connection; the next Do dials again.
func (c *Conn) Close() {
	if c.c != nil {
		_ = c.c.Close()
		c.c = nil
	}
}

// RenderGET renders a GET request for path on host with the given extra
// header lines ("Name: value").
func RenderGET(host, path string, headers ...string) []byte {
	return render(http.MethodGet, host, path, headers)
}

// RenderHEAD renders a HEAD request.
func RenderHEAD(host, path string, headers ...string) []byte {
	return render(http.MethodHead, host, path, headers)
}

func render(method, host, path string, headers []string) []byte {
	var b strings.Builder
	b.WriteString(method + " " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: registry-gateway-bench\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// Cell bounds one measurement: Concurrency workers share at most Requests
// requests and stop at MaxTime, whichever comes first. Each worker first
// makes Warmup requests that are not measured (connections opened, caches
// warm), and all workers start measuring together.
type Cell struct {
	Concurrency int
	Requests    int
	MaxTime     time.Duration
	Warmup      int
	// Rate, when positive, paces the measured requests: request k of the
	// cell (all workers together) starts no earlier than k/Rate seconds
	// after the measurement's start, an open schedule; a server slower
	// than Rate falls behind it and is measured closed-loop. A request's
	// latency starts when it is sent, not when it was due.
	Rate float64
}

// Result is one measured cell.
type Result struct {
	Requests int           `json:"requests"`
	Errors   int           `json:"errors"`
	FirstErr string        `json:"first_error,omitempty"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	Bytes    int64         `json:"bytes"`
	RPS      float64       `json:"rps"`
	MBps     float64       `json:"mbps"`
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
	Max      time.Duration `json:"max_ns"`
	// ServerCPU and UpstreamCPU are the CPU time per request of the
	// contender's processes and of the fixtures process (the upstream),
	// from /proc (10 ms resolution, so meaningful over a whole cell).
	ServerCPU   time.Duration `json:"server_cpu_per_request_ns,omitempty"`
	UpstreamCPU time.Duration `json:"upstream_cpu_per_request_ns,omitempty"`
}

// Op is one request of a worker; i counts the worker's requests (warm-up
// included) so that an op can vary what it sends. It returns the bytes of
// body received.
type Op func(ctx context.Context, i int) (int64, error)

// NewOp builds the op of worker w; it may hold the worker's connection.
// The returned cleanup, if any, runs when the cell is done.
type NewOp func(w int) (Op, func(), error)

// maxErrorsFraction stops a cell that is failing rather than measure
// failures: a server that answers errors fast would look fast.
const maxErrorsFraction = 0.01

// RunCell measures one cell.
func RunCell(ctx context.Context, cell Cell, newOp NewOp) (Result, error) {
	if cell.Concurrency < 1 || cell.Requests < 1 || cell.MaxTime <= 0 {
		return Result{}, fmt.Errorf("bench: bad cell %+v", cell)
	}
	ops := make([]Op, cell.Concurrency)
	for w := range ops {
		op, cleanup, err := newOp(w)
		if err != nil {
			return Result{}, err
		}
		if cleanup != nil {
			defer cleanup()
		}
		ops[w] = op
	}
	// The warm-up is bounded in time as well; it counts for nothing.
	ctx, cancel := context.WithTimeout(ctx, cell.MaxTime+time.Duration(cell.Warmup)*time.Second+30*time.Second)
	defer cancel()

	var (
		next     atomic.Int64
		slot     atomic.Int64
		errCount atomic.Int64
		bytes    atomic.Int64
		errMu    sync.Mutex
		firstErr error
		ready    sync.WaitGroup
		done     sync.WaitGroup
		start    = make(chan struct{})
		lat      = make([][]time.Duration, cell.Concurrency)
	)
	fail := func(err error) {
		errCount.Add(1)
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
	}
	var t0 time.Time
	var stopAt atomic.Int64
	ready.Add(cell.Concurrency)
	done.Add(cell.Concurrency)
	for w := range cell.Concurrency {
		// Preallocated for a typical cell; a cell bounded by time rather
		// than count must not reserve memory for its count.
		lat[w] = make([]time.Duration, 0, min(cell.Requests/cell.Concurrency+1, 1<<16))
		go func() {
			defer done.Done()
			op := ops[w]
			i := 0
			for ; i < cell.Warmup && ctx.Err() == nil; i++ {
				if _, err := op(ctx, i); err != nil {
					fail(fmt.Errorf("warm-up: %w", err))
					break
				}
			}
			ready.Done()
			<-start
			maxErrs := int64(float64(cell.Requests)*maxErrorsFraction) + 1
			for ; ctx.Err() == nil; i++ {
				if next.Add(1) > int64(cell.Requests) {
					return
				}
				if cell.Rate > 0 && !pace(ctx, t0, slot.Add(1)-1, cell.Rate, stopAt.Load()) {
					next.Add(-1)
					return
				}
				s := time.Now()
				if s.UnixNano() > stopAt.Load() {
					next.Add(-1)
					return
				}
				n, err := op(ctx, i)
				if err != nil {
					fail(err)
					if errCount.Load() > maxErrs {
						cancel()
					}
					continue
				}
				lat[w] = append(lat[w], time.Since(s))
				bytes.Add(n)
			}
		}()
	}
	ready.Wait()
	if err := context.Cause(ctx); err != nil {
		close(start)
		done.Wait()
		return Result{}, err
	}
	t0 = time.Now()
	stopAt.Store(t0.Add(cell.MaxTime).UnixNano())
	close(start)
	done.Wait()
	elapsed := time.Since(t0)

	all := slices.Concat(lat...)
	r := Result{
		Requests: len(all),
		Errors:   int(errCount.Load()),
		Elapsed:  elapsed,
		Bytes:    bytes.Load(),
	}
	if firstErr != nil {
		r.FirstErr = firstErr.Error()
	}
	if r.Requests == 0 {
		if firstErr != nil {
			return r, fmt.Errorf("bench: no request succeeded: %w", firstErr)
		}
		return r, errors.New("bench: no request completed")
	}
	slices.Sort(all)
	r.P50 = Percentile(all, 0.50)
	r.P99 = Percentile(all, 0.99)
	r.Max = all[len(all)-1]
	r.RPS = float64(r.Requests) / elapsed.Seconds()
	r.MBps = float64(r.Bytes) / 1e6 / elapsed.Seconds()
	return r, nil
}

// pace waits until request k of a schedule of rate requests/s started at
// t0 is due; false, at once, when it is due after stopAt (Unix ns), and
// when ctx ends first: the cell's time is not stretched by waits for
// requests it will not send.
func pace(ctx context.Context, t0 time.Time, k int64, rate float64, stopAt int64) bool {
	due := t0.Add(time.Duration(float64(k) * float64(time.Second) / rate))
	if due.UnixNano() > stopAt {
		return false
	}
	wait := time.Until(due)
	if wait <= 0 {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Percentile of sorted samples, nearest rank.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	k := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[max(0, min(k, len(sorted)-1))]
}

// ExpectStatus turns an unexpected status into an error.
func ExpectStatus(r Response, want int) error {
	if r.Status != want {
		return fmt.Errorf("status %d, want %d", r.Status, want)
	}
	return nil
}
