package license

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// wantReason fails unless err is a refusal (ErrBadCredentials, never
// ErrUnavailable) for reason want, or, for ReasonUnavailable, an
// ErrUnavailable.
func wantReason(t *testing.T, what string, err error, want Reason) {
	t.Helper()
	if got := ReasonOf(err); got != want {
		t.Errorf("%s: reason %q (err %v), want %q", what, got, err, want)
	}
	if want == ReasonUnavailable {
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrBadCredentials) {
			t.Errorf("%s: err %v, want ErrUnavailable alone", what, err)
		}
		return
	}
	if !errors.Is(err, ErrBadCredentials) || errors.Is(err, ErrUnavailable) {
		t.Errorf("%s: err %v, want ErrBadCredentials alone", what, err)
	}
}

func TestReasonOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want Reason
	}{
		{nil, ""},
		{ErrBadCredentials, ReasonWrongToken}, // a backend that does not say
		{BadCredentials(ReasonDisabled), ReasonDisabled},
		{fmt.Errorf("custom: %w", BadCredentials(ReasonExpired)), ReasonExpired},
		{fmt.Errorf("%w: down", ErrUnavailable), ReasonUnavailable},
		{errors.New("anything else"), ReasonUnavailable}, // the Cache fails closed on it
	} {
		if got := ReasonOf(tc.err); got != tc.want {
			t.Errorf("ReasonOf(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	for _, r := range Reasons() {
		if err := BadCredentials(r); !errors.Is(err, ErrBadCredentials) || ReasonOf(err) != r || err != BadCredentials(r) {
			t.Errorf("BadCredentials(%q) = %v: not a shared ErrBadCredentials of that reason", r, err)
		}
	}
}

// findingBackend is a scripted backend that is also an AccountFinder.
type findingBackend struct {
	*scriptedBackend
	accounts map[string]bool
	err      error
	asked    atomic.Int32
}

func (b *findingBackend) HasAccount(_ context.Context, username string) (bool, error) {
	b.asked.Add(1)
	return b.accounts[username], b.err
}

// The Cache's own reasons: a licence past its expiry, a custom backend's
// plain or wrapped refusal, an error it forgot to wrap; the finder asked
// only for refusals, and a failing finder leaving the default.
func TestCacheReasons(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		be := &findingBackend{scriptedBackend: newScripted(), accounts: map[string]bool{"alice": true, "bob": true}}
		be.set("alice", licenceFor("alice", "stable"))
		be.set("old", func() (License, error) {
			return License{Account: "old", Channels: []string{"stable"}, ExpiresAt: time.Now().Add(-time.Second)}, nil
		})
		be.set("off", func() (License, error) { return License{}, fmt.Errorf("custom: %w", BadCredentials(ReasonDisabled)) })
		be.set("broken", func() (License, error) { return License{}, errors.New("connection reset") })
		c := NewCache(be, CacheConfig{})
		ctx := t.Context()

		if _, err := c.Lookup(ctx, creds("alice")); err != nil || be.asked.Load() != 0 {
			t.Fatalf("good login: %v, finder asked %d times", err, be.asked.Load())
		}
		for round := range 2 {
			for _, tc := range []struct {
				name string
				cred Credentials
				want Reason
			}{
				{"expired licence", creds("old"), ReasonExpired},
				{"wrapped refusal", creds("off"), ReasonDisabled},
				{"plain ErrBadCredentials, an account's username", Credentials{"bob", "unknown"}, ReasonWrongToken},
				{"plain ErrBadCredentials, no such account", Credentials{"nobody", "unknown"}, ReasonUnknownAccount},
				{"another's token, an account's username", Credentials{"bob", creds("alice").Token}, ReasonWrongToken},
				{"another's token, no such account", Credentials{"alice2", creds("alice").Token}, ReasonUnknownAccount},
				{"unwrapped backend error", creds("broken"), ReasonUnavailable},
			} {
				_, err := c.Lookup(ctx, tc.cred)
				wantReason(t, fmt.Sprintf("round %d: %s", round, tc.name), err, tc.want)
			}
		}

		// The finder fails: a wrong token stays wrong_token, a foreign one
		// unknown_account, and the refusal is still a refusal.
		be.err = errors.New("database gone")
		_, err := c.Lookup(ctx, Credentials{"nobody", "unknown"})
		wantReason(t, "finder down, unknown token", err, ReasonWrongToken)
		_, err = c.Lookup(ctx, Credentials{"bob", creds("alice").Token})
		wantReason(t, "finder down, another's token", err, ReasonUnknownAccount)
	})
}

// BenchmarkBadCredentials reports what a refusal allocates (none: the
// errors are shared; the bound itself is TestBadCredentialsAllocates,
// under -tags bounds).
func BenchmarkBadCredentials(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = BadCredentials(ReasonWrongToken)
	}
}
