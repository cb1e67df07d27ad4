package httpbackend

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/acme/registry-gateway/internal/license"
)

// The licence API through the Cache: its answers map to the closest
// reason, and a refusal served from the negative cache keeps it.
func TestHTTPReasons(t *testing.T) {
	t.Parallel()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	owner := jsonAnswer(200, `{"objects":[{"release":"stable"}],"user":{"email":"alice@example.com"}}`)
	for _, tc := range []struct {
		name   string
		handle func(http.ResponseWriter, *http.Request) // nil: the API is down
		cred   license.Credentials
		want   license.Reason
		cached bool // a second look-up is answered without the API (when it is up)
	}{
		{"401: token not taken", owner, license.Credentials{Username: "alice@example.com", Token: "kl_live_wrong"}, license.ReasonWrongToken, true},
		{"403: token refused", jsonAnswer(403, `{"error":"account suspended"}`), alice, license.ReasonDisabled, true},
		{"username is not the owner", owner, license.Credentials{Username: "alice@exmaple.com", Token: apiToken}, license.ReasonUnknownAccount, true},
		{"404", jsonAnswer(404, ``), alice, license.ReasonUnavailable, false},
		{"500", jsonAnswer(500, `oops`), alice, license.ReasonUnavailable, false},
		{"no owner in the answer", jsonAnswer(200, `{"objects":[]}`), alice, license.ReasonUnavailable, false},
		{"network error", nil, alice, license.ReasonUnavailable, false},
		{"control characters in the token", owner, license.Credentials{Username: "alice@example.com", Token: apiToken + "\r\nX: 1"}, license.ReasonMalformed, true},
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
			c := license.NewCache(newHTTP(t, Options{URL: url, UsernamePath: "user.email"}), license.CacheConfig{})
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

func TestHTTPUsernamePath(t *testing.T) {
	t.Parallel()
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
			lic, err := newHTTP(t, Options{URL: srv.URL, UsernamePath: tt.path}).Lookup(t.Context(), apiToken)
			if tt.msg == "" {
				if err != nil || lic.Account != tt.account {
					t.Fatalf("%+v, %v; want account %q", lic, err, tt.account)
				}
				return
			}
			if !errors.Is(err, license.ErrUnavailable) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want license.ErrUnavailable with %q", err, tt.msg)
			}
		})
	}
	if _, err := New(Options{URL: "https://example.com/", UsernamePath: "user..email"}); err == nil || !strings.Contains(err.Error(), "username path") {
		t.Errorf("bad username path: %v", err)
	}
}

// The probe asks without a token and takes the answers a look-up takes as
// the API working.
func TestHTTPProbe(t *testing.T) {
	t.Parallel()
	for status, ok := range map[int]bool{200: true, 401: true, 403: true, 500: false, 502: false, 404: false, 429: false} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "" || r.Header.Get("Accept") != "application/json" {
				t.Errorf("probe headers %v", r.Header)
			}
			w.WriteHeader(status)
			io.WriteString(w, "{}")
		}))
		err := newHTTP(t, Options{URL: srv.URL}).Probe(t.Context())
		srv.Close()
		if ok && err != nil || !ok && !errors.Is(err, license.ErrUnavailable) {
			t.Errorf("status %d: err = %v", status, err)
		}
	}
	srv := licenceAPI(t, nil)
	srv.Close()
	if err := newHTTP(t, Options{URL: srv.URL}).Probe(t.Context()); !errors.Is(err, license.ErrUnavailable) {
		t.Errorf("server down: err = %v", err)
	}
}

// A backend that cannot tell the owner (no UsernamePath, no finder):
// every username goes with a good token, and an unknown one is wrong_token.
func TestCacheReasonsWithoutFinder(t *testing.T) {
	t.Parallel()
	srv := licenceAPI(t, func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `{"objects":[{"release":"stable"}]}`)
	})
	c := license.NewCache(newHTTP(t, Options{URL: srv.URL}), license.CacheConfig{})
	if lic, err := c.Lookup(t.Context(), license.Credentials{Username: "anyone@example.com", Token: apiToken}); err != nil || lic.Account != "anyone@example.com" {
		t.Errorf("good token: %+v, %v", lic, err)
	}
	_, err := c.Lookup(t.Context(), license.Credentials{Username: "anyone@example.com", Token: "kl_live_wrong"})
	wantReason(t, "wrong token", err, license.ReasonWrongToken)
}
