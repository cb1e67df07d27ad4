package tokenserver

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

const (
	carolUser  = "carol@example.com"
	carolToken = "carol-api-token-5555555555"
)

// loginFailure sends one request and returns its answer and the one
// "login failed" line it logged (nil if none).
func loginFailure(t *testing.T, f *fixture, send func() *http.Response) (*http.Response, map[string]any) {
	t.Helper()
	f.settle()
	f.logs.Reset()
	resp := send()
	f.settle()
	var found map[string]any
	sc := bufio.NewScanner(strings.NewReader(f.logs.String()))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if line["msg"] == loginFailedMsg {
			if found != nil {
				t.Fatalf("two failed-login lines for one request:\n%s", f.logs)
			}
			found = line
		}
	}
	return resp, found
}

// Every way a login fails logs one INFO line (the request's access line)
// with the reason, the username as typed, the API token's fingerprint and
// the client address, and counts it by reason; the client's answer is the
// same whatever the reason. File backend (unknown e-mail, wrong token,
// expired licence), the token service's own reasons (malformed, a refresh
// token forged or expired), and no secret in any line.
func TestLoginFailureReasons(t *testing.T) {
	t.Parallel()
	var expiredAt time.Time
	f := newFixture(t, func(c *Config) { c.RateLimit.Disabled = true }, func(f *fixture, _ *Options) {
		expiredAt = f.clock.Now().Add(-time.Hour)
		writeLicenses(t, f.licPath, append(defaultAccounts,
			account{user: carolUser, token: carolToken, channels: []string{"stable"}, expires: expiredAt})...)
	})
	refresh := mustToken(t, post(t, f.url, passwordGrant("", true))).RefreshToken
	fp := license.Fingerprint
	long := strings.Repeat("x", maxUsernameLen) + "@example.com"
	basicGet := func(user, pass string, extra ...string) func() *http.Response {
		return func() *http.Response {
			q := scopes("repository:stable/app:pull")
			for i := 0; i+1 < len(extra); i += 2 {
				q.Set(extra[i], extra[i+1])
			}
			return get(t, f.url, user, pass, q)
		}
	}
	form := func(kv ...string) func() *http.Response {
		return func() *http.Response {
			v := url.Values{"service": {testService}}
			for i := 0; i+1 < len(kv); i += 2 {
				v.Set(kv[i], kv[i+1])
			}
			return post(t, f.url, v)
		}
	}
	tests := []struct {
		name     string
		send     func() *http.Response
		status   int
		reason   license.Reason
		username string
		tokenFP  string // "" : no token_fp field
		grant    string
	}{
		{"unknown e-mail", basicGet("mallory@example.com", "made-up-token"), 401, license.ReasonUnknownAccount, "mallory@example.com", fp("made-up-token"), "basic"},
		{"wrong token", basicGet(aliceUser, "wrong-token-1"), 401, license.ReasonWrongToken, aliceUser, fp("wrong-token-1"), "basic"},
		{"another account's token", basicGet(aliceUser, bobToken), 401, license.ReasonWrongToken, aliceUser, fp(bobToken), "basic"},
		{"mistyped e-mail", basicGet("alice@exmaple.com", aliceToken), 401, license.ReasonUnknownAccount, "alice@exmaple.com", fp(aliceToken), "basic"},
		{"expired licence", basicGet(carolUser, carolToken), 401, license.ReasonExpired, carolUser, fp(carolToken), "basic"},
		{"no credentials", basicGet("", ""), 401, license.ReasonMalformed, "", "", "basic"},
		{"empty password", basicGet(aliceUser, ""), 401, license.ReasonMalformed, aliceUser, "", "basic"},
		{"username too long", basicGet(long, "some-token"), 401, license.ReasonMalformed, long[:maxLoggedUsername], fp("some-token"), "basic"},
		{"account is not the username", basicGet(aliceUser, aliceToken, "account", bobUser), 400, license.ReasonMalformed, aliceUser, fp(aliceToken), "basic"},
		{"POST wrong token", form("grant_type", "password", "username", bobUser, "password", "wrong-token-2"), 401, license.ReasonWrongToken, bobUser, fp("wrong-token-2"), "password"},
		{"POST no password", form("grant_type", "password", "username", bobUser), 400, license.ReasonMalformed, bobUser, "", "password"},
		{"POST no refresh token", form("grant_type", "refresh_token"), 400, license.ReasonMalformed, "", "", "refresh_token"},
		{"forged refresh token", form("grant_type", "refresh_token", "refresh_token", refresh+"x", "username", aliceUser), 401, license.ReasonWrongToken, aliceUser, "", "refresh_token"},
		{"refresh token of another", form("grant_type", "refresh_token", "refresh_token", refresh, "username", bobUser), 400, license.ReasonMalformed, bobUser, fp(aliceToken), "refresh_token"},
	}
	counts := map[license.Reason]int{}
	for _, tc := range tests {
		resp, line := loginFailure(t, f, tc.send)
		counts[tc.reason]++
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, resp.StatusCode, tc.status, bodyOf(resp))
		}
		if tc.status == 401 && !strings.Contains(tc.name, "refresh") && tc.reason != license.ReasonMalformed {
			// Whatever the reason, one answer: nothing to tell an
			// attacker which e-mail addresses exist.
			if e := decodeError(t, resp); e.Errors[0].Message != "invalid username or API token" {
				t.Errorf("%s: message %q", tc.name, e.Errors[0].Message)
			}
		}
		if line == nil {
			t.Errorf("%s: no %q line:\n%s", tc.name, loginFailedMsg, f.logs)
			continue
		}
		if line["level"] != "INFO" || line["reason"] != string(tc.reason) || line["username"] != tc.username ||
			line["client"] != "127.0.0.1" || line["grant"] != tc.grant || line["status"] != float64(tc.status) {
			t.Errorf("%s: line %v", tc.name, line)
		}
		if got, _ := line["token_fp"].(string); got != tc.tokenFP {
			t.Errorf("%s: token_fp %q, want %q", tc.name, got, tc.tokenFP)
		}
		if _, cut := line["username_bytes"]; cut != (len(tc.username) == maxLoggedUsername) {
			t.Errorf("%s: username_bytes %v", tc.name, line["username_bytes"])
		}
	}

	// A refresh token past refresh_token_ttl names its customer and token.
	f.clock.Advance(DefaultRefreshTokenTTL)
	resp, line := loginFailure(t, f, form("grant_type", "refresh_token", "refresh_token", refresh))
	counts[license.ReasonExpired]++
	if resp.StatusCode != 401 || line == nil || line["reason"] != "expired" || line["username"] != aliceUser || line["token_fp"] != fp(aliceToken) {
		t.Errorf("expired refresh token: %d, line %v", resp.StatusCode, line)
	}

	for _, r := range license.Reasons() {
		want := "0"
		if n := counts[r]; n > 0 {
			want = string(rune('0' + n))
		}
		if got := metricValue(t, f.opsURL, `tokenserver_login_failures_total{reason="`+string(r)+`"}`); got != want {
			t.Errorf("login failures %s = %q, want %s", r, got, want)
		}
	}
	// The requests' counter keeps its outcomes (dashboards read it).
	if got := metricValue(t, f.opsURL, `tokenserver_token_requests_total{grant="basic",outcome="unauthorized"}`); got != "8" {
		t.Errorf("basic unauthorized = %q, want 8", got)
	}

	f.settle()
	logs := f.logs.String()
	for _, secret := range []string{"made-up-token", "wrong-token-1", "wrong-token-2", bobToken, carolToken, aliceToken, "some-token", refresh,
		base64.StdEncoding.EncodeToString([]byte(aliceUser + ":" + bobToken))} {
		if strings.Contains(logs, secret) {
			t.Errorf("a log line holds the secret %.12s…", secret)
		}
	}
}

