package profile

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"os"
	"strings"
	"testing"
	"time"
)

func TestTrimTop(t *testing.T) {
	in := "File: gateway\nBuild ID: abc\nType: cpu\nTime: 2026-01-01\nDuration: 5s, Total samples = 4s\n\n      flat  flat%\n     1s 25% syscall.Syscall\n"
	want := "Duration: 5s, Total samples = 4s\n      flat  flat%\n     1s 25% syscall.Syscall"
	if got := trimTop(in); got != want {
		t.Errorf("trimTop = %q, want %q", got, want)
	}
}

func TestMemStatsSummary(t *testing.T) {
	in := `heap profile: 1: 2 [3: 4] @ heap/1048576
# runtime.MemStats
# Alloc = 1
# Sys = 20971520
# HeapAlloc = 1048576
# HeapIdle = 0
# NumGC = 7
# Stack = 524288 / 524288
# Unrelated = 5
`
	want := "Sys 20.0 MiB, HeapAlloc 1.0 MiB, HeapIdle 0.0 MiB, NumGC = 7, Stack = 524288 / 524288"
	if got := memStatsSummary(in); got != want {
		t.Errorf("memStatsSummary = %q, want %q", got, want)
	}
}

// Collect saves the CPU profile taken during the load and, when the load
// asks, a heap profile, each with its pprof top.
func TestCollect(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	dir := t.TempDir()
	ctx := context.Background()

	c, err := Collect(ctx, addr, dir, "busy", 1, func(heap func()) error {
		end := time.Now().Add(900 * time.Millisecond)
		for x := 0; time.Now().Before(end); x++ {
			_ = strings.Repeat("x", x%64)
		}
		heap()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{c.File, c.HeapFile} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	if !strings.Contains(c.Top, "flat") || !strings.Contains(c.HeapTop, "flat") || !strings.Contains(c.MemStats, "HeapAlloc") {
		t.Errorf("capture %+v", c)
	}

	boom := errors.New("load failed")
	if _, err := Collect(ctx, addr, dir, "failing", 1, func(func()) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("failing load: %v", err)
	}
}
