package testutil

import (
	"context"
	"fmt"
	"net"
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

func TestServe(t *testing.T) {
	stopped := make(chan struct{})
	t.Run("serving", func(t *testing.T) {
		addr := Serve(t, func(ctx context.Context, ln net.Listener) error {
			defer close(stopped)
			go func() {
				<-ctx.Done()
				ln.Close()
			}()
			c, err := ln.Accept()
			if err == nil {
				c.Close()
			}
			<-ctx.Done()
			return nil
		})
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	})
	select {
	case <-stopped:
	default:
		t.Error("serve still runs after the test ended")
	}
}

func TestWaitFor(t *testing.T) {
	n := 0
	WaitFor(t, "the third call", time.Second, func() bool { n++; return n == 3 })
	if n != 3 {
		t.Errorf("cond called %d times", n)
	}
}