// rate_limited, with the token service's limiter: the backend is not
// asked, and the line says so.
func TestLoginFailureRateLimited(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *Config) {
		c.RateLimit = RateLimitConfig{PerUser: 0.001, PerUserBurst: 1}
	})
	if resp, line := loginFailure(t, f, func() *http.Response { return get(t, f.url, aliceUser, "wrong-token", scopes()) }); resp.StatusCode != 401 || line["reason"] != "wrong_token" {
		t.Fatalf("first failure: %d, %v", resp.StatusCode, line)
	}
	for _, send := range []func() *http.Response{
		func() *http.Response { return get(t, f.url, aliceUser, aliceToken, scopes()) },
		func() *http.Response { return post(t, f.url, passwordGrant("", false)) },
		func() *http.Response {
			return post(t, f.url, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt1.x"}, "username": {aliceUser}, "service": {testService}})
		},
	} {
		resp, line := loginFailure(t, f, send)
		if resp.StatusCode != http.StatusTooManyRequests || line == nil || line["reason"] != "rate_limited" || line["username"] != aliceUser {
			t.Errorf("throttled: %d, line %v", resp.StatusCode, line)
		}
	}
	if got := metricValue(t, f.opsURL, `tokenserver_login_failures_total{reason="rate_limited"}`); got != "3" {
		t.Errorf("rate_limited = %q, want 3", got)
	}
}

