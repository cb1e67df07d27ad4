package tokencli

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
)

// withoutExportedAt drops the line of the export time, so that two exports
// of the same rows compare equal.
func withoutExportedAt(doc string) string {
	var out []string
	for _, l := range strings.Split(doc, "\n") {
		if !strings.Contains(l, `"exported_at"`) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// `accounts export` writes a file of mode 0600 and prints no hash;
// `accounts import` restores it into a new database of either kind, says
// so, changes nothing the second time, and refuses a database that
// differs.
func TestAccountsExportImport(t *testing.T) {
	t.Parallel()
	srcCfg := accountstest.SQLite(t)
	src := accountstest.Open(t, srcCfg, accounts.Options{})
	accountstest.Populate(t, src)
	srcConf := accountsConfig(t, srcCfg)
	env := map[string]string{"USER": "vendor-ops"}
	run := func(conf string, args ...string) result {
		t.Helper()
		return runCLI(t, "", env, append([]string{"accounts"}, append(args, "-config", conf)...)...)
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "accounts.json")
	r := run(srcConf, "export", file)
	r.want(t, exitOK, "exported 4 accounts, 6 API token hashes, 3 channels, 5 grants", "audit entries, 3 admin key hashes to", "readable by you alone")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(file); err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600) {
		t.Errorf("export file: %v %v, want mode 0600", fi.Mode(), err)
	}
	doc, err := accounts.ReadExport(bytes.NewReader(data), accounts.MaxExportBytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range doc.APITokens {
		if strings.Contains(r.stdout+r.stderr, k.TokenSHA256) {
			t.Fatal("export printed a token hash")
		}
	}
	if n, _ := os.ReadDir(dir); len(n) != 1 {
		t.Errorf("the export left %d files behind", len(n))
	}

	// An existing file is kept unless --force; - writes to a pipe.
	run(srcConf, "export", file).want(t, exitConflict, "accounts.json exists: nothing written (--force replaces it)")
	run(srcConf, "export", file, "--force", "--json").want(t, exitOK, `"file": "`+file+`"`, `"api_tokens": 6`, `"admin_keys": 3`)
	piped := run(srcConf, "export", "-")
	piped.want(t, exitOK, `"format": "registry-gateway-accounts"`)
	if withoutExportedAt(piped.stdout) != withoutExportedAt(string(data)) {
		t.Errorf("export - differs from the file:\n%s", piped.stdout)
	}
	run(srcConf, "export").want(t, exitUsage, "tokenserver accounts export: missing output file")
	run(srcConf, "export", filepath.Join(dir, "no", "such", "dir.json")).want(t, exitFail, "no such file or directory")

	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		conf := accountsConfig(t, cfg)
		run(conf, "import", file).want(t, exitFail, "tokenserver accounts migrate")
		run(conf, "migrate").want(t, exitOK, "schema migrated")
		run(conf, "import", file).want(t, exitOK, "restored 4 accounts, 6 API token hashes, 3 channels, 5 grants", "3 admin key hashes", "ids, times and token hashes as they were")
		run(conf, "import", file).want(t, exitOK, "nothing changed: the database holds "+file+" already")
		run(conf, "import", file, "--json").want(t, exitOK, `"unchanged": true`)
		again := filepath.Join(t.TempDir(), "again.json")
		run(conf, "export", again).want(t, exitOK)
		b, _ := os.ReadFile(again)
		if withoutExportedAt(string(b)) != withoutExportedAt(string(data)) {
			t.Errorf("export of the restored database differs:\n%s", b)
		}
		run(conf, "show", "dave@example.com").want(t, exitOK, "dave@example.com", "(imported)")
		run(conf, "show", "carol@example.com").want(t, exitOK, "rgw_")

		run(conf, "add", "frank@example.com", "--channels", "stable").want(t, exitOK)
		run(conf, "import", file).want(t, exitConflict, "the database is not empty and differs from the document", "nothing changed")
	})
}

