package upstream

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/testutil"
)

// countingServer is an httptest server that counts the connections it
// accepted, which is how the tests see reuse.
type countingServer struct {
	*httptest.Server
	conns atomic.Int32
}

func newServer(t *testing.T, h http.Handler) *countingServer {
	t.Helper()
	s := &countingServer{}
	s.Server = httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func newTransport(t *testing.T, cfg Config) *Transport {
	t.Helper()
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func do(t *testing.T, tr http.RoundTripper, method, u string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, u, err)
	}
	if err := resp.Body.Close(); err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestRoundTripReuse(t *testing.T) {
	big := strings.Repeat("x", 200<<10)
	tests := []struct {
		name      string
		method    string
		handler   http.HandlerFunc
		wantCode  int
		wantBody  string
		wantConns int32 // after three requests
	}{
		{"content-length", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			_, _ = io.WriteString(w, "hello")
		}, 200, "hello", 1},
		{"large content-length", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			_, _ = io.WriteString(w, big)
		}, 200, big, 1},
		{"chunked", "GET", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "hel")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "lo")
		}, 200, "hello", 1},
		{"head", "HEAD", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000")
		}, 200, "", 1},
		{"no content", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		}, 204, "", 1},
		{"not modified", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Etag", `"a"`)
			w.WriteHeader(http.StatusNotModified)
		}, 304, "", 1},
		{"empty", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "0")
		}, 200, "", 1},
		{"connection close", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			_, _ = io.WriteString(w, "hello")
		}, 200, "hello", 3},
		{"until close", "GET", func(w http.ResponseWriter, r *http.Request) {
			// No length and no chunking: the body ends when the
			// connection does.
			conn, bw, err := w.(http.Hijacker).Hijack()
			if err != nil {
				panic(err)
			}
			_, _ = bw.WriteString("HTTP/1.1 200 OK\r\n\r\nhello")
			_ = bw.Flush()
			_ = conn.Close()
		}, 200, "hello", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, tt.handler)
			tr := newTransport(t, Config{})
			for range 3 {
				resp, b := do(t, tr, tt.method, srv.URL+"/v2/")
				if resp.StatusCode != tt.wantCode || string(b) != tt.wantBody {
					t.Fatalf("got %d %.20q, want %d %.20q", resp.StatusCode, b, tt.wantCode, tt.wantBody)
				}
			}
			if got := srv.conns.Load(); got != tt.wantConns {
				t.Errorf("connections: %d, want %d", got, tt.wantConns)
			}
		})
	}
}

func TestRequestReachesUpstream(t *testing.T) {
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Got", r.Method+" "+r.Host+" "+r.URL.RequestURI()+" "+r.Header.Get("Accept"))
	}))
	tr := newTransport(t, Config{})
	req, _ := http.NewRequest("GET", srv.URL+"/v2/a/manifests/latest?x=1", nil)
	req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	want := "GET " + srv.Listener.Addr().String() + " /v2/a/manifests/latest?x=1 application/vnd.oci.image.index.v1+json"
	if got := resp.Header.Get("X-Got"); got != want {
		t.Errorf("upstream saw %q, want %q", got, want)
	}
	if resp.Request != req {
		t.Error("Response.Request is not the request")
	}
}

func TestEarlyClose(t *testing.T) {
	blob := bytes.Repeat([]byte("b"), 4<<20)
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		_, _ = w.Write(blob[:n])
	}))
	tr := newTransport(t, Config{})
	for _, tt := range []struct {
		name     string
		size     int
		wantKept bool
	}{
		// A small answer is all in the read buffer: discarded, the
		// connection kept.
		{"small body kept", 100, true},
		// A blob closed early: the connection is closed, not drained.
		{"blob closed", len(blob), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+"/?n="+strconv.Itoa(tt.size), nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(resp.Body, make([]byte, 10)); err != nil {
				t.Fatal(err)
			}
			if err := resp.Body.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := resp.Body.Read(make([]byte, 1)); err == nil {
				t.Error("Read after Close succeeded")
			}
			if got := tr.IdleConns() == 1; got != tt.wantKept {
				t.Errorf("connection kept: %v, want %v", got, tt.wantKept)
			}
			tr.CloseIdleConnections()
		})
	}
	// A kept connection serves the next request (its read deadline was
	// restored after the discard).
	before := srv.conns.Load()
	req, _ := http.NewRequest("GET", srv.URL+"/?n=100", nil)
	resp, _ := tr.RoundTrip(req)
	_ = resp.Body.Close()
	_, b := do(t, tr, "GET", srv.URL+"/?n=100")
	if len(b) != 100 || srv.conns.Load() != before+1 {
		t.Errorf("after a discarded body: %d bytes, %d new connections; want 100 bytes, 1", len(b), srv.conns.Load()-before)
	}
}

