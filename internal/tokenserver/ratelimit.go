package tokenserver

import (
	"math"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// failureLimiter throttles keys (client addresses, usernames) that fail to
// log in. It is built for a hot success path: a key is only entered once it
// fails, Check on a key that never failed is one lock-free map read, and only
// failures (Charge) create or consume anything. Parallel pulls of an account
// whose credentials are good therefore never wait for it.
type failureLimiter struct {
	limit rate.Limit
	burst int
	max   int
	now   func() time.Time

	entries   sync.Map // string → *limiterEntry
	size      atomic.Int64
	sweepMu   sync.Mutex   // one sweep at a time
	lastSweep atomic.Int64 // UnixNano
}

// sweepEvery is how often failures also sweep out keys whose bucket has
// refilled, so that idle keys do not wait for the map to fill up.
const sweepEvery = time.Minute

type limiterEntry struct {
	lim *rate.Limiter
}

func newFailureLimiter(perMinute float64, burst, maxEntries int, now func() time.Time) *failureLimiter {
	return &failureLimiter{limit: rate.Limit(perMinute / 60), burst: max(burst, 1), max: max(maxEntries, 1), now: now}
}

// Check reports how long key must wait before it may try again; zero means
// it may try now. It consumes nothing: only a failure is charged.
func (l *failureLimiter) Check(key string) time.Duration {
	v, ok := l.entries.Load(key)
	if !ok {
		return 0
	}
	tokens := v.(*limiterEntry).lim.TokensAt(l.now())
	if tokens >= 1 {
		return 0
	}
	if l.limit <= 0 {
		return time.Hour
	}
	return time.Duration((1 - tokens) / float64(l.limit) * float64(time.Second))
}

// Charge records a failure of key.
func (l *failureLimiter) Charge(key string) {
	now := l.now()
	v, ok := l.entries.Load(key)
	if !ok {
		if l.size.Load() >= int64(l.max) || now.UnixNano()-l.lastSweep.Load() > int64(sweepEvery) {
			l.sweep(now)
		}
		var loaded bool
		v, loaded = l.entries.LoadOrStore(key, &limiterEntry{lim: rate.NewLimiter(l.limit, l.burst)})
		if !loaded {
			l.size.Add(1)
		}
	}
	v.(*limiterEntry).lim.AllowN(now, 1)
}

// sweep drops the keys whose bucket has refilled (they hold no memory of
// failures any more) and, if the map is still full, arbitrary others: under
// a flood of distinct addresses, forgetting some is better than growing
// without bound.
func (l *failureLimiter) sweep(now time.Time) {
	if !l.sweepMu.TryLock() {
		return // another goroutine is at it
	}
	defer l.sweepMu.Unlock()
	l.lastSweep.Store(now.UnixNano())
	full := float64(l.burst)
	l.entries.Range(func(k, v any) bool {
		if v.(*limiterEntry).lim.TokensAt(now) >= full {
			l.delete(k)
		}
		return true
	})
	target := int64(l.max) * 9 / 10
	l.entries.Range(func(k, _ any) bool {
		if l.size.Load() <= target {
			return false
		}
		l.delete(k)
		return true
	})
}

func (l *failureLimiter) delete(k any) {
	if _, ok := l.entries.LoadAndDelete(k); ok {
		l.size.Add(-1)
	}
}

// Len is the number of keys tracked.
func (l *failureLimiter) Len() int { return int(l.size.Load()) }

// loginLimiter is the pair of limiters a login consults: per client address
// and per (client address, username). A per-username limit alone would let
// anyone lock a customer out by failing in their name.
type loginLimiter struct {
	addr, user *failureLimiter
	// ipv6Bits is the prefix length IPv6 clients are grouped by.
	ipv6Bits int
}

// DefaultIPv6Prefix is rate_limit.ipv6_prefix's default: a /64 is what one
// customer line (or one cloud instance) usually gets, so its addresses are
// one client to the limiter.
const DefaultIPv6Prefix = 64

func newLoginLimiter(c RateLimitConfig, now func() time.Time) *loginLimiter {
	if c.Disabled {
		return nil
	}
	bits := c.IPv6Prefix
	if bits == 0 {
		bits = DefaultIPv6Prefix
	}
	return &loginLimiter{
		addr:     newFailureLimiter(c.PerAddress, c.PerAddressBurst, c.MaxEntries, now),
		user:     newFailureLimiter(c.PerUser, c.PerUserBurst, c.MaxEntries, now),
		ipv6Bits: bits,
	}
}

// group is the limiter key of a client address. An IPv6 client holds a
// whole prefix and can fail from a fresh address every time, so IPv6
// addresses are counted by their prefix; IPv4 addresses are scarce and
// shared (NAT), so each stays its own key. A client that is no address
// (an X-Forwarded-For entry a trusted proxy wrote in a form httpx cannot
// read; httpx.ClientAddr bounds its length) is a key of its own, marked so
// that it never equals an address's or a prefix's: a proxy that wrote
// "2001:db8::/64" is not that /64.
func (ll *loginLimiter) group(client string) string {
	a, err := netip.ParseAddr(client)
	if err != nil {
		return rawKeyPrefix + client
	}
	a = a.Unmap()
	if !a.Is6() {
		return a.String()
	}
	p, err := a.WithZone("").Prefix(ll.ipv6Bits)
	if err != nil {
		return client
	}
	return p.String()
}

// rawKeyPrefix marks the key of a client that is no address; no address or
// prefix starts with it.
const rawKeyPrefix = "raw:"

func userKey(client, username string) string {
	return client + "\x00" + strings.ToLower(username)
}

// Check returns how long the client must wait; zero if it may go on. A nil
// loginLimiter never limits.
func (ll *loginLimiter) Check(client, username string) time.Duration {
	if ll == nil {
		return 0
	}
	client = ll.group(client)
	wait := ll.addr.Check(client)
	// Building the user key allocates; skip it while nothing has failed.
	if username != "" && ll.user.Len() > 0 {
		wait = max(wait, ll.user.Check(userKey(client, username)))
	}
	return wait
}

// Charge records a failed login.
func (ll *loginLimiter) Charge(client, username string) {
	if ll == nil {
		return
	}
	client = ll.group(client)
	ll.addr.Charge(client)
	if username != "" {
		ll.user.Charge(userKey(client, username))
	}
}

// Len is the number of keys tracked by both limiters.
func (ll *loginLimiter) Len() int {
	if ll == nil {
		return 0
	}
	return ll.addr.Len() + ll.user.Len()
}

// retryAfter renders a wait as the whole seconds of a Retry-After header.
func retryAfter(d time.Duration) string {
	s := int64(math.Ceil(d.Seconds()))
	return strconv.FormatInt(max(s, 1), 10)
}
