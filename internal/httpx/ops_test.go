package httpx

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

// TestServeOps: the operators' listener serves the metrics and pprof, and
// nothing else; it says where it listens and stops with its context.
func TestServeOps(t *testing.T) {
	t.Parallel()
	logs := &testutil.SyncBuffer{}
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "some_metric 1\n") })
	addr := testutil.Serve(t, func(ctx context.Context, ln net.Listener) error {
		return ServeOps(ctx, ln, metrics, time.Minute, slog.New(slog.NewJSONHandler(logs, nil)))
	})
	for path, want := range map[string]string{
		"/metrics":                       "some_metric 1",
		"/debug/pprof/":                  "goroutine",
		"/debug/pprof/cmdline":           "",
		"/debug/pprof/goroutine?debug=1": "goroutine profile",
		"/debug/pprof/profile?seconds=1": "",
	} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d %.100q", path, resp.StatusCode, body)
		}
	}
	for _, path := range []string{"/", "/v2/", "/healthz", "/token"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s on the operators' listener: %d, want 404", path, resp.StatusCode)
		}
	}
	if !strings.Contains(logs.String(), `"msg":"metrics listening","addr":"`+addr+`"`) {
		t.Errorf("no listening line: %s", logs)
	}
}

// TestRunAll: when one listener's Serve fails, the others are stopped and
// the failure returned; when the context ends, all stop and nothing fails.
func TestRunAll(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	waitCtx := func(ctx context.Context) error { <-ctx.Done(); return nil }
	done := make(chan error, 1)
	go func() {
		done <- RunAll(context.Background(), waitCtx, func(context.Context) error { return boom }, waitCtx)
	}()
	select {
	case err := <-done:
		if !errors.Is(err, boom) {
			t.Errorf("RunAll = %v, want boom", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("one Serve failed, the others went on")
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- RunAll(ctx, waitCtx, waitCtx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunAll after cancel = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RunAll did not stop with its context")
	}
}
