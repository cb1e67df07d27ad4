package upstream

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

// Errors of fakeFetcher, as a registry's API would fail.
var (
	errDenied      = errors.New("fake: access denied")
	errUnavailable = errors.New("fake: service unavailable")
)

// fakeFetcher hands out credentials valid for lifetime from now (0: never
// expiring), a new password after each Rotate; its next fetches fail as
// FailNext says.
type fakeFetcher struct {
	lifetime time.Duration

	mu    sync.Mutex
	gen   int
	fails int
	err   error
	calls int
}

func newFake(lifetime time.Duration) *fakeFetcher { return &fakeFetcher{lifetime: lifetime} }

func (f *fakeFetcher) Fetch(context.Context) (Credential, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.fails > 0 {
		f.fails--
		return Credential{}, f.err
	}
	c := Credential{Username: "AWS", Password: "pw-" + strconv.Itoa(f.gen), ProxyEndpoint: "https://registry.example"}
	if f.lifetime > 0 {
		c.ExpiresAt = time.Now().Add(f.lifetime)
	}
	return c, nil
}

// Password is the password the next successful fetch hands out.
func (f *fakeFetcher) Password() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return "pw-" + strconv.Itoa(f.gen)
}

func (f *fakeFetcher) Rotate() {
	f.mu.Lock()
	f.gen++
	f.mu.Unlock()
}

// FailNext makes the next n fetches fail with err.
func (f *fakeFetcher) FailNext(n int, err error) {
	f.mu.Lock()
	f.fails, f.err = n, err
	f.mu.Unlock()
}

func (f *fakeFetcher) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// recorder is an Observer whose events tests take.
type recorder struct {
	refreshed chan Credential
	failed    chan error
}

func newRecorder() *recorder {
	return &recorder{refreshed: make(chan Credential, 100), failed: make(chan error, 100)}
}

func (r *recorder) Refreshed(c Credential)  { r.refreshed <- c }
func (r *recorder) RefreshFailed(err error) { r.failed <- err }

// next is the event ch holds once the bubble is idle (synctest.Wait).
func next[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	synctest.Wait()
	select {
	case v := <-ch:
		return v
	default:
		t.Fatalf("no %s", what)
		panic("unreachable")
	}
}

// none fails if ch holds an event once the bubble is idle.
func none[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	synctest.Wait()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %v", what, v)
	default:
	}
}

// wait is for tests outside a bubble: ch delivers, or the test fails.
func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(3 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// started is a started Source in a synctest bubble, whose backoffs are
// minutes; the caller closes it.
func started(t *testing.T, f Fetcher, rec *recorder) *Source {
	t.Helper()
	s := NewSource(f, Options{Observer: rec, MinBackoff: time.Minute, MaxBackoff: 4 * time.Minute})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	next(t, rec.refreshed, "first fetch")
	return s
}
