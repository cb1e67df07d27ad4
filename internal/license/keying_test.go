package license

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
)

// One token typed with a hundred usernames is one backend call: look-ups,
// the cache and the collapsing are keyed on the token alone. A backend that
// does not know the owner (the licence API without username_path) takes any
// username, and the licence is then in the name typed.
func TestCacheKeysOnTokenAlone(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		be := newScripted()
		be.setToken("shared", func() (License, error) { return License{Channels: []string{"stable"}}, nil })
		c := NewCache(be, CacheConfig{})
		for i := range 100 {
			user := fmt.Sprintf("user%d@example.com", i)
			lic, err := c.Lookup(t.Context(), Credentials{user, "shared"})
			if err != nil || lic.Account != user || !lic.Holds("stable") {
				t.Fatalf("%s: %+v, %v", user, lic, err)
			}
		}
		if n := be.calls.Load(); n != 1 {
			t.Errorf("%d backend calls for 100 usernames of one token, want 1", n)
		}

		// Concurrent look-ups of one token under many names are one call too.
		be = newScripted()
		be.setToken("shared", func() (License, error) { return License{Channels: []string{"stable"}}, nil })
		be.gate = make(chan struct{})
		c = NewCache(be, CacheConfig{})
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				if _, err := c.Lookup(t.Context(), Credentials{fmt.Sprintf("u%d", i), "shared"}); err != nil {
					t.Error(err)
				}
			})
		}
		synctest.Wait() // every caller is waiting for the one call
		close(be.gate)
		wg.Wait()
		if n := be.calls.Load(); n != 1 {
			t.Errorf("%d backend calls for 50 concurrent usernames, want 1", n)
		}
	})
}

// A backend that knows the owner of a token (the licence file, the licence
// API with username_path) has any other username refused like a wrong token,
// from the backend's answer and from the cache alike, and the licence is in
// the owner's name as the backend spells it.
func TestCacheRefusesOtherUsername(t *testing.T) {
	t.Parallel()
	be := newScripted()
	be.set("alice", licenceFor("Alice@Example.com", "stable"))
	c := NewCache(be, CacheConfig{})
	tok := creds("alice").Token
	for _, user := range []string{"mallory@example.com", "alice", "Alice@Example.com.evil", " Alice@Example.com"} {
		if lic, err := c.Lookup(t.Context(), Credentials{user, tok}); !errors.Is(err, ErrBadCredentials) || lic.Account != "" || lic.Channels != nil {
			t.Errorf("%q: %+v, %v; want ErrBadCredentials", user, lic, err)
		}
	}
	for _, user := range []string{"Alice@Example.com", "alice@example.com", "ALICE@EXAMPLE.COM"} {
		lic, err := c.Lookup(t.Context(), Credentials{user, tok})
		if err != nil || lic.Account != "Alice@Example.com" {
			t.Errorf("%q: %+v, %v", user, lic, err)
		}
	}
	if n := be.calls.Load(); n != 1 {
		t.Errorf("%d backend calls, want 1", n)
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	fp := Fingerprint(aliceToken)
	if len(fp) != FingerprintLen || !strings.HasPrefix(HashToken(aliceToken), fp) || strings.Contains(fp, aliceToken) {
		t.Fatalf("Fingerprint = %q", fp)
	}
	if Fingerprint(bobToken) == fp {
		t.Error("two tokens, one fingerprint")
	}
}
