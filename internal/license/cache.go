package license

import (
	"container/list"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// Cache defaults.
const (
	DefaultTTL           = 60 * time.Second
	DefaultNegativeTTL   = 5 * time.Second
	DefaultMaxEntries    = 100_000
	DefaultLookupTimeout = 10 * time.Second
	// DefaultProbeInterval is how often Monitor probes a backend that is
	// not known to be usable.
	DefaultProbeInterval = 5 * time.Second
)

// Outcome labels passed to Observer.LookupDone.
const (
	OutcomeOK             = "ok"
	OutcomeBadCredentials = "bad_credentials"
	OutcomeUnavailable    = "unavailable"
)

// Observer receives metrics events so the caller can feed Prometheus (or
// anything else) without this package depending on it. Calls are made
// outside the cache's lock but on the request path: keep them cheap.
type Observer interface {
	// LookupDone reports one call to the wrapped backend (cache misses only;
	// collapsed concurrent look-ups count once). backend is the
	// BackendName() of the Backend ("file", "http", "sql"), or its Go type;
	// outcome is one of the Outcome constants.
	LookupDone(backend, outcome string, d time.Duration)
	// CacheHit reports an answer served from the cache: positive for a
	// licence, negative for a cached ErrBadCredentials.
	CacheHit(positive bool)
}

// Versioned is implemented by a Backend that can tell cheaply whether the
// answers it gave may have changed since (the SQL backend polls a change
// counter). The Cache tags what it stores with Version and serves an entry
// only while Version still returns that tag.
type Versioned interface {
	// Version returns a number that changes whenever an earlier answer
	// may be stale. ok false means the backend cannot tell right now:
	// nothing cached is served, every look-up asks the backend.
	Version() (v uint64, ok bool)
}

// CacheConfig configures a Cache. Zero or negative values mean the default.
type CacheConfig struct {
	// TTL is how long a licence is served without asking the backend; 60s.
	TTL time.Duration
	// NegativeTTL is how long ErrBadCredentials is remembered; 5s. Short,
	// so a customer who just fixed a token is not kept waiting, but long
	// enough to absorb a client retrying a wrong password in a loop.
	NegativeTTL time.Duration
	// MaxEntries bounds memory; when full the oldest entry goes; 100k.
	MaxEntries int
	// LookupTimeout bounds one backend call made on behalf of all callers
	// waiting for it; 10s.
	LookupTimeout time.Duration
	// Clock decides expiry; default time.Now.
	Clock func() time.Time
	// Observer, if set, receives metrics events.
	Observer Observer
	// Logger receives Monitor's "backend down / back" lines; default
	// slog.Default().
	Logger *slog.Logger
}

// Cache remembers the answers of a Backend and collapses concurrent look-ups
// of one token into one backend call. ErrUnavailable is never cached: the
// next request should try again.
type Cache struct {
	backend     Backend
	name        string
	ttl         time.Duration
	negTTL      time.Duration
	maxEntries  int
	callTimeout time.Duration
	clock       func() time.Time
	obs         Observer
	versioned   Versioned     // nil unless the backend is one
	finder      AccountFinder // nil unless the backend is one
	log         *slog.Logger

	group singleflight.Group

	mu      sync.Mutex
	entries map[cacheKey]*list.Element // of *cacheEntry
	order   *list.List                 // oldest insertion first

	// lastUnavailable is what the newest look-up or probe said of the
	// backend; healthMu and healthSeq order those answers, so that a probe
	// that started before a failed look-up cannot overwrite its answer when
	// it returns after it (and leave a replica ready, with no further
	// probes, while the backend is down).
	lastUnavailable atomic.Bool
	healthMu        sync.Mutex
	healthSeq       uint64
	lastGood        atomic.Int64 // Clock time of the last licence stored, UnixNano
}

// setUnavailable records a look-up's answer about the backend.
func (c *Cache) setUnavailable(v bool) {
	c.healthMu.Lock()
	c.healthSeq++
	c.lastUnavailable.Store(v)
	c.healthMu.Unlock()
}

// healthSeqNow is the number of answers recorded so far, for a probe to
// compare against when it returns.
func (c *Cache) healthSeqNow() uint64 {
	c.healthMu.Lock()
	defer c.healthMu.Unlock()
	return c.healthSeq
}

// setProbed records a probe's answer unless a look-up answered since the
// probe started: that answer is newer.
func (c *Cache) setProbed(since uint64, v bool) {
	c.healthMu.Lock()
	if c.healthSeq == since {
		c.healthSeq++
		c.lastUnavailable.Store(v)
	}
	c.healthMu.Unlock()
}

// cacheKey is SHA-256(token): the raw token never sits in a map that a heap
// dump or debugger would show. The username is not part of it: a licence
// belongs to a token, and the username is checked against its Account on
// every answer, cached or not.
type cacheKey [sha256.Size]byte

type cacheEntry struct {
	key     cacheKey
	lic     License
	err     error // nil or a *CredentialsError, whose reason a hit keeps
	expires time.Time
	version uint64 // the backend's Version when the answer was asked for
}

type lookupResult struct {
	lic License
	err error
}

// NewCache wraps b.
func NewCache(b Backend, cfg CacheConfig) *Cache {
	if b == nil {
		panic("license: NewCache with nil Backend")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.NegativeTTL <= 0 {
		cfg.NegativeTTL = DefaultNegativeTTL
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.LookupTimeout <= 0 {
		cfg.LookupTimeout = DefaultLookupTimeout
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	versioned, _ := b.(Versioned)
	finder, _ := b.(AccountFinder)
	return &Cache{
		versioned:   versioned,
		finder:      finder,
		backend:     b,
		name:        backendName(b),
		ttl:         cfg.TTL,
		negTTL:      cfg.NegativeTTL,
		maxEntries:  cfg.MaxEntries,
		callTimeout: cfg.LookupTimeout,
		clock:       cfg.Clock,
		obs:         cfg.Observer,
		log:         cfg.Logger,
		entries:     make(map[cacheKey]*list.Element),
		order:       list.New(),
	}
}

// backendName is the backend label of metrics and log lines: the
// BackendName of a backend that has one (every backend of this tree: "file",
// "http", "sql"), else its Go type.
func backendName(b Backend) string {
	if n, ok := b.(interface{ BackendName() string }); ok {
		return n.BackendName()
	}
	return fmt.Sprintf("%T", b)
}

func makeCacheKey(token string) cacheKey {
	return sha256.Sum256([]byte(token))
}

// Lookup returns the licence of cred.Token if cred.Username may use it: the
// licence's Account when the backend knows it (compared case-insensitively),
// any username otherwise, and then the returned Account is that username. A
// username that does not match is ErrBadCredentials, like a wrong token.
//
// A refusal is a *CredentialsError that says why (ReasonOf), for the log:
// the reason the backend gave (kept by the cache), except that a wrong or
// foreign token is told apart by the username when the backend is an
// AccountFinder: unknown_account when no account has it, wrong_token when
// one has.
func (c *Cache) Lookup(ctx context.Context, cred Credentials) (License, error) {
	if err := ctx.Err(); err != nil {
		return License{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if !cred.plausible() {
		return License{}, BadCredentials(ReasonMalformed)
	}
	lic, err := c.lookup(ctx, cred.Token)
	if err != nil {
		if ReasonOf(err) == ReasonWrongToken {
			// An unknown token: the username may name no account at all.
			err = c.classify(ctx, cred.Username, ReasonWrongToken)
		}
		return License{}, err
	}
	if !lic.owns(cred.Username) {
		// A good token, but another owner's: without a finder, most
		// likely the owner's address mistyped.
		return License{}, c.classify(ctx, cred.Username, ReasonUnknownAccount)
	}
	if lic.Account == "" {
		lic.Account = cred.Username
	}
	return lic, nil
}

// classify is the refusal of a token that is not username's: wrong_token
// when username has an account, unknown_account when it has none, and
// otherwise (no finder, or it failed) the reason given.
func (c *Cache) classify(ctx context.Context, username string, otherwise Reason) error {
	if c.finder == nil {
		return BadCredentials(otherwise)
	}
	ctx, cancel := context.WithTimeout(ctx, c.callTimeout)
	defer cancel()
	exists, err := c.finder.HasAccount(ctx, username)
	switch {
	case err != nil:
		return BadCredentials(otherwise)
	case exists:
		return BadCredentials(ReasonWrongToken)
	default:
		return BadCredentials(ReasonUnknownAccount)
	}
}

// lookup answers for a token from the cache, or from one backend call
// shared by every caller asking for the same token meanwhile.
func (c *Cache) lookup(ctx context.Context, token string) (License, error) {
	key := makeCacheKey(token)
	if lic, err, ok := c.get(key, c.version()); ok {
		if c.obs != nil {
			c.obs.CacheHit(err == nil)
		}
		return lic, err
	}

	ch := c.group.DoChan(string(key[:]), func() (any, error) {
		// A caller that missed the cache just before another's call
		// stored its answer and left the group starts a call of its
		// own: the answer is in the cache by now, so ask it again
		// before the backend.
		if lic, err, ok := c.get(key, c.version()); ok {
			return lookupResult{lic, err}, nil
		}
		// The call is shared by every caller waiting on this key, so it must
		// not die with whichever caller happened to start it.
		callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.callTimeout)
		defer cancel()
		lic, err := c.fetch(callCtx, key, token)
		return lookupResult{lic, err}, nil
	})
	select {
	case r := <-ch:
		res := r.Val.(lookupResult)
		// Each caller gets its own slice so none can corrupt the cached one.
		return res.lic.clone(), res.err
	case <-ctx.Done():
		return License{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}

// fetch asks the backend and stores the answer before the singleflight call
// completes, so a caller arriving just after finds it in the cache.
func (c *Cache) fetch(ctx context.Context, key cacheKey, token string) (License, error) {
	// Read before asking: a change committed during the call must make
	// this answer stale, not be hidden by it.
	ver := c.version()
	start := time.Now()
	lic, err := c.backend.Lookup(ctx, token)
	d := time.Since(start)

	now := c.clock()
	if err == nil && lic.expired(now) {
		// Serving it would hand out access the licence no longer grants.
		lic, err = License{}, BadCredentials(ReasonExpired)
	}
	outcome := OutcomeOK
	switch {
	case errors.Is(err, ErrBadCredentials):
		outcome = OutcomeBadCredentials
		c.setUnavailable(false)
		// The shared error of its reason: what a backend wrapped is not
		// kept, and a negative hit answers with the same reason.
		err = BadCredentials(ReasonOf(err))
		c.put(key, License{}, err, now.Add(c.negTTL), now, ver)
	case err != nil:
		outcome = OutcomeUnavailable
		c.setUnavailable(true)
		if !errors.Is(err, ErrUnavailable) {
			// Fail closed whatever a custom backend returns.
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	default:
		c.setUnavailable(false)
		c.lastGood.Store(now.UnixNano())
		exp := now.Add(c.ttl)
		if !lic.ExpiresAt.IsZero() && lic.ExpiresAt.Before(exp) {
			exp = lic.ExpiresAt
		}
		lic = lic.clone()
		c.put(key, lic, nil, exp, now, ver)
	}
	if c.obs != nil {
		c.obs.LookupDone(c.name, outcome, d)
	}
	return lic, err
}

// version is the backend's Version, or noVersion when nothing cached may be
// served; always 0 for backends that are not Versioned.
func (c *Cache) version() uint64 {
	if c.versioned == nil {
		return 0
	}
	v, ok := c.versioned.Version()
	if !ok || v == noVersion {
		return noVersion
	}
	return v
}

// noVersion tags answers that must not be served from the cache.
const noVersion = ^uint64(0)

func (c *Cache) get(key cacheKey, version uint64) (License, error, bool) {
	if version == noVersion {
		return License{}, nil, false
	}
	now := c.clock()
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return License{}, nil, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) || e.version != version {
		c.order.Remove(el)
		delete(c.entries, key)
		return License{}, nil, false
	}
	return e.lic.clone(), e.err, true
}

func (c *Cache) put(key cacheKey, lic License, err error, expires time.Time, now time.Time, version uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Insertion order roughly follows expiry, so dropping expired entries
	// from the front is cheap and keeps a burst of one-off logins from
	// lingering until MaxEntries forces them out.
	for el := c.order.Front(); el != nil && !now.Before(el.Value.(*cacheEntry).expires); el = c.order.Front() {
		c.order.Remove(el)
		delete(c.entries, el.Value.(*cacheEntry).key)
	}
	if el, ok := c.entries[key]; ok {
		c.order.Remove(el)
		delete(c.entries, key)
	}
	for len(c.entries) >= c.maxEntries {
		oldest := c.order.Front()
		c.order.Remove(oldest)
		delete(c.entries, oldest.Value.(*cacheEntry).key)
	}
	c.entries[key] = c.order.PushBack(&cacheEntry{key: key, lic: lic, err: err, expires: expires, version: version})
}

// Len returns the number of cached answers, expired ones included until
// they are looked up or evicted.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Healthy is for readiness probes: true unless the last backend call (a
// look-up, or a probe of Monitor) failed with ErrUnavailable and no licence
// was stored within the last TTL (so logins likely cannot be served from the
// cache either). It starts out true, and only Monitor's first probe or a
// failed look-up can make it false; Monitor makes it true again once the
// backend answers, whether or not logins come in.
//
// A Versioned backend that cannot tell its version serves nothing from the
// cache, so a licence stored lately does not count then.
func (c *Cache) Healthy() bool {
	if !c.lastUnavailable.Load() {
		return true
	}
	last := c.lastGood.Load()
	return last != 0 && c.clock().Before(time.Unix(0, last).Add(c.ttl)) && c.version() != noVersion
}

// Monitor keeps Healthy in step with the backend without login traffic,
// until ctx ends. When the backend is a Prober, Monitor probes it at once (so that a
// replica started while the backend is down is not ready) and then every
// interval while the last look-up or probe failed, so that a replica the
// load balancer took out of rotation, which gets no logins, comes back
// within an interval of the backend answering again. A backend known to
// work is not probed: look-ups show it failing. Each probe is bounded by
// the interval, so probes never pile up. For any other backend Monitor
// returns at once. It always returns nil.
func (c *Cache) Monitor(ctx context.Context, interval time.Duration) error {
	p, ok := c.backend.(Prober)
	if !ok {
		return nil
	}
	if interval <= 0 {
		interval = DefaultProbeInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	down := false // as last logged
	for first := true; ; first = false {
		if first || c.lastUnavailable.Load() {
			since := c.healthSeqNow()
			pctx, cancel := context.WithTimeout(ctx, interval)
			err := p.Probe(pctx)
			cancel()
			if ctx.Err() != nil {
				return nil
			}
			c.setProbed(since, err != nil)
			switch {
			case err != nil && !down:
				c.log.Warn("licence backend unavailable; probing until it answers", slog.String("backend", c.name), slog.Any("error", err))
			case err == nil && down:
				c.log.Info("licence backend answers again", slog.String("backend", c.name))
			}
			down = err != nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