// hangingServer writes its headers and part of a body, then waits until the
// test ends.
func hangingServer(t *testing.T, beforeHeaders bool) *countingServer {
	release := make(chan struct{})
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !beforeHeaders {
			w.Header().Set("Content-Length", "1000000")
			_, _ = w.Write(make([]byte, 1000))
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release) })
	return srv
}

// sinkConn is a real loopback TCP connection whose far end discards
// everything: a destination on which WriteTo takes the splice path.
func sinkConn(t *testing.T) (*net.TCPConn, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		_ = ln.Close()
		if err != nil {
			return
		}
		n, _ := io.Copy(io.Discard, c)
		got.Store(n)
		_ = c.Close()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(); <-done })
	return c.(*net.TCPConn), &got
}

func TestCancelMidBody(t *testing.T) {
	srv := hangingServer(t, false)
	tr := newTransport(t, Config{})
	for _, tt := range []struct {
		name string
		copy func(t *testing.T, body io.Reader) error
	}{
		{"read", func(t *testing.T, body io.Reader) error {
			_, err := io.Copy(io.Discard, struct{ io.Reader }{body})
			return err
		}},
		{"splice", func(t *testing.T, body io.Reader) error {
			dst, _ := sinkConn(t)
			_, err := io.Copy(dst, body)
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			time.AfterFunc(50*time.Millisecond, cancel)
			start := time.Now()
			err = tt.copy(t, resp.Body)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("copy: %v, want context.Canceled", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("cancellation took %s", d)
			}
			if tr.IdleConns() != 0 {
				t.Error("a cancelled connection went back to the pool")
			}
		})
	}
}

func TestCancelBeforeHeaders(t *testing.T) {
	srv := hangingServer(t, true)
	tr := newTransport(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("RoundTrip: %v, want context.DeadlineExceeded", err)
	}
}

func TestResponseHeaderTimeout(t *testing.T) {
	srv := hangingServer(t, true)
	tr := newTransport(t, Config{ResponseHeaderTimeout: 50 * time.Millisecond})
	req, _ := http.NewRequest("GET", srv.URL, nil)
	_, err := tr.RoundTrip(req)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !strings.Contains(err.Error(), "timeout awaiting response headers") {
		t.Errorf("RoundTrip: %v, want a net.Error timeout awaiting headers", err)
	}
}

func TestHeadersTooLarge(t *testing.T) {
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Big", strings.Repeat("a", 8<<10))
	}))
	tr := newTransport(t, Config{MaxResponseHeaderBytes: 4 << 10})
	req, _ := http.NewRequest("GET", srv.URL, nil)
	if _, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "response headers exceed 4096 bytes") {
		t.Errorf("RoundTrip: %v, want headers too large", err)
	}
	// Within the limit it passes.
	tr = newTransport(t, Config{MaxResponseHeaderBytes: 16 << 10})
	if resp, _ := do(t, tr, "GET", srv.URL); len(resp.Header.Get("X-Big")) != 8<<10 {
		t.Error("header lost")
	}
}

// rawServer answers one request per connection with reply, written as is,
// and then closes the connection. With a keep-alive reply that is what an
// upstream that drops idle connections looks like to the next request.
func rawServer(t *testing.T, reply string) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				_, _ = io.WriteString(c, reply)
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	return "http://" + ln.Addr().String(), &accepted
}

