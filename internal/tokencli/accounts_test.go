package tokencli

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
)

func TestMain(m *testing.M) { os.Exit(accountstest.Main(m)) }

// accountsConfig writes a token service configuration using the account
// database cfg and returns its path.
func accountsConfig(t *testing.T, cfg *accounts.Config) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokenserver.yaml")
	content := fmt.Sprintf("issuer: i\nservice: s\nsigning_key: unused.key\nlicenses:\n  sql:\n    driver: %s\n    dsn: %q\n", cfg.Driver, cfg.DSN)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (r result) want(t *testing.T, code int, contains ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	for _, c := range contains {
		if !strings.Contains(r.stdout+r.stderr, c) {
			t.Errorf("output lacks %q\nstdout: %s\nstderr: %s", c, r.stdout, r.stderr)
		}
	}
}

// Every accounts command, on both databases, with the exit codes scripts
// rely on.
func TestAccountsCommands(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		conf := accountsConfig(t, cfg)
		env := map[string]string{"USER": "vendor-ops"}
		run := func(args ...string) result {
			t.Helper()
			return runCLI(t, "", env, append([]string{"accounts"}, append(args, "-config", conf)...)...)
		}

		run("list").want(t, exitFail, "tokenserver accounts migrate")
		run("migrate").want(t, exitOK, fmt.Sprintf("schema migrated to version %d", accounts.SchemaVersion()))
		run("migrate").want(t, exitOK, "schema is current")
		run("list").want(t, exitOK, "no accounts")

		// The channel catalogue comes first: a grant names its channels.
		run("channels", "list").want(t, exitOK, "no channels")
		run("add", "alice@example.com", "--channels", "stable,beta").want(t, exitNotFound, `unknown channel "beta"; unknown channel "stable" (there are no channels yet)`, "nothing changed; --create")
		run("channels", "add", "stable", "--description", "Released builds").want(t, exitOK, "created channel stable")
		run("channels", "add", "stable").want(t, exitConflict, "channel stable exists already")
		run("channels", "add", "Beta").want(t, exitUsage, "not a channel name")
		r := run("channels", "add", "beta", "--json")
		var ch accounts.Channel
		if err := json.Unmarshal([]byte(r.stdout), &ch); err != nil || ch.Name != "beta" || !ch.Created.Equal(t0) {
			t.Errorf("channels add --json: %v %s", err, r.stdout)
		}

		r = run("add", "alice@example.com", "--channels", "stable,beta", "--expires", "2027-06-30")
		r.want(t, exitOK, "created alice@example.com: channels beta, stable, expires 2027-07-01 00:00:00 UTC", "rgw_")
		var token string
		for _, f := range strings.Fields(r.stdout) {
			if strings.HasPrefix(f, accounts.TokenPrefix) {
				token = f
			}
		}
		run("add", "ALICE@example.com", "--channels", "stable").want(t, exitConflict, "exists already")
		run("add", "bob@example.com", "--channels", "Stable").want(t, exitUsage, `"Stable" is not a channel name`)
		run("add", "bob@example.com", "--channels", "stable", "--expires", "2020-01-01").want(t, exitUsage, "in the past")
		run("add", "bob@example.com").want(t, exitUsage, "no channels")
		run("add").want(t, exitUsage, "usage: tokenserver accounts add EMAIL")
		var added struct {
			Account accounts.Account `json:"account"`
			Token   string           `json:"token"`
		}
		r = run("add", "bob@example.com", "--channels", "stable", "--json", "--actor", "script")
		r.want(t, exitOK)
		if err := json.Unmarshal([]byte(r.stdout), &added); err != nil || added.Account.Email != "bob@example.com" || !strings.HasPrefix(added.Token, "rgw_") {
			t.Errorf("add --json: %v %s", err, r.stdout)
		}

		run("list").want(t, exitOK, "EMAIL", "alice@example.com  active", "beta,stable", "bob@example.com")
		r = run("list", "--json")
		var list []accounts.Account
		if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 2 {
			t.Errorf("list --json: %v %s", err, r.stdout)
		}
		run("show", "nobody@example.com").want(t, exitNotFound, "no account nobody@example.com")
		r = run("grant", "alice@example.com", "stabel")
		r.want(t, exitNotFound, `unknown channel "stabel"; did you mean "stable"? (known channels: beta, stable)`, "nothing changed; --create")
		run("grant", "alice@example.com", "stable", "lts-2025").want(t, exitNotFound, `unknown channel "lts-2025" (known channels: beta, stable)`)
		run("show", "alice@example.com").want(t, exitOK, "beta, stable\n")
		run("grant", "alice@example.com", "lts-2025", "--create").want(t, exitOK, "now holds: beta, lts-2025, stable")
		run("ungrant", "alice@example.com", "beta").want(t, exitOK, "now holds: lts-2025, stable")
		run("ungrant", "alice@example.com", "beta").want(t, exitNotFound, "does not hold channel beta")
		run("grant", "nobody@example.com", "beta").want(t, exitNotFound)
		run("expire", "alice@example.com", "2028-01-31").want(t, exitOK, "expires 2028-02-01 00:00:00 UTC")
		run("expire", "alice@example.com", "yesterday").want(t, exitUsage, "want a date")

		r = run("token", "add", "alice@example.com")
		r.want(t, exitOK, "added token", "rgw_")
		run("token", "revoke", "alice@example.com").want(t, exitUsage, "2 active tokens")
		run("token", "revoke", "alice@example.com", token[:12]).want(t, exitOK, "revoked token", token[:12])
		run("token", "revoke", "alice@example.com", token[:12]).want(t, exitNotFound, "no active token")
		run("token", "rotate", "alice@example.com").want(t, exitOK, "revoked token", "new token", "rgw_")
		run("token", "frobnicate", "alice@example.com").want(t, exitUsage, "unknown command")
		run("token", "add", "nobody@example.com").want(t, exitNotFound, "no account nobody@example.com")
		run("enable", "nobody@example.com").want(t, exitNotFound)
		run("show", "not-an-email").want(t, exitUsage, "not an e-mail address")
		run("show", "alice@example.com").want(t, exitOK, "state       active", "lts-2025, stable", "TOKEN ID", token[:12])
		r = run("show", "alice@example.com", "--json")
		var shown accounts.Account
		if err := json.Unmarshal([]byte(r.stdout), &shown); err != nil || len(shown.Tokens) != 3 || shown.ActiveTokens != 1 {
			t.Errorf("show --json: %v %s", err, r.stdout)
		}
		if strings.Contains(r.stdout, token) {
			t.Error("show prints a token")
		}

		run("disable", "alice@example.com").want(t, exitOK, "is disabled")
		run("disable", "alice@example.com").want(t, exitConflict, "disabled already")
		run("enable", "alice@example.com").want(t, exitOK, "is active")
		run("delete", "bob@example.com").want(t, exitUsage, "--yes")
		run("delete", "bob@example.com", "--yes").want(t, exitOK, "deleted bob@example.com")
		run("delete", "bob@example.com", "--yes").want(t, exitNotFound)

		// The catalogue: a channel still granted is removed only by force.
		run("channels", "list").want(t, exitOK, "CHANNEL   ACCOUNTS", "stable    1         2026-11-29 10:00:00 UTC  Released builds", "lts-2025  1")
		r = run("channels", "list", "--json")
		var channels []accounts.Channel
		if err := json.Unmarshal([]byte(r.stdout), &channels); err != nil || len(channels) != 3 || channels[2].Name != "stable" || channels[2].Accounts != 1 {
			t.Errorf("channels list --json: %v %s", err, r.stdout)
		}
		run("channels", "remove", "stable").want(t, exitConflict, "channel stable is granted to 1 account (alice@example.com)", "--force removes it anyway")
		run("channels", "remove", "stabel").want(t, exitNotFound, `did you mean "stable"?`)
		run("channels", "remove", "beta").want(t, exitOK, "removed channel beta\n")
		run("channels", "remove", "lts-2025", "--force").want(t, exitOK, "removed channel lts-2025; taken from alice@example.com\n")
		run("show", "alice@example.com").want(t, exitOK, "channels    stable\n")

		lic := filepath.Join(t.TempDir(), "licenses.yaml")
		os.WriteFile(lic, []byte("accounts:\n  - username: carol@example.com\n    token_sha256: \""+license.HashToken("carol")+"\"\n    channels: [stable]\n"), 0o600)
		run("import", lic).want(t, exitOK, "imported 1 accounts")
		run("import", lic).want(t, exitConflict, "exist already: carol@example.com")
		run("import", filepath.Join(t.TempDir(), "missing.yaml")).want(t, exitUsage, "missing.yaml")

		r = run("audit")
		r.want(t, exitOK, "WHEN", "vendor-ops", "script", "migrate", "token.rotate", "import", "channel.add", "channel.remove", "channel=lts-2025 (created by grant alice@example.com)")
		if strings.Contains(r.stdout, token) {
			t.Error("the audit shows a token")
		}
		r = run("audit", "bob@example.com", "--json")
		var audit []accounts.AuditEntry
		if err := json.Unmarshal([]byte(r.stdout), &audit); err != nil || len(audit) != 2 || audit[0].Actor != "script" || audit[1].Action != "delete" {
			t.Errorf("audit --json: %v %s", err, r.stdout)
		}
	})
}

