package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// Observer receives refresh outcomes, e.g. to export metrics. Calls are made
// synchronously from the refreshing goroutine and must not block.
type Observer interface {
	Refreshed(Credential)
	RefreshFailed(error)
}

// Options configure a Source. The zero value is usable.
type Options struct {
	Clock  func() time.Time // default time.Now
	Logger *slog.Logger     // default: discard
	// RefreshFraction of a credential's lifetime after which the background
	// loop replaces it (default 0.5: six hours into a 12-hour ECR token).
	RefreshFraction float64
	// Failed refreshes are retried after a jittered, doubling delay between
	// MinBackoff (default 1s) and MaxBackoff (default 5m).
	MinBackoff, MaxBackoff time.Duration
	// FetchTimeout bounds one fetch (default 30s). Fetches are shared by
	// concurrent callers, so they do not run under any one caller's context.
	FetchTimeout time.Duration
	Observer     Observer // may be nil
}

// Source holds the current upstream credential and keeps it fresh.
type Source struct {
	fetcher Fetcher
	opts    Options
	log     *slog.Logger

	cur     atomic.Pointer[held]
	lastErr atomic.Pointer[failure]
	sf      singleflight.Group
	wake    chan struct{} // a new credential (or a test) asks the loop to reschedule

	// life bounds every fetch: fetches are shared between callers, so they
	// cannot run under one caller's context, but Close must end them.
	life context.Context
	end  context.CancelFunc

	mu      sync.Mutex
	started bool
	closed  bool
	wg      sync.WaitGroup // the loop and fetches in flight
}

// ErrClosed is returned by a Source after Close.
var ErrClosed = errors.New("upstream: credential source closed")

// held is a credential with the time it was obtained; pointer identity tells
// one fetch's result from another's.
type held struct {
	cred    Credential
	fetched time.Time
}

type failure struct {
	err error
	at  time.Time
}

// NewSource returns a Source that fetches with f. Call Start to refresh in
// the background; without it, Credential fetches on demand.
func NewSource(f Fetcher, opts Options) *Source {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RefreshFraction <= 0 || opts.RefreshFraction >= 1 {
		opts.RefreshFraction = 0.5
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(5*time.Minute, opts.MinBackoff)
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = 30 * time.Second
	}
	s := &Source{fetcher: f, opts: opts, log: opts.Logger, wake: make(chan struct{}, 1)}
	s.life, s.end = context.WithCancel(context.Background())
	return s
}

// Start fetches a first credential and starts the background refresh loop,
// which runs until ctx ends or Close is called. The loop starts even when the
// first fetch fails (it keeps retrying); that error is returned for logging,
// and Ready reports when a credential is held.
func (s *Source) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started || s.closed {
		s.mu.Unlock()
		return errors.New("upstream: Source already started or closed")
	}
	s.started = true
	s.wg.Add(1) // for the loop
	s.mu.Unlock()
	tried := s.opts.Clock()
	_, err := s.refresh(ctx, s.cur.Load(), false)
	var failedAt time.Time
	if err != nil {
		failedAt = tried
	}
	go s.loop(ctx, failedAt)
	return err
}

// Close stops the background loop and any fetch in flight and waits for them
// to end. Later calls return ErrClosed.
func (s *Source) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.end()
	s.wg.Wait()
}

// track counts a fetch in wg unless the Source is closed. Add happens under
// mu so that it never races with Close's Wait.
func (s *Source) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// Credential returns the current credential, fetching one first when none is
// held or it has expired. For MinBackoff after a failed fetch it returns that
// failure again instead of fetching, so that an outage is not met with one
// AWS call per incoming request.
func (s *Source) Credential(ctx context.Context) (Credential, error) {
	h := s.cur.Load()
	if s.usable(h) {
		return h.cred, nil
	}
	h, err := s.refresh(ctx, h, true)
	if err != nil {
		return Credential{}, err
	}
	return h.cred, nil
}

// Invalidate reports that the upstream rejected stale (answered 401) and
// returns a replacement. If the held credential already differs from stale,
// it is returned without fetching; otherwise one fetch is shared by all
// concurrent callers (and, like Credential, not repeated for MinBackoff after
// it failed).
func (s *Source) Invalidate(ctx context.Context, stale Credential) (Credential, error) {
	h := s.cur.Load()
	if s.usable(h) && !sameSecret(h.cred, stale) {
		return h.cred, nil
	}
	h, err := s.refresh(ctx, h, true)
	if err != nil {
		return Credential{}, err
	}
	return h.cred, nil
}

// Ready reports whether an unexpired credential is held.
func (s *Source) Ready() bool { return s.usable(s.cur.Load()) }

// ExpiresAt returns the held credential's expiry, or the zero time when none
// is held or it never expires.
func (s *Source) ExpiresAt() time.Time {
	if h := s.cur.Load(); h != nil {
		return h.cred.ExpiresAt
	}
	return time.Time{}
}

func (s *Source) usable(h *held) bool {
	return h != nil && !h.cred.Expired(s.opts.Clock())
}

