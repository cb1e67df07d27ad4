package tokenserver

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/license/backends"
	"github.com/acme/registry-gateway/internal/license/sqlbackend"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

const usageSecret = "0123456789abcdef0123456789abcdef-usage"

// usageServer builds a token service with the usage intake on the
// account database cfg; mutate adjusts the configuration.
func usageServer(t *testing.T, cfg *accounts.Config, opts Options, mutate func(*Config)) (*Server, error) {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "token.key")
	writeECKey(t, key)
	secret := filepath.Join(dir, "usage.secret")
	if err := os.WriteFile(secret, []byte(usageSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &Config{
		Issuer: testIssuer, Service: testService, SigningKey: key,
		Licenses:  backends.Config{Backends: backends.Sections{"sql": &sqlbackend.Config{Config: *cfg}}},
		RateLimit: RateLimitConfig{Disabled: true},
		Usage:     UsageConfig{SecretFile: secret},
	}
	if mutate != nil {
		mutate(c)
	}
	if opts.Logger == nil {
		opts.Logger = discardLogger()
	}
	srv, err := New(t.Context(), c, opts)
	if err == nil {
		t.Cleanup(srv.Close)
	}
	return srv, err
}

func usageJSON(events ...map[string]any) string {
	b, _ := json.Marshal(map[string]any{"events": events})
	return string(b)
}

func goodUsageEvent() map[string]any {
	return map[string]any{
		"time": time.Now().UTC().Add(-time.Minute).Format(time.RFC3339Nano), "account": "alice@example.com",
		"repository": "stable/app", "reference": "1.4",
		"digest":  "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"outcome": "pull", "reason": "", "client": "203.0.113.0/24", "agent": "docker",
	}
}

func postUsage(t *testing.T, h http.Handler, secret, contentType, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, UsagePath, strings.NewReader(body))
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

type problemBody struct {
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Field  string `json:"field"`
}

func scrape(t *testing.T, srv *Server, sample string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.Lines(rec.Body.String()) {
		if name, val, ok := strings.Cut(strings.TrimSpace(line), " "); ok && name == sample {
			return val
		}
	}
	return ""
}

// The intake on both databases: a valid batch is stored (204) with its
// daily counts; a wrong secret, a bad field, an unknown field, a body too
// large are refused and store nothing; the metrics count each.
func TestUsageIntake(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		admin := accountstest.Open(t, cfg, accounts.Options{})
		srv, err := usageServer(t, cfg, Options{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		h := srv.Handler()
		stored := func() int {
			t.Helper()
			events, err := admin.Usage(t.Context(), accounts.UsageQuery{Outcomes: []string{accounts.UsagePull, accounts.UsageCheck, accounts.UsageDenied}})
			if err != nil {
				t.Fatal(err)
			}
			return len(events)
		}

		check := goodUsageEvent()
		check["outcome"] = "check"
		denied := goodUsageEvent()
		denied["outcome"], denied["digest"], denied["reason"], denied["client"], denied["agent"] = "denied", "", "channel_not_licensed", "", "crane"
		if rec := postUsage(t, h, usageSecret, "application/json; charset=utf-8", usageJSON(goodUsageEvent(), check, denied)); rec.Code != http.StatusNoContent {
			t.Fatalf("valid batch: %d %s", rec.Code, rec.Body)
		}
		if n := stored(); n != 3 {
			t.Fatalf("%d events stored, want 3", n)
		}
		if u, err := admin.AccountUsage(t.Context(), "alice@example.com"); err != nil || u.LastPull.IsZero() || u.LastCheck.IsZero() {
			t.Errorf("account usage after the batch: %+v %v", u, err)
		}
		if rec := postUsage(t, h, usageSecret, "application/json", `{"events": []}`); rec.Code != http.StatusNoContent {
			t.Errorf("empty batch: %d %s", rec.Code, rec.Body)
		}

		with := func(field string, value any) string {
			e := goodUsageEvent()
			if value == nil {
				delete(e, field)
			} else {
				e[field] = value
			}
			return usageJSON(goodUsageEvent(), e)
		}
		for _, tc := range []struct {
			name, body, field string
		}{
			{"time missing", with("time", nil), "events[1].time"},
			{"time not RFC 3339", with("time", "yesterday"), "events[1].time"},
			{"time far ahead", with("time", time.Now().Add(3*time.Hour).UTC().Format(time.RFC3339)), "events[1].time"},
			{"account", with("account", ""), "events[1].account"},
			{"repository", with("repository", "Stable/App"), "events[1].repository"},
			{"reference", with("reference", ""), "events[1].reference"},
			{"digest", with("digest", "md5:x"), "events[1].digest"},
			{"outcome", with("outcome", "push"), "events[1].outcome"},
			{"reason", with("reason", "channel_not_licensed"), "events[1].reason"},
			{"client", with("client", "203.0.113.9"), "events[1].client"},
			{"agent", with("agent", "curl"), "events[1].agent"},
			{"wrong type", with("account", 7), "events[1].account"},
			{"unknown field in an event", with("channel", "stable"), "events[1].channel"},
			{"unknown top-level field", `{"events": [], "more": 1}`, ""},
			{"no events", `{}`, "events"},
			{"not JSON", `events`, ""},
			{"two objects", `{"events": []} {"events": []}`, ""},
			{"too many events", usageJSON(func() []map[string]any {
				out := make([]map[string]any, accounts.MaxUsageBatch+1)
				for i := range out {
					out[i] = map[string]any{}
				}
				return out
			}()...), "events"},
		} {
			rec := postUsage(t, h, usageSecret, "application/json", tc.body)
			var p problemBody
			if rec.Code != http.StatusBadRequest || rec.Header().Get("Content-Type") != "application/problem+json" ||
				json.Unmarshal(rec.Body.Bytes(), &p) != nil || p.Status != 400 || p.Field != tc.field || p.Detail == "" {
				t.Errorf("%s: %d %q %s", tc.name, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
			}
		}

		for _, secret := range []string{"", "wrong", usageSecret + "x", strings.TrimSuffix(usageSecret, "e")} {
			rec := postUsage(t, h, secret, "application/json", usageJSON(goodUsageEvent()))
			if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != "Bearer" || rec.Header().Get("Content-Type") != "application/problem+json" {
				t.Errorf("secret %q: %d %v", secret, rec.Code, rec.Header())
			}
		}
		req := httptest.NewRequest(http.MethodPost, UsagePath, strings.NewReader(usageJSON(goodUsageEvent())))
		req.SetBasicAuth("gateway", usageSecret)
		req.Header.Set("Content-Type", "application/json")
		if rec := httptest.NewRecorder(); func() int { h.ServeHTTP(rec, req); return rec.Code }() != http.StatusUnauthorized {
			t.Errorf("Basic credentials: %d", rec.Code)
		}

		big := `{"events": [` + strings.Repeat(" ", maxUsageBody) + `]}`
		if rec := postUsage(t, h, usageSecret, "application/json", big); rec.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("body over 1 MiB: %d %s", rec.Code, rec.Body)
		}
		// Without a Content-Length: cut off while reading.
		req = httptest.NewRequest(http.MethodPost, UsagePath, strings.NewReader(big))
		req.ContentLength = -1
		req.Header.Set("Authorization", "Bearer "+usageSecret)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("streamed body over 1 MiB: %d %s", rec.Code, rec.Body)
		}
		if rec := postUsage(t, h, usageSecret, "text/plain", usageJSON(goodUsageEvent())); rec.Code != http.StatusUnsupportedMediaType {
			t.Errorf("text/plain: %d", rec.Code)
		}
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, UsagePath, nil))
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "POST" {
			t.Errorf("GET: %d %v", rec.Code, rec.Header())
		}
		if n := stored(); n != 3 {
			t.Errorf("%d events stored after the refusals, want 3", n)
		}

		for sample, want := range map[string]string{
			"tokenserver_usage_events_stored_total":                   "3",
			`tokenserver_usage_batches_total{outcome="stored"}`:       "2",
			`tokenserver_usage_batches_total{outcome="bad_request"}`:  "19",
			`tokenserver_usage_batches_total{outcome="unauthorized"}`: "5",
			`tokenserver_usage_batches_total{outcome="too_large"}`:    "2",
			`tokenserver_usage_batches_total{outcome="unavailable"}`:  "0",
		} {
			if got := scrape(t, srv, sample); got != want {
				t.Errorf("%s = %q, want %s", sample, got, want)
			}
		}
	})
}

