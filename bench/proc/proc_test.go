package proc

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/registry-gateway/bench/procstat"
)

func TestStartStopAndMemory(t *testing.T) {
	p, err := Start("sleeper", "sleep", []string{"30"}, filepath.Join(t.TempDir(), "sleep.log"), []string{"X=1"})
	if err != nil {
		t.Skip("no sleep binary:", err)
	}
	t.Cleanup(p.Stop)
	if p.Exited() || p.PID() <= 0 {
		t.Fatalf("exited %v, pid %d", p.Exited(), p.PID())
	}
	if m, err := p.Memory(); procstat.Supported() != nil {
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("memory off Linux: %+v, %v", m, err)
		}
	} else if err != nil || m.RSS <= 0 {
		t.Errorf("memory %+v, %v", m, err)
	}
	start := time.Now()
	p.Stop()
	if !p.Exited() || time.Since(start) > 5*time.Second {
		t.Errorf("after Stop: exited %v in %s", p.Exited(), time.Since(start))
	}
	p.Stop() // a second Stop is a no-op
	if _, err := Start("missing", filepath.Join(t.TempDir(), "no-such-binary"), nil, filepath.Join(t.TempDir(), "x.log"), nil); err == nil {
		t.Error("started a missing binary")
	}
}

// A server that dies before it is ready is reported with the end of its log.
func TestWaitReadyReportsExit(t *testing.T) {
	p, err := Start("crasher", "sh", []string{"-c", "echo config is broken >&2; exit 3"}, filepath.Join(t.TempDir(), "sh.log"), nil)
	if err != nil {
		t.Skip("no sh:", err)
	}
	t.Cleanup(p.Stop)
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	err = WaitReady(context.Background(), p, "http://"+addr+"/", 10*time.Second, 200)
	if err == nil || !strings.Contains(err.Error(), "crasher exited") || !strings.Contains(err.Error(), "config is broken") {
		t.Errorf("WaitReady = %v", err)
	}
}

func TestWaitReady(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	ctx := context.Background()
	if err := WaitReady(ctx, nil, srv.URL, 10*time.Second, 401); err != nil || calls.Load() != 3 {
		t.Errorf("WaitReady = %v after %d calls", err, calls.Load())
	}
	err := WaitReady(ctx, nil, srv.URL, 200*time.Millisecond, 200)
	if err == nil || !strings.Contains(err.Error(), "status 401") {
		t.Errorf("WaitReady for 200 = %v", err)
	}
}
