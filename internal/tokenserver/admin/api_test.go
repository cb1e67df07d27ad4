package admin

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// apiEnv is the API on a real database, called through the validating
// transport.
type apiEnv struct {
	t                 *testing.T
	db                *accounts.DB
	clock             *testutil.Clock
	base              string
	client            *http.Client
	writeKey, readKey string
	logs              *testutil.SyncBuffer
}

func newEnv(t *testing.T, cfg *accounts.Config, limiter Limiter) *apiEnv {
	t.Helper()
	clock := testutil.NewClock(t0)
	db := accountstest.Open(t, cfg, accounts.Options{Clock: clock.Now})
	for _, ch := range []string{"stable", "beta"} {
		if _, err := db.AddChannel(t.Context(), "test", ch, ""); err != nil {
			t.Fatal(err)
		}
	}
	_, wk, err := db.AddAdminKey(t.Context(), "test", "crm", accounts.ScopeWrite, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	_, rk, err := db.AddAdminKey(t.Context(), "test", "support", accounts.ScopeRead, t0.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	logs := &testutil.SyncBuffer{}
	srv := httptest.NewServer(Handler(Options{DB: db, Limiter: limiter, Clock: clock.Now, Log: slog.New(slog.NewTextHandler(logs, nil))}))
	t.Cleanup(srv.Close)
	return &apiEnv{t: t, db: db, clock: clock, base: srv.URL, client: &http.Client{Transport: newValidating(t, srv.URL)}, writeKey: wk, readKey: rk, logs: logs}
}

// answer is a response with its body read.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// call sends method path with key (none when ""), body as JSON when not
// "", and header pairs.
func (e *apiEnv) call(method, path, key, body string, header ...string) answer {
	e.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.base+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

// want checks the status and that the body holds each of contains.
func (a answer) want(t *testing.T, status int, contains ...string) answer {
	t.Helper()
	if a.status != status {
		t.Errorf("status %d, want %d: %s", a.status, status, a.body)
	}
	for _, c := range contains {
		if !strings.Contains(string(a.body), c) {
			t.Errorf("body lacks %q: %s", c, a.body)
		}
	}
	return a
}

// problem checks a problem answer: its status, media type, kind and the
// fields its errors name.
func (a answer) problem(t *testing.T, status int, kind string, fields ...string) problem {
	t.Helper()
	a.want(t, status)
	if ct := a.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("content type %q", ct)
	}
	var p problem
	if err := json.Unmarshal(a.body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != problemTypeBase+kind || p.Status != status || p.Title == "" || p.Detail == "" {
		t.Errorf("problem %+v, want kind %s", p, kind)
	}
	var got []string
	for _, e := range p.Errors {
		got = append(got, e.Field)
	}
	if strings.Join(got, ",") != strings.Join(fields, ",") {
		t.Errorf("problem fields %q, want %q (%s)", got, fields, a.body)
	}
	return p
}

func decode[T any](t *testing.T, a answer) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatalf("%v: %s", err, a.body)
	}
	return v
}

// countLimiter refuses a client after max failures.
type countLimiter struct {
	mu     sync.Mutex
	max    int
	failed map[string]int
}

func (l *countLimiter) Check(client, _ string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed[client] >= l.max {
		return 1500 * time.Millisecond
	}
	return 0
}

func (l *countLimiter) Charge(client, _ string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failed[client]++
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		lim := &countLimiter{max: 6, failed: map[string]int{}}
		e := newEnv(t, cfg, lim)

		// The document needs no key.
		e.call("GET", Prefix+"/openapi.json", "", "").want(t, http.StatusOK, `"openapi":"3.1.0"`)

		a := e.call("GET", Prefix+"/accounts", "", "")
		a.problem(t, http.StatusUnauthorized, "unauthorized")
		if a.header.Get("WWW-Authenticate") != `Bearer realm="admin"` {
			t.Errorf("WWW-Authenticate %q", a.header.Get("WWW-Authenticate"))
		}
		e.call("GET", Prefix+"/accounts", "", "", "Authorization", "Basic "+e.writeKey).problem(t, http.StatusUnauthorized, "unauthorized")
		e.call("GET", Prefix+"/accounts", accounts.AdminKeyPrefix+strings.Repeat("x", 43), "").problem(t, http.StatusUnauthorized, "unauthorized")

		// Scopes: read looks, write also changes.
		e.call("GET", Prefix+"/accounts", e.readKey, "").want(t, http.StatusOK)
		p := e.call("POST", Prefix+"/accounts", e.readKey, `{"email":"a@example.com","channels":["stable"]}`).problem(t, http.StatusForbidden, "forbidden")
		if !strings.Contains(p.Detail, "support has the read scope") {
			t.Errorf("forbidden: %s", p.Detail)
		}
		e.call("DELETE", Prefix+"/accounts/a@example.com", e.readKey, "", "If-Match", "*").problem(t, http.StatusForbidden, "forbidden")
		e.call("POST", Prefix+"/accounts", e.writeKey, `{"email":"a@example.com","channels":["stable"]}`).want(t, http.StatusCreated)

		// Expired and revoked keys.
		e.clock.Advance(24 * time.Hour)
		e.call("GET", Prefix+"/accounts", e.readKey, "").problem(t, http.StatusUnauthorized, "unauthorized")
		if _, err := e.db.RevokeAdminKey(t.Context(), "test", "crm"); err != nil {
			t.Fatal(err)
		}
		e.call("GET", Prefix+"/accounts", e.writeKey, "").problem(t, http.StatusUnauthorized, "unauthorized")

		// Five failures so far, the limit is six: then 429, even with a
		// good key, until the limiter lets the address try again.
		_, good, err := e.db.AddAdminKey(t.Context(), "test", "ops", accounts.ScopeRead, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		e.call("GET", Prefix+"/accounts", "nonsense", "").problem(t, http.StatusUnauthorized, "unauthorized")
		a = e.call("GET", Prefix+"/accounts", good, "")
		a.problem(t, http.StatusTooManyRequests, "rate-limited")
		if a.header.Get("Retry-After") != "2" {
			t.Errorf("Retry-After %q", a.header.Get("Retry-After"))
		}
		lim.mu.Lock()
		clear(lim.failed)
		lim.mu.Unlock()
		e.call("GET", Prefix+"/accounts", good, "").want(t, http.StatusOK)

		// Failures are logged with the client, never with a key.
		if l := e.logs.String(); !strings.Contains(l, "admin API: authentication failed") || !strings.Contains(l, "client=127.0.0.1") ||
			strings.Contains(l, e.writeKey) || strings.Contains(l, e.readKey) || strings.Contains(l, "nonsense") {
			t.Errorf("logs:\n%s", l)
		}

		// Unknown endpoints and methods.
		e.call("GET", Prefix+"/nothing", good, "").problem(t, http.StatusNotFound, "not-found")
		e.call("PUT", Prefix+"/accounts", good, "").problem(t, http.StatusMethodNotAllowed, "method-not-allowed")
	})
}