func TestAccountsUsage(t *testing.T) {
	t.Parallel()
	runCLI(t, "", nil, "accounts").want(t, exitUsage, "tokenserver accounts add EMAIL")
	runCLI(t, "", nil, "accounts", "help").want(t, exitOK, "Exit codes")
	runCLI(t, "", nil, "accounts", "frob").want(t, exitUsage, `unknown command "frob"`)
	runCLI(t, "", nil, "accounts", "list").want(t, exitUsage, "-config FILE is required")
	runCLI(t, "", nil, "accounts", "list", "-config", "/nonexistent.yaml").want(t, exitFail, "nonexistent.yaml")

	// TOKENSERVER_CONFIG instead of -config; a file without licenses.sql.
	dir := t.TempDir()
	conf := filepath.Join(dir, "c.yaml")
	os.WriteFile(conf, []byte("issuer: i\nservice: s\nsigning_key: k\nlicenses: {file: l.yaml}\n"), 0o600)
	runCLI(t, "", map[string]string{"TOKENSERVER_CONFIG": conf}, "accounts", "list").want(t, exitFail, "licenses.sql is not configured")

	// A database set up through the package is what the CLI lists.
	cfg := accountstest.SQLite(t)
	db := accountstest.Open(t, cfg, accounts.Options{})
	if _, _, err := db.Add(t.Context(), "x", "a@example.com", []string{"stable"}, time.Time{}, accounts.CreateChannels()); err != nil {
		t.Fatal(err)
	}
	runCLI(t, "", nil, "accounts", "list", "-config", accountsConfig(t, cfg)).want(t, exitOK, "a@example.com")
}