// Without usage.secret_file the path is not served: 404, as any other.
func TestUsageIntakeOff(t *testing.T) {
	t.Parallel()
	cfg := accountstest.SQLite(t)
	accountstest.Open(t, cfg, accounts.Options{})
	srv, err := usageServer(t, cfg, Options{}, func(c *Config) { c.Usage.SecretFile = "" })
	if err != nil {
		t.Fatal(err)
	}
	if rec := postUsage(t, srv.Handler(), usageSecret, "application/json", usageJSON(goodUsageEvent())); rec.Code != http.StatusNotFound {
		t.Errorf("intake off: %d", rec.Code)
	}
	if got := scrape(t, srv, `tokenserver_usage_batches_total{outcome="stored"}`); got != "0" {
		t.Errorf("metrics exported at 0 when off: %q", got)
	}
}

// The database goes away: a batch is answered 503 with Retry-After (the
// gateway keeps it and retries), and stored once it is back.
func TestUsageIntakeDatabaseDown(t *testing.T) {
	t.Parallel()
	pg := accountstest.Start(t)
	cfg := pg.NewDatabase(t)
	accountstest.Open(t, cfg, accounts.Options{}).Close()
	logs := &testutil.SyncBuffer{}
	srv, err := usageServer(t, cfg, Options{Logger: slogTo(logs)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	pg.Stop()
	rec := postUsage(t, h, usageSecret, "application/json", usageJSON(goodUsageEvent()))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("database down: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	if got := scrape(t, srv, `tokenserver_usage_batches_total{outcome="unavailable"}`); got != "1" {
		t.Errorf("unavailable batches %q", got)
	}
	if !strings.Contains(logs.String(), "usage batch not stored") || strings.Contains(logs.String(), usageSecret) {
		t.Errorf("logs: %s", logs)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a batch stored after the database came back", func() bool {
		return postUsage(t, h, usageSecret, "application/json", usageJSON(goodUsageEvent())).Code == http.StatusNoContent
	})
}

// The retention job runs at start: raw events past usage.retention and
// daily counts past usage.rollup_retention are gone without a request.
func TestUsageRetentionAtStart(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		now := time.Now()
		admin := accountstest.Open(t, cfg, accounts.Options{})
		event := func(at time.Time) accounts.UsageEvent {
			return accounts.UsageEvent{Time: at, Account: "alice@example.com", Repository: "stable/app", Reference: "1.4", Outcome: accounts.UsagePull, Agent: "docker"}
		}
		if err := admin.RecordUsage(t.Context(), []accounts.UsageEvent{
			event(now.AddDate(0, 0, -40)), event(now.AddDate(0, 0, -20)), event(now.AddDate(0, 0, -1)),
		}); err != nil {
			t.Fatal(err)
		}
		srv, err := usageServer(t, cfg, Options{}, func(c *Config) {
			c.Usage.Retention, c.Usage.RollupRetention = 30*24*time.Hour, 30*24*time.Hour
		})
		if err != nil {
			t.Fatal(err)
		}
		serve(t, srv)
		// The job prunes raw events, then daily counts: wait for both
		// (checking the counts once the events were gone raced the job's
		// second step).
		waitFor(t, "events and daily counts past retention pruned", func() bool {
			events, err := admin.Usage(t.Context(), accounts.UsageQuery{})
			if err != nil || len(events) != 2 {
				return false
			}
			u, err := admin.AccountUsage(t.Context(), "alice@example.com")
			return err == nil && !u.FirstPull.Before(now.AddDate(0, 0, -31))
		})
	})
}