func TestAccounts(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		e := newEnv(t, cfg, nil)
		ctx := t.Context()
		w := e.writeKey
		accountsNow := func() int {
			t.Helper()
			l, err := e.db.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return len(l)
		}

		// Create.
		a := e.call("POST", Prefix+"/accounts", w, `{"email":"Alice@Example.com","channels":["stable","beta"],"expires":"2027-06-30"}`).want(t, http.StatusCreated)
		made := decode[createdAccount](t, a)
		if made.Account.Email != "alice@example.com" || strings.Join(made.Account.Channels, ",") != "beta,stable" || !made.Account.Expires.Equal(time.Date(2027, 7, 1, 0, 0, 0, 0, time.UTC)) || !strings.HasPrefix(made.Token, accounts.TokenPrefix) {
			t.Errorf("created %+v", made)
		}
		if loc := a.header.Get("Location"); loc != Prefix+"/accounts/alice@example.com" {
			t.Errorf("Location %q", loc)
		}
		if lic, err := e.db.NewBackend(accounts.BackendOptions{}).Lookup(ctx, made.Token); err != nil || lic.Account != "alice@example.com" {
			t.Errorf("the token does not log in: %+v %v", lic, err)
		}

		// Every way to get it wrong changes nothing.
		e.call("POST", Prefix+"/accounts", w, `{"email":`).problem(t, http.StatusBadRequest, "bad-json")
		e.call("POST", Prefix+"/accounts", w, `{"email":"b@example.com","channels":["stable"]} {}`).problem(t, http.StatusBadRequest, "bad-json")
		e.call("POST", Prefix+"/accounts", w, `{"email":"b@example.com","channels":["stable"],"colour":"red"}`).problem(t, http.StatusUnprocessableEntity, "validation", "/colour")
		e.call("POST", Prefix+"/accounts", w, `{}`).problem(t, http.StatusUnprocessableEntity, "validation", "/email", "/channels")
		e.call("POST", Prefix+"/accounts", w, `{"email":"b@example.com","channels":"stable"}`).problem(t, http.StatusUnprocessableEntity, "validation", "/channels")
		e.call("POST", Prefix+"/accounts", w, `{"email":"not-an-address","channels":["Stable"],"expires":"2020-01-01"}`).problem(t, http.StatusUnprocessableEntity, "validation", "/email", "/channels", "/expires")
		p := e.call("POST", Prefix+"/accounts", w, `{"email":"b@example.com","channels":["stabel"]}`).problem(t, http.StatusUnprocessableEntity, "unknown-channel", "/channels")
		if !strings.Contains(p.Detail, `did you mean "stable"?`) {
			t.Errorf("unknown channel: %s", p.Detail)
		}
		e.call("POST", Prefix+"/accounts", w, `{"email":"alice@example.com","channels":["stable"]}`).problem(t, http.StatusConflict, "conflict")
		e.call("POST", Prefix+"/accounts", w, `{"email":"b@example.com","channels":["stable"]}`, "Content-Type", "text/plain").problem(t, http.StatusUnsupportedMediaType, "unsupported-media-type")
		big := `{"email":"b@example.com","channels":["` + strings.Repeat("x", maxBodyBytes) + `"]}`
		e.call("POST", Prefix+"/accounts", w, big).problem(t, http.StatusRequestEntityTooLarge, "too-large")
		if n := accountsNow(); n != 1 {
			t.Fatalf("refused requests left %d accounts", n)
		}
		// create_channels makes a channel in the same step.
		e.call("POST", Prefix+"/accounts", w, `{"email":"bob@example.com","channels":["nightly"],"create_channels":true,"expires":null}`).want(t, http.StatusCreated, `"nightly"`)

		// List: search and paging.
		for _, m := range []string{"carol@example.com", "dave@example.org", "erin@example.com"} {
			e.call("POST", Prefix+"/accounts", w, `{"email":"`+m+`","channels":["stable"]}`).want(t, http.StatusCreated)
		}
		var seen []string
		next := ""
		for pages := 0; ; pages++ {
			path := Prefix + "/accounts?limit=2"
			if next != "" {
				path += "&cursor=" + url.QueryEscape(next)
			}
			pg := decode[page[accounts.Account]](t, e.call("GET", path, e.readKey, "").want(t, http.StatusOK))
			for _, a := range pg.Items {
				seen = append(seen, a.Email)
			}
			if next = pg.NextCursor; next == "" {
				break
			}
			if pages > 5 {
				t.Fatal("paging does not end")
			}
		}
		if strings.Join(seen, " ") != "alice@example.com bob@example.com carol@example.com dave@example.org erin@example.com" {
			t.Errorf("paged %q", seen)
		}
		pg := decode[page[accounts.Account]](t, e.call("GET", Prefix+"/accounts?q=EXAMPLE.ORG", e.readKey, "").want(t, http.StatusOK))
		if len(pg.Items) != 1 || pg.Items[0].Email != "dave@example.org" || pg.NextCursor != "" {
			t.Errorf("search %+v", pg)
		}
		pg = decode[page[accounts.Account]](t, e.call("GET", Prefix+"/accounts?q=%25", e.readKey, "").want(t, http.StatusOK))
		if len(pg.Items) != 0 {
			t.Errorf("%% is a wildcard: %+v", pg)
		}
		e.call("GET", Prefix+"/accounts?limit=0", e.readKey, "").problem(t, http.StatusUnprocessableEntity, "validation", "limit")
		e.call("GET", Prefix+"/accounts?limit=9999", e.readKey, "").problem(t, http.StatusUnprocessableEntity, "validation", "limit")
		e.call("GET", Prefix+"/accounts?cursor=***", e.readKey, "").problem(t, http.StatusUnprocessableEntity, "validation", "cursor")

		// Show, with its ETag.
		a = e.call("GET", Prefix+"/accounts/alice@example.com", e.readKey, "").want(t, http.StatusOK, `"tokens"`)
		tag := a.header.Get("ETag")
		if len(tag) != 34 || tag[0] != '"' {
			t.Errorf("ETag %q", tag)
		}
		e.call("GET", Prefix+"/accounts/alice%40example.com", e.readKey, "").want(t, http.StatusOK, `"alice@example.com"`)
		e.call("GET", Prefix+"/accounts/nobody@example.com", e.readKey, "").problem(t, http.StatusNotFound, "not-found")
		e.call("GET", Prefix+"/accounts/not-an-address", e.readKey, "").problem(t, http.StatusUnprocessableEntity, "validation")

		// PATCH: If-Match required and checked; bad input changes nothing.
		e.call("PATCH", Prefix+"/accounts/alice@example.com", w, `{"disabled":true}`).problem(t, http.StatusPreconditionRequired, "precondition-required")
		e.call("PATCH", Prefix+"/accounts/alice@example.com", w, `{"disabled":true}`, "If-Match", `"0123"`).problem(t, http.StatusPreconditionFailed, "precondition-failed")
		e.call("PATCH", Prefix+"/accounts/alice@example.com", w, `{}`, "If-Match", tag).problem(t, http.StatusUnprocessableEntity, "validation")
		e.call("PATCH", Prefix+"/accounts/alice@example.com", w, `{"disabled":"yes"}`, "If-Match", tag).problem(t, http.StatusUnprocessableEntity, "validation", "/disabled")
		e.call("PATCH", Prefix+"/accounts/alice@example.com", w, `{"expires":"soon"}`, "If-Match", tag).problem(t, http.StatusUnprocessableEntity, "validation", "/expires")
		e.call("PATCH", Prefix+"/accounts/alice@example.com", w, `{"expires":5}`, "If-Match", tag).problem(t, http.StatusUnprocessableEntity, "validation", "/expires")
		e.call("PATCH", Prefix+"/accounts/nobody@example.com", w, `{"disabled":true}`, "If-Match", tag).problem(t, http.StatusNotFound, "not-found")
		if got := e.call("GET", Prefix+"/accounts/alice@example.com", e.readKey, ""); got.header.Get("ETag") != tag {
			t.Fatalf("refused changes changed the account: %s", got.body)
		}
		a = e.call("PATCH", Prefix+"/accounts/alice@example.com", w, `{"disabled":true,"expires":null}`, "If-Match", tag).want(t, http.StatusOK, `"state":"disabled"`)
		if strings.Contains(string(a.body), `"expires"`) {
			t.Errorf("expires null: %s", a.body)
		}
		newTag := a.header.Get("ETag")
		if newTag == tag || newTag == "" {
			t.Errorf("ETag after the change %q", newTag)
		}
		if _, err := e.db.NewBackend(accounts.BackendOptions{}).Lookup(ctx, made.Token); err == nil {
			t.Error("a disabled account logs in")
		}
		// The second admin with the old tag is refused.
		e.call("PATCH", Prefix+"/accounts/alice@example.com", w, `{"disabled":false}`, "If-Match", tag).problem(t, http.StatusPreconditionFailed, "precondition-failed")
		if got := e.call("GET", Prefix+"/accounts/alice@example.com", e.readKey, ""); got.header.Get("ETag") != newTag {
			t.Errorf("GET ETag %q, PATCH said %q", got.header.Get("ETag"), newTag)
		}
		e.call("PATCH", Prefix+"/accounts/alice@example.com", w, `{"disabled":false,"expires":"2028-01-01T00:00:00Z"}`, "If-Match", newTag).want(t, http.StatusOK, `"state":"active"`, `"expires":"2028-01-01T00:00:00Z"`)

		// DELETE.
		tag = e.call("GET", Prefix+"/accounts/bob@example.com", e.readKey, "").header.Get("ETag")
		e.call("DELETE", Prefix+"/accounts/bob@example.com", w, "").problem(t, http.StatusPreconditionRequired, "precondition-required")
		e.call("DELETE", Prefix+"/accounts/bob@example.com", w, "", "If-Match", newTag).problem(t, http.StatusPreconditionFailed, "precondition-failed")
		e.call("DELETE", Prefix+"/accounts/bob@example.com", w, "", "If-Match", tag).want(t, http.StatusNoContent)
		e.call("GET", Prefix+"/accounts/bob@example.com", e.readKey, "").problem(t, http.StatusNotFound, "not-found")
		e.call("DELETE", Prefix+"/accounts/bob@example.com", w, "", "If-Match", tag).problem(t, http.StatusNotFound, "not-found")

		// The audit: every change by the key's name, a page at a time.
		var entries []auditEntry
		next = ""
		for {
			path := Prefix + "/audit?limit=3"
			if next != "" {
				path += "&cursor=" + next
			}
			pg := decode[page[auditEntry]](t, e.call("GET", path, e.readKey, "").want(t, http.StatusOK))
			entries = append(entries, pg.Items...)
			if next = pg.NextCursor; next == "" {
				break
			}
		}
		var byCRM []string
		for _, en := range entries {
			if en.Actor == "crm" {
				byCRM = append(byCRM, en.Action+" "+en.Account)
			}
		}
		want := "add alice@example.com|channel.add |add bob@example.com|add carol@example.com|add dave@example.org|add erin@example.com|expire alice@example.com|disable alice@example.com|expire alice@example.com|enable alice@example.com|delete bob@example.com"
		if got := strings.Join(byCRM, "|"); got != want {
			t.Errorf("audit by crm:\n got %s\nwant %s", got, want)
		}
		all := must(e.db.Audit(ctx, ""))
		if len(entries) != len(all) {
			t.Errorf("paged audit has %d rows, the audit %d", len(entries), len(all))
		}
		e.call("GET", Prefix+"/audit?cursor=x", e.readKey, "").problem(t, http.StatusUnprocessableEntity, "validation", "cursor")
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestChannels(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		e := newEnv(t, cfg, nil)
		w, rd := e.writeKey, e.readKey
		e.call("POST", Prefix+"/channels", rd, `{"name":"nightly"}`).problem(t, http.StatusForbidden, "forbidden")
		a := e.call("POST", Prefix+"/channels", w, `{"name":"nightly","description":" Every night's build "}`).want(t, http.StatusCreated)
		if ch := decode[accounts.Channel](t, a); ch.Name != "nightly" || ch.Description != "Every night's build" || !ch.Created.Equal(t0) {
			t.Errorf("created %+v", ch)
		}
		if a.header.Get("Location") != Prefix+"/channels/nightly" {
			t.Errorf("Location %q", a.header.Get("Location"))
		}
		e.call("POST", Prefix+"/channels", w, `{"name":"nightly"}`).problem(t, http.StatusConflict, "conflict")
		e.call("POST", Prefix+"/channels", w, `{"name":"Nightly","description":"two\nlines"}`).problem(t, http.StatusUnprocessableEntity, "validation", "/name", "/description")
		e.call("POST", Prefix+"/channels", w, `{"description":"x"}`).problem(t, http.StatusUnprocessableEntity, "validation", "/name")
		e.call("POST", Prefix+"/channels", w, `{"name":"x","owner":"y"}`).problem(t, http.StatusUnprocessableEntity, "validation", "/owner")
		e.call("POST", Prefix+"/channels", w, `[`).problem(t, http.StatusBadRequest, "bad-json")

		e.call("POST", Prefix+"/accounts", w, `{"email":"alice@example.com","channels":["nightly","stable"]}`).want(t, http.StatusCreated)
		pg := decode[page[accounts.Channel]](t, e.call("GET", Prefix+"/channels", rd, "").want(t, http.StatusOK))
		var got []string
		for _, ch := range pg.Items {
			got = append(got, ch.Name+"="+string(rune('0'+ch.Accounts)))
		}
		if strings.Join(got, " ") != "beta=0 nightly=1 stable=1" {
			t.Errorf("channels %q", got)
		}

		p := e.call("DELETE", Prefix+"/channels/nightly", w, "").problem(t, http.StatusConflict, "conflict")
		if !strings.Contains(p.Detail, "alice@example.com") {
			t.Errorf("conflict: %s", p.Detail)
		}
		e.call("DELETE", Prefix+"/channels/nightly?force=yes", w, "").problem(t, http.StatusUnprocessableEntity, "validation", "force")
		p = e.call("DELETE", Prefix+"/channels/nigthly", w, "").problem(t, http.StatusNotFound, "not-found")
		if !strings.Contains(p.Detail, `did you mean "nightly"?`) {
			t.Errorf("unknown channel: %s", p.Detail)
		}
		e.call("DELETE", Prefix+"/channels/nightly?force=true", rd, "").problem(t, http.StatusForbidden, "forbidden")
		e.call("DELETE", Prefix+"/channels/nightly?force=true", w, "").want(t, http.StatusOK, `"taken_from":["alice@example.com"]`)
		e.call("DELETE", Prefix+"/channels/beta", w, "").want(t, http.StatusOK, `"taken_from":[]`)
		if a, err := e.db.Show(t.Context(), "alice@example.com"); err != nil || strings.Join(a.Channels, ",") != "stable" {
			t.Errorf("alice after the forced removal: %+v %v", a.Channels, err)
		}
		var actions []string
		for _, en := range must(e.db.Audit(t.Context(), "")) {
			if en.Actor == "crm" && strings.HasPrefix(en.Action, "channel.") {
				actions = append(actions, en.Action+" "+en.Detail)
			}
		}
		if len(actions) != 3 || !strings.Contains(actions[1], "nightly forced") {
			t.Errorf("audit %q", actions)
		}
	})
}

