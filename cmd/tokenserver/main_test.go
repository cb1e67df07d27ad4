package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/buildinfo"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

// watchWriter collects output and signals once it has seen want.
type watchWriter struct {
	mu   sync.Mutex
	b    strings.Builder
	want string
	seen chan struct{}
	once sync.Once
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if strings.Contains(w.b.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// testFiles writes a signing key and an empty licence file into a temp
// dir; write adds more files there.
func testFiles(t *testing.T) (write func(name, content string) string, key, lic string) {
	t.Helper()
	dir := t.TempDir()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	write = func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key = write("token.key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	lic = write("licenses.yaml", "accounts: []\n")
	return write, key, lic
}

func TestRunServesAndStops(t *testing.T) {
	t.Parallel()
	write, key, lic := testFiles(t)
	cfg := write("config.yaml", "listen: 127.0.0.1:0\nmetrics: {listen: 127.0.0.1:0}\nissuer: i\nservice: s\nsigning_key: "+key+"\nlicenses: {file: "+lic+"}\n")
	// compose.yaml's form: references to the environment, with defaults.
	envCfg := write("env.yaml", "listen: ${RG_TEST_UNSET_LISTEN:-127.0.0.1:0}\nmetrics: {listen: 127.0.0.1:0}\nissuer: i\nservice: s\nsigning_key: "+key+"\nlicenses: {file: "+lic+"}\n")

	for _, args := range [][]string{{"-config", cfg}, {"serve", "-config", cfg}, {"serve", "-expand-env", "-config", envCfg}} {
		ctx, cancel := context.WithCancel(context.Background())
		out := &watchWriter{want: "token service listening", seen: make(chan struct{})}
		done := make(chan int, 1)
		go func() { done <- run(ctx, args, out, out) }()
		select {
		case <-out.seen:
		case code := <-done:
			t.Fatalf("%v: exited %d early: %s", args, code, out)
		case <-time.After(10 * time.Second):
			t.Fatalf("%v: not listening: %s", args, out)
		}
		// The operators' listener serves the build_info gauge.
		i := buildinfo.Read()
		want := fmt.Sprintf("tokenserver_build_info{commit=%q,go_version=%q,version=%q} 1", i.Commit, i.GoVersion, i.Version)
		if got := testutil.OpsMetric(t, out, "tokenserver_build_info"); got != want {
			t.Errorf("%v: /metrics: %q, want %q", args, got, want)
		}
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("%v: exit %d after shutdown: %s", args, code, out)
		}
		// The operators' listener ran beside the service's one.
		if !strings.Contains(out.String(), `"msg":"metrics listening"`) {
			t.Errorf("%v: no metrics listener: %s", args, out)
		}
	}
}

func TestRunRefusesBadInvocations(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("token_ttl: 1s\nlicenses: {file: x, http: {url: 'https://x/'}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unset := filepath.Join(dir, "unset.yaml")
	if err := os.WriteFile(unset, []byte("service: s\nissuer: ${RG_TEST_UNSET_ISSUER}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	checkInvocations(t, []invocation{
		{nil, 2, []string{"usage"}},
		{[]string{"-config"}, 2, []string{"flag needs an argument"}},
		{[]string{"-config", filepath.Join(dir, "missing.yaml")}, 1, []string{"missing.yaml"}},
		// Every problem of the file in one message.
		{[]string{"serve", "-config", bad}, 1, []string{"issuer: required", "service: required", "signing_key: required", "token_ttl", "exactly one of file, http and sql"}},
		// -expand-env: a reference to nothing is named, with its line.
		{[]string{"serve", "-expand-env", "-config", unset}, 1, []string{"unset.yaml: -expand-env: line 2: ${RG_TEST_UNSET_ISSUER} is not set"}},
	})
}

func TestCheckConfig(t *testing.T) {
	t.Parallel()
	write, key, lic := testFiles(t)
	dir := filepath.Dir(key)
	good := write("good.yaml", "issuer: i\nservice: s\nsigning_key: "+key+"\nlicenses: {file: "+lic+"}\n")
	// Values fine, but the files it names are missing or broken.
	files := write("files.yaml", "issuer: i\nservice: s\nsigning_key: "+filepath.Join(dir, "absent.key")+
		"\npublish_keys: ["+lic+"]\nrefresh_token_key_file: "+filepath.Join(dir, "absent.hex")+
		"\nlicenses: {file: "+filepath.Join(dir, "absent.yaml")+"}\n")
	bad := write("bad.yaml", "token_ttl: 1s\nlog_level: loud\nlicenses: {file: x, http: {url: 'https://x/'}}\n")
	// Two keys it does not know and a bad value: each problem once, and
	// not the YAML decoder's header line.
	mixed := write("mixed.yaml", "issuer: i\nservice: s\nsigning_key: "+key+"\nlicenses: {file: "+lic+", frobnicate: 1}\nlog_level: loud\nmetrics_listen: x\n")
	broken := write("broken.yaml", "issuer: [\n")
	// References, as compose's configurations hold them: replaced with
	// -expand-env, text without it.
	refs := write("refs.yaml", "issuer: i\nservice: s\nsigning_key: "+key+"\nlicenses: {file: "+lic+"}\nlog_level: ${RG_TEST_UNSET_LOG_LEVEL:-warn}\n")
	unset := write("unset.yaml", "issuer: ${RG_TEST_UNSET_ISSUER}\nservice: s\nsigning_key: "+key+"\nlicenses: {file: "+lic+"}\n")

	checkInvocations(t, []invocation{
		{[]string{"check-config", good}, 0, nil},
		{[]string{"check-config", "-skip-files", files}, 0, nil},
		{[]string{"check-config", files}, 1, []string{"4 problem(s)", "signing_key", "publish_keys", "refresh_token_key_file", "licenses.file"}},
		{[]string{"check-config", "-skip-files", bad}, 1, []string{"issuer: required", "service: required", "signing_key: required", "token_ttl", "log_level", "exactly one of file, http and sql"}},
		{[]string{"check-config", filepath.Join(dir, "missing.yaml")}, 1, []string{"missing.yaml"}},
		{[]string{"check-config", "-skip-files", mixed}, 1, []string{"3 problem(s)", "field frobnicate not found", "log_level", "field metrics_listen not found"}},
		{[]string{"check-config", "-skip-files", broken}, 1, []string{"1 problem(s)"}},
		{[]string{"check-config", "-expand-env", refs}, 0, nil},
		{[]string{"check-config", refs}, 1, []string{"1 problem(s)", "log_level"}},
		{[]string{"check-config", "-expand-env", unset}, 1, []string{"1 problem(s)", "line 1: ${RG_TEST_UNSET_ISSUER} is not set"}},
		{[]string{"check-config"}, 2, []string{"tokenserver check-config: missing FILE", "usage: tokenserver check-config [-skip-files] [-expand-env] FILE"}},
		{[]string{"check-config", "a", "b"}, 2, []string{`tokenserver check-config: unexpected argument "b"`, "usage: tokenserver check-config"}},
	})
}

// invocation is a command line with the exit code and output it must give.
type invocation struct {
	args []string
	code int
	want []string
}

func checkInvocations(t *testing.T, cases []invocation) {
	t.Helper()
	for _, tc := range cases {
		var out watchWriter
		out.seen = make(chan struct{})
		if code := run(context.Background(), tc.args, &out, &out); code != tc.code {
			t.Errorf("%v: exit %d, want %d: %s", tc.args, code, tc.code, out.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: output lacks %q: %s", tc.args, w, out.String())
			}
		}
	}
}

// TestHelpAndVersion: -h lists every form of the command line (each
// subcommand), and the version is printed on stdout every way.
func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	var stdout, stderr strings.Builder
	if code := run(context.Background(), []string{"-h"}, &stdout, &stderr); code != 0 {
		t.Errorf("-h: exit %d", code)
	}
	for _, want := range []string{"tokenserver [serve] -config FILE", "keygen", "inspect", "token", "healthcheck", "pull-secret", "accounts", "accounts|usage [flags]",
		"tokenserver check-config", "tokenserver version", "-version"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("-h lacks %q:\n%s", want, stderr.String())
		}
	}
	want := "tokenserver " + buildinfo.Read().String() + "\n"
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}, {"serve", "-version"}} {
		stdout.Reset()
		if code := run(context.Background(), args, &stdout, &stderr); code != 0 || stdout.String() != want {
			t.Errorf("%v: exit %d, stdout %q, want %q", args, code, stdout.String(), want)
		}
	}
}

