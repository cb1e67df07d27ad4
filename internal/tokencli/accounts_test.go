package tokencli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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

		r := run("add", "alice@example.com", "--channels", "stable,beta", "--expires", "2027-06-30")
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
		run("grant", "alice@example.com", "lts-2025").want(t, exitOK, "now holds: beta, lts-2025, stable")
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
		run("show", "alice@example.com").want(t, exitOK, "state     active", "lts-2025, stable", "TOKEN ID", token[:12])
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

		lic := filepath.Join(t.TempDir(), "licenses.yaml")
		os.WriteFile(lic, []byte("accounts:\n  - username: carol@example.com\n    token_sha256: \""+license.HashToken("carol")+"\"\n    channels: [stable]\n"), 0o600)
		run("import", lic).want(t, exitOK, "imported 1 accounts")
		run("import", lic).want(t, exitConflict, "exist already: carol@example.com")
		run("import", filepath.Join(t.TempDir(), "missing.yaml")).want(t, exitUsage, "missing.yaml")

		r = run("audit")
		r.want(t, exitOK, "WHEN", "vendor-ops", "script", "migrate", "token.rotate", "import")
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
	if _, _, err := db.Add(t.Context(), "x", "a@example.com", []string{"stable"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	runCLI(t, "", nil, "accounts", "list", "-config", accountsConfig(t, cfg)).want(t, exitOK, "a@example.com")
}