// Every document an import refuses exits 2 naming the file and what is
// wrong, and changes nothing; a licence file is still a licence file,
// also in YAML's flow style.
func TestAccountsImportRefuses(t *testing.T) {
	t.Parallel()
	cfg := accountstest.SQLite(t)
	accountstest.Open(t, cfg, accounts.Options{})
	conf := accountsConfig(t, cfg)
	run := func(args ...string) result {
		t.Helper()
		return runCLI(t, "", nil, append([]string{"accounts"}, append(args, "-config", conf)...)...)
	}
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	empty := `"accounts": [], "api_tokens": [], "channels": [], "channel_grants": [], "admin_audit": []`
	for _, tc := range []struct{ name, content, want string }{
		{"newer.json", `{"format": "registry-gateway-accounts", "version": 2, ` + empty + `}`, "version 2, newer than this tokenserver reads (1)"},
		{"other.json", `{"format": "something", "version": 1, ` + empty + `}`, `"format" is not "registry-gateway-accounts"`},
		{"keys.json", `{"format": "registry-gateway-accounts", "version": 1, "exported_at": "2026-11-29T10:00:00Z", "webhooks": [], ` + empty + `}`, `unknown section "webhooks"`},
		{"partial.json", `{"format": "registry-gateway-accounts", "version": 1, "exported_at": "2026-11-29T10:00:00Z", "accounts": []}`, `missing "api_tokens", "channels", "channel_grants", "admin_audit"`},
		{"row.json", `{"format": "registry-gateway-accounts", "version": 1, "exported_at": "2026-11-29T10:00:00Z", ` + strings.Replace(empty, `"channels": []`, `"channels": [{"name": "Stable", "description": "", "created": "2026-11-29T10:00:00Z"}]`, 1) + `}`, `channels[0].name: "Stable" is not a channel name`},
	} {
		p := write(tc.name, tc.content)
		run("import", p).want(t, exitUsage, tc.name, tc.want)
	}
	run("list").want(t, exitOK, "no accounts")
	run("channels", "list").want(t, exitOK, "no channels")

	// A licence file in YAML's flow style is not taken for an export.
	flow := write("flow.yaml", `{accounts: [{username: carol@example.com, token_sha256: "`+license.HashToken("carol")+`", channels: [stable]}]}`)
	run("import", flow).want(t, exitOK, "imported 1 accounts")
}

// The bound on what import reads.
func TestAccountsImportTooLarge(t *testing.T) {
	// Not parallel: it lowers the package's bound.
	defer func(n int64) { maxImportBytes = n }(maxImportBytes)
	maxImportBytes = 64
	cfg := accountstest.SQLite(t)
	accountstest.Open(t, cfg, accounts.Options{})
	p := filepath.Join(t.TempDir(), "big.json")
	os.WriteFile(p, []byte(`{"format": "registry-gateway-accounts", "version": 1, "accounts": [`+strings.Repeat(" ", 100)+`]}`), 0o600)
	runCLI(t, "", nil, "accounts", "import", p, "-config", accountsConfig(t, cfg)).want(t, exitUsage, "big.json: larger than 64 bytes")
}

// The export is not written to a terminal: it holds the token hashes.
func TestAccountsExportNotToTerminal(t *testing.T) {
	t.Parallel()
	pty, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal to test with: %v", err)
	}
	defer pty.Close()
	if !isTerminal(pty) {
		t.Skip("/dev/ptmx is not a terminal here")
	}
	cfg := accountstest.SQLite(t)
	accountstest.Open(t, cfg, accounts.Options{})
	var errb bytes.Buffer
	e := &env{
		stdin: strings.NewReader(""), stdout: pty, stderr: &errb,
		now: func() time.Time { return t0 }, client: &http.Client{}, getenv: func(string) string { return "" },
		accountsConfig: loadAccounts,
	}
	if code := e.run(context.Background(), []string{"accounts", "export", "-", "-config", accountsConfig(t, cfg)}); code != exitUsage {
		t.Errorf("exit %d, want %d: %s", code, exitUsage, errb.String())
	}
	if !strings.Contains(errb.String(), "not to a terminal") {
		t.Errorf("stderr: %s", errb.String())
	}
}