func TestStaleIdleConnRetry(t *testing.T) {
	u, accepted := rawServer(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	tr := newTransport(t, Config{})
	do(t, tr, "GET", u)
	// Let the server's close arrive.
	testutil.WaitFor(t, "server close", 5*time.Second, func() bool {
		return accepted.Load() == 1
	})
	time.Sleep(20 * time.Millisecond)
	_, b := do(t, tr, "GET", u)
	if string(b) != "ok" || accepted.Load() != 2 {
		t.Errorf("GET on a stale connection: %q after %d connections, want ok after 2", b, accepted.Load())
	}

	// A request with a body is not sent twice.
	time.Sleep(20 * time.Millisecond)
	req, _ := http.NewRequest("POST", u, strings.NewReader("data"))
	if _, err := tr.RoundTrip(req); err == nil {
		t.Error("POST on a stale connection succeeded")
	}
	time.Sleep(50 * time.Millisecond) // for a retry's connection to be counted
	if n := accepted.Load(); n != 2 {
		t.Errorf("POST on a stale connection was sent again (%d connections, want 2)", n)
	}
}

func TestIdleLimits(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 3)
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case started <- struct{}{}:
		default:
		}
		<-release
		_, _ = io.WriteString(w, "ok")
	}))
	tr := newTransport(t, Config{MaxIdleConnsPerHost: 2, IdleConnTimeout: 100 * time.Millisecond})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { do(t, tr, "GET", srv.URL) })
	}
	for range 3 {
		<-started
	}
	close(release)
	wg.Wait()
	if n := tr.IdleConns(); n != 2 {
		t.Errorf("idle connections: %d, want MaxIdleConnsPerHost 2", n)
	}
	testutil.WaitFor(t, "idle connections to time out", 5*time.Second, func() bool { return tr.IdleConns() == 0 })
	do(t, tr, "GET", srv.URL)
	if n := srv.conns.Load(); n != 4 {
		t.Errorf("connections: %d, want 4 (a new one after the idle timeout)", n)
	}
}

func TestTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	}))
	var conns atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs

	tr := newTransport(t, Config{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}})
	for range 2 {
		if _, b := do(t, tr, "GET", srv.URL); string(b) != "HTTP/1.1" {
			t.Errorf("protocol %q, want HTTP/1.1", b)
		}
	}
	if conns.Load() != 1 {
		t.Errorf("TLS connections: %d, want 1", conns.Load())
	}

	// The system roots do not know the test CA.
	tr = newTransport(t, Config{})
	req, _ := http.NewRequest("GET", srv.URL, nil)
	if _, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "TLS handshake") {
		t.Errorf("RoundTrip with an unknown CA: %v, want a handshake error", err)
	}
}

func TestBadRequests(t *testing.T) {
	tr := newTransport(t, Config{})
	for _, u := range []string{"ftp://example.com/x", "http:///x"} {
		req, _ := http.NewRequest("GET", u, nil)
		if _, err := tr.RoundTrip(req); err == nil {
			t.Errorf("%s: no error", u)
		}
	}
	req, _ := http.NewRequest("GET", "http://127.0.0.1:1/", nil)
	if _, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "dial") {
		t.Errorf("refused: %v, want a dial error", err)
	}
}