func sameSecret(a, b Credential) bool {
	return a.Username == b.Username && a.Password == b.Password
}

// refresh returns a credential other than stale, fetching at most once for
// all concurrent callers. The caller waits only as long as its ctx allows.
// With coolDown, a failure less than MinBackoff old is returned instead of
// fetching; the loop, which has its own backoff, passes false.
func (s *Source) refresh(ctx context.Context, stale *held, coolDown bool) (*held, error) {
	for {
		ch := s.sf.DoChan("refresh", func() (any, error) {
			if !s.track() {
				return nil, ErrClosed
			}
			defer s.wg.Done()
			// Someone else's fetch may have finished since stale was loaded.
			if h := s.cur.Load(); h != stale && s.usable(h) {
				return h, nil
			}
			if f := s.lastErr.Load(); coolDown && f != nil && s.opts.Clock().Sub(f.at) < s.opts.MinBackoff {
				return nil, f.err
			}
			fctx, cancel := context.WithTimeout(s.life, s.opts.FetchTimeout)
			defer cancel()
			return s.fetch(fctx)
		})
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case r := <-ch:
			if r.Err != nil {
				return nil, r.Err
			}
			// A flight started by a caller that held an older stale may hand
			// back our stale one; go again, which then fetches.
			if h := r.Val.(*held); h != stale {
				return h, nil
			}
		}
	}
}

func (s *Source) fetch(ctx context.Context) (*held, error) {
	c, err := s.fetcher.Fetch(ctx)
	now := s.opts.Clock()
	if err == nil && c.Expired(now) {
		// Storing it would make the loop refresh in a tight circle.
		err = fmt.Errorf("upstream: fetched credential already expired at %s", c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if err != nil {
		s.lastErr.Store(&failure{err: err, at: now})
		if s.opts.Observer != nil {
			s.opts.Observer.RefreshFailed(err)
		}
		return nil, err
	}
	h := &held{cred: c, fetched: now}
	s.cur.Store(h)
	s.lastErr.Store(nil)
	s.log.Info("upstream credential refreshed", "credential", c)
	if s.opts.Observer != nil {
		s.opts.Observer.Refreshed(c)
	}
	s.poke()
	return h, nil
}

func (s *Source) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// loop refreshes the credential at RefreshFraction of its lifetime and
// retries failures with backoff; the held credential stays in use until it
// expires. It recomputes its deadline from the Clock whenever woken.
// Retries are timed from when the failed attempt began, so the schedule does
// not depend on how long the attempt took (nor, in tests, on when a fake
// clock is moved). failedAt is Start's failed attempt, if any.
func (s *Source) loop(ctx context.Context, failedAt time.Time) {
	defer s.wg.Done()
	stopped := func() bool { return ctx.Err() != nil || s.life.Err() != nil }
	var (
		failures int
		failedOn = s.cur.Load() // the credential held when refreshing last failed
		retryAt  time.Time
	)
	if !failedAt.IsZero() {
		failures, retryAt = 1, failedAt.Add(s.backoff(1))
	}
	for {
		h := s.cur.Load()
		if failures > 0 && h != failedOn {
			failures = 0 // someone else fetched successfully
		}
		due, ok := s.refreshAt(h)
		if failures > 0 {
			due, ok = retryAt, true
		}
		var fire <-chan time.Time // nil: no refresh due, only a wake-up helps
		var timer *time.Timer
		if ok {
			now := s.opts.Clock()
			wait := due.Sub(now)
			if wait <= 0 {
				if _, err := s.refresh(ctx, h, false); err == nil {
					failures = 0
				} else if !stopped() {
					failures++
					failedOn = h
					d := s.backoff(failures)
					retryAt = now.Add(d)
					s.log.Warn("upstream credential refresh failed",
						"error", err, "attempt", failures, "retry_in", d, "held_expires_at", s.ExpiresAt())
				}
				if stopped() {
					return
				}
				continue
			}
			timer = time.NewTimer(wait)
			fire = timer.C
		}
		select {
		case <-ctx.Done():
		case <-s.life.Done():
		case <-fire:
		case <-s.wake:
		}
		if timer != nil {
			timer.Stop()
		}
		if stopped() {
			return
		}
	}
}

// refreshAt is when h should be replaced; ok is false for a credential that
// never expires (it is only replaced through Invalidate).
func (s *Source) refreshAt(h *held) (at time.Time, ok bool) {
	if h == nil {
		return s.opts.Clock(), true
	}
	if h.cred.ExpiresAt.IsZero() {
		return time.Time{}, false
	}
	life := h.cred.ExpiresAt.Sub(h.fetched)
	return h.fetched.Add(time.Duration(float64(life) * s.opts.RefreshFraction)), true
}

// backoff doubles from MinBackoff up to MaxBackoff with "equal jitter": the
// random half keeps replicas that failed together from retrying together, the
// fixed half keeps a retry from coming almost at once.
func (s *Source) backoff(failures int) time.Duration {
	d := s.opts.MinBackoff << min(failures-1, 30)
	if d <= 0 || d > s.opts.MaxBackoff {
		d = s.opts.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}
