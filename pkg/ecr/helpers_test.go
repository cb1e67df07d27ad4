package ecr

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/testsupport/ecrfake"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

func newClock() *testutil.Clock { return testutil.NewClock(t0) }

// sdkFetcher points the real SDK, through NewSDKFetcher's default config
// chain, at the fake, with no retries inside the SDK.
func sdkFetcher(t *testing.T, s *ecrfake.Server) *SDKFetcher {
	t.Helper()
	s.SetEnv(t)
	f, err := NewSDKFetcher(context.Background(), "us-east-1", "123456789012",
		ClientOptions{MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// recorder is an Observer whose events tests wait for.
type recorder struct {
	refreshed chan Credential
	failed    chan error
}

func newRecorder() *recorder {
	return &recorder{refreshed: make(chan Credential, 100), failed: make(chan error, 100)}
}

func (r *recorder) Refreshed(c Credential)  { r.refreshed <- c }
func (r *recorder) RefreshFailed(err error) { r.failed <- err }

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

// quiet fails if ch delivers within a short while: nothing must happen.
func quiet[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %v", what, v)
	case <-time.After(50 * time.Millisecond):
	}
}

// started returns a started Source on the fake clock, closed at test end.
// Its backoffs are minutes of fake time, so that the loop's real timers never
// fire during a test: only poke (after clk.Advance) moves it.
func started(t *testing.T, f Fetcher, clk *testutil.Clock, rec *recorder) *Source {
	t.Helper()
	s := NewSource(f, Options{Clock: clk.Now, Observer: rec, MinBackoff: time.Minute, MaxBackoff: 4 * time.Minute})
	t.Cleanup(s.Close)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	wait(t, rec.refreshed, "first fetch")
	return s
}

// counting counts the fetches that reach the wrapped Fetcher.
type counting struct {
	Fetcher
	n atomic.Int32
}

func (c *counting) Fetch(ctx context.Context) (Credential, error) {
	c.n.Add(1)
	return c.Fetcher.Fetch(ctx)
}
