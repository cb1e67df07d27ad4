package auth

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// cacheFixture is a Verifier with a cache of size entries over one key,
// counting key lookups: a Verify that looks up no key answered from the
// cache. The Verifier reads the real clock (no VerifierConfig.Clock): the
// tests that move time run in a synctest bubble, where time.Sleep moves it.
type cacheFixture struct {
	t       *testing.T
	key     *SigningKey
	v       *Verifier
	lookups atomic.Int32
}

func newCacheFixture(t *testing.T, size int) *cacheFixture {
	f := &cacheFixture{t: t}
	priv := mustEC(t)
	f.key = mustSigningKey(t, priv)
	keys := keySourceFunc(func(ctx context.Context, kid string) (crypto.PublicKey, error) {
		f.lookups.Add(1)
		return StaticKeys{f.key.KeyID: priv.Public()}.PublicKey(ctx, kid)
	})
	f.v = NewVerifier(VerifierConfig{Issuer: testIssuer, Audience: testAudience, Keys: keys, CacheSize: size, Leeway: time.Second})
	return f
}

// token signs a token valid for ttl from now.
func (f *cacheFixture) token(ttl time.Duration) string {
	f.t.Helper()
	now := time.Now()
	c := testClaims(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	raw, err := f.key.Sign(c)
	if err != nil {
		f.t.Fatal(err)
	}
	return raw
}

// cached verifies raw and reports whether the answer came from the cache.
func (f *cacheFixture) cached(raw string) bool {
	f.t.Helper()
	before := f.lookups.Load()
	if _, err := f.v.Verify(context.Background(), raw); err != nil {
		f.t.Fatal(err)
	}
	return f.lookups.Load() == before
}

// A full cache evicts one entry per new token, the least recently used:
// a flood of new tokens does not push out a token in use, and what it
// pushes out goes one entry at a time.
func TestVerifyCacheEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	f := newCacheFixture(t, 4)
	tok := make([]string, 6)
	for i := range tok {
		tok[i] = f.token(5 * time.Minute)
	}
	for i, raw := range tok[:4] {
		if f.cached(raw) {
			t.Fatalf("token %d answered from the cache on its first use", i)
		}
	}
	if !f.cached(tok[0]) { // 0 becomes the most recently used, 1 the least
		t.Fatal("token 0 not cached")
	}
	f.cached(tok[4]) // evicts 1, and only 1
	if n := f.v.cache.len(); n != 4 {
		t.Fatalf("cache holds %d entries after one past its bound, want 4", n)
	}
	for _, i := range []int{0, 2, 3, 4} {
		if !f.cached(tok[i]) {
			t.Fatalf("token %d evicted by token 4; only token 1 (least recently used) should be", i)
		}
	}
	// Recency now, oldest first: 0, 2, 3, 4. Token 1 comes back and
	// evicts 0.
	if f.cached(tok[1]) {
		t.Fatal("token 1 still cached: nothing was evicted")
	}
	if f.cached(tok[0]) {
		t.Fatal("token 0 still cached after token 1 came back")
	}

	// A flood of distinct tokens, with one customer's token used between
	// each: the cache stays full (one eviction per token) and the token in
	// use never leaves it.
	hot := tok[5]
	f.cached(hot)
	for i := range 50 {
		f.cached(f.token(5 * time.Minute))
		if n := f.v.cache.len(); n != 4 {
			t.Fatalf("flood token %d: cache holds %d entries, want 4", i, n)
		}
		if !f.cached(hot) {
			t.Fatalf("flood token %d evicted the token in use", i)
		}
	}
}

// No entry outlives its token: an entry past exp + leeway is dropped at
// the next call, whatever token it is for, and dropped before any live
// entry is evicted, even one less recently used.
func TestVerifyCacheDropsExpiredEntries(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newCacheFixture(t, 2)
		long, short := f.token(10*time.Minute), f.token(time.Minute)
		f.cached(long)
		f.cached(short) // long is now the least recently used
		time.Sleep(time.Minute + 2*time.Second)
		if n := f.v.cache.len(); n != 2 {
			t.Fatalf("cache holds %d entries, want 2", n)
		}
		if !f.cached(long) {
			t.Fatal("live token dropped")
		}
		if n := f.v.cache.len(); n != 1 {
			t.Fatalf("cache holds %d entries after short's exp, want 1 (short dropped)", n)
		}
		var ve *VerifyError
		if _, err := f.v.Verify(context.Background(), short); !errors.As(err, &ve) || ve.Reason != ReasonExpired {
			t.Fatalf("expired token: err = %v, want reason %s", err, ReasonExpired)
		}

		// Full, with the least recently used entry live and a more recent one
		// expired: a new token takes the expired one's place.
		f = newCacheFixture(t, 2)
		long, short = f.token(10*time.Minute), f.token(time.Minute)
		f.cached(long)
		f.cached(short)
		time.Sleep(time.Minute + 2*time.Second)
		f.cached(f.token(5 * time.Minute))
		if !f.cached(long) {
			t.Fatal("a live entry was evicted while an expired one was held")
		}
	})
}

// Many goroutines verifying more distinct tokens than the cache holds: no
// race (go test -race), no error, the bound held.
func TestVerifyCacheConcurrent(t *testing.T) {
	t.Parallel()
	f := newCacheFixture(t, 5)
	toks := make([]string, 12)
	for i := range toks {
		toks[i] = f.token(5 * time.Minute)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 60 {
				raw := toks[(g*7+i*(g+1))%len(toks)]
				if _, err := f.v.Verify(context.Background(), raw); err != nil {
					errs <- fmt.Errorf("goroutine %d: %w", g, err)
					return
				}
				if n := f.v.cache.len(); n > 5 {
					errs <- fmt.Errorf("cache holds %d entries, bound is 5", n)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
