package license

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

// scriptedBackend answers from a table of tokens and counts calls; gate, if
// set, holds every call until closed.
type scriptedBackend struct {
	calls   atomic.Int32
	gate    chan struct{}
	entered chan string

	mu      sync.Mutex
	answers map[string]func() (License, error) // by token
}

func newScripted() *scriptedBackend {
	return &scriptedBackend{answers: map[string]func() (License, error){}}
}

// set scripts the answer for the token of creds(user).
func (s *scriptedBackend) set(user string, f func() (License, error)) {
	s.setToken(creds(user).Token, f)
}

func (s *scriptedBackend) setToken(token string, f func() (License, error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers[token] = f
}

func (s *scriptedBackend) Lookup(ctx context.Context, token string) (License, error) {
	s.calls.Add(1)
	if s.entered != nil {
		s.entered <- token
	}
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return License{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
	}
	s.mu.Lock()
	f := s.answers[token]
	s.mu.Unlock()
	if f == nil {
		return License{}, ErrBadCredentials
	}
	return f()
}

func licenceFor(user string, channels ...string) func() (License, error) {
	return func() (License, error) { return License{Account: user, Channels: channels}, nil }
}

func creds(user string) Credentials { return Credentials{Username: user, Token: "tok-" + user} }

func TestCacheHitAndTTL(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		be := newScripted()
		be.set("alice", licenceFor("alice", "stable"))
		obs := &testutil.LicenceObserver{}
		c := NewCache(be, CacheConfig{TTL: time.Minute, Observer: obs})
		ctx := t.Context()

		for range 3 {
			lic, err := c.Lookup(ctx, creds("alice"))
			if err != nil || !lic.Holds("stable") {
				t.Fatalf("%+v, %v", lic, err)
			}
		}
		if n := be.calls.Load(); n != 1 {
			t.Fatalf("%d backend calls within TTL, want 1", n)
		}

		// A caller mutating its copy must not change what others get.
		lic, _ := c.Lookup(ctx, creds("alice"))
		lic.Channels[0] = "everything"

		time.Sleep(59 * time.Second)
		if lic, _ := c.Lookup(ctx, creds("alice")); lic.Holds("everything") || be.calls.Load() != 1 {
			t.Fatalf("cache corrupted or expired early: %+v, %d calls", lic, be.calls.Load())
		}
		time.Sleep(time.Second)
		if _, err := c.Lookup(ctx, creds("alice")); err != nil || be.calls.Load() != 2 {
			t.Fatalf("not refreshed after TTL: %v, %d calls", err, be.calls.Load())
		}

		// A different token for the same user is a different key.
		be.setToken("other", licenceFor("alice", "beta"))
		if _, err := c.Lookup(ctx, Credentials{"alice", "other"}); err != nil || be.calls.Load() != 3 {
			t.Fatalf("other token served from cache: %v, %d calls", err, be.calls.Load())
		}

		want := "scriptedBackend/ok"
		if len(obs.Lookups()) != 3 || !strings.HasSuffix(obs.Lookups()[0], want) {
			t.Errorf("lookups %q", obs.Lookups())
		}
		if len(obs.Hits()) != 4 || !obs.Hits()[0] {
			t.Errorf("hits %v", obs.Hits())
		}
	})
}

func TestCacheNegative(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		be := newScripted()
		obs := &testutil.LicenceObserver{}
		c := NewCache(be, CacheConfig{Observer: obs})
		ctx := t.Context()

		for range 3 {
			if _, err := c.Lookup(ctx, creds("mallory")); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("err = %v", err)
			}
		}
		if n := be.calls.Load(); n != 1 {
			t.Fatalf("%d calls, want 1", n)
		}
		// The customer fixes their account; the refusal must not outlive the
		// (short) negative TTL.
		be.set("mallory", licenceFor("mallory", "stable"))
		time.Sleep(DefaultNegativeTTL)
		if _, err := c.Lookup(ctx, creds("mallory")); err != nil {
			t.Fatalf("negative answer outlived NegativeTTL: %v", err)
		}
		if fmt.Sprint(obs.Hits()) != "[false false]" || !strings.HasSuffix(obs.Lookups()[0], "/bad_credentials") {
			t.Errorf("hits %v lookups %q", obs.Hits(), obs.Lookups())
		}
	})
}

