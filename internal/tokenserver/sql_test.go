package tokenserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
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

func TestMain(m *testing.M) { os.Exit(accountstest.Main(m)) }

// newSQLReplica runs a token service on the account database of sqlCfg,
// for real (Serve: its change counter poll runs), with a key shared by
// every replica of the test.
func newSQLReplica(t *testing.T, keyPath string, sqlCfg *accounts.Config) (string, *testutil.SyncBuffer) {
	t.Helper()
	logs := &testutil.SyncBuffer{}
	c := *sqlCfg
	c.RevocationPoll = 100 * time.Millisecond
	srv, err := New(t.Context(), &Config{
		Issuer: testIssuer, Service: testService, SigningKey: keyPath,
		Licenses:  backends.Config{Backends: backends.Sections{"sql": &sqlbackend.Config{Config: c}}, ProbeInterval: backends.MinProbeInterval},
		RateLimit: RateLimitConfig{Disabled: true},
	}, Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return serve(t, srv), logs
}

// Revoking a token stops the next token request and the next refresh on
// two replicas sharing one PostgreSQL within a second, although both had
// the licence cached for cache_ttl.
func TestSQLRevocationOnTwoReplicas(t *testing.T) {
	cfg := accountstest.Shared(t).NewDatabase(t)
	admin := accountstest.Open(t, cfg, accounts.Options{})
	ctx := t.Context()
	_, token, err := admin.Add(ctx, "ops", aliceUser, []string{"stable"}, time.Time{}, accounts.CreateChannels())
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(t.TempDir(), "token.key")
	writeECKey(t, key)
	a, _ := newSQLReplica(t, key, cfg)
	b, _ := newSQLReplica(t, key, cfg)

	var refresh string
	for _, base := range []string{a, b} {
		waitFor(t, "replica ready", func() bool {
			return get(t, base, aliceUser, token, scopes()).StatusCode == http.StatusOK
		})
		q := scopes("repository:stable/app:pull")
		q.Set("offline_token", "true")
		refresh = mustToken(t, get(t, base, aliceUser, token, q)).RefreshToken
	}

	if _, err := admin.RevokeToken(ctx, "ops", aliceUser, ""); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	refused := map[string]bool{}
	// The promise is a bound in real time, against a real database: polled.
	testutil.WaitFor(t, "refusal by every replica (within 1s)", time.Second, func() bool {
		for _, base := range []string{a, b} {
			if !refused[base] && get(t, base, aliceUser, token, scopes("repository:stable/app:pull")).StatusCode == http.StatusUnauthorized {
				refused[base] = true
			}
		}
		return len(refused) == 2
	})
	t.Logf("revocation refused by both replicas after %v", time.Since(revoked))
	for _, base := range []string{a, b} {
		resp := post(t, base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "service": {testService}, "client_id": {"test"}})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("refresh after revocation: %d %s", resp.StatusCode, bodyOf(resp))
		}
	}
}

