package license

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
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
	if n := testing.AllocsPerRun(100, func() { _ = BadCredentials(ReasonWrongToken) }); n != 0 {
		t.Errorf("a refusal allocates %v times", n)
	}
}

// The file backend through the Cache, as the token service asks it: each
// reason, and the same reasons again from the negative cache (the backend
// is asked once a token), where a wrong token is still told apart by the
// username it came with.
func TestFileReasons(t *testing.T) {
	fx := startFile(t, accountsYAML(""))
	fx.clock.Advance(30 * time.Minute) // bob's licence has expired
	obs := &recordingObserver{}
	c := NewCache(fx.b, CacheConfig{Clock: fx.clock.Now, Observer: obs})
	cases := []struct {
		name, user, token string
		want              Reason
	}{
		{"unknown e-mail, unknown token", "mallory@example.com", "made-up-token", ReasonUnknownAccount},
		{"an account's e-mail, unknown token", "ALICE@example.com", "made-up-token", ReasonWrongToken},
		{"an account's e-mail, another's token", "alice@example.com", carolTokenOf(t, fx), ReasonWrongToken},
		{"mistyped e-mail, good token", "alice@exmaple.com", aliceToken, ReasonUnknownAccount},
		{"expired licence", "bob@example.com", bobToken, ReasonExpired},
		{"control character in the token", "alice@example.com", "tok\x00en", ReasonMalformed},
		{"empty username", "", aliceToken, ReasonMalformed},
	}
	for round := range 2 {
		for _, tc := range cases {
			_, err := c.Lookup(t.Context(), Credentials{Username: tc.user, Token: tc.token})
			wantReason(t, fmt.Sprintf("round %d: %s", round, tc.name), err, tc.want)
		}
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	// made-up-token, carol's, alice's, bob's: one look-up each; the rest
	// are answered from the cache (the malformed ones ask nothing).
	if len(obs.lookups) != 4 {
		t.Errorf("backend look-ups %q, want 4", obs.lookups)
	}
}

// carolTokenOf adds carol to the file and waits for the poller to load it.
func carolTokenOf(t *testing.T, fx *fileFixture) string {
	t.Helper()
	writeFile(t, fx.path, accountsYAML(fmt.Sprintf("  - username: carol@example.com\n    token_sha256: %q\n    channels: [stable]\n", HashToken(carolToken))))
	eventually(t, "carol loaded", func() bool {
		ok, _ := fx.b.HasAccount(t.Context(), "Carol@example.com")
		return ok
	})
	return carolToken
}

// The licence API through the Cache: its answers map to the closest
// reason, and a refusal served from the negative cache keeps it.
func TestHTTPReasons(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	owner := jsonAnswer(200, `{"objects":[{"release":"stable"}],"user":{"email":"alice@example.com"}}`)
	for _, tc := range []struct {
		name   string
		handle func(http.ResponseWriter, *http.Request) // nil: the API is down
		cred   Credentials
		want   Reason
		cached bool // a second look-up is answered without the API (when it is up)
	}{
		{"401: token not taken", owner, Credentials{"alice@example.com", "kl_live_wrong"}, ReasonWrongToken, true},
		{"403: token refused", jsonAnswer(403, `{"error":"account suspended"}`), alice, ReasonDisabled, true},
		{"username is not the owner", owner, Credentials{"alice@exmaple.com", apiToken}, ReasonUnknownAccount, true},
		{"404", jsonAnswer(404, ``), alice, ReasonUnavailable, false},
		{"500", jsonAnswer(500, `oops`), alice, ReasonUnavailable, false},
		{"no owner in the answer", jsonAnswer(200, `{"objects":[]}`), alice, ReasonUnavailable, false},
		{"network error", nil, alice, ReasonUnavailable, false},
		{"control characters in the token", owner, Credentials{"alice@example.com", apiToken + "\r\nX: 1"}, ReasonMalformed, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			url := downURL
			if tc.handle != nil {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					calls.Add(1)
					if r.Header.Get("Authorization") != "Bearer "+apiToken {
						w.WriteHeader(http.StatusUnauthorized)
						return
					}
					tc.handle(w, r)
				}))
				t.Cleanup(srv.Close)
				url = srv.URL
			}
			c := NewCache(newHTTP(t, HTTPConfig{URL: url, UsernamePath: "user.email"}), CacheConfig{})
			_, err := c.Lookup(t.Context(), tc.cred)
			wantReason(t, "first", err, tc.want)
			before := calls.Load()
			_, err = c.Lookup(t.Context(), tc.cred)
			wantReason(t, "second", err, tc.want)
			if cached := calls.Load() == before; tc.handle != nil && cached != tc.cached {
				t.Errorf("second look-up cached: %v, want %v", cached, tc.cached)
			}
		})
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
	clock := newFakeClock()
	be := &findingBackend{scriptedBackend: newScripted(), accounts: map[string]bool{"alice": true, "bob": true}}
	be.set("alice", licenceFor("alice", "stable"))
	be.set("old", func() (License, error) {
		return License{Account: "old", Channels: []string{"stable"}, ExpiresAt: clock.Now().Add(-time.Second)}, nil
	})
	be.set("off", func() (License, error) { return License{}, fmt.Errorf("custom: %w", BadCredentials(ReasonDisabled)) })
	be.set("broken", func() (License, error) { return License{}, errors.New("connection reset") })
	c := NewCache(be, CacheConfig{Clock: clock.Now})
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
}

// A backend that cannot tell the owner (no UsernamePath, no finder):
// every username goes with a good token, and an unknown one is wrong_token.
func TestCacheReasonsWithoutFinder(t *testing.T) {
	srv := licenceAPI(t, func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `{"objects":[{"release":"stable"}]}`)
	})
	c := NewCache(newHTTP(t, HTTPConfig{URL: srv.URL}), CacheConfig{})
	if lic, err := c.Lookup(t.Context(), Credentials{"anyone@example.com", apiToken}); err != nil || lic.Account != "anyone@example.com" {
		t.Errorf("good token: %+v, %v", lic, err)
	}
	_, err := c.Lookup(t.Context(), Credentials{"anyone@example.com", "kl_live_wrong"})
	wantReason(t, "wrong token", err, ReasonWrongToken)
}