func TestCacheUnavailableNotCached(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		be := newScripted()
		down := errors.New("connection refused")
		be.set("alice", func() (License, error) { return License{}, fmt.Errorf("%w: %w", ErrUnavailable, down) })
		be.set("bob", func() (License, error) { return License{}, down }) // a custom backend forgetting to wrap
		c := NewCache(be, CacheConfig{})
		ctx := t.Context()

		if !c.Healthy() {
			t.Fatal("a fresh cache must report healthy, or it never gets traffic")
		}
		for range 3 {
			_, err := c.Lookup(ctx, creds("alice"))
			if !errors.Is(err, ErrUnavailable) || !errors.Is(err, down) {
				t.Fatalf("err = %v", err)
			}
		}
		if n := be.calls.Load(); n != 3 {
			t.Fatalf("%d calls, want 3 (no caching of unavailability)", n)
		}
		if _, err := c.Lookup(ctx, creds("bob")); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("unwrapped backend error must still fail closed: %v", err)
		}
		if c.Healthy() {
			t.Error("healthy with backend down and nothing cached")
		}

		// Backend back: healthy again.
		be.set("alice", licenceFor("alice", "stable"))
		if _, err := c.Lookup(ctx, creds("alice")); err != nil {
			t.Fatal(err)
		}
		if !c.Healthy() {
			t.Error("unhealthy after a good answer")
		}
		// Backend down again, but a good answer is cached: still serving.
		be.set("bob", func() (License, error) { return License{}, ErrUnavailable })
		c.Lookup(ctx, creds("bob"))
		if !c.Healthy() {
			t.Error("unhealthy although a licence is cached")
		}
		time.Sleep(DefaultTTL)
		if c.Healthy() {
			t.Error("healthy after the cached licence expired with backend down")
		}
		// ErrBadCredentials proves the backend reachable.
		be.set("bob", nil)
		c.Lookup(ctx, creds("bob"))
		if !c.Healthy() {
			t.Error("unhealthy after the backend answered")
		}
	})
}

func TestCacheLicenceExpiry(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		be := newScripted()
		expires := time.Now().Add(10 * time.Second)
		be.set("bob", func() (License, error) {
			return License{Account: "bob", Channels: []string{"stable"}, ExpiresAt: expires}, nil
		})
		c := NewCache(be, CacheConfig{TTL: time.Hour})
		ctx := t.Context()

		if _, err := c.Lookup(ctx, creds("bob")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(9 * time.Second)
		if _, err := c.Lookup(ctx, creds("bob")); err != nil || be.calls.Load() != 1 {
			t.Fatalf("%v, %d calls", err, be.calls.Load())
		}
		// The backend still hands out the (now expired) licence; the cache must
		// not serve it past ExpiresAt even though TTL is an hour.
		time.Sleep(time.Second)
		if lic, err := c.Lookup(ctx, creds("bob")); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("expired licence served: %+v, %v", lic, err)
		}
		if n := be.calls.Load(); n != 2 {
			t.Errorf("%d calls, want 2", n)
		}
	})
}

func TestCacheCollapsesConcurrentLookups(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		be := newScripted()
		be.set("alice", licenceFor("alice", "stable"))
		be.gate = make(chan struct{})
		obs := &testutil.LicenceObserver{}
		c := NewCache(be, CacheConfig{Observer: obs})

		var wg sync.WaitGroup
		var failures atomic.Int32
		for range 100 {
			wg.Go(func() {
				lic, err := c.Lookup(t.Context(), creds("alice"))
				if err != nil || !lic.Holds("stable") {
					failures.Add(1)
				}
			})
		}
		synctest.Wait() // every caller is waiting for the one call
		close(be.gate)
		wg.Wait()
		if n := failures.Load(); n != 0 {
			t.Errorf("%d callers failed", n)
		}
		if n := be.calls.Load(); n != 1 {
			t.Errorf("%d backend calls, want 1", n)
		}
		if len(obs.Lookups()) != 1 {
			t.Errorf("observer saw %d backend calls", len(obs.Lookups()))
		}
	})
}

func TestCacheDistinctAccountsNotCollapsed(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		be := newScripted()
		be.set("alice", licenceFor("alice", "stable"))
		be.set("bob", licenceFor("bob", "beta"))
		be.gate = make(chan struct{})
		be.entered = make(chan string, 2)
		c := NewCache(be, CacheConfig{})

		results := make(chan License, 2)
		for _, u := range []string{"alice", "bob"} {
			go func() {
				lic, _ := c.Lookup(t.Context(), creds(u))
				results <- lic
			}()
		}
		// Both must reach the backend while neither has finished.
		for range 2 {
			select {
			case <-be.entered:
			case <-time.After(2 * time.Second):
				t.Fatal("distinct accounts were collapsed into one call")
			}
		}
		close(be.gate)
		got := map[string]bool{}
		for range 2 {
			lic := <-results
			got[lic.Account+"="+strings.Join(lic.Channels, ",")] = true
		}
		if !got["alice=stable"] || !got["bob=beta"] {
			t.Errorf("answers mixed up: %v", got)
		}
	})
}

