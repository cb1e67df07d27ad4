package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// StreamsResult is what Streams measured.
type StreamsResult struct {
	Streams  int
	Started  int // streams that were all flowing at once
	Bytes    int64
	Errors   int
	FirstErr string
	Elapsed  time.Duration
}

// Streams has n clients GET raw from addr (loopback only) at once, each
// reading the first 64 KiB, then, once all flow (atPeak, if set, runs
// then), more bytes; then each hangs up.
func Streams(ctx context.Context, addr string, raw []byte, n int, more int64, atPeak func()) (StreamsResult, error) {
	if err := CheckLoopback(addr); err != nil {
		return StreamsResult{}, err
	}
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
			b, err := stream(ctx, addr, raw, 64<<10, more, func() {
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
	return StreamsResult{
		Streams: n, Started: atOnce, Bytes: total.Load(),
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
			serr = setRcvBuf(fd, streamRcvBuf)
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
