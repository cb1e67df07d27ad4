package tokenserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/license/backends"
	"github.com/acme/registry-gateway/internal/license/httpbackend"
)

// Every answer a client can provoke with bad input: status, registry error
// code, challenge, Retry-After and (POST) the OAuth2 error field.
func TestBadInput(t *testing.T) {
	t.Parallel()
	const basicChallenge = `Basic realm="registry.example.com"`
	longScope := "repository:" + strings.Repeat("a", 600) + ":pull"
	manyScopes := make([]string, 40)
	for i := range manyScopes {
		manyScopes[i] = "repository:stable/app" + string(rune('a'+i%26)) + strings.Repeat("x", i/26) + ":pull"
	}
	form := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v
	}

	type request struct {
		method, path string
		user, pass   string // Basic credentials, if user is not empty
		auth         string // raw Authorization header
		query        url.Values
		form         url.Values // POST body
		contentType  string
		body         string // raw POST body, instead of form
	}
	tests := []struct {
		name string
		// setup may prepare the server (break the backend, fail logins).
		setup func(t *testing.T, f *fixture)
		req   request
		// mutate changes the configuration.
		mutate func(*Config)

		status     int
		code       string
		challenge  string
		retryAfter string
		oauth      string // "error" field of POST answers
		message    string // substring of the message
	}{
		{name: "GET without credentials", req: request{query: scopes("repository:stable/app:pull")},
			status: 401, code: "UNAUTHORIZED", challenge: basicChallenge},
		{name: "GET with Bearer instead of Basic", req: request{query: scopes(), auth: "Bearer abc"},
			status: 401, code: "UNAUTHORIZED", challenge: basicChallenge},
		{name: "GET wrong API token", req: request{user: aliceUser, pass: "wrong", query: scopes()},
			status: 401, code: "UNAUTHORIZED", challenge: basicChallenge},
		{name: "GET unknown account", req: request{user: "mallory@example.com", pass: aliceToken, query: scopes()},
			status: 401, code: "UNAUTHORIZED", challenge: basicChallenge},
		{name: "GET empty password", req: request{user: aliceUser, pass: "", query: scopes()},
			status: 401, code: "UNAUTHORIZED", challenge: basicChallenge,
			message: "identity token (what docker login stores in config.json) cannot be used as a password"},
		{name: "GET empty password points to the Kubernetes section", req: request{user: aliceUser, pass: "", query: scopes()},
			status: 401, code: "UNAUTHORIZED", challenge: basicChallenge, message: "docs/customers.md#kubernetes"},
		{name: "GET over-long username", req: request{user: strings.Repeat("a", 400), pass: aliceToken, query: scopes()},
			status: 401, code: "UNAUTHORIZED", challenge: basicChallenge},
		{name: "GET unknown service", req: request{user: aliceUser, pass: aliceToken, query: url.Values{"service": {"other.example.com"}}},
			status: 400, code: "INVALID_REQUEST", message: `unknown service "other.example.com"`},
		{name: "GET account differs from username", req: request{user: aliceUser, pass: aliceToken, query: url.Values{"account": {bobUser}}},
			status: 400, code: "INVALID_REQUEST", message: "account"},
		{name: "GET malformed scope", req: request{user: aliceUser, pass: aliceToken, query: scopes("repository:stable/app:pull", "repository:Stable/App:pull")},
			status: 400, code: "INVALID_REQUEST", message: `"repository:Stable/App:pull"`},
		{name: "GET scope without actions part", req: request{user: aliceUser, pass: aliceToken, query: scopes("repository:stable/app")},
			status: 400, code: "INVALID_REQUEST", message: `"repository:stable/app"`},
		{name: "GET over-long scope", req: request{user: aliceUser, pass: aliceToken, query: scopes(longScope)},
			status: 400, code: "INVALID_REQUEST", message: "too long"},
		{name: "GET too many scopes", req: request{user: aliceUser, pass: aliceToken, query: scopes(manyScopes...)},
			status: 400, code: "INVALID_REQUEST", message: "too many scopes"},
		{name: "GET bad offline_token", req: request{user: aliceUser, pass: aliceToken, query: url.Values{"offline_token": {"maybe"}}},
			status: 400, code: "INVALID_REQUEST", message: "offline_token"},
		{name: "GET backend down", mutate: httpBackend(http.StatusInternalServerError),
			req:    request{user: aliceUser, pass: aliceToken, query: scopes()},
			status: 503, code: "UNAVAILABLE", retryAfter: "5"},
		{name: "GET rate limited", setup: failLogins(3),
			mutate: func(c *Config) {
				c.RateLimit = RateLimitConfig{PerAddress: 60, PerAddressBurst: 3, PerUser: 60, PerUserBurst: 3}
			},
			req:    request{user: aliceUser, pass: aliceToken, query: scopes()},
			status: 429, code: "TOOMANYREQUESTS", retryAfter: "1"},

		{name: "POST unsupported grant", req: request{method: "POST", form: form("grant_type", "client_credentials")},
			status: 400, code: "INVALID_REQUEST", oauth: "unsupported_grant_type"},
		{name: "POST authorization_code grant", req: request{method: "POST", form: form("grant_type", "authorization_code", "code", "x")},
			status: 400, code: "INVALID_REQUEST", oauth: "unsupported_grant_type"},
		{name: "POST without grant_type", req: request{method: "POST", form: form("username", aliceUser, "password", aliceToken)},
			status: 400, code: "INVALID_REQUEST", oauth: "invalid_request"},
		{name: "POST password without password", req: request{method: "POST", form: form("grant_type", "password", "username", aliceUser)},
			status: 400, code: "INVALID_REQUEST", oauth: "invalid_request"},
		{name: "POST wrong password", req: request{method: "POST", form: form("grant_type", "password", "username", aliceUser, "password", "wrong", "service", testService)},
			status: 401, code: "UNAUTHORIZED", challenge: basicChallenge, oauth: "invalid_grant"},
		{name: "POST bad access_type", req: request{method: "POST", form: form("grant_type", "password", "username", aliceUser, "password", aliceToken, "access_type", "forever")},
			status: 400, code: "INVALID_REQUEST", oauth: "invalid_request"},
		{name: "POST malformed scope", req: request{method: "POST", form: form("grant_type", "password", "username", aliceUser, "password", aliceToken, "scope", "repository:stable/app:pull repository::pull")},
			status: 400, code: "INVALID_REQUEST", oauth: "invalid_request", message: `"repository::pull"`},
		{name: "POST unknown service", req: request{method: "POST", form: form("grant_type", "password", "username", aliceUser, "password", aliceToken, "service", "evil")},
			status: 400, code: "INVALID_REQUEST", oauth: "invalid_request", message: "unknown service"},
		{name: "POST garbage refresh token", req: request{method: "POST", form: form("grant_type", "refresh_token", "refresh_token", "rt1.AAAA")},
			status: 401, code: "UNAUTHORIZED", challenge: basicChallenge, oauth: "invalid_grant"},
		{name: "POST refresh token of another format", req: request{method: "POST", form: form("grant_type", "refresh_token", "refresh_token", "eyJhbGciOiJIUzI1NiJ9.e30.x")},
			status: 401, code: "UNAUTHORIZED", challenge: basicChallenge, oauth: "invalid_grant"},
		{name: "POST refresh without token", req: request{method: "POST", form: form("grant_type", "refresh_token")},
			status: 400, code: "INVALID_REQUEST", oauth: "invalid_request"},
		{name: "POST refresh with another username",
			req:    request{method: "POST", form: form("grant_type", "refresh_token", "refresh_token", "@alice-refresh", "username", bobUser)},
			status: 400, code: "INVALID_REQUEST", oauth: "invalid_grant", message: "username"},
		{name: "POST JSON body", req: request{method: "POST", contentType: "application/json", body: `{"grant_type":"password"}`},
			status: 400, code: "INVALID_REQUEST", oauth: "invalid_request"},
		{name: "POST malformed form", req: request{method: "POST", contentType: "application/x-www-form-urlencoded", body: "grant_type=%zz"},
			status: 400, code: "INVALID_REQUEST", oauth: "invalid_request"},
		{name: "POST body over 64 KiB", req: request{method: "POST", contentType: "application/x-www-form-urlencoded", body: "grant_type=password&x=" + strings.Repeat("a", 70<<10)},
			status: 413, code: "SIZE_INVALID"},
		{name: "POST backend down", mutate: httpBackend(http.StatusBadGateway),
			req:    request{method: "POST", form: form("grant_type", "password", "username", aliceUser, "password", aliceToken)},
			status: 503, code: "UNAVAILABLE", retryAfter: "5", oauth: "temporarily_unavailable"},
		{name: "POST rate limited", setup: failLogins(3),
			mutate: func(c *Config) {
				c.RateLimit = RateLimitConfig{PerAddress: 60, PerAddressBurst: 3, PerUser: 60, PerUserBurst: 3}
			},
			req:    request{method: "POST", form: form("grant_type", "password", "username", aliceUser, "password", aliceToken)},
			status: 429, code: "TOOMANYREQUESTS", retryAfter: "1", oauth: "temporarily_unavailable"},

		{name: "PUT /token", req: request{method: "PUT"}, status: 405, code: "UNSUPPORTED"},
		{name: "unknown path", req: request{path: "/v2/"}, status: 404, code: "NOT_FOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.mutate)
			if tt.setup != nil {
				tt.setup(t, f)
			}
			r := tt.req
			if r.method == "" {
				r.method = http.MethodGet
			}
			if r.path == "" {
				r.path = "/token"
			}
			u := f.url + r.path
			if r.query != nil {
				u += "?" + r.query.Encode()
			}
			var body string
			if r.form != nil {
				body, r.contentType = r.form.Encode(), "application/x-www-form-urlencoded"
				// A refresh token made for the test's own server.
				if rt := r.form.Get("refresh_token"); rt == "@alice-refresh" {
					body = strings.Replace(body, url.QueryEscape(rt), aliceRefreshToken(t, f), 1)
				}
			} else {
				body = r.body
			}
			req, err := http.NewRequest(r.method, u, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if r.contentType != "" {
				req.Header.Set("Content-Type", r.contentType)
			}
			if r.user != "" {
				req.SetBasicAuth(r.user, r.pass)
			}
			if r.auth != "" {
				req.Header.Set("Authorization", r.auth)
			}
			resp := do(t, req)
			e := decodeError(t, resp)
			if resp.StatusCode != tt.status || e.Errors[0].Code != tt.code {
				t.Errorf("got %d %s, want %d %s (%s)", resp.StatusCode, e.Errors[0].Code, tt.status, tt.code, e.Errors[0].Message)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tt.challenge)
			}
			if got := resp.Header.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			if e.Error != tt.oauth {
				t.Errorf(`"error" %q, want %q`, e.Error, tt.oauth)
			}
			if !strings.Contains(e.Errors[0].Message, tt.message) {
				t.Errorf("message %q lacks %q", e.Errors[0].Message, tt.message)
			}
			if tt.status == 405 && resp.Header.Get("Allow") != "GET, POST" {
				t.Errorf("Allow %q", resp.Header.Get("Allow"))
			}
		})
	}
}

