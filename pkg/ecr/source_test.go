package ecr

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/smithy-go"

	"github.com/acme/registry-gateway/internal/testsupport/ecrfake"
)

func TestRefreshAtHalfLifetime(t *testing.T) {
	clk, rec := newClock(), newRecorder()
	fake := ecrfake.New(ecrfake.Options{Clock: clk.Now})
	defer fake.Close()
	s := started(t, sdkFetcher(t, fake), clk, rec)
	first, _ := s.Credential(context.Background())
	if first.Password != fake.Password() || !s.Ready() || !s.ExpiresAt().Equal(t0.Add(12*time.Hour)) {
		t.Fatalf("after Start: %v ready=%v", first, s.Ready())
	}

	fake.Rotate()
	clk.Advance(6*time.Hour - time.Second)
	s.poke()
	quiet(t, rec.refreshed, "refresh before half the lifetime")

	clk.Advance(time.Second)
	s.poke()
	got := wait(t, rec.refreshed, "refresh at half the lifetime")
	if got.Password != fake.Password() || !got.ExpiresAt.Equal(t0.Add(18*time.Hour)) {
		t.Errorf("refreshed to %v", got)
	}
	if c, _ := s.Credential(context.Background()); c.Password != fake.Password() {
		t.Error("Credential still returns the old password")
	}
	if n := fake.Calls("GetAuthorizationToken"); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
}

func TestFailedRefreshRetriesAndKeepsCredential(t *testing.T) {
	clk, rec := newClock(), newRecorder()
	fake := ecrfake.New(ecrfake.Options{Clock: clk.Now})
	defer fake.Close()
	s := started(t, sdkFetcher(t, fake), clk, rec)
	held := fake.Password()

	fake.FailNext(3, 500)
	fake.Rotate()
	clk.Advance(6 * time.Hour)
	s.poke()
	for i := range 3 {
		wait(t, rec.failed, "a failed refresh")
		if c, err := s.Credential(context.Background()); err != nil || c.Password != held || !s.Ready() {
			t.Fatalf("failure %d: Credential = %v, %v; want the held one", i+1, c, err)
		}
		s.poke()
		quiet(t, rec.failed, "retry before the backoff") // the fake clock has not moved
		clk.Advance(4 * time.Minute)                     // MaxBackoff
		s.poke()
	}
	if c := wait(t, rec.refreshed, "the refresh after the failures"); c.Password != fake.Password() {
		t.Errorf("refreshed to %v", c)
	}
	if n := fake.Calls("GetAuthorizationToken"); n != 5 {
		t.Errorf("%d fetches, want 5", n)
	}
}

// Without Start, so that no background retry interferes with the counting.
func TestExpiredCredentialIsNotReady(t *testing.T) {
	clk := newClock()
	fake := ecrfake.New(ecrfake.Options{Clock: clk.Now})
	defer fake.Close()
	s := NewSource(sdkFetcher(t, fake), Options{Clock: clk.Now, MinBackoff: time.Minute})
	defer s.Close()
	calls := func() int { return fake.Calls("GetAuthorizationToken") }
	if _, err := s.Credential(context.Background()); err != nil || !s.Ready() {
		t.Fatalf("first fetch: %v", err)
	}

	fake.FailNext(1000, 503)
	clk.Advance(12*time.Hour - time.Nanosecond)
	if !s.Ready() {
		t.Fatal("not Ready just before expiry")
	}
	clk.Advance(time.Nanosecond)
	if s.Ready() || !s.ExpiresAt().Equal(t0.Add(12*time.Hour)) {
		t.Fatalf("at expiry: ready=%v expiresAt=%v", s.Ready(), s.ExpiresAt())
	}
	_, err := s.Credential(context.Background())
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "ServerException" || calls() != 2 {
		t.Fatalf("Credential after expiry: %v after %d calls", err, calls())
	}

	// Within MinBackoff of the failure it is answered from memory.
	fake.FailNext(0, 0)
	if _, err := s.Credential(context.Background()); err == nil || calls() != 2 {
		t.Fatalf("fetched again right after a failure: %v, %d calls", err, calls())
	}
	clk.Advance(time.Minute)
	if c, err := s.Credential(context.Background()); err != nil || c.Password != fake.Password() || !s.Ready() || calls() != 3 {
		t.Fatalf("after recovery: %v, %v, ready=%v, %d calls", c, err, s.Ready(), calls())
	}
}

