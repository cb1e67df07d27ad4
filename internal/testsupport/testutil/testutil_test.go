package testutil

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestClock(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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

// TestSyncBufferWaitFor: a line written while WaitFor waits is seen, and
// one never written is not, in a synctest bubble (time moves only when
// every goroutine waits, so the order is fixed and the waits instant).
func TestSyncBufferWaitFor(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var b SyncBuffer
		go func() {
			time.Sleep(20 * time.Millisecond)
			fmt.Fprint(&b, `"status":499`)
		}()
		start := time.Now()
		if !b.WaitFor(`"status":499`, 5*time.Second) {
			t.Fatal("written line not seen")
		}
		if waited := time.Since(start); waited < 20*time.Millisecond || waited > 30*time.Millisecond {
			t.Errorf("seen after %v, want soon after it was written (20ms)", waited)
		}
		if b.WaitFor("never", 20*time.Millisecond) {
			t.Fatal("unwritten line seen")
		}
	})
}

func TestServe(t *testing.T) {
	t.Parallel()
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

// TestServeTracked: a connection the server closes is reported, once,
// with the client's address; one it keeps open is not.
func TestServeTracked(t *testing.T) {
	t.Parallel()
	addr, tracked := ServeTracked(t, func(ctx context.Context, ln net.Listener) error {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }),
			ReadHeaderTimeout: time.Second}
		go func() {
			<-ctx.Done()
			_ = srv.Close()
		}()
		if err := srv.Serve(ln); err != http.ErrServerClosed {
			return err
		}
		return nil
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Connection: close makes the server close it after the answer.
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-tracked.Closed:
		if a.String() != c.LocalAddr().String() {
			t.Errorf("closed %s, want %s", a, c.LocalAddr())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server's close was not reported")
	}
	select {
	case a := <-tracked.Closed:
		t.Errorf("a second close reported: %s", a)
	default:
	}
}

// The process CPU time StartCPU reads grows with CPU burnt, on every system
// (getrusage on Unix, GetProcessTimes on Windows).
func TestProcessCPU(t *testing.T) {
	t.Parallel()
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
