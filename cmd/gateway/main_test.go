package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/buildinfo"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

func writeConfig(t *testing.T, listen string, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(priv.Public())
	pub := filepath.Join(dir, "token.pub")
	pw := filepath.Join(dir, "upstream.password")
	cfg := filepath.Join(dir, "gateway.yaml")
	for path, data := range map[string][]byte{
		pub: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
		pw:  []byte("secret\n"),
		cfg: []byte(`
listen: "` + listen + `"
metrics: {listen: "127.0.0.1:0"}
realm: "http://localhost:5000/token"
service: "registry.example.com"
issuer: "test"
access_log: false
shutdown_timeout: 2s
keys: {public_keys: ["` + pub + `"]}
upstream:
  url: "http://127.0.0.1:1"
  static: {username: puller, password_file: "` + pw + `"}
` + strings.Join(extra, "\n") + "\n"),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cfg
}

func TestRunServesAndShutsDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := writeConfig(t, addr)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	stderr := &testutil.SyncBuffer{}
	go func() { done <- run(ctx, []string{"-config", cfg}, &bytes.Buffer{}, stderr) }()

	var resp *http.Response
	testutil.WaitFor(t, "the gateway to answer", 5*time.Second, func() bool {
		resp, err = http.Get("http://" + addr + "/v2/")
		return err == nil
	})
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("Www-Authenticate"), "Bearer ") {
		t.Fatalf("GET /v2/: %d %q", resp.StatusCode, resp.Header.Get("Www-Authenticate"))
	}
	// The operators' listener serves the build_info gauge.
	if got, want := testutil.OpsMetric(t, stderr, "gateway_build_info"), buildInfoSample("gateway_build_info"); got != want {
		t.Errorf("/metrics: %q, want %q", got, want)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no shutdown")
	}
	if strings.Contains(stderr.String(), "secret") {
		t.Error("log shows the upstream password")
	}
	// The operators' listener ran beside the clients' one.
	if !strings.Contains(stderr.String(), `"msg":"metrics listening"`) {
		t.Errorf("no metrics listener: %s", stderr.String())
	}
}

// TestStopCutsStreamsCleanly: a stop that has to cut a stream still
// running at shutdown_timeout exits 0 and says, at WARN, how many streams
// it cut (finding 9); nothing at ERROR.
func TestStopCutsStreamsCleanly(t *testing.T) {
	t.Parallel()
	// A token service whose answer never ends: the stream to cut.
	streaming := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("{"))
		http.NewResponseController(w).Flush()
		close(streaming)
		<-r.Context().Done()
	}))
	t.Cleanup(ts.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := writeConfig(t, addr, `token_endpoint: "`+ts.URL+`/token"`)
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, bytes.Replace(data, []byte("shutdown_timeout: 2s"), []byte("shutdown_timeout: 200ms"), 1), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	stderr := &testutil.SyncBuffer{}
	go func() { done <- run(ctx, []string{"-config", cfg}, &bytes.Buffer{}, stderr) }()
	var resp *http.Response
	testutil.WaitFor(t, "the gateway to answer", 5*time.Second, func() bool {
		resp, err = http.Get("http://" + addr + "/token")
		return err == nil
	})
	defer resp.Body.Close()
	<-streaming
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after cutting a stream, want 0: %s", code, stderr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no shutdown")
	}
	log := stderr.String()
	if !strings.Contains(log, `"level":"WARN","msg":"shutdown_timeout reached: streams cut","streams":1`) {
		t.Errorf("no WARN naming one cut stream: %s", log)
	}
	if strings.Contains(log, `"level":"ERROR"`) {
		t.Errorf("ERROR line on a clean stop: %s", log)
	}
}

func TestRunCheckAndErrors(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, "127.0.0.1:0")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-config", cfg, "-check"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "ok") {
		t.Errorf("-check: %d %s %s", code, out.String(), errb.String())
	}
	if code := run(context.Background(), nil, &out, &errb); code != 2 {
		t.Errorf("no flags: %d", code)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(bad, []byte("listen: x\n"), 0o600)
	errb.Reset()
	if code := run(context.Background(), []string{"-config", bad}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "realm") || !strings.Contains(errb.String(), "upstream") {
		t.Errorf("bad config: %d %s", code, errb.String())
	}
}