func TestStartFailureThenRetry(t *testing.T) {
	clk, rec := newClock(), newRecorder()
	fake := ecrfake.New(ecrfake.Options{Clock: clk.Now})
	defer fake.Close()
	fake.FailNext(1, 400)
	s := NewSource(sdkFetcher(t, fake), Options{Clock: clk.Now, Observer: rec, MinBackoff: time.Minute, MaxBackoff: 4 * time.Minute})
	defer s.Close()

	err := s.Start(context.Background())
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDeniedException" || s.Ready() {
		t.Fatalf("Start = %v, ready=%v; want AccessDeniedException, not ready", err, s.Ready())
	}
	s.poke()
	quiet(t, rec.refreshed, "retry before the backoff")
	clk.Advance(time.Minute)
	s.poke()
	wait(t, rec.refreshed, "the retry")
	if !s.Ready() {
		t.Error("not Ready after the retry")
	}
}

func TestConcurrentCallersShareOneFetch(t *testing.T) {
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
			clk, rec := newClock(), newRecorder()
			fake := ecrfake.New(ecrfake.Options{Clock: clk.Now})
			defer fake.Close()
			var s *Source
			var stale Credential
			if tc.held {
				s = started(t, sdkFetcher(t, fake), clk, rec)
				stale, _ = s.Credential(context.Background())
				fake.Rotate()
			} else {
				s = NewSource(sdkFetcher(t, fake), Options{Clock: clk.Now})
				defer s.Close()
			}
			before, want := fake.Calls("GetAuthorizationToken"), fake.Password()

			var wg sync.WaitGroup
			gate := make(chan struct{})
			for range 50 {
				wg.Go(func() {
					<-gate
					if c, err := tc.call(s, stale); err != nil || c.Password != want {
						t.Errorf("got %v, %v; want the fake's current password", c, err)
					}
				})
			}
			close(gate)
			wg.Wait()
			if n := fake.Calls("GetAuthorizationToken") - before; n != 1 {
				t.Errorf("%d fetches for 50 callers, want 1", n)
			}
		})
	}
}

func TestInvalidateWithOtherCredentialDoesNotFetch(t *testing.T) {
	clk, rec := newClock(), newRecorder()
	f := &counting{Fetcher: StaticFetcher{Username: "u", PasswordFile: writeFile(t, "pw1\n")}}
	s := started(t, f, clk, rec)
	c, err := s.Invalidate(context.Background(), Credential{Username: "u", Password: "older"})
	if err != nil || c.Password != "pw1" || f.n.Load() != 1 {
		t.Errorf("got %v, %v after %d fetches", c, err, f.n.Load())
	}
}

// A never-expiring credential is not refreshed on a schedule; a rotated
// password file is picked up through Invalidate after the upstream's 401.
func TestStaticSourceRotation(t *testing.T) {
	clk, rec := newClock(), newRecorder()
	path := writeFile(t, "pw1\n")
	f := &counting{Fetcher: StaticFetcher{Username: "u", PasswordFile: path}}
	s := started(t, f, clk, rec)
	if !s.Ready() || !s.ExpiresAt().IsZero() {
		t.Fatalf("ready=%v expires=%v", s.Ready(), s.ExpiresAt())
	}
	clk.Advance(10000 * time.Hour)
	s.poke()
	quiet(t, rec.refreshed, "scheduled refresh of a never-expiring credential")

	if err := os.WriteFile(path, []byte("pw2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stale, _ := s.Credential(context.Background())
	if stale.Password != "pw1" {
		t.Fatalf("Credential = %v before any 401", stale)
	}
	for range 2 { // the second 401 for pw1 is answered from memory
		if c, err := s.Invalidate(context.Background(), stale); err != nil || c.Password != "pw2" {
			t.Fatalf("Invalidate = %v, %v", c, err)
		}
	}
	if n := f.n.Load(); n != 2 {
		t.Errorf("%d reads of the file, want 2", n)
	}
}

// TestRealTimers runs the loop on the real clock with a short lifetime.
func TestRealTimers(t *testing.T) {
	rec := newRecorder()
	fake := ecrfake.New(ecrfake.Options{Lifetime: time.Second})
	defer fake.Close()
	s := NewSource(sdkFetcher(t, fake), Options{Observer: rec, MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond})
	defer s.Close()
	begin := time.Now()
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	wait(t, rec.refreshed, "first fetch")
	fake.FailNext(2, 500)
	wait(t, rec.failed, "failure 1")
	if d := time.Since(begin); d < 450*time.Millisecond {
		t.Errorf("refreshed after %v, before half of the 1s lifetime", d)
	}
	wait(t, rec.failed, "failure 2")
	wait(t, rec.refreshed, "refresh after the retries")
	if !s.Ready() {
		t.Error("not Ready")
	}
}

type blockingFetcher chan struct{}

func (b blockingFetcher) Fetch(ctx context.Context) (Credential, error) {
	close(b)
	<-ctx.Done()
	return Credential{}, ctx.Err()
}

func TestCloseEndsFetchInFlight(t *testing.T) {
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
	f := StaticFetcher{Username: "u", PasswordFile: writeFile(t, "pw")}
	s := NewSource(f, Options{})
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

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
