package tokenserver

import (
	"fmt"
	"testing"
	"time"
)

func TestFailureLimiter(t *testing.T) {
	clock := newFakeClock()
	l := newFailureLimiter(60, 3, 100, clock.Now) // one a second, burst 3
	if w := l.Check("k"); w != 0 || l.Len() != 0 {
		t.Fatalf("fresh key: wait %v, %d keys", w, l.Len())
	}
	for range 3 {
		l.Charge("k")
	}
	if w := l.Check("k"); w != time.Second {
		t.Errorf("after burst: wait %v, want 1s", w)
	}
	if w := l.Check("other"); w != 0 {
		t.Errorf("other key waits %v", w)
	}
	clock.Advance(500 * time.Millisecond)
	if w := l.Check("k"); w != 500*time.Millisecond {
		t.Errorf("half refilled: wait %v", w)
	}
	clock.Advance(500 * time.Millisecond)
	if w := l.Check("k"); w != 0 {
		t.Errorf("refilled: wait %v", w)
	}
	// Check consumes nothing.
	for range 10 {
		l.Check("k")
	}
	if w := l.Check("k"); w != 0 {
		t.Errorf("Check consumed: wait %v", w)
	}
}

// The map stays bounded under a flood of distinct keys, and idle keys (full
// buckets) are swept out.
func TestFailureLimiterBounded(t *testing.T) {
	clock := newFakeClock()
	l := newFailureLimiter(60, 2, 100, clock.Now)
	for i := range 1000 {
		l.Charge(fmt.Sprint("addr-", i))
		if l.Len() > 100 {
			t.Fatalf("%d keys after %d charges, max 100", l.Len(), i+1)
		}
	}
	clock.Advance(2 * time.Minute) // every bucket refills
	l.Charge("new")
	if l.Len() != 1 {
		t.Errorf("%d keys after idle sweep, want 1", l.Len())
	}
}

func TestDisabledLimiter(t *testing.T) {
	var ll *loginLimiter = newLoginLimiter(RateLimitConfig{Disabled: true}, time.Now)
	ll.Charge("a", "b")
	if ll.Check("a", "b") != 0 || ll.Len() != 0 {
		t.Error("disabled limiter limits")
	}
}

func TestRetryAfter(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "1", time.Millisecond: "1", time.Second: "1", 1001 * time.Millisecond: "2", time.Minute: "60"} {
		if got := retryAfter(d); got != want {
			t.Errorf("retryAfter(%v) = %s, want %s", d, got, want)
		}
	}
}