// A caller that gives up must neither cancel the shared call for the others
// nor leave them without an answer.
func TestCacheCallerCancelDoesNotFailOthers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		be := newScripted()
		be.set("alice", licenceFor("alice", "stable"))
		be.gate = make(chan struct{})
		be.entered = make(chan string, 1)
		c := NewCache(be, CacheConfig{})

		ctx, cancel := context.WithCancel(t.Context())
		first := make(chan error, 1)
		go func() {
			_, err := c.Lookup(ctx, creds("alice"))
			first <- err
		}()
		<-be.entered
		second := make(chan error, 1)
		go func() {
			_, err := c.Lookup(t.Context(), creds("alice"))
			second <- err
		}()
		cancel()
		if err := <-first; !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled caller: %v", err)
		}
		synctest.Wait() // the second caller is waiting for the shared call
		close(be.gate)
		if err := <-second; err != nil {
			t.Errorf("second caller failed because the first gave up: %v", err)
		}
		if n := be.calls.Load(); n != 1 {
			t.Errorf("%d calls", n)
		}
	})
}

func TestCacheLookupTimeout(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		be := newScripted()
		be.gate = make(chan struct{}) // never opened
		c := NewCache(be, CacheConfig{LookupTimeout: 20 * time.Millisecond})
		_, err := c.Lookup(t.Context(), creds("alice"))
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestCacheKeyHidesToken(t *testing.T) {
	t.Parallel()
	be := newScripted()
	cr := Credentials{Username: "alice@example.com", Token: "tok_0123456789abcdef0123456789abcdef"}
	be.setToken(cr.Token, licenceFor(cr.Username, "stable"))
	c := NewCache(be, CacheConfig{})
	if _, err := c.Lookup(t.Context(), cr); err != nil {
		t.Fatal(err)
	}

	k := makeCacheKey(cr.Token)
	for _, needle := range [][]byte{[]byte(cr.Token), []byte(cr.Token[:8]), []byte(cr.Username)} {
		if bytes.Contains(k[:], needle) {
			t.Errorf("key contains %q", needle)
		}
	}
	if string(k[:]) == cr.Token {
		t.Error("key equals the token")
	}
	c.mu.Lock()
	for key := range c.entries {
		if key != k || bytes.Contains(key[:], []byte(cr.Token)) {
			t.Errorf("unexpected map key %x", key)
		}
	}
	c.mu.Unlock()

}

func TestCacheMaxEntries(t *testing.T) {
	t.Parallel()
	be := newScripted()
	for i := range 10 {
		u := fmt.Sprintf("user%d", i)
		be.set(u, licenceFor(u, "stable"))
	}
	c := NewCache(be, CacheConfig{MaxEntries: 3})
	ctx := t.Context()
	for i := range 10 {
		if _, err := c.Lookup(ctx, creds(fmt.Sprintf("user%d", i))); err != nil {
			t.Fatal(err)
		}
		if n := c.Len(); n > 3 {
			t.Fatalf("%d entries, max 3", n)
		}
	}
	// The newest are kept, the oldest went.
	calls := be.calls.Load()
	c.Lookup(ctx, creds("user9"))
	if be.calls.Load() != calls {
		t.Error("newest entry was evicted")
	}
	c.Lookup(ctx, creds("user0"))
	if be.calls.Load() != calls+1 {
		t.Error("oldest entry was not evicted")
	}
}

func TestCacheDropsExpiredOnInsert(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		be := newScripted()
		c := NewCache(be, CacheConfig{})
		for i := range 50 {
			c.Lookup(t.Context(), creds(fmt.Sprintf("nobody%d", i)))
		}
		time.Sleep(DefaultNegativeTTL)
		c.Lookup(t.Context(), creds("last"))
		if n := c.Len(); n != 1 {
			t.Errorf("%d entries, want only the fresh one", n)
		}
	})
}

func BenchmarkCacheHit(b *testing.B) {
	be := newScripted()
	be.set("alice", licenceFor("alice", "stable", "beta"))
	c := NewCache(be, CacheConfig{})
	ctx := context.Background()
	cr := creds("alice")
	c.Lookup(ctx, cr)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Lookup(ctx, cr)
		}
	})
}
