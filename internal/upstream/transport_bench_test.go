package upstream

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkRoundTrip compares this transport with net/http's, configured
// as the gateway configures it, in the same run: a manifest-sized GET over
// loopback keep-alive, body read to the end, sequential and parallel.
// ns/op includes the server's work, which is the same for both.
func BenchmarkRoundTrip(b *testing.B) {
	manifest := strings.Repeat("m", 1500)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"application/vnd.oci.image.manifest.v1+json"}
		h["Content-Length"] = []string{strconv.Itoa(len(manifest))}
		h["Docker-Content-Digest"] = []string{"sha256:0000000000000000000000000000000000000000000000000000000000000000"}
		_, _ = io.WriteString(w, manifest)
	}))
	b.Cleanup(srv.Close)

	lean, err := New(Config{MaxIdleConnsPerHost: 256})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(lean.CloseIdleConnections)
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	std := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          1024, MaxIdleConnsPerHost: 256,
		DisableCompression: true, MaxResponseHeaderBytes: 1 << 20, Protocols: &protocols,
	}
	b.Cleanup(std.CloseIdleConnections)

	get := func(b *testing.B, tr http.RoundTripper, buf []byte) {
		req, _ := http.NewRequest("GET", srv.URL+"/v2/library/alpine/manifests/latest", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := resp.Body.Read(buf); err != nil {
				break
			}
		}
		_ = resp.Body.Close()
	}
	for _, tt := range []struct {
		name string
		tr   http.RoundTripper
	}{{"upstream", lean}, {"net-http", std}} {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			defer reportCPU(b)()
			buf := make([]byte, 4096)
			for b.Loop() {
				get(b, tt.tr, buf)
			}
		})
		b.Run(tt.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			defer reportCPU(b)()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 4096)
				for pb.Next() {
					get(b, tt.tr, buf)
				}
			})
		})
	}
}

// reportCPU adds the process's CPU time per operation (user + system, from
// getrusage), which on a shared machine varies less than ns/op. It counts
// the server too, which does the same work for both transports.
func reportCPU(b *testing.B) func() {
	start := cpuTime(b)
	return func() {
		b.ReportMetric(float64((cpuTime(b)-start).Microseconds())/float64(b.N), "cpu-µs/op")
	}
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
