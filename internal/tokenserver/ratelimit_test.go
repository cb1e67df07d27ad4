package tokenserver

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestFailureLimiter(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
	var ll *loginLimiter = newLoginLimiter(RateLimitConfig{Disabled: true}, time.Now)
	ll.Charge("a", "b")
	if ll.Check("a", "b") != 0 || ll.Len() != 0 {
		t.Error("disabled limiter limits")
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{0: "1", time.Millisecond: "1", time.Second: "1", 1001 * time.Millisecond: "2", time.Minute: "60"} {
		if got := retryAfter(d); got != want {
			t.Errorf("retryAfter(%v) = %s, want %s", d, got, want)
		}
	}
}

// An IPv6 client holds a whole /64 and can fail from a new address every
// time: 40 failures from 40 addresses of one /64 are one client to the
// limiter, while 40 IPv4 addresses stay 40 clients.
func TestFailedLoginsLimitedByIPv6Prefix(t *testing.T) {
	t.Parallel()
	failFrom := func(t *testing.T, f *fixture, addr func(i int) string) (refusedAt int) {
		t.Helper()
		for i := range 40 {
			// A new username each time: only the per-address limit applies.
			resp := get(t, f.url, fmt.Sprintf("user%d@example.com", i), "wrong", scopes(), "X-Forwarded-For", addr(i))
			switch resp.StatusCode {
			case http.StatusUnauthorized:
			case http.StatusTooManyRequests:
				return i + 1
			default:
				t.Fatalf("failure %d: status %d", i+1, resp.StatusCode)
			}
		}
		return 0
	}
	trusting := func(prefix int) func(*Config) {
		return func(c *Config) {
			c.TrustedProxies = []string{"127.0.0.1/32", "::1"}
			c.RateLimit.IPv6Prefix = prefix
		}
	}
	in64 := func(i int) string { return fmt.Sprintf("2001:db8:0:1:%x::%x", i, i+1) }

	t.Run("one /64", func(t *testing.T) {
		f := newFixture(t, trusting(0))
		// per_address_burst is 30 by default: the 31st failure is refused.
		if n := failFrom(t, f, in64); n != 31 {
			t.Fatalf("refused at failure %d, want 31", n)
		}
		// The neighbour /64 is another client.
		mustToken(t, get(t, f.url, aliceUser, aliceToken, scopes(), "X-Forwarded-For", "2001:db8:0:2::1"))
		if resp := get(t, f.url, aliceUser, aliceToken, scopes(), "X-Forwarded-For", "2001:db8:0:1:ffff::1"); resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("another address of the /64: status %d, want 429", resp.StatusCode)
		}
	})
	t.Run("ipv4 per address", func(t *testing.T) {
		f := newFixture(t, trusting(0))
		if n := failFrom(t, f, func(i int) string { return fmt.Sprintf("198.51.100.%d", i+1) }); n != 0 {
			t.Fatalf("40 IPv4 addresses refused at failure %d", n)
		}
	})
	t.Run("prefix 128", func(t *testing.T) {
		f := newFixture(t, trusting(128))
		if n := failFrom(t, f, in64); n != 0 {
			t.Fatalf("ipv6_prefix 128 refused at failure %d", n)
		}
	})
}

func TestLimiterGroup(t *testing.T) {
	t.Parallel()
	ll := newLoginLimiter(RateLimitConfig{IPv6Prefix: 48}, time.Now)
	for in, want := range map[string]string{
		"2001:db8:1:2:3:4:5:6": "2001:db8:1::/48",
		"2001:db8:1:ffff::1":   "2001:db8:1::/48",
		"fe80::1%eth0":         "fe80::/48",
		"::ffff:192.0.2.1":     "192.0.2.1",
		"192.0.2.1":            "192.0.2.1",
		"not an address":       "raw:not an address",
		"2001:db8:1::/48":      "raw:2001:db8:1::/48", // a proxy's text, not the /48
		"[2001:db8::1]:443":    "raw:[2001:db8::1]:443",
	} {
		if got := ll.group(in); got != want {
			t.Errorf("group(%q) = %q, want %q", in, got, want)
		}
	}
}

