package upstream

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// The Source's loop waits on timers: its tests run in a synctest bubble,
// whose clock moves only when every goroutine in it waits, so that
// time.Sleep there moves the fake clock and synctest.Wait lets the loop
// act on it before anything is checked.

func TestRefreshAtHalfLifetime(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		begin := time.Now()
		f, rec := newFake(12*time.Hour), newRecorder()
		s := started(t, f, rec)
		defer s.Close()
		first, _ := s.Credential(context.Background())
		if first.Password != f.Password() || !s.Ready() || !s.ExpiresAt().Equal(begin.Add(12*time.Hour)) {
			t.Fatalf("after Start: %v ready=%v", first, s.Ready())
		}

		f.Rotate()
		time.Sleep(6*time.Hour - time.Second)
		none(t, rec.refreshed, "refresh before half the lifetime")

		time.Sleep(time.Second)
		got := next(t, rec.refreshed, "refresh at half the lifetime")
		if got.Password != f.Password() || !got.ExpiresAt.Equal(begin.Add(18*time.Hour)) {
			t.Errorf("refreshed to %v", got)
		}
		if c, _ := s.Credential(context.Background()); c.Password != f.Password() {
			t.Error("Credential still returns the old password")
		}
		if n := f.Calls(); n != 2 {
			t.Errorf("%d fetches, want 2", n)
		}
	})
}

func TestFailedRefreshRetriesAndKeepsCredential(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f, rec := newFake(12*time.Hour), newRecorder()
		s := started(t, f, rec)
		defer s.Close()
		held := f.Password()

		f.FailNext(3, errUnavailable)
		f.Rotate()
		time.Sleep(6 * time.Hour)
		for i := range 3 {
			// Each failure is seen within a second of when it happened.
			next(t, rec.failed, "a failed refresh")
			if c, err := s.Credential(context.Background()); err != nil || c.Password != held || !s.Ready() {
				t.Fatalf("failure %d: Credential = %v, %v; want the held one", i+1, c, err)
			}
			// Backoff i+1 is at least half of MinBackoff doubled i times.
			time.Sleep(time.Minute<<i/2 - 2*time.Second)
			none(t, rec.failed, "retry before the backoff")
			none(t, rec.refreshed, "retry before the backoff")
			for n := 0; n < 300 && len(rec.failed) == 0 && len(rec.refreshed) == 0; n++ { // up to MaxBackoff and more
				time.Sleep(time.Second)
				synctest.Wait()
			}
		}
		if c := next(t, rec.refreshed, "the refresh after the failures"); c.Password != f.Password() {
			t.Errorf("refreshed to %v", c)
		}
		if n := f.Calls(); n != 5 {
			t.Errorf("%d fetches, want 5", n)
		}
	})
}

// Without Start, so that no background retry interferes with the counting.
func TestExpiredCredentialIsNotReady(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		begin := time.Now()
		f := newFake(12 * time.Hour)
		s := NewSource(f, Options{MinBackoff: time.Minute})
		defer s.Close()
		if _, err := s.Credential(context.Background()); err != nil || !s.Ready() {
			t.Fatalf("first fetch: %v", err)
		}

		f.FailNext(1000, errUnavailable)
		time.Sleep(12*time.Hour - time.Nanosecond)
		if !s.Ready() {
			t.Fatal("not Ready just before expiry")
		}
		time.Sleep(time.Nanosecond)
		if s.Ready() || !s.ExpiresAt().Equal(begin.Add(12*time.Hour)) {
			t.Fatalf("at expiry: ready=%v expiresAt=%v", s.Ready(), s.ExpiresAt())
		}
		_, err := s.Credential(context.Background())
		if !errors.Is(err, errUnavailable) || f.Calls() != 2 {
			t.Fatalf("Credential after expiry: %v after %d calls", err, f.Calls())
		}

		// Within MinBackoff of the failure it is answered from memory.
		f.FailNext(0, nil)
		if _, err := s.Credential(context.Background()); err == nil || f.Calls() != 2 {
			t.Fatalf("fetched again right after a failure: %v, %d calls", err, f.Calls())
		}
		time.Sleep(time.Minute)
		if c, err := s.Credential(context.Background()); err != nil || c.Password != f.Password() || !s.Ready() || f.Calls() != 3 {
			t.Fatalf("after recovery: %v, %v, ready=%v, %d calls", c, err, s.Ready(), f.Calls())
		}
	})
}