// `accounts migrate` upgrades a database of the previous schema, where
// channels were free text: the channels granted become the catalogue, and
// a typo of one is refused from then on.
func TestAccountsMigrateFromPrevious(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		ctx := t.Context()
		db, err := accounts.Open(ctx, cfg, accounts.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		// The version before the channel catalogue: grants were free text.
		const prev = 2
		if _, err := db.MigrateTo(ctx, "old-binary", prev); err != nil {
			t.Fatal(err)
		}
		// What the previous binary wrote: an account with a token and two
		// grants.
		driver := map[string]string{accounts.DriverSQLite: "sqlite", accounts.DriverPostgres: "pgx"}[cfg.Driver]
		raw, err := sql.Open(driver, cfg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		for _, q := range []string{
			"INSERT INTO accounts (email, state, created_at) VALUES ('old@example.com', 'active', 1)",
			"INSERT INTO api_tokens (account_id, token_sha256, prefix, created_at) SELECT id, '" + license.HashToken("old-token") + "', '', 1 FROM accounts",
			"INSERT INTO channel_grants (account_id, channel, granted_at) SELECT id, 'stable', 1 FROM accounts",
			"INSERT INTO channel_grants (account_id, channel, granted_at) SELECT id, 'lts-2025', 2 FROM accounts",
		} {
			if _, err := raw.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}

		conf := accountsConfig(t, cfg)
		run := func(args ...string) result {
			t.Helper()
			return runCLI(t, "", map[string]string{"USER": "vendor-ops"}, append([]string{"accounts"}, append(args, "-config", conf)...)...)
		}
		run("list").want(t, exitFail, "older than this tokenserver needs", "tokenserver accounts migrate")
		var applied []string
		for v := prev + 1; v <= accounts.SchemaVersion(); v++ {
			applied = append(applied, strconv.Itoa(v))
		}
		run("migrate").want(t, exitOK, fmt.Sprintf("schema migrated to version %d (applied %s)", accounts.SchemaVersion(), strings.Join(applied, ", ")))
		run("channels", "list").want(t, exitOK, "lts-2025  1", "stable    1")
		run("show", "old@example.com").want(t, exitOK, "lts-2025, stable")
		run("grant", "old@example.com", "stabel").want(t, exitNotFound, `unknown channel "stabel"; did you mean "stable"? (known channels: lts-2025, stable)`)
		run("add", "new@example.com", "--channels", "stable").want(t, exitOK, "created new@example.com")
		if lic, err := db.NewBackend(accounts.BackendOptions{}).Lookup(ctx, "old-token"); err != nil || !lic.Holds("stable") || !lic.Holds("lts-2025") {
			t.Errorf("the old account after the migration: %+v %v", lic, err)
		}
	})
}