// A login without a password is not a guess (it is what a pull secret made
// from docker's config.json sends): it gets the explaining 401 every time
// and is not counted as a failure.
func TestEmptyPasswordNotCharged(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *Config) {
		c.RateLimit = RateLimitConfig{PerAddress: 1, PerAddressBurst: 1, PerUser: 1, PerUserBurst: 1}
	})
	for i := range 5 {
		resp := get(t, f.url, aliceUser, "", scopes())
		if e := decodeError(t, resp); resp.StatusCode != http.StatusUnauthorized || e.Errors[0].Message != emptyPasswordMessage {
			t.Fatalf("attempt %d: %d %+v", i+1, resp.StatusCode, e)
		}
	}
	if n := f.srv.limiter.Len(); n != 0 {
		t.Errorf("limiter tracks %d keys", n)
	}
	mustToken(t, get(t, f.url, aliceUser, aliceToken, scopes()))
}

// Customers behind a trusted balancer that writes X-Forwarded-For entries
// with the port (192.0.2.7:51234), or in a form that is no address, each
// keep a failed-login budget of their own: one of them failing until
// throttled does not throttle the others, nor the balancer's other
// customers (before, every such entry fell back to the balancer's
// address, one budget for all).
func TestFailedLoginsPerClientBehindBalancer(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *Config) {
		c.TrustedProxies = []string{"127.0.0.1/32", "::1"}
		c.RateLimit = RateLimitConfig{PerAddress: 1, PerAddressBurst: 3, PerUser: 1, PerUserBurst: 3}
	})
	for _, tc := range []struct{ attacker, customer string }{
		{"192.0.2.7:51234", "192.0.2.8:40000"},
		{"[2001:db8:1::1]:443", "[2001:db8:2::1]:443"},
		{"client-7f3a", "client-9c01"},
		// A proxy's text that looks like the prefix key of the customer's
		// /64 is not that /64.
		{"2001:db8:3::/64", "2001:db8:3::1"},
	} {
		throttled := false
		for i := range 10 {
			resp := get(t, f.url, fmt.Sprintf("u%d@example.com", i), "wrong", scopes(), "X-Forwarded-For", tc.attacker)
			if resp.StatusCode == http.StatusTooManyRequests {
				throttled = true
				break
			}
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("%s: failure %d: status %d", tc.attacker, i+1, resp.StatusCode)
			}
		}
		if !throttled {
			t.Fatalf("%s was never throttled", tc.attacker)
		}
		mustToken(t, get(t, f.url, aliceUser, aliceToken, scopes(), "X-Forwarded-For", tc.customer))
	}
	if got := f.srv.limiter.addr.Check(rawKeyPrefix + "client-7f3a"); got == 0 {
		t.Error("the raw key is not what was charged")
	}
}

// TestWarnsBehindUntrustedProxy: token requests with X-Forwarded-For from
// a loopback peer (the gateway) while the token service trusts no proxy
// are warned of once: every customer would share the gateway's failed-
// login budget. With the gateway listed, no warning.
func TestWarnsBehindUntrustedProxy(t *testing.T) {
	t.Parallel()
	const warning = `"level":"WARN","msg":"X-Forwarded-For from a private or loopback address`
	f := newFixture(t, nil)
	for range 3 {
		get(t, f.url, aliceUser, "wrong", scopes(), "X-Forwarded-For", "203.0.113.9")
	}
	f.settle()
	logs := f.logs.String()
	if n := strings.Count(logs, warning); n != 1 || !strings.Contains(logs, `"peer":"127.0.0.1"`) || !strings.Contains(logs, "trusted_proxies") {
		t.Fatalf("%d warnings, want 1 naming the peer and trusted_proxies: %s", n, logs)
	}

	f = newFixture(t, func(c *Config) { c.TrustedProxies = []string{"127.0.0.1/32", "::1"} })
	get(t, f.url, aliceUser, "wrong", scopes(), "X-Forwarded-For", "203.0.113.9")
	f.settle()
	if strings.Contains(f.logs.String(), warning) {
		t.Errorf("warned with the proxy trusted: %s", f.logs)
	}
}
