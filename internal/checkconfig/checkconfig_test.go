package checkconfig

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a Checker that keeps what it was given and fails when the
// data holds "bad".
type recorder struct {
	data  string
	files bool
	calls int
}

func (r *recorder) check(path string, data []byte, files bool) error {
	r.calls++
	r.data, r.files = string(data), files
	if strings.Contains(string(data), "bad") {
		return errors.Join(errors.New(path+": first: bad"), errors.New("second: bad"))
	}
	return nil
}

func writeConf(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "svc.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// -expand-env hands the checker the file with its references replaced from
// the environment, as the service's own -expand-env reads it; without the
// flag the checker sees the text as written.
func TestExpandEnv(t *testing.T) {
	t.Setenv("RG_CHECK_URL", "https://registry.example.com")
	path := writeConf(t, "realm: ${RG_CHECK_URL}/token\nport: ${RG_CHECK_UNSET_PORT:-5000}\n")

	var r recorder
	var out, errb strings.Builder
	if code := Run("svc", []string{"-expand-env", path}, &out, &errb, r.check); code != exitOK || out.String() != "ok\n" {
		t.Fatalf("exit %d: %s%s", code, out.String(), errb.String())
	}
	if want := "realm: https://registry.example.com/token\nport: 5000\n"; r.data != want || !r.files {
		t.Errorf("checker got %q (files %v), want %q with files", r.data, r.files, want)
	}

	if code := Run("svc", []string{"-skip-files", path}, &out, &errb, r.check); code != exitOK {
		t.Fatalf("without -expand-env: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(r.data, "${RG_CHECK_URL}") || r.files {
		t.Errorf("without -expand-env the checker got %q (files %v), want the text as written without files", r.data, r.files)
	}
}

// Every reference that is not set (and has no default) is a problem of its
// own, named with its line, and the checker is not run on a half-expanded
// file.
func TestExpandEnvUnset(t *testing.T) {
	path := writeConf(t, "a: ${RG_CHECK_UNSET_A}\nb: ok\nc: ${RG_CHECK_UNSET_C}\n")
	var r recorder
	var out, errb strings.Builder
	if code := Run("svc", []string{"-expand-env", path}, &out, &errb, r.check); code != exitFail || out.Len() != 0 {
		t.Fatalf("exit %d, stdout %q", code, out.String())
	}
	for _, want := range []string{"svc: " + path + ": 2 problem(s):", "line 1: ${RG_CHECK_UNSET_A} is not set", "line 3: ${RG_CHECK_UNSET_C} is not set"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q: %s", want, errb.String())
		}
	}
	if r.calls != 0 {
		t.Errorf("the checker ran %d time(s) on a file whose references failed", r.calls)
	}
}

// The checker's problems are listed one a line; a file that cannot be read
// is one problem; usage errors exit 2.
func TestRun(t *testing.T) {
	t.Parallel()
	var r recorder
	var out, errb strings.Builder
	bad := writeConf(t, "bad: 1\n")
	if code := Run("svc", []string{bad}, &out, &errb, r.check); code != exitFail ||
		!strings.Contains(errb.String(), "2 problem(s):\n  - "+bad+": first: bad\n  - second: bad\n") {
		t.Errorf("exit %d: %s", code, errb.String())
	}
	errb.Reset()
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	if code := Run("svc", []string{"-expand-env", missing}, &out, &errb, r.check); code != exitFail ||
		!strings.Contains(errb.String(), "1 problem(s)") || !strings.Contains(errb.String(), "missing.yaml") {
		t.Errorf("missing file: exit %d: %s", code, errb.String())
	}
	for _, args := range [][]string{{}, {"a", "b"}, {"-nope", "a"}} {
		errb.Reset()
		if code := Run("svc", args, &out, &errb, r.check); code != exitUsage || !strings.Contains(errb.String(), "usage: svc check-config [-skip-files] [-expand-env] FILE") {
			t.Errorf("%q: exit %d: %s", args, code, errb.String())
		}
	}
	errb.Reset()
	if code := Run("svc", []string{"-h"}, &out, &errb, r.check); code != exitOK || !strings.Contains(errb.String(), "-expand-env") {
		t.Errorf("-h: exit %d: %s", code, errb.String())
	}
}