// backend_unavailable: the licence API fails; the client gets 503, the
// line is the request's 503 access line (ERROR, with the cause).
func TestLoginFailureBackendUnavailable(t *testing.T) {
	t.Parallel()
	api := newLicenceAPI(t)
	api.mode.Store("down")
	f := newFixture(t, withHTTPBackend(api, time.Second))
	resp, line := loginFailure(t, f, func() *http.Response { return get(t, f.url, aliceUser, aliceToken, scopes()) })
	if resp.StatusCode != 503 || line == nil || line["reason"] != "backend_unavailable" || line["username"] != aliceUser ||
		line["token_fp"] != license.Fingerprint(aliceToken) || line["level"] != "ERROR" || line["error"] == nil {
		t.Errorf("%d, line %v", resp.StatusCode, line)
	}
	if got := metricValue(t, f.opsURL, `tokenserver_login_failures_total{reason="backend_unavailable"}`); got != "1" {
		t.Errorf("backend_unavailable = %q", got)
	}
}

// The SQL backend's reasons reach the line: a disabled account, an
// unknown one, a revoked token.
func TestLoginFailureSQL(t *testing.T) {
	t.Parallel()
	db := accountstest.Open(t, accountstest.SQLite(t), accounts.Options{})
	ctx := t.Context()
	if _, _, err := db.Add(ctx, "ops", aliceUser, []string{"stable"}, time.Time{}, accounts.CreateChannels()); err != nil {
		t.Fatal(err)
	}
	_, carol, err := db.Add(ctx, "ops", carolUser, []string{"stable"}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetState(ctx, "ops", carolUser, accounts.StateDisabled); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, nil, func(_ *fixture, o *Options) { o.Backend = db.NewBackend(accounts.BackendOptions{}) })
	for _, tc := range []struct{ user, token, reason string }{
		{carolUser, carol, "disabled"},
		{"mallory@example.com", "rgw_made_up", "unknown_account"},
		{aliceUser, "rgw_made_up", "wrong_token"},
	} {
		resp, line := loginFailure(t, f, func() *http.Response { return get(t, f.url, tc.user, tc.token, scopes()) })
		if resp.StatusCode != 401 || line == nil || line["reason"] != tc.reason || line["username"] != tc.user {
			t.Errorf("%s: %d, line %v", tc.reason, resp.StatusCode, line)
		}
	}
}

