package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// persistConn is one upstream connection. It serves one request at a time;
// between requests it sits in its Transport's idle pool and holds no buffer.
type persistConn struct {
	t    *Transport
	key  connKey
	conn net.Conn
	tcp  *net.TCPConn    // conn, when it is plain TCP: the splice source
	raw  syscall.RawConn // tcp's, to await an answer (awaitAnswer)

	cr connReader
	br *bufio.Reader // lent from readerPool while a response is read; nil once WriteTo reads the socket itself

	reused    bool
	nread     int64 // bytes read for the current response
	readLimit int64 // what may still be read before the headers are done
	idleTimer *time.Timer
	closeOnce sync.Once
	interrupt func() // ends blocked I/O; made once, as AfterFunc's argument

	// awaitAnswer's state: peek as a func value made once, so that a
	// request allocates nothing for it.
	peekFunc func(fd uintptr) bool
	peekBuf  [1]byte
	peeked   bool
	errno    syscall.Errno
}

// connReader is what the bufio.Reader reads from: the connection, bounded
// while the response headers are read and counted, so that a reused
// connection that fails before giving anything may be retried.
type connReader struct{ pc *persistConn }

func (r connReader) Read(p []byte) (int, error) {
	pc := r.pc
	if pc.readLimit <= 0 {
		return 0, errHeadersTooLarge
	}
	if int64(len(p)) > pc.readLimit {
		p = p[:pc.readLimit]
	}
	n, err := pc.conn.Read(p)
	pc.readLimit -= int64(n)
	pc.nread += int64(n)
	return n, err
}

var errHeadersTooLarge = errors.New("upstream: response headers too large")

// aLongTimeAgo is a deadline in the past: setting it ends blocked I/O now.
var aLongTimeAgo = time.Unix(1, 0)

const (
	readerSize = 4 << 10
	writerSize = 4 << 10
	copySize   = 32 << 10
)

// The buffers are lent to a connection only while it serves a request, so
// that idle connections cost no buffer and a stream costs one 4 KiB reader.
// Pools hold array pointers, so Put allocates nothing.
var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readerSize) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writerSize) }}
	copyPool   = sync.Pool{New: func() any { return new([copySize]byte) }}
)

func (pc *persistConn) close() {
	pc.closeOnce.Do(func() {
		_ = pc.conn.Close()
		pc.releaseReader()
	})
}

func (pc *persistConn) releaseReader() {
	if pc.br != nil {
		pc.br.Reset(nil)
		readerPool.Put(pc.br)
		pc.br = nil
	}
}

// roundTrip writes req and reads the response headers, under
// ResponseHeaderTimeout and the request's context. On error pc is closed.
func (pc *persistConn) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	pc.nread = 0
	// The context's end interrupts any blocked read or write on the
	// connection; registering costs no goroutine until it fires.
	stop := noStop
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, pc.interrupt)
	}
	fail := func(err error) (*http.Response, error) { return nil, pc.fail(ctx, stop, err) }
	_ = pc.conn.SetDeadline(time.Now().Add(pc.t.cfg.ResponseHeaderTimeout))

	bw := writerPool.Get().(*bufio.Writer)
	bw.Reset(pc.conn)
	err := req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	writerPool.Put(bw)
	if err != nil {
		return fail(fmt.Errorf("upstream: write request: %w", err))
	}

	if err := pc.awaitAnswer(); err != nil {
		return fail(pc.readError(ctx, err))
	}
	pc.br = readerPool.Get().(*bufio.Reader)
	pc.br.Reset(pc.cr)
	pc.readLimit = pc.t.cfg.MaxResponseHeaderBytes
	var resp *http.Response
	for i := 0; ; i++ {
		resp, err = http.ReadResponse(pc.br, req)
		if err != nil {
			if pc.readLimit <= 0 || errors.Is(err, errHeadersTooLarge) {
				err = fmt.Errorf("upstream: response headers exceed %d bytes", pc.t.cfg.MaxResponseHeaderBytes)
			} else {
				err = pc.readError(ctx, err)
			}
			return fail(err)
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		if i == maxInformational {
			return fail(errors.New("upstream: too many 1xx responses"))
		}
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return fail(errors.New("upstream: protocol switch not supported"))
	}
	pc.readLimit = math.MaxInt64
	_ = pc.conn.SetDeadline(time.Time{})
	if ctx.Err() != nil {
		// The context ended between the deadlines: the AfterFunc's deadline
		// may have been cleared just now.
		return fail(ctx.Err())
	}

	b := &body{pc: pc, ctx: ctx, stop: stop, keep: !resp.Close && !req.Close}
	switch {
	case resp.Body == http.NoBody:
		// HEAD, 1xx/204/304 and Content-Length: 0.
		b.finish()
		return resp, nil
	case len(resp.TransferEncoding) == 0:
		// Content-Length, or until the upstream closes: read it here, so
		// that WriteTo can hand the socket to the destination.
		b.remaining = resp.ContentLength
		if b.remaining < 0 {
			b.keep = false
		}
	default:
		b.chunked = resp.Body
	}
	resp.Body = b
	return resp, nil
}