// The configuration: defaults, and the problems of usage:.
func TestUsageConfig(t *testing.T) {
	t.Parallel()
	base := "issuer: i\nservice: s\nsigning_key: k\nlicenses:\n  sql: {driver: sqlite, dsn: x.db}\n"
	cfg, err := ParseConfig([]byte(base + "usage:\n  secret_file: s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Usage.Retention != 90*24*time.Hour || cfg.Usage.RollupRetention != 2*365*24*time.Hour {
		t.Errorf("defaults %+v", cfg.Usage)
	}
	for _, tc := range []struct{ conf, want string }{
		{"issuer: i\nservice: s\nsigning_key: k\nlicenses:\n  file: l.yaml\nusage:\n  secret_file: s\n", "usage.secret_file: usage is stored in the account database: configure licenses.sql"},
		{base + "usage:\n  retention: 1h\n", "usage.retention: 1h0m0s is under a day"},
		{base + "usage:\n  retention: -24h\n", "must not be negative"},
		{base + "usage:\n  retention: 720h\n  rollup_retention: 240h\n", "usage.rollup_retention: 240h0m0s is shorter than usage.retention 720h0m0s"},
		{base + "usage:\n  secret: s\n", "secret"},
	} {
		if _, err := ParseConfig([]byte(tc.conf)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.conf, err, tc.want)
		}
	}

	// A secret file that is short or missing is reported by New.
	db := accountstest.SQLite(t)
	accountstest.Open(t, db, accounts.Options{})
	short := filepath.Join(t.TempDir(), "short")
	os.WriteFile(short, []byte(strings.Repeat("x", 31)+"\n"), 0o600)
	for path, want := range map[string]string{short: "31 bytes, at least 32", filepath.Join(t.TempDir(), "missing"): "no such file"} {
		_, err := usageServer(t, db, Options{}, func(c *Config) { c.Usage.SecretFile = path })
		if err == nil || !strings.Contains(err.Error(), "usage.secret_file: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("secret %s: %v", path, err)
		}
	}
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }
