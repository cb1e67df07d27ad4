package ecr

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

	cur  atomic.Pointer[held]
	sf   singleflight.Group
	wake chan struct{} // a new credential (or a test) asks the loop to reschedule

	started atomic.Bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// held is a credential with the time it was obtained; pointer identity tells
// one fetch's result from another's.
type held struct {
	cred    Credential
	fetched time.Time
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
	return &Source{
		fetcher: f,
		opts:    opts,
		log:     opts.Logger,
		wake:    make(chan struct{}, 1),
		cancel:  func() {},
	}
}

// Start fetches a first credential and starts the background refresh loop,
// which runs until ctx ends or Close is called. The loop starts even when the
// first fetch fails (it keeps retrying); that error is returned for logging,
// and Ready reports when a credential is held.
func (s *Source) Start(ctx context.Context) error {
	if s.started.Swap(true) {
		return errors.New("ecr: Source already started")
	}
	ctx, s.cancel = context.WithCancel(ctx)
	_, err := s.refresh(ctx, s.cur.Load())
	s.wg.Add(1)
	go s.loop(ctx)
	return err
}

// Close stops the background loop and waits for it to end.
func (s *Source) Close() {
	if s.started.Load() {
		s.cancel()
	}
	s.wg.Wait()
}

// Credential returns the current credential, fetching one first when none is
// held or it has expired.
func (s *Source) Credential(ctx context.Context) (Credential, error) {
	h := s.cur.Load()
	if s.usable(h) {
		return h.cred, nil
	}
	h, err := s.refresh(ctx, h)
	if err != nil {
		return Credential{}, err
	}
	return h.cred, nil
}

// Invalidate reports that the upstream rejected stale (answered 401) and
// returns a replacement. If the held credential already differs from stale,
// it is returned without fetching; otherwise one fetch is shared by all
// concurrent callers.
func (s *Source) Invalidate(ctx context.Context, stale Credential) (Credential, error) {
	h := s.cur.Load()
	if s.usable(h) && !sameSecret(h.cred, stale) {
		return h.cred, nil
	}
	h, err := s.refresh(ctx, h)
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
func (s *Source) refresh(ctx context.Context, stale *held) (*held, error) {
	for {
		ch := s.sf.DoChan("refresh", func() (any, error) {
			// Someone else's fetch may have finished since stale was loaded.
			if h := s.cur.Load(); h != stale && s.usable(h) {
				return h, nil
			}
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.FetchTimeout)
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
		err = fmt.Errorf("ecr: fetched credential already expired at %s", c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if err != nil {
		if s.opts.Observer != nil {
			s.opts.Observer.RefreshFailed(err)
		}
		return nil, err
	}
	h := &held{cred: c, fetched: now}
	s.cur.Store(h)
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
func (s *Source) loop(ctx context.Context) {
	defer s.wg.Done()
	var (
		failures int
		failedOn *held // the credential held when refreshing last failed
		retryAt  time.Time
	)
	for {
		h := s.cur.Load()
		if failures > 0 && h != failedOn {
			failures = 0 // someone else fetched successfully
		}
		due, ok := s.refreshAt(h)
		if failures > 0 {
			due, ok = retryAt, true
		}
		var timer <-chan time.Time
		if ok {
			wait := due.Sub(s.opts.Clock())
			if wait <= 0 {
				if _, err := s.refresh(ctx, h); err != nil {
					if ctx.Err() != nil {
						return
					}
					failures++
					failedOn = h
					d := s.backoff(failures)
					retryAt = s.opts.Clock().Add(d)
					s.log.Warn("upstream credential refresh failed",
						"error", err, "attempt", failures, "retry_in", d, "held_expires_at", s.ExpiresAt())
				} else {
					failures = 0
				}
				continue
			}
			t := time.NewTimer(wait)
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-ctx.Done():
			return
		case <-timer:
		case <-s.wake:
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

// backoff doubles from MinBackoff up to MaxBackoff, with "equal jitter" (half
// fixed, half random) so that gateway replicas spread out but never retry at
// once.
func (s *Source) backoff(failures int) time.Duration {
	d := s.opts.MinBackoff << min(failures-1, 30)
	if d <= 0 || d > s.opts.MaxBackoff {
		d = s.opts.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}