func TestConfigErrors(t *testing.T) {
	_, err := New(Config{DialTimeout: -1, IdleConnTimeout: -1, MaxIdleConns: -1, Proxy: http.ProxyFromEnvironment})
	for _, want := range []string{"DialTimeout", "IdleConnTimeout", "limits", "Fallback"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

func TestProxyGoesToFallback(t *testing.T) {
	var fell atomic.Int32
	fallback := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		fell.Add(1)
		return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
	})
	proxy := func(r *http.Request) (*url.URL, error) {
		if r.URL.Host == "via-proxy" {
			return url.Parse("http://proxy:3128")
		}
		return nil, nil
	}
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	tr := newTransport(t, Config{Proxy: proxy, Fallback: fallback})
	do(t, tr, "GET", "http://via-proxy/x")
	do(t, tr, "GET", srv.URL)
	if fell.Load() != 1 || srv.conns.Load() != 1 {
		t.Errorf("fallback %d, direct %d; want 1 and 1", fell.Load(), srv.conns.Load())
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestMalformedAnswers(t *testing.T) {
	const ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	tests := []struct {
		name     string
		reply    string
		wantBody string // when the round trip succeeds
		wantErr  string // from RoundTrip, or else from reading the body
	}{
		{"1xx skipped", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + ok, "ok", ""},
		{"too many 1xx", strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 7) + ok, "", "too many 1xx"},
		{"protocol switch", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "", "protocol switch"},
		{"garbage", "SSH-2.0-OpenSSH\r\n\r\n", "", "malformed HTTP"},
		{"short body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "", "unexpected EOF"},
		{"bad chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "", "invalid byte in chunk length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, _ := rawServer(t, tt.reply)
			tr := newTransport(t, Config{})
			for _, name := range []string{"read", "writeTo"} {
				req, _ := http.NewRequest("GET", u, nil)
				resp, err := tr.RoundTrip(req)
				var b []byte
				if err == nil {
					var buf bytes.Buffer
					if name == "read" {
						_, err = io.Copy(&buf, struct{ io.Reader }{resp.Body})
					} else {
						_, err = io.Copy(&buf, resp.Body)
					}
					_ = resp.Body.Close()
					b = buf.Bytes()
				}
				if tt.wantErr == "" {
					if err != nil || string(b) != tt.wantBody {
						t.Errorf("%s: %q, %v; want %q", name, b, err, tt.wantBody)
					}
				} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("%s: error %v, want %q", name, err, tt.wantErr)
				}
				if tt.wantErr != "" && tr.IdleConns() != 0 {
					t.Errorf("%s: a connection that failed was kept", name)
				}
			}
		})
	}
}

func TestExtraBytesAfterBodyCloseConn(t *testing.T) {
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, bw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		defer conn.Close()
		// An answer followed by bytes no request asked for.
		_, _ = bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n")
		_ = bw.Flush()
		// Keep the connection open, so only the extra bytes can tell.
		_, _ = conn.Read(make([]byte, 1))
	}))
	tr := newTransport(t, Config{})
	if _, b := do(t, tr, "GET", srv.URL); string(b) != "ok" {
		t.Fatalf("body %q", b)
	}
	if tr.IdleConns() != 0 {
		t.Error("a connection with unasked-for bytes was kept")
	}
}

// TestCancelAfterBody: a request's context that ends after its body was
// read must not reach the connection, which serves another request by then.
func TestCancelAfterBody(t *testing.T) {
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	tr := newTransport(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "ok" {
		t.Fatalf("%q, %v", b, err)
	}
	cancel()
	for range 3 {
		if _, b := do(t, tr, "GET", srv.URL); string(b) != "ok" {
			t.Fatalf("after a cancel: %q", b)
		}
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("connections: %d, want 1", n)
	}
}

// TestConcurrentUse runs requests from several goroutines, some read to
// the end and some closed early, for the race detector and the pool.
func TestConcurrentUse(t *testing.T) {
	body := strings.Repeat("z", 50<<10)
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		_, _ = io.WriteString(w, body)
	}))
	tr := newTransport(t, Config{MaxIdleConnsPerHost: 3})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 30 {
				u := srv.URL
				if (g+i)%3 == 0 {
					u += "?chunked=1"
				}
				req, _ := http.NewRequest("GET", u, nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					errs <- err
					return
				}
				if i%4 == 0 {
					_, _ = io.ReadFull(resp.Body, make([]byte, 100))
					_ = resp.Body.Close()
					continue
				}
				b, err := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if err != nil || len(b) != len(body) {
					errs <- fmt.Errorf("%d bytes, %v", len(b), err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := tr.IdleConns(); n > 3 {
		t.Errorf("%d idle connections, want at most 3", n)
	}
}