func TestStartFailureThenRetry(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f, rec := newFake(12*time.Hour), newRecorder()
		f.FailNext(1, errDenied)
		s := NewSource(f, Options{Observer: rec, MinBackoff: time.Minute, MaxBackoff: 4 * time.Minute})
		defer s.Close()

		err := s.Start(context.Background())
		if !errors.Is(err, errDenied) || s.Ready() {
			t.Fatalf("Start = %v, ready=%v; want the fetcher's denial, not ready", err, s.Ready())
		}
		next(t, rec.failed, "the failed start")
		time.Sleep(30*time.Second - time.Millisecond) // half of MinBackoff
		none(t, rec.refreshed, "retry before the backoff")
		time.Sleep(30 * time.Second)
		next(t, rec.refreshed, "the retry")
		if !s.Ready() {
			t.Error("not Ready after the retry")
		}
	})
}

func TestConcurrentCallersShareOneFetch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		held bool // Start first, then rotate: the held credential is rejected
		call func(s *Source, stale Credential) (Credential, error)
	}{
		{"Invalidate after a 401", true, func(s *Source, stale Credential) (Credential, error) {
			return s.Invalidate(context.Background(), stale)
		}},
		{"Credential with nothing held", false, func(s *Source, _ Credential) (Credential, error) {
			return s.Credential(context.Background())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				f := newFake(12 * time.Hour)
				var s *Source
				var stale Credential
				if tc.held {
					s = started(t, f, newRecorder())
					stale, _ = s.Credential(context.Background())
					f.Rotate()
				} else {
					s = NewSource(f, Options{})
				}
				defer s.Close()
				before, want := f.Calls(), f.Password()

				var wg sync.WaitGroup
				gate := make(chan struct{})
				for range 50 {
					wg.Go(func() {
						<-gate
						if c, err := tc.call(s, stale); err != nil || c.Password != want {
							t.Errorf("got %v, %v; want the fetcher's current password", c, err)
						}
					})
				}
				synctest.Wait() // all 50 at the gate
				close(gate)
				wg.Wait()
				if n := f.Calls() - before; n != 1 {
					t.Errorf("%d fetches for 50 callers, want 1", n)
				}
			})
		})
	}
}

func TestInvalidateWithOtherCredentialDoesNotFetch(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFake(0)
		s := started(t, f, newRecorder())
		defer s.Close()
		c, err := s.Invalidate(context.Background(), Credential{Username: "AWS", Password: "older"})
		if err != nil || c.Password != "pw-0" || f.Calls() != 1 {
			t.Errorf("got %v, %v after %d fetches", c, err, f.Calls())
		}
	})
}

// A never-expiring credential is not refreshed on a schedule; a rotated
// password is picked up through Invalidate after the upstream's 401.
func TestNeverExpiringRotation(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f, rec := newFake(0), newRecorder()
		s := started(t, f, rec)
		defer s.Close()
		if !s.Ready() || !s.ExpiresAt().IsZero() {
			t.Fatalf("ready=%v expires=%v", s.Ready(), s.ExpiresAt())
		}
		time.Sleep(10000 * time.Hour)
		none(t, rec.refreshed, "scheduled refresh of a never-expiring credential")

		f.Rotate()
		stale, _ := s.Credential(context.Background())
		if stale.Password != "pw-0" {
			t.Fatalf("Credential = %v before any 401", stale)
		}
		for range 2 { // the second 401 for pw-0 is answered from memory
			if c, err := s.Invalidate(context.Background(), stale); err != nil || c.Password != "pw-1" {
				t.Fatalf("Invalidate = %v, %v", c, err)
			}
		}
		if n := f.Calls(); n != 2 {
			t.Errorf("%d fetches, want 2", n)
		}
	})
}

