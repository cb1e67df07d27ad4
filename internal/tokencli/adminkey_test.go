package tokencli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
)

func TestAdminKeyCommands(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		conf := accountsConfig(t, cfg)
		env := map[string]string{"USER": "vendor-ops"}
		run := func(args ...string) result {
			t.Helper()
			return runCLI(t, "", env, append([]string{"accounts"}, append(args, "-config", conf)...)...)
		}
		run("migrate").want(t, exitOK)
		run("admin-key", "-h").want(t, exitOK, "admin-key add NAME --scope read|write")
		runCLI(t, "", env, "accounts", "admin-key").want(t, exitUsage, "missing command (add, list, revoke)")
		run("admin-key", "list").want(t, exitOK, "no admin keys")
		run("admin-key", "add", "crm").want(t, exitUsage, "missing --scope")
		run("admin-key", "add", "--scope", "write").want(t, exitUsage, "missing key name")
		run("admin-key", "add", "crm", "--scope", "admin").want(t, exitUsage, `scope "admin" is not read or write`)

		r := run("admin-key", "add", "crm", "--scope", "write")
		r.want(t, exitOK, "created admin key crm", "scope write, expires never", "shown only now")
		var key string
		for _, f := range strings.Fields(r.stdout) {
			if strings.HasPrefix(f, accounts.AdminKeyPrefix) && len(f) > 20 {
				key = f
			}
		}
		if key == "" {
			t.Fatalf("no key in %s", r.stdout)
		}
		run("admin-key", "add", "crm", "--scope", "read").want(t, exitConflict, "exists already")

		r = run("admin-key", "add", "support", "--scope", "read", "--expires", "2027-06-30", "--json")
		var made struct {
			accounts.AdminKey
			Key string `json:"key"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &made); err != nil || made.Name != "support" || made.Scope != "read" || !strings.HasPrefix(made.Key, accounts.AdminKeyPrefix) {
			t.Fatalf("add --json: %v %s", err, r.stdout)
		}

		r = run("admin-key", "list")
		r.want(t, exitOK, "crm", "support", "write", "read", "2027-07-01")
		if strings.Contains(r.stdout, key) || strings.Contains(r.stdout, made.Key) {
			t.Errorf("list shows a key:\n%s", r.stdout)
		}
		run("admin-key", "revoke").want(t, exitUsage, "missing key name or id")
		run("admin-key", "revoke", "crm").want(t, exitOK, "revoked admin key crm")
		run("admin-key", "revoke", "crm").want(t, exitConflict, "revoked already")
		run("admin-key", "revoke", "nobody").want(t, exitNotFound, "no admin key nobody")
		run("audit").want(t, exitOK, "admin_key.add", "admin_key.revoke", "vendor-ops")
	})
}