// -expand-env reads compose.yaml's form of the file: the realm from the
// environment. Without the flag the reference is text (and no URL); with
// it unset, the error names it.
func TestRunExpandEnv(t *testing.T) {
	data, err := os.ReadFile(writeConfig(t, "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	realm := regexp.MustCompile(`(?m)^realm: .*$`)
	if !realm.Match(data) {
		t.Fatalf("no realm in\n%s", data)
	}
	cfg := filepath.Join(t.TempDir(), "env.yaml")
	if err := os.WriteFile(cfg, realm.ReplaceAllLiteral(data, []byte("realm: ${RG_TEST_GATEWAY_URL}/token")), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RG_TEST_GATEWAY_URL", "http://localhost:6000")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-config", cfg, "-check", "-expand-env"}, &out, &errb); code != 0 {
		t.Errorf("-expand-env: %d %s", code, errb.String())
	}
	errb.Reset()
	if code := run(context.Background(), []string{"-config", cfg, "-check"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "realm") {
		t.Errorf("without -expand-env: %d %s", code, errb.String())
	}
	t.Setenv("RG_TEST_GATEWAY_URL", "")
	errb.Reset()
	if code := run(context.Background(), []string{"-config", cfg, "-check", "-expand-env"}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "${RG_TEST_GATEWAY_URL} is not set") {
		t.Errorf("unset: %d %s", code, errb.String())
	}
}

func TestRunReport(t *testing.T) {
	t.Parallel()
	log := filepath.Join(t.TempDir(), "gateway.log")
	line := `{"time":"2026-12-01T10:00:00Z","msg":"request","method":"GET","route":"manifest","status":200,"bytes":5,"subject":"alice@example.com","repository":"stable/app","reference":"1.4.2"}` + "\n"
	if err := os.WriteFile(log, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"report", "--format", "csv", log}, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "alice@example.com,stable/app,1.4.2,,1,") {
		t.Errorf("exit %d: %s%s", code, out.String(), errb.String())
	}
}

func TestCheckConfig(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, "127.0.0.1:0")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"check-config", cfg}, &out, &errb); code != 0 || strings.TrimSpace(out.String()) != "ok" {
		t.Fatalf("good config: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}

	// The files it names are loaded: a missing password file and a public
	// key that is not PEM are both listed, and -skip-files ignores them.
	dir := filepath.Dir(cfg)
	if err := os.Remove(filepath.Join(dir, "upstream.password")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "token.pub"), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	code := run(context.Background(), []string{"check-config", cfg}, &out, &errb)
	if code != 1 || out.Len() != 0 {
		t.Errorf("missing files: exit %d, stdout %q", code, out.String())
	}
	for _, want := range []string{"2 problem(s)", "keys.public_keys", "upstream.static.password_file"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("missing files: stderr lacks %q: %s", want, errb.String())
		}
	}
	out.Reset()
	if code := run(context.Background(), []string{"check-config", "-skip-files", cfg}, &out, &errb); code != 0 || strings.TrimSpace(out.String()) != "ok" {
		t.Errorf("-skip-files: exit %d, stdout %q", code, out.String())
	}

	// Every problem of the values at once, files or not.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(bad, []byte("listen: x\nleeway: 1h\n"), 0o600)
	errb.Reset()
	if code := run(context.Background(), []string{"check-config", "-skip-files", bad}, &out, &errb); code != 1 {
		t.Errorf("bad config: exit %d", code)
	}
	for _, want := range []string{"listen", "realm", "issuer", "leeway", "upstream"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("bad config: stderr lacks %q: %s", want, errb.String())
		}
	}
	// Keys it does not know and values, all in one run: each problem once,
	// and not the YAML decoder's header line.
	mixed := writeConfig(t, "127.0.0.1:0", "frobnicate: 1", "log_level: loud", "metrics_listen: x")
	errb.Reset()
	if code := run(context.Background(), []string{"check-config", "-skip-files", mixed}, &out, &errb); code != 1 {
		t.Errorf("unknown keys and a bad value: exit %d", code)
	}
	for _, want := range []string{"3 problem(s)", "field frobnicate not found", `log_level: "loud"`, "field metrics_listen not found"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("unknown keys and a bad value: stderr lacks %q: %s", want, errb.String())
		}
	}
	if strings.Contains(errb.String(), "unmarshal errors") {
		t.Errorf("the decoder's header line counted as a problem: %s", errb.String())
	}
	// -expand-env: references are replaced as the service's own
	// -expand-env does (compose's configurations); without it they are
	// text, and a reference to nothing is named with its line.
	refs := writeConfig(t, "127.0.0.1:0", "log_level: ${RG_TEST_UNSET_LOG_LEVEL:-debug}")
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"check-config", "-expand-env", refs}, &out, &errb); code != 0 || strings.TrimSpace(out.String()) != "ok" {
		t.Errorf("-expand-env: exit %d: %s%s", code, out.String(), errb.String())
	}
	errb.Reset()
	if code := run(context.Background(), []string{"check-config", refs}, &out, &errb); code != 1 || !strings.Contains(errb.String(), `log_level: "${RG_TEST_UNSET_LOG_LEVEL:-debug}"`) {
		t.Errorf("references without -expand-env: exit %d: %s", code, errb.String())
	}
	unset := writeConfig(t, "127.0.0.1:0", "log_level: ${RG_TEST_UNSET_LOG_LEVEL}")
	errb.Reset()
	if code := run(context.Background(), []string{"check-config", "-expand-env", unset}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "line 13: ${RG_TEST_UNSET_LOG_LEVEL} is not set") {
		t.Errorf("-expand-env, unset: exit %d: %s", code, errb.String())
	}
	// A file that does not parse is one problem.
	broken := filepath.Join(t.TempDir(), "broken.yaml")
	_ = os.WriteFile(broken, []byte("listen: [\n"), 0o600)
	errb.Reset()
	if code := run(context.Background(), []string{"check-config", "-skip-files", broken}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "1 problem(s)") {
		t.Errorf("syntax error: exit %d: %s", code, errb.String())
	}

	for _, tc := range []struct {
		args []string
		want string // the line naming what is wrong, before the usage
	}{
		{[]string{"check-config"}, "gateway check-config: missing FILE"},
		{[]string{"check-config", "a", "b"}, `gateway check-config: unexpected argument "b"`},
		{[]string{"check-config", "-nope", cfg}, "flag provided but not defined: -nope"},
	} {
		errb.Reset()
		if code := run(context.Background(), tc.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), tc.want) || !strings.Contains(errb.String(), "usage: gateway check-config") {
			t.Errorf("%v: exit %d, want 2 with %q and the usage: %s", tc.args, code, tc.want, errb.String())
		}
	}
}

// TestHelpAndVersion: -h lists every form of the command line, and the
// version is printed on stdout both ways.
func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, &out, &errb); code != 0 {
		t.Errorf("-h: exit %d", code)
	}
	for _, want := range []string{"gateway -config FILE", "gateway check-config", "gateway report", "gateway version", "-check", "-version"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("-h lacks %q:\n%s", want, errb.String())
		}
	}
	want := "gateway " + buildinfo.Read().String() + "\n"
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		out.Reset()
		if code := run(context.Background(), args, &out, &errb); code != 0 || out.String() != want {
			t.Errorf("%v: exit %d, stdout %q, want %q", args, code, out.String(), want)
		}
	}
}

// buildInfoSample is the /metrics line of the build_info gauge name.
func buildInfoSample(name string) string {
	i := buildinfo.Read()
	return fmt.Sprintf("%s{commit=%q,go_version=%q,version=%q} 1", name, i.Commit, i.GoVersion, i.Version)
}
