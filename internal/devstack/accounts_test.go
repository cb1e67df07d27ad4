package devstack

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acme/registry-gateway/internal/tokencli"
	"github.com/acme/registry-gateway/internal/tokenserver"
)

// `make run LICENSES=sql` seeds the channel catalogue with stable and beta
// and adds the demo account, again on a second run (its token rotated);
// the accounts commands the banner prints then work as printed.
func TestSQLDemoAccount(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(repoRoot, SQLConfig))
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte("dsn: data/accounts.db"), []byte("dsn: "+filepath.Join(dir, "accounts.db")), 1)
	config := filepath.Join(dir, "tokenserver-sql.yaml")
	if err := os.WriteFile(config, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(line string) (string, int) {
		t.Helper()
		var out bytes.Buffer
		code := tokencli.Run(t.Context(), strings.Fields(line), strings.NewReader(""), &out, &out, tokenserver.AccountsConfig)
		return out.String(), code
	}

	var log bytes.Buffer
	first, err := SQLDemoAccount(t.Context(), config, &log)
	if err != nil || !strings.HasPrefix(first, "rgw_") {
		t.Fatalf("first run: %q %v\n%s", first, err, log.String())
	}
	second, err := SQLDemoAccount(t.Context(), config, io.Discard)
	if err != nil || !strings.HasPrefix(second, "rgw_") || second == first {
		t.Fatalf("second run: %q %v", second, err)
	}

	out, code := cli("accounts channels list -config " + config)
	if code != 0 || !strings.Contains(out, "beta     0") || !strings.Contains(out, "previews") ||
		!strings.Contains(out, "stable   1") || !strings.Contains(out, "released builds") {
		t.Errorf("channels after two runs: exit %d\n%s", code, out)
	}
	out, code = cli("accounts show " + DemoUser + " -config " + config)
	if code != 0 || !strings.Contains(out, "channels    stable\n") {
		t.Errorf("demo account: exit %d\n%s", code, out)
	}

	st := &Stack{AccountsConfig: config, Root: dir, BinDir: filepath.Join(dir, "bin")}
	var n int
	for _, c := range st.accountsCommands() {
		// cd ROOT && BIN/tokenserver …: the configuration's relative paths
		// are the working directory's (this test's DSN is absolute, so the
		// lines run here without the cd).
		rest, ok := strings.CutPrefix(c.Line, "cd "+dir+" && ")
		words := strings.Fields(rest)
		if !ok || words[0] != filepath.Join(dir, "bin", "tokenserver") {
			t.Fatalf("%s: not cd %s && %s/bin/tokenserver", c.Line, dir, dir)
		}
		n++
		if out, code := cli(strings.Join(words[1:], " ")); code != 0 {
			t.Errorf("%s: exit %d\n%s", c.Line, code, out)
		}
	}
	if n == 0 {
		t.Error("no accounts commands printed")
	}
}
