package license

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// One token typed with a hundred usernames is one backend call: look-ups,
// the cache and the collapsing are keyed on the token alone. A backend that
// does not know the owner (the licence API without username_path) takes any
// username, and the licence is then in the name typed.
func TestCacheKeysOnTokenAlone(t *testing.T) {
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
	time.Sleep(50 * time.Millisecond) // let the callers pile up on the gate
	close(be.gate)
	wg.Wait()
	if n := be.calls.Load(); n != 1 {
		t.Errorf("%d backend calls for 50 concurrent usernames, want 1", n)
	}
}

// A backend that knows the owner of a token (the licence file, the licence
// API with username_path) has any other username refused like a wrong token,
// from the backend's answer and from the cache alike, and the licence is in
// the owner's name as the backend spells it.
func TestCacheRefusesOtherUsername(t *testing.T) {
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

func TestHTTPUsernamePath(t *testing.T) {
	for _, tt := range []struct {
		name, path, body string
		account          string
		msg              string // error text when not empty
	}{
		{"object", "user.email", `{"user":{"email":"Alice@Example.com"},"objects":[{"release":"stable"}]}`, "Alice@Example.com", ""},
		{"in every licence", "objects[].owner", `{"objects":[{"release":"stable","owner":"a@b"},{"release":"beta","owner":"A@B"}]}`, "a@b", ""},
		{"missing", "user.email", `{"objects":[{"release":"stable"}]}`, "", `no e-mail address at "user.email"`},
		{"empty", "user.email", `{"user":{"email":""}}`, "", "no e-mail address"},
		{"several", "objects[].owner", `{"objects":[{"owner":"a@b"},{"owner":"c@d"}]}`, "", "several e-mail addresses"},
		{"wrong type", "user.email", `{"user":{"email":42}}`, "", "got number"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := licenceAPI(t, jsonAnswer(200, tt.body))
			lic, err := newHTTP(t, HTTPConfig{URL: srv.URL, UsernamePath: tt.path}).Lookup(t.Context(), apiToken)
			if tt.msg == "" {
				if err != nil || lic.Account != tt.account {
					t.Fatalf("%+v, %v; want account %q", lic, err, tt.account)
				}
				return
			}
			if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want ErrUnavailable with %q", err, tt.msg)
			}
		})
	}
	if _, err := NewHTTPBackend(HTTPConfig{URL: "https://example.com/", UsernamePath: "user..email"}); err == nil || !strings.Contains(err.Error(), "username path") {
		t.Errorf("bad username path: %v", err)
	}
}

// The probe asks without a token and takes the answers a look-up takes as
// the API working.
func TestHTTPProbe(t *testing.T) {
	for status, ok := range map[int]bool{200: true, 401: true, 403: true, 500: false, 502: false, 404: false, 429: false} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "" || r.Header.Get("Accept") != "application/json" {
				t.Errorf("probe headers %v", r.Header)
			}
			w.WriteHeader(status)
			io.WriteString(w, "{}")
		}))
		err := newHTTP(t, HTTPConfig{URL: srv.URL}).Probe(t.Context())
		srv.Close()
		if ok && err != nil || !ok && !errors.Is(err, ErrUnavailable) {
			t.Errorf("status %d: err = %v", status, err)
		}
	}
	srv := licenceAPI(t, nil)
	srv.Close()
	if err := newHTTP(t, HTTPConfig{URL: srv.URL}).Probe(t.Context()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("server down: err = %v", err)
	}
}

func TestFileRefusesSharedToken(t *testing.T) {
	_, err := parseAccounts([]byte(fmt.Sprintf(`accounts:
  - {username: a@example.com, token_sha256: %q, channels: [stable]}
  - {username: b@example.com, token_sha256: %q, channels: [beta]}
`, HashToken(aliceToken), strings.ToUpper(HashToken(aliceToken)))))
	if err == nil || !strings.Contains(err.Error(), "account 2 (b@example.com): token_sha256 is the same as that of account 1 (a@example.com)") {
		t.Fatalf("err = %v", err)
	}
}

func TestFingerprint(t *testing.T) {
	fp := Fingerprint(aliceToken)
	if len(fp) != FingerprintLen || !strings.HasPrefix(HashToken(aliceToken), fp) || strings.Contains(fp, aliceToken) {
		t.Fatalf("Fingerprint = %q", fp)
	}
	if Fingerprint(bobToken) == fp {
		t.Error("two tokens, one fingerprint")
	}
}
