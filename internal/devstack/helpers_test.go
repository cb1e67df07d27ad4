package devstack

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// repoRoot is where the committed configuration lives, seen from this
// package's directory.
const repoRoot = "../.."

// committed are the demo files Start reads, copied into each test's
// directory so that tests never write keys or data into the repository.
var committed = []string{
	"deploy/tokenserver.yaml",
	"deploy/gateway.yaml",
	"deploy/licenses.yaml",
	"deploy/upstream.htpasswd",
	"deploy/upstream.password",
}

// withTLS is the stack of `make run TLS=1`.
func withTLS(o *Options) { o.TLS = true }

// modes are the two ways the stack runs, for tests that run the printed
// commands in both.
var modes = []struct {
	name string
	mod  func(*Options)
}{{"http", func(*Options) {}}, {"https", withTLS}}

// copyDeploy copies the committed demo configuration into a new directory
// and returns it.
func copyDeploy(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range committed {
		data, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// testOptions are Options for the committed configuration in dir, on free
// ports.
func testOptions(dir string) Options {
	return Options{
		Dir:             dir,
		GatewayAddr:     "127.0.0.1:0",
		TokenServerAddr: "127.0.0.1:0",
		UpstreamAddr:    "127.0.0.1:0",
		AdminAddr:       "127.0.0.1:0",
		Logger:          slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

// startStack runs the demo stack on free ports for the test's duration;
// mods may change the options (TLS) first.
func startStack(t *testing.T, mods ...func(*Options)) (*Stack, string) {
	t.Helper()
	dir := copyDeploy(t)
	ctx, cancel := context.WithCancel(context.Background())
	opts := testOptions(dir)
	for _, m := range mods {
		m(&opts)
	}
	st, err := Start(ctx, opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-st.done:
			if err := st.Wait(); err != nil {
				t.Errorf("stack stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("stack did not stop")
		}
	})
	return st, dir
}