func TestGrantsAndTokens(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		e := newEnv(t, cfg, nil)
		ctx := t.Context()
		w, rd := e.writeKey, e.readKey
		be := e.db.NewBackend(accounts.BackendOptions{})
		made := decode[createdAccount](t, e.call("POST", Prefix+"/accounts", w, `{"email":"alice@example.com","channels":["stable"]}`).want(t, http.StatusCreated))
		acct := Prefix + "/accounts/alice@example.com"
		tag := e.call("GET", acct, rd, "").header.Get("ETag")

		// Usage: nothing yet; then a pull and a check stored by the
		// intake show on the account, and its ETag stays (pulls are not
		// changes of the account).
		e.call("GET", acct, rd, "").want(t, http.StatusOK, `"usage":{}`)
		pulled, checked := t0.Add(time.Minute), t0.Add(2*time.Minute)
		if err := e.db.RecordUsage(ctx, []accounts.UsageEvent{
			{Time: pulled, Account: "alice@example.com", Repository: "stable/app", Reference: "1.0", Digest: "sha256:" + strings.Repeat("a", 64), Outcome: "pull", Agent: "docker"},
			{Time: checked, Account: "alice@example.com", Repository: "stable/app", Reference: "1.0", Digest: "sha256:" + strings.Repeat("a", 64), Outcome: "check", Agent: "docker"},
		}); err != nil {
			t.Fatal(err)
		}
		u := decode[struct {
			Usage accounts.AccountUsage `json:"usage"`
		}](t, e.call("GET", acct, rd, "").want(t, http.StatusOK)).Usage
		if !u.FirstPull.Equal(pulled) || !u.LastPull.Equal(pulled) || !u.LastCheck.Equal(checked) {
			t.Errorf("usage %+v: want first and last pull %v, last check %v", u, pulled, checked)
		}
		if e.call("GET", acct, rd, "").header.Get("ETag") != tag {
			t.Error("a pull changed the account's ETag")
		}

		// Grants: new (201), changed (200), with an expiry of their own.
		g := decode[accounts.Grant](t, e.call("PUT", acct+"/channels/beta", w, `{"expires":"2026-12-31"}`).want(t, http.StatusCreated))
		if g.Channel != "beta" || !g.Granted.Equal(t0) || !g.Expires.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("grant %+v", g)
		}
		if newTag := e.call("GET", acct, rd, "").want(t, http.StatusOK, `"grants":[{"channel":"beta"`).header.Get("ETag"); newTag == tag {
			t.Error("a grant left the ETag as it was")
		}
		if lic, err := be.Lookup(ctx, made.Token); err != nil || strings.Join(lic.Channels, ",") != "beta,stable" {
			t.Errorf("lookup %+v %v", lic, err)
		}
		e.clock.Advance(32 * 24 * time.Hour)
		if lic, err := be.Lookup(ctx, made.Token); err != nil || strings.Join(lic.Channels, ",") != "stable" {
			t.Errorf("an expired grant still grants: %+v %v", lic, err)
		}
		// support's key expired meanwhile: a new read key.
		_, rd, err := e.db.AddAdminKey(ctx, "test", "support-2", accounts.ScopeRead, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		g = decode[accounts.Grant](t, e.call("PUT", acct+"/channels/beta", w, "").want(t, http.StatusOK))
		if !g.Expires.IsZero() || !g.Granted.Equal(t0) {
			t.Errorf("grant without expiry %+v", g)
		}
		if lic, err := be.Lookup(ctx, made.Token); err != nil || strings.Join(lic.Channels, ",") != "beta,stable" {
			t.Errorf("the renewed grant: %+v %v", lic, err)
		}
		p := e.call("PUT", acct+"/channels/stabel", w, "").problem(t, http.StatusUnprocessableEntity, "unknown-channel", "channel")
		if !strings.Contains(p.Detail, `did you mean "stable"?`) {
			t.Errorf("unknown channel: %s", p.Detail)
		}
		e.call("PUT", acct+"/channels/Beta", w, "").problem(t, http.StatusUnprocessableEntity, "validation", "channel")
		e.call("PUT", acct+"/channels/beta", w, `{"expires":"2020-01-01"}`).problem(t, http.StatusUnprocessableEntity, "validation", "/expires")
		e.call("PUT", acct+"/channels/beta", w, `{"until":"2030-01-01"}`).problem(t, http.StatusUnprocessableEntity, "validation", "/until")
		e.call("PUT", acct+"/channels/beta", w, `{"expires":`).problem(t, http.StatusBadRequest, "bad-json")
		e.call("PUT", acct+"/channels/beta", rd, "").problem(t, http.StatusForbidden, "forbidden")
		e.call("PUT", Prefix+"/accounts/nobody@example.com/channels/beta", w, "").problem(t, http.StatusNotFound, "not-found")
		e.call("DELETE", acct+"/channels/beta", w, "").want(t, http.StatusNoContent)
		e.call("DELETE", acct+"/channels/beta", w, "").problem(t, http.StatusNotFound, "not-found")
		if lic, err := be.Lookup(ctx, made.Token); err != nil || strings.Join(lic.Channels, ",") != "stable" {
			t.Errorf("after the ungrant: %+v %v", lic, err)
		}

		// Tokens: named, listed, rotated keeping the name, revoked.
		e.call("POST", acct+"/tokens", w, `{}`).problem(t, http.StatusUnprocessableEntity, "validation", "/name")
		e.call("POST", acct+"/tokens", w, `{"name":"two words"}`).problem(t, http.StatusUnprocessableEntity, "validation", "/name")
		e.call("POST", acct+"/tokens", w, `{"name":"ci","scope":"all"}`).problem(t, http.StatusUnprocessableEntity, "validation", "/scope")
		e.call("POST", acct+"/tokens", rd, `{"name":"ci"}`).problem(t, http.StatusForbidden, "forbidden")
		e.call("POST", Prefix+"/accounts/nobody@example.com/tokens", w, `{"name":"ci"}`).problem(t, http.StatusNotFound, "not-found")
		ct := decode[createdToken](t, e.call("POST", acct+"/tokens", w, `{"name":"ci"}`).want(t, http.StatusCreated))
		if ct.Created.Name != "ci" || ct.Revoked != nil || !strings.HasPrefix(ct.Token, ct.Created.Prefix) {
			t.Errorf("created %+v", ct)
		}
		if _, err := be.Lookup(ctx, ct.Token); err != nil {
			t.Errorf("the new token: %v", err)
		}
		list := decode[page[accounts.NamedToken]](t, e.call("GET", acct+"/tokens", rd, "").want(t, http.StatusOK))
		if len(list.Items) != 2 || list.Items[0].Name != "" || list.Items[1].Name != "ci" || list.Items[1].ID != ct.Created.ID {
			t.Errorf("tokens %+v", list.Items)
		}
		if strings.Contains(string(e.call("GET", acct+"/tokens", rd, "").body), ct.Token) {
			t.Error("the list shows a token")
		}
		id := strconv.FormatInt(ct.Created.ID, 10)
		rot := decode[createdToken](t, e.call("POST", acct+"/tokens/"+id+"/rotate", w, "").want(t, http.StatusCreated))
		if rot.Revoked == nil || rot.Revoked.ID != ct.Created.ID || rot.Created.Name != "ci" || rot.Created.ID == ct.Created.ID {
			t.Errorf("rotated %+v", rot)
		}
		if _, err := be.Lookup(ctx, ct.Token); err == nil {
			t.Error("the rotated token still logs in")
		}
		if _, err := be.Lookup(ctx, rot.Token); err != nil {
			t.Errorf("the rotated-in token: %v", err)
		}
		e.call("POST", acct+"/tokens/"+id+"/rotate", w, "").problem(t, http.StatusNotFound, "not-found")
		e.call("POST", acct+"/tokens/x/rotate", w, "").problem(t, http.StatusUnprocessableEntity, "validation", "id")
		newID := strconv.FormatInt(rot.Created.ID, 10)
		e.call("DELETE", acct+"/tokens/"+newID, rd, "").problem(t, http.StatusForbidden, "forbidden")
		rv := decode[accounts.Token](t, e.call("DELETE", acct+"/tokens/"+newID, w, "").want(t, http.StatusOK))
		if rv.ID != rot.Created.ID || rv.Revoked.IsZero() {
			t.Errorf("revoked %+v", rv)
		}
		if _, err := be.Lookup(ctx, rot.Token); err == nil {
			t.Error("a revoked token logs in")
		}
		e.call("DELETE", acct+"/tokens/"+newID, w, "").problem(t, http.StatusNotFound, "not-found")
		e.call("DELETE", acct+"/tokens/0", w, "").problem(t, http.StatusUnprocessableEntity, "validation", "id")
		e.call("GET", Prefix+"/accounts/nobody@example.com/tokens", rd, "").problem(t, http.StatusNotFound, "not-found")

		// Every change is the key's, in the audit.
		var byCRM []string
		for _, en := range must(e.db.Audit(ctx, "alice@example.com")) {
			if en.Actor == "crm" {
				byCRM = append(byCRM, en.Action)
			}
		}
		if got := strings.Join(byCRM, " "); got != "add grant grant ungrant token.add token.rotate token.revoke" {
			t.Errorf("audit %s", got)
		}
	})
}

