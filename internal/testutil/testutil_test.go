package testutil

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := NewClock(t0)
	if got := c.Now(); !got.Equal(t0) {
		t.Fatalf("Now = %v, want %v", got, t0)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			c.Advance(time.Second)
			_ = c.Now()
		})
	}
	wg.Wait()
	if got, want := c.Now(), t0.Add(10*time.Second); !got.Equal(want) {
		t.Fatalf("Now = %v, want %v", got, want)
	}
}

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() { fmt.Fprintf(&b, "line %d\n", i) })
	}
	wg.Wait()
	if n := strings.Count(b.String(), "\n"); n != 10 {
		t.Fatalf("%d lines, want 10: %q", n, b.String())
	}
	b.Reset()
	if s := b.String(); s != "" {
		t.Fatalf("after Reset: %q", s)
	}
}

func TestSyncBufferWaitFor(t *testing.T) {
	var b SyncBuffer
	go func() {
		time.Sleep(20 * time.Millisecond)
		fmt.Fprint(&b, `"status":499`)
	}()
	if !b.WaitFor(`"status":499`, 5*time.Second) {
		t.Fatal("written line not seen")
	}
	if b.WaitFor("never", 20*time.Millisecond) {
		t.Fatal("unwritten line seen")
	}
}

func TestServe(t *testing.T) {
	addr := Serve(t, func(ctx context.Context, ln net.Listener) error {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }), ReadHeaderTimeout: time.Second}
		go func() {
			<-ctx.Done()
			_ = srv.Close()
		}()
		if err := srv.Serve(ln); err != http.ErrServerClosed {
			return err
		}
		return nil
	})
	resp, err := http.Get("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestReadChars(t *testing.T) {
	before := ReadChars(t)
	f, err := os.Open("/proc/self/io")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	n, _ := f.Read(make([]byte, 64))
	if got := ReadChars(t) - before; got < int64(n) {
		t.Errorf("read %d bytes, ReadChars grew by %d", n, got)
	}
}

// The process CPU time StartCPU reads grows with CPU burnt, on every system
// (getrusage on Unix, GetProcessTimes on Windows).
func TestProcessCPU(t *testing.T) {
	before := processCPU(t)
	deadline := time.Now().Add(5 * time.Second)
	x := 0
	for time.Now().Before(deadline) {
		for i := range 1_000_000 {
			x += i
		}
		if processCPU(t) >= before+20*time.Millisecond {
			break
		}
	}
	if after := processCPU(t); after < before+20*time.Millisecond || after > before+time.Minute {
		t.Errorf("CPU time went from %s to %s (x=%d)", before, after, x)
	}
}