// readError says what failed while the response headers were awaited.
func (pc *persistConn) readError(ctx context.Context, err error) error {
	if isTimeout(err) && ctx.Err() == nil {
		return fmt.Errorf("upstream: timeout awaiting response headers: %w", err)
	}
	return fmt.Errorf("upstream: read response: %w", err)
}

// awaitAnswer waits, over plain TCP, until the upstream has sent something
// (or closed, or failed), holding no buffer: a request waits for its answer
// for most of its time, and 1,000 requests at once awaiting theirs would
// otherwise take 1,000 readers, which their pool then keeps until two GCs
// pass (4 MiB). When nothing has arrived yet it costs no system call more
// than reading at once would (the peek's EAGAIN stands in for the read's);
// when the answer is there already, one.
func (pc *persistConn) awaitAnswer() error {
	if pc.raw == nil {
		return nil
	}
	pc.peeked, pc.errno = false, 0
	if err := pc.raw.Read(pc.peekFunc); err != nil {
		return err
	}
	if pc.errno != 0 && pc.errno != syscall.EAGAIN && pc.errno != syscall.EINTR {
		return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("recvfrom", pc.errno)}
	}
	return nil
}

// peek is awaitAnswer's RawConn.Read function (pc.peekFunc, made once): the
// first call peeks at the socket; a later one comes after the poller saw
// it readable, which the read that follows trusts.
func (pc *persistConn) peek(fd uintptr) bool {
	if pc.peeked {
		return true
	}
	pc.peeked = true
	_, _, pc.errno = syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&pc.peekBuf[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return pc.errno != syscall.EAGAIN && pc.errno != syscall.EINTR
}

// noStop stands in for the AfterFunc of a context that never ends.
func noStop() bool { return true }

// fail ends a round trip that went wrong: the connection is closed, and the
// error is the context's when it ended.
func (pc *persistConn) fail(ctx context.Context, stop func() bool, err error) error {
	stop()
	pc.close()
	if cerr := ctx.Err(); cerr != nil {
		// As net/http's Transport: the context's error itself, which
		// ReverseProxy and others compare with ==.
		return cerr
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// body is a response body. When it is read to its end the connection goes
// back to the pool (if the answer allows it) before the final Read returns.
type body struct {
	pc        *persistConn
	ctx       context.Context
	stop      func() bool // unregisters the context's AfterFunc
	keep      bool        // the connection may be reused after the body
	chunked   io.Reader   // net/http's decoder, for chunked bodies
	remaining int64       // Content-Length bodies: bytes to come; -1: until EOF
	done      bool        // the connection was released
	err       error       // sticky
}

var errClosed = errors.New("upstream: read on closed response body")

// finish releases the connection after the body's end.
func (b *body) finish() {
	if b.done {
		return
	}
	b.done = true
	pc := b.pc
	if !b.stop() || !b.keep || (pc.br != nil && pc.br.Buffered() > 0) {
		// The context ended (its deadline is on the connection), or the
		// answer ends the connection, or the upstream sent more than the
		// answer: nothing after it can be trusted.
		pc.close()
		return
	}
	pc.releaseReader()
	pc.t.putIdle(pc)
}

// fail records err and closes the connection.
func (b *body) fail(err error) error {
	if cerr := b.ctx.Err(); cerr != nil {
		err = cerr
	}
	b.err = err
	if !b.done {
		b.done = true
		b.stop()
		b.pc.close()
	}
	return err
}

func (b *body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.chunked != nil {
		n, err := b.chunked.Read(p)
		if err == io.EOF {
			b.finish()
			b.err = io.EOF
		} else if err != nil {
			return n, b.fail(err)
		}
		return n, err
	}
	if b.remaining == 0 {
		b.finish()
		b.err = io.EOF
		return 0, io.EOF
	}
	if b.remaining > 0 && int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	// With an empty buffer and a large p, bufio reads into p directly.
	n, err := b.pc.br.Read(p)
	if b.remaining > 0 {
		b.remaining -= int64(n)
	}
	switch {
	case err == io.EOF && b.remaining < 0:
		b.finish()
		b.err = io.EOF
		return n, io.EOF
	case err == io.EOF:
		return n, b.fail(io.ErrUnexpectedEOF)
	case err != nil:
		return n, b.fail(err)
	case b.remaining == 0:
		b.finish()
		b.err = io.EOF
		return n, io.EOF
	}
	return n, nil
}

// WriteTo copies the body to w. Over plain TCP to an io.ReaderFrom it
// writes what is already buffered, then lets w read the rest from the
// socket itself: for a net/http ResponseWriter on a TCP connection that is
// (*net.TCPConn).ReadFrom of an *io.LimitedReader over a *net.TCPConn,
// which the kernel moves with splice(2). Otherwise it copies through a
// pooled 32 KiB buffer.
func (b *body) WriteTo(w io.Writer) (int64, error) {
	var n int64
	if b.err == nil && b.chunked == nil && b.pc.tcp != nil {
		if rf, ok := w.(io.ReaderFrom); ok {
			if k := b.pc.br.Buffered(); k > 0 && b.remaining != 0 {
				if b.remaining > 0 && int64(k) > b.remaining {
					k = int(b.remaining)
				}
				buf, _ := b.pc.br.Peek(k)
				m, err := w.Write(buf)
				_, _ = b.pc.br.Discard(m)
				n += int64(m)
				if b.remaining > 0 {
					b.remaining -= int64(m)
				}
				if err != nil {
					return n, b.fail(err)
				}
			}
			if b.pc.br.Buffered() == 0 {
				// From here on the socket is read directly: the reader's
				// buffer goes back to the pool for the rest of a stream
				// that may last minutes.
				b.pc.releaseReader()
			}
			if b.remaining != 0 {
				lr := &io.LimitedReader{R: b.pc.tcp, N: b.remaining}
				if b.remaining < 0 {
					lr.N = math.MaxInt64
				}
				m, err := rf.ReadFrom(lr)
				n += m
				if err != nil {
					return n, b.fail(err)
				}
				if b.remaining > 0 {
					b.remaining = lr.N
					if b.remaining > 0 {
						return n, b.fail(io.ErrUnexpectedEOF)
					}
				} else {
					b.remaining = 0 // the upstream closed: the end
				}
			}
			b.finish()
			b.err = io.EOF
			return n, nil
		}
	}
	buf := copyPool.Get().(*[copySize]byte)
	defer copyPool.Put(buf)
	for {
		m, rerr := b.Read(buf[:])
		if m > 0 {
			k, werr := w.Write(buf[:m])
			n += int64(k)
			if werr != nil {
				return n, b.fail(werr)
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// maxDiscard bounds what Close reads of an unread body to keep the
// connection: only bytes already received, never a wait for more.
const maxDiscard = 256 << 10

// Close ends the body. If the rest of it has already arrived it is
// discarded and the connection kept; otherwise the connection is closed,
// since reading a blob to its end to save a connection costs more than a
// new connection.
func (b *body) Close() error {
	if b.done {
		b.err = errClosed
		return nil
	}
	// With a deadline in the past reads return what bufio holds and then
	// fail at once instead of waiting for the upstream. A kept connection
	// gets new deadlines with its next request.
	_ = b.pc.conn.SetReadDeadline(aLongTimeAgo)
	buf := copyPool.Get().(*[copySize]byte)
	var total int
	for total < maxDiscard && !b.done {
		n, err := b.Read(buf[:])
		total += n
		if err != nil {
			break
		}
	}
	copyPool.Put(buf)
	if !b.done {
		_ = b.fail(errClosed)
	}
	if b.err == nil || b.err == io.EOF {
		b.err = errClosed
	}
	return nil
}