// Two admins change the same account at once with the same ETag: one
// change goes through, the other is refused with 412, on both databases.
func TestConcurrentPatch(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		e := newEnv(t, cfg, nil)
		acct := Prefix + "/accounts/alice@example.com"
		e.call("POST", Prefix+"/accounts", e.writeKey, `{"email":"alice@example.com","channels":["stable"]}`).want(t, http.StatusCreated)
		for round := range 5 {
			tag := e.call("GET", acct, e.readKey, "").header.Get("ETag")
			// Each a real change: a change that leaves the account as it
			// was would rightly keep its ETag.
			day := strconv.Itoa(round + 1)
			bodies := []string{`{"disabled":` + strconv.FormatBool(round%2 == 0) + `,"expires":"2031-01-0` + day + `"}`, `{"expires":"2030-01-0` + day + `"}`}
			statuses := make([]int, len(bodies))
			var wg sync.WaitGroup
			for i, b := range bodies {
				wg.Go(func() {
					statuses[i] = e.call("PATCH", acct, e.writeKey, b, "If-Match", tag).status
				})
			}
			wg.Wait()
			ok, refused := 0, 0
			for _, s := range statuses {
				switch s {
				case http.StatusOK:
					ok++
				case http.StatusPreconditionFailed:
					refused++
				}
			}
			if ok != 1 || refused != 1 {
				t.Fatalf("round %d: statuses %v, want one 200 and one 412", round, statuses)
			}
		}
	})
}