// TestShortLifetimeSchedule runs the loop's own timers through a short
// lifetime: the refresh at half of it, and retries after failures at the
// backoffs.
func TestShortLifetimeSchedule(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFake(time.Second)
		rec := &timedRecorder{}
		s := NewSource(f, Options{Observer: rec, MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond})
		defer s.Close()
		begin := time.Now()
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		f.FailNext(2, errUnavailable)
		time.Sleep(time.Second) // the refreshed credential is due at 1.015 s at the earliest
		synctest.Wait()
		got := rec.events()
		if len(got) != 4 || got[0].err != nil || got[1].err == nil || got[2].err == nil || got[3].err != nil {
			t.Fatalf("events %+v: want refreshed, failed twice, refreshed", got)
		}
		if d := got[1].at.Sub(begin); d != 500*time.Millisecond {
			t.Errorf("first scheduled refresh after %v, want half of the 1s lifetime", d)
		}
		if d := got[2].at.Sub(got[1].at); d < 5*time.Millisecond || d > 10*time.Millisecond {
			t.Errorf("first retry after %v, want within [5ms, 10ms]", d)
		}
		if d := got[3].at.Sub(got[2].at); d < 10*time.Millisecond || d > 20*time.Millisecond {
			t.Errorf("second retry after %v, want within [10ms, 20ms]", d)
		}
		if !s.Ready() {
			t.Error("not Ready")
		}
	})
}

// timedRecorder is an Observer that keeps when each event happened.
type timedRecorder struct {
	mu  sync.Mutex
	got []event
}

type event struct {
	at  time.Time
	err error
}

func (r *timedRecorder) Refreshed(Credential)    { r.add(nil) }
func (r *timedRecorder) RefreshFailed(err error) { r.add(err) }

func (r *timedRecorder) add(err error) {
	r.mu.Lock()
	r.got = append(r.got, event{at: time.Now(), err: err})
	r.mu.Unlock()
}

func (r *timedRecorder) events() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event(nil), r.got...)
}

type blockingFetcher chan struct{}

func (b blockingFetcher) Fetch(ctx context.Context) (Credential, error) {
	close(b)
	<-ctx.Done()
	return Credential{}, ctx.Err()
}

func TestCloseEndsFetchInFlight(t *testing.T) {
	t.Parallel()
	inFetch := make(blockingFetcher)
	s := NewSource(inFetch, Options{})
	errc := make(chan error, 1)
	go func() {
		_, err := s.Credential(context.Background())
		errc <- err
	}()
	<-inFetch
	s.Close() // returns only once the fetch has ended
	if err := wait(t, errc, "Credential to return"); !errors.Is(err, context.Canceled) {
		t.Errorf("Credential during Close = %v", err)
	}
	if _, err := s.Credential(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Credential after Close = %v", err)
	}
	if err := s.Start(context.Background()); err == nil {
		t.Error("Start after Close succeeded")
	}
}

func TestStartEndsWithContext(t *testing.T) {
	t.Parallel()
	s := NewSource(newFake(0), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	wait(t, done, "Close")
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	s := NewSource(nil, Options{MinBackoff: time.Second, MaxBackoff: 10 * time.Second})
	for _, tc := range []struct {
		failures int
		max      time.Duration
	}{
		{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {4, 8 * time.Second},
		{5, 10 * time.Second}, {100, 10 * time.Second},
	} {
		for range 20 {
			if d := s.backoff(tc.failures); d < tc.max/2 || d > tc.max {
				t.Errorf("backoff(%d) = %v, want within [%v, %v]", tc.failures, d, tc.max/2, tc.max)
			}
		}
	}
}