// The database goes away: logins fail closed with 503 (cached licences
// included, once the change counter cannot be read) and /readyz turns 503
// although a licence was cached lately; when the database is back, /readyz
// turns 200 by itself (probes, no login) and logins work again, without a
// restart.
func TestSQLDatabaseGoesAwayAndComesBack(t *testing.T) {
	t.Parallel()
	pg := accountstest.Start(t)
	cfg := pg.NewDatabase(t)
	admin := accountstest.Open(t, cfg, accounts.Options{})
	_, token, err := admin.Add(t.Context(), "ops", aliceUser, []string{"stable"}, time.Time{}, accounts.CreateChannels())
	if err != nil {
		t.Fatal(err)
	}
	admin.Close()
	key := filepath.Join(t.TempDir(), "token.key")
	writeECKey(t, key)
	base, logs := newSQLReplica(t, key, cfg)
	waitFor(t, "login", func() bool { return get(t, base, aliceUser, token, scopes()).StatusCode == http.StatusOK })

	pg.Stop()
	waitFor(t, "503", func() bool {
		resp := get(t, base, aliceUser, token, scopes())
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("status %d while the database is down: %s", resp.StatusCode, bodyOf(resp))
		}
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	// Within two revocation polls the cached licence stops being
	// servable, and readiness follows (no more logins needed).
	waitReady(t, base, http.StatusServiceUnavailable)
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("ready again %v after the database came back", waitReady(t, base, http.StatusOK))
	waitFor(t, "login after the database came back", func() bool {
		return get(t, base, aliceUser, token, scopes()).StatusCode == http.StatusOK
	})
	if strings.Contains(logs.String(), token) {
		t.Error("a log line carries the API token")
	}
}

// The service refuses to start on a database it cannot use, saying why.
func TestSQLRefusesUnusableSchema(t *testing.T) {
	t.Parallel()
	key := filepath.Join(t.TempDir(), "token.key")
	writeECKey(t, key)
	cfg := accountstest.SQLite(t)
	_, err := New(t.Context(), &Config{Issuer: testIssuer, Service: testService, SigningKey: key, Licenses: backends.Config{Backends: backends.Sections{"sql": &sqlbackend.Config{Config: *cfg}}}}, Options{Logger: discardLogger()})
	var se *accounts.SchemaError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "licenses.sql: ") || !strings.Contains(err.Error(), "tokenserver accounts migrate") {
		t.Errorf("un-migrated database: %v", err)
	}
	bad := &accounts.Config{Driver: accounts.DriverSQLite, DSN: filepath.Join(t.TempDir(), "missing", "x.db")}
	if _, err := New(t.Context(), &Config{Issuer: testIssuer, Service: testService, SigningKey: key, Licenses: backends.Config{Backends: backends.Sections{"sql": &sqlbackend.Config{Config: *bad}}}}, Options{Logger: discardLogger()}); err == nil {
		t.Error("unreachable database accepted")
	}
	if _, err := ParseConfig([]byte("issuer: i\nservice: s\nsigning_key: k\nlicenses:\n  file: f\n  sql: {driver: mysql}\n")); err == nil ||
		!strings.Contains(err.Error(), "not several") || !strings.Contains(err.Error(), "licenses.sql.driver") || !strings.Contains(err.Error(), "licenses.sql.dsn") {
		t.Errorf("config errors: %v", err)
	}
}

// check-config with the files connects to the account database and reports
// a schema the service would refuse; without them it checks values only.
func TestSQLCheckConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := filepath.Join(dir, "token.key")
	writeECKey(t, key)
	db := accountstest.SQLite(t)
	path := filepath.Join(dir, "tokenserver.yaml")
	conf := "issuer: i\nservice: s\nsigning_key: " + key + "\nlicenses:\n  sql: {driver: sqlite, dsn: " + db.DSN + "}\n"
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkConfigFile(t, path, false); err != nil {
		t.Errorf("values only: %v", err)
	}
	if err := checkConfigFile(t, path, true); err == nil || !strings.Contains(err.Error(), "tokenserver accounts migrate") {
		t.Errorf("un-migrated database: %v", err)
	}
	accountstest.Open(t, db, accounts.Options{}).Close()
	if err := checkConfigFile(t, path, true); err != nil {
		t.Errorf("migrated database: %v", err)
	}
}

// readyWithin is the promise of /readyz: ready again within 10 s of the
// licence backend answering, without any login.
const readyWithin = 10 * time.Second

// waitReady polls /readyz of a server that runs for real until it answers
// want, and fails after readyWithin. It sends nothing else: no login
// traffic. (A real database cannot be moved by a synctest bubble.)
func waitReady(t *testing.T, base string, want int) time.Duration {
	t.Helper()
	start := time.Now()
	testutil.WaitFor(t, fmt.Sprintf("/readyz %d", want), readyWithin, func() bool {
		return do(t, mustRequest(t, http.MethodGet, base+"/readyz")).StatusCode == want
	})
	return time.Since(start)
}
