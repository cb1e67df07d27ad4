package gateway

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/devcert"
)

// rawUpstream is an upstream registry the test scripts byte by byte, over
// plain TCP or TLS: it reads each request with http.ReadRequest and hands
// it to answer, which writes whatever bytes it likes on the connection and
// says whether to go on reading from it. It notices when the gateway closes
// a connection (its next read fails without the fixture having closed it),
// so that a test can wait for that instead of sleeping.
type rawUpstream struct {
	t      testing.TB
	ln     net.Listener
	url    string
	roots  *x509.CertPool // the test CA, over TLS; nil over plain TCP
	answer func(c *rawConn, req *http.Request) (keep bool)

	mu      sync.Mutex
	conns   map[*rawConn]struct{}
	dropped map[string]chan struct{} // by request path; see droppedAfter
	wg      sync.WaitGroup
}

// rawConn is one connection of a rawUpstream.
type rawConn struct {
	net.Conn
	up *rawUpstream
	br *bufio.Reader
	// busy is held while a request is read and answered, so that
	// injectIdle writes only between answers.
	busy sync.Mutex
	// served are the paths of the requests answered on it.
	served []string
}

// newRawUpstream listens on loopback, over TLS with a certificate of a new
// test CA when tlsOn, and serves until the test ends.
func newRawUpstream(t testing.TB, tlsOn bool, answer func(c *rawConn, req *http.Request) bool) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &rawUpstream{t: t, ln: ln, answer: answer, conns: map[*rawConn]struct{}{}, dropped: map[string]chan struct{}{}}
	scheme := "http"
	if tlsOn {
		ca, err := devcert.NewCA("rawUpstream test CA")
		if err != nil {
			t.Fatal(err)
		}
		pair, err := ca.Server("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		cert, err := pair.TLS()
		if err != nil {
			t.Fatal(err)
		}
		up.ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
		up.roots = ca.Pool()
		scheme = "https"
	}
	up.url = scheme + "://" + ln.Addr().String()
	up.wg.Go(up.accept)
	t.Cleanup(func() {
		_ = up.ln.Close()
		up.mu.Lock()
		for c := range up.conns {
			_ = c.Close()
		}
		up.mu.Unlock()
		up.wg.Wait()
	})
	return up
}

func (up *rawUpstream) accept() {
	for {
		nc, err := up.ln.Accept()
		if err != nil {
			return
		}
		c := &rawConn{Conn: nc, up: up, br: bufio.NewReader(nc)}
		up.mu.Lock()
		up.conns[c] = struct{}{}
		up.mu.Unlock()
		up.wg.Go(func() { up.serve(c) })
	}
}

// serve reads and answers c's requests until answer says to stop (the
// fixture closes c) or a read fails: the gateway closed c, and every
// request answered on it is then marked dropped.
func (up *rawUpstream) serve(c *rawConn) {
	defer func() {
		up.mu.Lock()
		delete(up.conns, c)
		up.mu.Unlock()
		_ = c.Close()
	}()
	for {
		req, err := http.ReadRequest(c.br)
		if err != nil {
			up.mu.Lock()
			for _, p := range c.served {
				// A request net/http sent again is served on two.
				if ch := up.droppedLocked(p); !isClosed(ch) {
					close(ch)
				}
			}
			up.mu.Unlock()
			return
		}
		c.busy.Lock()
		_, _ = io.Copy(io.Discard, req.Body)
		c.served = append(c.served, req.URL.Path)
		keep := up.answer(c, req)
		c.busy.Unlock()
		if !keep {
			return
		}
	}
}

func (up *rawUpstream) droppedLocked(path string) chan struct{} {
	ch := up.dropped[path]
	if ch == nil {
		ch = make(chan struct{})
		up.dropped[path] = ch
	}
	return ch
}

// droppedAfter is closed once the gateway has closed the connection that
// answered the request for path.
func (up *rawUpstream) droppedAfter(path string) <-chan struct{} {
	up.mu.Lock()
	defer up.mu.Unlock()
	return up.droppedLocked(path)
}

// write writes b, ignoring failures: a hostile upstream does not care
// whether the gateway still listens.
func (c *rawConn) write(b ...[]byte) {
	for _, p := range b {
		if _, err := c.Write(p); err != nil {
			return
		}
	}
}

// injectIdle writes b on every connection not in the middle of an answer
// and returns the paths each of them answered last: the connections the
// gateway must now drop. A connection whose request is being read waits.
func (up *rawUpstream) injectIdle(b func(last string) []byte) (injected []string) {
	up.mu.Lock()
	conns := make([]*rawConn, 0, len(up.conns))
	for c := range up.conns {
		conns = append(conns, c)
	}
	up.mu.Unlock()
	for _, c := range conns {
		c.busy.Lock()
		if n := len(c.served); n > 0 {
			last := c.served[n-1]
			c.write(b(last))
			injected = append(injected, last)
		}
		c.busy.Unlock()
	}
	return injected
}

// waitDropped waits until the gateway closed the connections that answered
// paths, at most d in all, and returns those it kept.
func (up *rawUpstream) waitDropped(paths []string, d time.Duration) (kept []string) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for _, p := range paths {
		select {
		case <-up.droppedAfter(p):
		case <-deadline.C:
			kept = append(kept, p)
		}
	}
	return kept
}

// The answers of the scripted upstream: every manifest names the request it
// answers (its upstream path), so that a client can tell its own answer from
// any other.

const testManifestType = "application/vnd.oci.image.manifest.v1+json"

// namedManifest is the manifest the upstream has at path.
func namedManifest(path string) []byte {
	return []byte(`{"schemaVersion":2,"mediaType":"` + testManifestType + `","config":{},"layers":[],"annotations":{"request":"` + path + `"}}`)
}

func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// manifestHead is the status line and headers of a 200 for body, with
// extra header lines (each ending in CRLF) and a Content-Length of n (none
// when n < 0).
func manifestHead(body []byte, n int, extra string) []byte {
	s := "HTTP/1.1 200 OK\r\nContent-Type: " + testManifestType + "\r\nDocker-Content-Digest: " + sha256Digest(body) + "\r\n"
	if n >= 0 {
		s += "Content-Length: " + strconv.Itoa(n) + "\r\n"
	}
	return []byte(s + extra + "\r\n")
}

// manifestAnswer is a whole, well-formed 200 answer with path's manifest.
func manifestAnswer(path string) []byte {
	body := namedManifest(path)
	return append(manifestHead(body, len(body), ""), body...)
}

// chunked encodes b as one chunk and the last one.
func chunked(b []byte) []byte {
	return []byte(strconv.FormatInt(int64(len(b)), 16) + "\r\n" + string(b) + "\r\n0\r\n\r\n")
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
