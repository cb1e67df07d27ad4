package loadgen

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// Every stream flows before atPeak runs, reads 64 KiB plus more bytes, and
// hangs up; a stream that gets less than it wants is counted as an error.
func TestStreams(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte("x"), 256<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/short":
			_, _ = w.Write(body[:1000])
		case "/gone":
			http.NotFound(w, r)
		default:
			_, _ = w.Write(body)
		}
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	ctx := context.Background()

	var peak atomic.Int64
	res, err := Streams(ctx, addr, RenderGET(addr, "/"), 5, 32<<10, func() { peak.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	if res.Streams != 5 || res.Started != 5 || res.Errors != 0 || res.Bytes != 5*(64<<10+32<<10) || res.Elapsed <= 0 || peak.Load() != 1 {
		t.Errorf("%+v, atPeak ran %d times", res, peak.Load())
	}

	res, err = Streams(ctx, addr, RenderGET(addr, "/short"), 2, 0, nil)
	if err != nil || res.Errors != 2 || !strings.Contains(res.FirstErr, "unexpected EOF") {
		t.Errorf("short body: %+v, %v", res, err)
	}
	res, err = Streams(ctx, addr, RenderGET(addr, "/gone"), 2, 0, nil)
	if err != nil || res.Errors != 2 || res.FirstErr != "status 404" {
		t.Errorf("404: %+v, %v", res, err)
	}
	if _, err := Streams(ctx, "10.0.0.1:80", nil, 1, 0, nil); err == nil {
		t.Error("non-loopback address accepted")
	}
}
