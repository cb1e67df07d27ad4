// Package splice moves a response body from an upstream socket to the
// client's socket with splice(2), kernel to kernel, without a user-space
// buffer and without net/http's: (*http.response).ReadFrom, the only way
// net/http splices, holds a 32 KiB copy buffer for as long as the copy
// lasts, which for a blob stream whose client reads slowly is minutes, and
// at 1,000 streams 32 MiB of a gateway's memory.
//
// A server opts in with Listener (its plain TCP connections become *Conn)
// and ConnContext (a request's context knows its connection). A handler
// then copies into NewWriter(ctx, w): after the status line and headers
// went out through net/http, an io.LimitedReader over a *net.TCPConn is
// spliced straight into the client connection, through a pipe of this
// package's pool, and net/http is told the number of bytes sent, so that
// its framing and keep-alive stay right. Anything else, TLS included, is
// left to net/http.
package splice

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"syscall"
)

// Conn is a client connection accepted through Listener.
type Conn struct{ *net.TCPConn }

// sent stands for bytes already written to the connection, for net/http's
// count (see Conn.ReadFrom). Read fails: a copy that does read it (a
// chunked answer) must not pass for a body.
type sent struct{ n int64 }

var errSent = errors.New("splice: body already sent")

func (sent) Read([]byte) (int, error) { return 0, errSent }

// ReadFrom is (*net.TCPConn).ReadFrom, except for the bytes the handler
// spliced itself: those are counted as read and written, with no I/O.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if s, ok := r.(*sent); ok {
		return s.n, nil
	}
	return c.TCPConn.ReadFrom(r)
}

type listener struct{ net.Listener }

// Listener returns ln, whose *net.TCPConn connections are each a *Conn.
func Listener(ln net.Listener) net.Listener { return listener{ln} }

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		return &Conn{tc}, nil
	}
	return c, err
}

type connKey struct{}

// ConnContext is an http.Server ConnContext: it puts a *Conn on the
// contexts of its requests.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if sc, ok := c.(*Conn); ok {
		return context.WithValue(ctx, connKey{}, sc)
	}
	return ctx
}

// NewWriter returns w, the writer of a 200 or 206 answer to r, as an
// io.Writer whose ReadFrom splices a socket body into r's client
// connection, when there is one (ConnContext) and the answer has a body.
func NewWriter(r *http.Request, w http.ResponseWriter) io.Writer {
	c, _ := r.Context().Value(connKey{}).(*Conn)
	if r.Method == http.MethodHead {
		c = nil
	}
	return &writer{w: w, conn: c}
}

type writer struct {
	w    http.ResponseWriter
	conn *Conn
}

func (w *writer) Write(p []byte) (int, error) { return w.w.Write(p) }

// ReadFrom splices src, an *io.LimitedReader over a *net.TCPConn, into the
// client connection when the answer has a Content-Length (net/http writes
// it unframed then); otherwise it is w's own ReadFrom, or a copy.
func (w *writer) ReadFrom(src io.Reader) (int64, error) {
	rf, ok := w.w.(io.ReaderFrom)
	if !ok {
		return io.Copy(writerOnly{w.w}, src)
	}
	lr, ok := src.(*io.LimitedReader)
	if !ok || w.conn == nil || w.w.Header().Get("Content-Length") == "" {
		return rf.ReadFrom(src)
	}
	up, ok := lr.R.(*net.TCPConn)
	if !ok {
		return rf.ReadFrom(src)
	}
	// The status line and headers first, through net/http.
	if err := http.NewResponseController(w.w).Flush(); err != nil {
		return 0, err
	}
	n, err := Copy(w.conn.TCPConn, up, lr.N)
	lr.N -= n
	if n > 0 {
		// net/http counts them as its own, so that it keeps the
		// connection after a whole body, and closes it after a cut one.
		if _, aerr := rf.ReadFrom(&sent{n: n}); aerr != nil && err == nil {
			err = aerr
		}
	}
	return n, err
}

type writerOnly struct{ io.Writer }

// pipeSize is what one splice(2) moves at most, as Go's own splice.
const pipeSize = 1 << 20

type pipe struct {
	r, w    int
	cleanup runtime.Cleanup
}

// pipes lends pipes to Copy; an empty pipe costs two descriptors and no
// memory. The pool drops them at GC, and their cleanup closes them.
var pipes = sync.Pool{New: func() any {
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		return nil
	}
	// Fewer calls per MiB; a smaller pipe (the limit of
	// /proc/sys/fs/pipe-max-size or of the user's pipe pages) only makes
	// more of them.
	_, _, _ = syscall.Syscall(syscall.SYS_FCNTL, uintptr(fds[0]), syscall.F_SETPIPE_SZ, pipeSize)
	p := &pipe{r: fds[0], w: fds[1]}
	p.cleanup = runtime.AddCleanup(p, closePipe, fds)
	return p
}}

func closePipe(fds [2]int) {
	_ = syscall.Close(fds[0])
	_ = syscall.Close(fds[1])
}

// Copy moves up to n bytes from src to dst with splice(2), through a pipe:
// drain what src has, then pump it all to dst, waiting for either socket in
// the runtime's poller (so deadlines on either end interrupt it). It
// returns the bytes written to dst; fewer than n with a nil error only when
// src ended first, which is io.ErrUnexpectedEOF.
func Copy(dst, src *net.TCPConn, n int64) (int64, error) {
	rs, err := src.SyscallConn()
	if err != nil {
		return 0, err
	}
	ws, err := dst.SyscallConn()
	if err != nil {
		return 0, err
	}
	p, _ := pipes.Get().(*pipe)
	if p == nil {
		return 0, errors.New("splice: no pipe")
	}
	var written int64
	inPipe := 0
	defer func() {
		if inPipe > 0 {
			// Bytes stuck in it: the pipe is of no further use.
			p.cleanup.Stop()
			closePipe([2]int{p.r, p.w})
			return
		}
		pipes.Put(p)
	}()
	for written < n {
		var m int64
		var serr error
		err := rs.Read(func(fd uintptr) bool {
			m, serr = syscall.Splice(int(fd), nil, p.w, nil, int(min(n-written, pipeSize)), spliceFlags)
			return serr != syscall.EAGAIN && serr != syscall.EINTR
		})
		if err == nil {
			err = serr
		}
		if err != nil {
			return written, wrap("read", err)
		}
		if m == 0 {
			return written, io.ErrUnexpectedEOF
		}
		inPipe = int(m)
		for inPipe > 0 {
			err := ws.Write(func(fd uintptr) bool {
				m, serr = syscall.Splice(p.r, nil, int(fd), nil, inPipe, spliceFlags)
				return serr != syscall.EAGAIN && serr != syscall.EINTR
			})
			if err == nil {
				err = serr
			}
			if err != nil {
				return written, wrap("write", err)
			}
			inPipe -= int(m)
			written += m
		}
	}
	return written, nil
}

// spliceFlags: the pipe never blocks (the sockets are the runtime's
// non-blocking ones already); move pages where the kernel can.
const spliceFlags = 0x2 | 0x1 // SPLICE_F_NONBLOCK | SPLICE_F_MOVE

func wrap(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Err: err}
}
