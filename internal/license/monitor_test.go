package license

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// probingBackend is a scripted backend whose probe fails while down is set.
type probingBackend struct {
	*scriptedBackend
	down   atomic.Bool
	probes atomic.Int32
}

var _ Prober = (*probingBackend)(nil)

func (p *probingBackend) Probe(context.Context) error {
	p.probes.Add(1)
	if p.down.Load() {
		return fmt.Errorf("%w: connection refused", ErrUnavailable)
	}
	return nil
}

// monitor runs c.Monitor until the test ends. In a synctest bubble, a
// time.Sleep of the interval followed by synctest.Wait lets exactly the
// ticks of that span run.
func monitor(t *testing.T, c *Cache, interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Monitor(ctx, interval) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Monitor: %v", err)
		}
	})
}

// Readiness never latches: a failed look-up makes the cache unhealthy, and
// the monitor's probes make it healthy again once the backend answers, with
// no look-up in between. A backend known to work is not probed.
func TestMonitorRecoversWithoutLookups(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const interval = 10 * time.Millisecond
		be := &probingBackend{scriptedBackend: newScripted()}
		be.set("alice", func() (License, error) { return License{}, ErrUnavailable })
		c := NewCache(be, CacheConfig{Logger: discard()})
		monitor(t, c, interval)

		synctest.Wait() // the first probe, at once
		time.Sleep(5 * interval)
		synctest.Wait()
		if n := be.probes.Load(); n != 1 || !c.Healthy() {
			t.Fatalf("%d probes of a working backend, healthy %v; want 1, true", n, c.Healthy())
		}

		be.down.Store(true)
		if _, err := c.Lookup(t.Context(), creds("alice")); !errors.Is(err, ErrUnavailable) {
			t.Fatal(err)
		}
		if c.Healthy() {
			t.Fatal("healthy after a failed look-up with nothing cached")
		}
		time.Sleep(3 * interval)
		synctest.Wait()
		if n := be.probes.Load(); n != 4 {
			t.Fatalf("%d probes, want 1 + one an interval while down", n)
		}
		if c.Healthy() {
			t.Fatal("healthy while probes fail")
		}
		calls := be.calls.Load()
		be.down.Store(false)
		time.Sleep(interval)
		synctest.Wait()
		if !c.Healthy() {
			t.Fatal("not healthy an interval after the backend answers again")
		}
		if be.calls.Load() != calls {
			t.Error("the monitor made look-ups")
		}
	})
}

// A replica started while the backend is down is not ready after the first
// probe, and becomes ready when the backend comes back.
func TestMonitorStartsWithBackendDown(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const interval = 10 * time.Millisecond
		be := &probingBackend{scriptedBackend: newScripted()}
		be.down.Store(true)
		c := NewCache(be, CacheConfig{Logger: discard()})
		monitor(t, c, interval)
		synctest.Wait()
		if c.Healthy() {
			t.Fatal("ready after a failed first probe")
		}
		be.down.Store(false)
		time.Sleep(interval)
		synctest.Wait()
		if !c.Healthy() {
			t.Fatal("not ready an interval after the backend answers")
		}
	})
}

// A backend that is no Prober: Monitor has nothing to do and returns.
func TestMonitorWithoutProber(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := NewCache(newScripted(), CacheConfig{})
		done := make(chan error, 1)
		go func() { done <- c.Monitor(t.Context(), time.Millisecond) }()
		synctest.Wait()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatal("Monitor did not return for a backend without Probe")
		}
	})
}

// gatedProber's probes each wait for the test to release them.
type gatedProber struct {
	*scriptedBackend
	started chan struct{}
	release chan error
}

func (p *gatedProber) Probe(ctx context.Context) error {
	p.started <- struct{}{}
	select {
	case err := <-p.release:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A probe under way when a look-up fails must not overwrite that newer
// answer when it returns "up": the replica would stay ready, and no longer
// probed, while the backend is down.
func TestMonitorStaleProbeDoesNotHideFailure(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		be := &gatedProber{scriptedBackend: newScripted(), started: make(chan struct{}), release: make(chan error)}
		be.set("alice", func() (License, error) { return License{}, ErrUnavailable })
		c := NewCache(be, CacheConfig{Logger: discard()})
		monitor(t, c, 10*time.Millisecond)

		<-be.started // the first probe is under way
		if _, err := c.Lookup(t.Context(), creds("alice")); !errors.Is(err, ErrUnavailable) {
			t.Fatal(err)
		}
		be.release <- nil // it answers "up", but began before the failure
		synctest.Wait()
		if c.Healthy() {
			t.Error("healthy while the newest answer about the backend is a failure")
		}
		select {
		case <-be.started:
			// The monitor still sees the backend down and probes again.
		case <-time.After(time.Second):
			t.Fatal("no further probe: the stale probe's answer hid the failed look-up")
		}
		be.release <- nil
		synctest.Wait()
		if !c.Healthy() {
			t.Error("not healthy after a probe that began after the failure answered")
		}
	})
}
