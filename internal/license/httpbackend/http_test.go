package httpbackend

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/acme/registry-gateway/internal/license"
)

const apiToken = "kl_live_TOPSECRET_abcdef123456"

// licenceAPI imitates the vendor endpoint: it checks the headers the seed
// article relies on and answers with handle's status and body.
func licenceAPI(t *testing.T, handle func(w http.ResponseWriter, r *http.Request)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(licenceHandler(t, handle))
	t.Cleanup(srv.Close)
	return srv
}

// licenceHandler is the handler of licenceAPI.
func licenceHandler(t *testing.T, handle func(w http.ResponseWriter, r *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			t.Errorf("method %s", r.Method)
		}
		if got := r.Header.Get("Accept"); got != "application/json" {
			t.Errorf("Accept = %q", got)
		}
		if r.Header.Get("Authorization") != "Bearer "+apiToken {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"invalid token"}`)
			return
		}
		handle(w, r)
	})
}

// inMemory is a client that hands each request to h in the caller's
// goroutine, with no network: in a synctest bubble a handler waiting on a
// channel is durably blocked, where one behind a socket is not.
func inMemory(h http.Handler) *http.Client {
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if err := r.Context().Err(); err != nil {
			return nil, err
		}
		return rec.Result(), nil
	})}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func jsonAnswer(status int, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func newHTTP(t *testing.T, cfg Options) *Backend {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var alice = license.Credentials{Username: "alice@example.com", Token: apiToken}

func TestHTTPDefaultPath(t *testing.T) {
	t.Parallel()
	srv := licenceAPI(t, jsonAnswer(200, `{"count":3,"objects":[
		{"id":1,"release":"stable"},{"id":2,"release":"beta"},{"id":3,"release":"stable"}]}`))
	b := newHTTP(t, Options{URL: srv.URL + "/v1/meta/licenses/"})

	lic, err := b.Lookup(t.Context(), alice.Token)
	if err != nil {
		t.Fatal(err)
	}
	// The API takes the token alone: it cannot say whose it is.
	want := license.License{Account: "", Channels: []string{"beta", "stable"}}
	if lic.Account != want.Account || !slices.Equal(lic.Channels, want.Channels) || !lic.ExpiresAt.IsZero() {
		t.Errorf("got %+v, want %+v", lic, want)
	}
	if !lic.Holds("stable") || lic.Holds("nightly") {
		t.Errorf("Holds wrong for %v", lic.Channels)
	}
}

func TestHTTPCustomPath(t *testing.T) {
	t.Parallel()
	srv := licenceAPI(t, jsonAnswer(200, `{"data":{"channels":["nightly","stable"]}}`))
	b := newHTTP(t, Options{URL: srv.URL, ChannelsPath: "data.channels[]"})
	lic, err := b.Lookup(t.Context(), alice.Token)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(lic.Channels, []string{"nightly", "stable"}) {
		t.Errorf("channels %q", lic.Channels)
	}
}

func TestHTTPNoLicences(t *testing.T) {
	t.Parallel()
	srv := licenceAPI(t, jsonAnswer(200, `{"count":0,"objects":[]}`))
	lic, err := newHTTP(t, Options{URL: srv.URL}).Lookup(t.Context(), alice.Token)
	if err != nil || len(lic.Channels) != 0 {
		t.Fatalf("got %+v, %v; want empty licence", lic, err)
	}
}

func TestHTTPErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handle  func(http.ResponseWriter, *http.Request)
		cred    license.Credentials
		wantErr error
		msg     string // expected in the error text
	}{
		{"wrong token", jsonAnswer(200, `{}`), license.Credentials{Username: "alice@example.com", Token: "kl_live_wrong"}, license.ErrBadCredentials, ""},
		{"403", jsonAnswer(403, `{"error":"forbidden"}`), alice, license.ErrBadCredentials, ""},
		{"500", jsonAnswer(500, `oops`), alice, license.ErrUnavailable, "500"},
		{"429", jsonAnswer(429, ``), alice, license.ErrUnavailable, "429"},
		{"404", jsonAnswer(404, ``), alice, license.ErrUnavailable, "404"},
		{"bad JSON", jsonAnswer(200, `{"objects":[`), alice, license.ErrUnavailable, "not JSON"},
		{"HTML", jsonAnswer(200, `<html>maintenance</html>`), alice, license.ErrUnavailable, "not JSON"},
		{"wrong shape", jsonAnswer(200, `{"objects":{"release":"stable"}}`), alice, license.ErrUnavailable, "want array"},
		{"oversize", func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, `{"objects":[`)
			item := `{"release":"stable"},`
			for range (maxResponseBytes / len(item)) + 1 {
				io.WriteString(w, item)
			}
			io.WriteString(w, `{"release":"beta"}]}`)
		}, alice, license.ErrUnavailable, "exceeds"},
		{"empty token", jsonAnswer(200, `{}`), license.Credentials{Username: "alice@example.com", Token: ""}, license.ErrBadCredentials, ""},
		{"header injection", jsonAnswer(200, `{}`), license.Credentials{Username: "alice@example.com", Token: apiToken + "\r\nX-Evil: 1"}, license.ErrBadCredentials, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := licenceAPI(t, tt.handle)
			_, err := newHTTP(t, Options{URL: srv.URL}).Lookup(t.Context(), tt.cred.Token)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == license.ErrBadCredentials && errors.Is(err, license.ErrUnavailable) {
				t.Fatalf("err %v is both", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q should mention %q", err, tt.msg)
			}
			if strings.Contains(err.Error(), "TOPSECRET") {
				t.Errorf("error leaks token: %v", err)
			}
		})
	}
}

func TestHTTPTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := licenceAPI(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release) // before srv.Close, which waits for handlers

	for _, cfg := range []Options{
		{URL: srv.URL, Timeout: 50 * time.Millisecond},
		// An injected client without its own timeout must still be bounded.
		{URL: srv.URL, Timeout: 50 * time.Millisecond, Client: &http.Client{}},
	} {
		start := time.Now()
		_, err := newHTTP(t, cfg).Lookup(t.Context(), alice.Token)
		if !errors.Is(err, license.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("timeout took %v", d)
		}
		if strings.Contains(err.Error(), "TOPSECRET") {
			t.Errorf("error leaks token: %v", err)
		}
	}
}

func TestHTTPCallerCancel(t *testing.T) {
	t.Parallel()
	srv := licenceAPI(t, jsonAnswer(200, `{}`))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := newHTTP(t, Options{URL: srv.URL}).Lookup(ctx, alice.Token)
	if !errors.Is(err, license.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestHTTPServerDown(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := newHTTP(t, Options{URL: url}).Lookup(t.Context(), alice.Token)
	if !errors.Is(err, license.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
}

func TestHTTPConfigErrors(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Options{
		{URL: ""},
		{URL: "api.kloudless.com/v1/meta/licenses/"},
		{URL: "ftp://example.com/"},
		{URL: "https://user:pw@example.com/"},
		{URL: "https://example.com/", ChannelsPath: "objects[0].release"},
		{URL: "https://example.com/", Timeout: -time.Second},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

// The whole point of the cache: many concurrent logins of one customer (say
// parallel pulls) cost one call to the vendor.
func TestHTTPBehindCacheCollapses(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		gate := make(chan struct{})
		api := licenceHandler(t, func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			<-gate
			io.WriteString(w, `{"objects":[{"release":"stable"}]}`)
		})
		c := license.NewCache(newHTTP(t, Options{URL: "https://licences.example/", Client: inMemory(api)}), license.CacheConfig{})

		errs := make(chan error, 100)
		for range 100 {
			go func() {
				lic, err := c.Lookup(t.Context(), alice)
				if err == nil && !lic.Holds("stable") {
					err = errors.New("licence lost its channel")
				}
				errs <- err
			}()
		}
		synctest.Wait() // every caller is waiting for the one call
		close(gate)
		for range 100 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("%d calls to the licence API, want 1", n)
		}
	})
}
