package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// CachedTool is the path of a CLI that scripts/<script> (under the
// repository at root) builds once and caches, such as helm.sh, cosign.sh or
// oras.sh: $<env> when env names a variable that is set, else what
// `scripts/<script> -path` prints. Without an executable there the test
// skips with a hint, or fails in CI (CI=true) or when the variable require
// (e.g. REQUIRE_HELM) is 1: a test that is mandatory must not pass by
// skipping.
func CachedTool(t testing.TB, root, script, env, require string) string {
	t.Helper()
	path := ""
	if env != "" {
		path = os.Getenv(env)
	}
	if path == "" {
		out, err := exec.Command(filepath.Join(root, "scripts", script), "-path").Output()
		if err != nil {
			t.Fatalf("scripts/%s -path: %v", script, err)
		}
		path = strings.TrimSpace(string(out))
	}
	if fi, err := os.Stat(path); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		msg := fmt.Sprintf("no CLI at %s: run scripts/%s once to build and cache it", path, script)
		if env != "" {
			msg += ", or set " + env
		}
		msg += "; " + require + "=1 turns this skip into a failure"
		if os.Getenv("CI") == "true" || os.Getenv(require) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}
