package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/splice"
)

// hopBlobSize is the blob of BenchmarkBlobHop: big enough that the
// connection set-up does not count.
const hopBlobSize = 64 << 20

// BenchmarkBlobHop measures one blob stream through one more loopback hop,
// in the same run, to tell the gateway's streaming path from its floor:
//
//   - direct: the client reads the blob from the storage server itself;
//   - tcp-splice: a minimal Go TCP proxy, io.Copy between two
//     *net.TCPConn (splice(2));
//   - tcp-copy-256k: the same proxy copying with read(2)/write(2) through a
//     256 KiB buffer;
//   - transport: a net/http server whose handler fetches the blob with this
//     package's Transport and io.Copy(w, resp.Body), as the gateway does
//     (splice through net/http's ResponseWriter);
//   - transport-splice: the same handler on internal/splice's listener,
//     copying into splice.NewWriter (the gateway's blob path: no net/http
//     copy buffer);
//   - transport-copy-256k: the same handler copying through a 256 KiB
//     buffer.
//
// The client is the bench's: a raw HTTP/1.1 GET, the body read with 64 KiB
// reads. Everything runs in this process, so absolute numbers are lower
// than with separate processes; compare the rows of one run.
func BenchmarkBlobHop(b *testing.B) {
	blob := bytes.Repeat([]byte("0123456789abcdef"), hopBlobSize/16)
	// As the bench's S3 fixture: http.ServeContent, which writes 32 KiB at
	// a time.
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(blob))
	}))
	b.Cleanup(storage.Close)
	storageAddr := storage.Listener.Addr().String()

	tr, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(tr.CloseIdleConnections)
	handler := func(hide, direct bool) http.Handler {
		return proxyHandler(tr, func(r *http.Request) string { return storage.URL + r.URL.Path },
			func(w http.ResponseWriter, r *http.Request, body io.Reader) {
				switch {
				case hide:
					_, _ = io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{body}, make([]byte, 256<<10))
				case direct:
					_, _ = io.Copy(splice.NewWriter(r, w), body)
				default:
					_, _ = io.Copy(w, body)
				}
			})
	}

	for _, tt := range []struct {
		name string
		addr func(b *testing.B) string
	}{
		{"direct", func(*testing.B) string { return storageAddr }},
		{"tcp-splice", func(b *testing.B) string { return tcpProxy(b, storageAddr, false) }},
		{"tcp-copy-256k", func(b *testing.B) string { return tcpProxy(b, storageAddr, true) }},
		{"transport", func(b *testing.B) string { return httpProxy(b, handler(false, false), false) }},
		{"transport-splice", func(b *testing.B) string { return httpProxy(b, handler(false, true), true) }},
		{"transport-copy-256k", func(b *testing.B) string { return httpProxy(b, handler(true, false), false) }},
	} {
		b.Run(tt.name, func(b *testing.B) {
			addr := tt.addr(b)
			buf := make([]byte, 64<<10)
			b.SetBytes(hopBlobSize)
			defer reportCPU(b)()
			for b.Loop() {
				if err := getBlob(addr, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// getBlob GETs the blob from addr on a new connection and reads it whole.
func getBlob(addr string, buf []byte) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /blob HTTP/1.1\r\nHost: "+addr+"\r\n\r\n"); err != nil {
		return err
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/blob", nil)
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 16<<10), req)
	if err != nil {
		return err
	}
	n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{resp.Body}, buf)
	if err == nil && n != hopBlobSize {
		err = errors.New("short blob: " + strconv.FormatInt(n, 10))
	}
	return err
}

// tcpProxy is the floor of a proxy hop: every connection to it is passed to
// target byte for byte, with splice(2) (io.Copy between *net.TCPConn) or a
// 256 KiB read/write buffer.
func tcpProxy(b *testing.B, target string, copyBuf bool) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ln.Close() })
	pipe := func(dst, src net.Conn) {
		if copyBuf {
			_, _ = io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, make([]byte, 256<<10))
		} else {
			_, _ = io.Copy(dst, src)
		}
		_ = dst.(*net.TCPConn).CloseWrite()
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				go pipe(up, c)
				pipe(c, up)
			}()
		}
	}()
	return ln.Addr().String()
}

// httpProxy serves h on a loopback net/http server, on internal/splice's
// listener if spliced.
func httpProxy(b *testing.B, h http.Handler, spliced bool) string {
	srv := httptest.NewUnstartedServer(h)
	if spliced {
		srv.Listener = splice.Listener(srv.Listener)
		srv.Config.ConnContext = splice.ConnContext
	}
	srv.Start()
	b.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}