// Every command group answers help on stdout; a bare tokenserver names
// what is missing before the usage.
func TestGroupHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"help"}, {"accounts", "--help"}, {"accounts", "token", "-h"}, {"accounts", "token", "--help"}} {
		var stdout, stderr strings.Builder
		if code := run(context.Background(), args, &stdout, &stderr); code != 0 || stdout.Len() == 0 || strings.Contains(stdout.String()+stderr.String(), "unknown command") {
			t.Errorf("%v: exit %d\nstdout: %s\nstderr: %s", args, code, stdout.String(), stderr.String())
		}
	}
	checkInvocations(t, []invocation{
		{nil, 2, []string{"tokenserver: missing -config FILE\n\nusage: tokenserver [serve] -config FILE"}},
		{[]string{"frob"}, 2, []string{"tokenserver: unknown command \"frob\"\n\nusage:"}},
		{[]string{"accounts", "token"}, 2, []string{"tokenserver accounts token: missing command (add, revoke, rotate)\n"}},
		{[]string{"accounts", "add", "--channels", "stable", "-config", "F"}, 2, []string{"tokenserver accounts add: missing e-mail address\n\nusage: tokenserver accounts add EMAIL"}},
	})
}

// The accounts commands read -config with the service's own loader: the
// file is checked as the service checks it.
func TestRunAccounts(t *testing.T) {
	t.Parallel()
	write, key, lic := testFiles(t)
	dir := filepath.Dir(key)
	sql := write("sql.yaml", "issuer: i\nservice: s\nsigning_key: "+key+"\nlicenses:\n  sql: {driver: sqlite, dsn: "+filepath.Join(dir, "accounts.db")+"}\n")
	file := write("file.yaml", "issuer: i\nservice: s\nsigning_key: "+key+"\nlicenses: {file: "+lic+"}\n")
	bad := write("bad.yaml", "service: s\nsigning_key: "+key+"\nlicenses:\n  sql: {driver: sqlite, dsn: "+filepath.Join(dir, "accounts.db")+"}\n")
	checkInvocations(t, []invocation{
		{[]string{"accounts"}, 2, []string{"tokenserver accounts migrate"}},
		{[]string{"accounts", "migrate", "-config", sql}, 0, nil}, // (what it prints goes to os.Stdout)
		{[]string{"accounts", "list", "-config", sql}, 0, nil},
		{[]string{"accounts", "list", "-config", file}, 1, []string{"licenses.sql is not configured"}},
		{[]string{"accounts", "list", "-config", bad}, 1, []string{"issuer: required"}},
		{[]string{"usage", "-config", sql}, 0, nil},
		{[]string{"usage", "-config", file}, 1, []string{"licenses.sql is not configured"}},
		{[]string{"usage", "-config", bad}, 1, []string{"issuer: required"}},
	})
}

// The service runs with defaultGCPercent unless GOGC says otherwise.
func TestGCPercent(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	if p, ok := gcPercent(env(nil)); !ok || p != defaultGCPercent {
		t.Errorf("GOGC unset: %d, %v", p, ok)
	}
	for _, v := range []string{"100", "off", ""} {
		if _, ok := gcPercent(env(map[string]string{"GOGC": v})); ok {
			t.Errorf("GOGC=%q overridden", v)
		}
	}
}