// A username is logged as typed but escaped: a newline, a forged field or a
// bidi override cannot make a line of its own, or turn one around, under
// the JSON or the text handler; and the token never appears.
func TestLoginFailureUsernameCannotForgeLines(t *testing.T) {
	t.Parallel()
	// Basic credentials cannot carry a colon in the username: the text
	// form for GET, the JSON one too for POST.
	const (
		evilText = "mallory@example.com\r\ntime=2026-01-01T00.00.00Z level=INFO msg=\"token issued\" sub=alice \u2028\u202emoc.elpmaxe\\\xff"
		textEsc  = `mallory@example.com\r\ntime=2026-01-01T00.00.00Z level=INFO msg="token issued" sub=alice \u2028\u202emoc.elpmaxe\\\xff`
		evilJSON = evilText + "\n{\"time\":\"2026-01-01T00:00:00Z\",\"level\":\"INFO\",\"msg\":\"token issued\",\"sub\":\"alice@example.com\"}"
		jsonEsc  = textEsc + `\n{"time":"2026-01-01T00:00:00Z","level":"INFO","msg":"token issued","sub":"alice@example.com"}`
		secret   = "top-secret-api-token-8c1d"
	)
	for _, handler := range []string{"json", "text"} {
		t.Run(handler, func(t *testing.T) {
			f := newFixture(t, nil, func(f *fixture, o *Options) {
				if handler == "text" {
					o.Logger = slog.New(slog.NewTextHandler(f.logs, nil))
				}
			})
			f.settle()
			f.logs.Reset()
			for _, send := range []func() *http.Response{
				func() *http.Response { return get(t, f.url, evilText, secret, scopes()) },
				func() *http.Response {
					return post(t, f.url, url.Values{"grant_type": {"password"}, "username": {evilJSON}, "password": {secret}, "service": {testService}})
				},
			} {
				if resp := send(); resp.StatusCode != 401 {
					t.Fatalf("status %d", resp.StatusCode)
				}
			}
			f.settle()
			logs := f.logs.String()
			lines := strings.Split(strings.TrimSuffix(logs, "\n"), "\n")
			if len(lines) != 2 {
				t.Fatalf("%d lines for two requests:\n%s", len(lines), logs)
			}
			for i, l := range lines {
				want := []string{textEsc, jsonEsc}[i]
				switch handler {
				case "json":
					var m map[string]any
					if err := json.Unmarshal([]byte(l), &m); err != nil || m["msg"] != loginFailedMsg || m["username"] != want || m["sub"] != nil {
						t.Errorf("line %q: %v, %v", l, m, err)
					}
				case "text":
					if !strings.HasPrefix(l, "time=") || strings.HasPrefix(l, "time=2026-01-01") ||
						!strings.Contains(l, ` msg="login failed" `) || !strings.Contains(l, " username="+strconv.Quote(want)+" ") {
						t.Errorf("line %q", l)
					}
				}
			}
			if strings.ContainsAny(logs, "\r\u2028\u202e") || strings.Contains(logs, "\xff") {
				t.Errorf("a raw control or format character reached the log:\n%q", logs)
			}
			if strings.Contains(logs, secret) {
				t.Error("the log holds the API token")
			}
		})
	}
}

func TestLogSafe(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		cut      bool
	}{
		{"alice@example.com", "alice@example.com", false},
		{"Ünïcødé@exämple.com", "Ünïcødé@exämple.com", false},
		{"a\nb\tc\x00d\x7f", `a\nb\tc\x00d\x7f`, false},
		{`back\slash`, `back\\slash`, false},
		{"bidi\u202eand\u2028sep\ufeff", `bidi\u202eand\u2028sep\ufeff`, false},
		{"bad\xffutf8\xc3", `bad\xffutf8\xc3`, false},
		{strings.Repeat("é", 200), strings.Repeat("é", 128), true}, // 256 bytes, on a rune boundary
		{strings.Repeat("a", 255) + "é", strings.Repeat("a", 255) + `\xc3`, true},
	} {
		got, cut := logSafe(tc.in, maxLoggedUsername)
		if got != tc.want || cut != tc.cut {
			t.Errorf("logSafe(%q) = %q, %v; want %q, %v", tc.in, got, cut, tc.want, tc.cut)
		}
	}
}

// With the HTTP backend and no username_path, the service starts with a
// WARN that usernames are not checked; with it, or with another backend,
// it does not.
func TestHTTPBackendWithoutUsernamePathWarns(t *testing.T) {
	t.Parallel()
	api := newLicenceAPI(t)
	const warning = "licenses.http.username_path is not set"
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		warn   bool
	}{
		{"http without username_path", withHTTPBackend(api, time.Second), true},
		{"http with username_path", func(c *Config) {
			withHTTPBackend(api, time.Second)(c)
			httpSection(c).UsernamePath = "user.email"
		}, false},
		{"file", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &testutil.SyncBuffer{}
			f := newFixture(t, tc.mutate, func(_ *fixture, o *Options) {
				o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
			})
			var warned bool
			for l := range strings.Lines(logs.String()) {
				var m map[string]any
				if json.Unmarshal([]byte(l), &m) == nil && m["level"] == "WARN" && strings.HasPrefix(m["msg"].(string), warning) {
					warned = true
				}
			}
			if warned != tc.warn {
				t.Errorf("warned %v, want %v:\n%s", warned, tc.warn, logs)
			}
			// With the path set, another username is refused.
			if tc.name == "http with username_path" {
				if resp := get(t, f.url, bobUser, aliceToken, scopes()); resp.StatusCode != 401 {
					t.Errorf("bob with alice's token: %d", resp.StatusCode)
				}
			}
		})
	}
}