// httpBackend switches the fixture to an HTTP licence backend that always
// answers status.
func httpBackend(status int) func(*Config) {
	return func(c *Config) {
		api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "down for maintenance", status)
		}))
		// The server lives as long as the test binary; it is tiny.
		c.Licenses = backends.Config{Backends: backends.Sections{"http": &httpbackend.Config{URL: api.URL}}}
	}
}

// failLogins makes n failed logins from the test client's address.
func failLogins(n int) func(t *testing.T, f *fixture) {
	return func(t *testing.T, f *fixture) {
		for range n {
			if resp := get(t, f.url, aliceUser, "wrong", scopes()); resp.StatusCode != 401 {
				t.Fatalf("setup: status %d", resp.StatusCode)
			}
		}
	}
}

func aliceRefreshToken(t *testing.T, f *fixture) string {
	t.Helper()
	a := mustToken(t, post(t, f.url, url.Values{"grant_type": {"password"}, "username": {aliceUser}, "password": {aliceToken}, "access_type": {"offline"}}))
	if a.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	return a.RefreshToken
}

// Headers over the server's limit are refused by the server itself, before
// any handler runs.
func TestOversizedHeaders(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	base := serve(t, f.srv)
	req := mustRequest(t, http.MethodGet, base+"/token")
	req.Header.Set("X-Padding", strings.Repeat("a", 200<<10))
	resp := do(t, req)
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d, want 431", resp.StatusCode)
	}
}

// Serve shuts down gracefully when its context ends.
func TestServeShutsDown(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *Config) { c.Listen, c.Metrics.Listen = "127.0.0.1:0", "127.0.0.1:0" })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
