// Package testutil holds the small fakes that tests of several packages
// need: a clock moved by hand, a log sink that background goroutines may
// write to while the test reads it, and a server run for a test's length.
package testutil

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// Clock is an injected clock that tests move by hand. It is safe for
// concurrent use, since the code under test often reads it from goroutines
// of its own.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock that stands at t until moved.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now is the clock's time; pass the method value as a func() time.Time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// SyncBuffer is a log sink safe for concurrent writers: a server's
// goroutines write to it while the test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything written since the last Reset.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Reset discards what was written.
func (b *SyncBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

// WaitFor reports whether substr is written within d. Servers write their
// access line after the response went out, so a test that just got its
// answer may have to wait for the line.
func (b *SyncBuffer) WaitFor(substr string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !strings.Contains(b.String(), substr) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// Serve runs serve (a server's Serve method) on a free loopback port until
// the test ends, and returns the address. The test fails if serve returns
// an error.
func Serve(t testing.TB, serve func(context.Context, net.Listener) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ServeOn(t, ln, serve)
}

// ServeOn is Serve on ln.
func ServeOn(t testing.TB, ln net.Listener, serve func(context.Context, net.Listener) error) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}
