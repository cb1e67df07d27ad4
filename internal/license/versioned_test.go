package license

import (
	"errors"
	"sync/atomic"
	"testing"
)

// versionedBackend is a scriptedBackend whose Version the test sets.
type versionedBackend struct {
	*scriptedBackend
	v  atomic.Uint64
	ok atomic.Bool
}

func (b *versionedBackend) Version() (uint64, bool) { return b.v.Load(), b.ok.Load() }

func TestCacheVersioned(t *testing.T) {
	t.Parallel()
	be := &versionedBackend{scriptedBackend: newScripted()}
	be.ok.Store(true)
	be.set("alice", licenceFor("alice", "stable"))
	c := NewCache(be, CacheConfig{})
	ctx := t.Context()

	for range 3 {
		if _, err := c.Lookup(ctx, creds("alice")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Lookup(ctx, creds("mallory")); !errors.Is(err, ErrBadCredentials) {
			t.Fatal(err)
		}
	}
	if n := be.calls.Load(); n != 2 {
		t.Fatalf("%d backend calls at one version, want 2", n)
	}

	// A change: both the licence and the refusal are asked again.
	be.set("alice", nil)
	be.set("mallory", licenceFor("mallory", "beta"))
	be.v.Add(1)
	if _, err := c.Lookup(ctx, creds("alice")); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("revoked licence served from the cache: %v", err)
	}
	if _, err := c.Lookup(ctx, creds("mallory")); err != nil {
		t.Errorf("cached refusal outlived a change: %v", err)
	}
	if n := be.calls.Load(); n != 4 {
		t.Fatalf("%d backend calls, want 4", n)
	}

	// The backend cannot tell: every look-up goes to it.
	be.ok.Store(false)
	for range 3 {
		c.Lookup(ctx, creds("mallory"))
	}
	if n := be.calls.Load(); n != 7 {
		t.Errorf("%d backend calls while the version is unknown, want 7", n)
	}
	// Nor is what was stored meanwhile served once it can tell again.
	be.ok.Store(true)
	c.Lookup(ctx, creds("mallory"))
	c.Lookup(ctx, creds("mallory"))
	if n := be.calls.Load(); n != 8 {
		t.Errorf("%d backend calls, want 8", n)
	}
}

// A licence stored lately keeps a cache healthy while the backend fails
// only if it can be served: not while a Versioned backend cannot tell its
// version.
func TestCacheVersionedHealthy(t *testing.T) {
	t.Parallel()
	be := &versionedBackend{scriptedBackend: newScripted()}
	be.ok.Store(true)
	be.set("alice", licenceFor("alice", "stable"))
	c := NewCache(be, CacheConfig{Logger: discard()})
	ctx := t.Context()
	if _, err := c.Lookup(ctx, creds("alice")); err != nil {
		t.Fatal(err)
	}
	be.set("bob", func() (License, error) { return License{}, ErrUnavailable })
	if _, err := c.Lookup(ctx, creds("bob")); !errors.Is(err, ErrUnavailable) {
		t.Fatal(err)
	}
	if !c.Healthy() {
		t.Error("unhealthy with alice's licence servable from the cache")
	}
	be.ok.Store(false)
	if c.Healthy() {
		t.Error("healthy while the backend fails and nothing cached may be served")
	}
}
