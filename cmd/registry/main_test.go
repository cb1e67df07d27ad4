package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/acme/registry-gateway/internal/buildinfo"
	"github.com/acme/registry-gateway/internal/devstack"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

// serve runs the command with args on a free port until the test ends and
// returns its address, read from its "registry serving" log line.
func serve(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &testutil.SyncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("exit %d after SIGTERM:\n%s", code, logs)
			}
		case <-time.After(20 * time.Second):
			t.Error("did not stop")
		}
	})
	deadline := time.After(20 * time.Second)
	for {
		for line := range strings.Lines(logs.String()) {
			var entry struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "registry serving" {
				return entry.Addr
			}
		}
		select {
		case code := <-done:
			t.Fatalf("exit %d before serving:\n%s", code, logs)
		case <-deadline:
			t.Fatalf("not serving after 20s:\n%s", logs)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestHtpasswd: the compose stack's upstream with the committed account:
// health check without credentials, the API only with them, and the demo
// images pushed (compose's seed job) and read back.
func TestHtpasswd(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "storage") // created by the command
	addr := serve(t, "-root", root, "-htpasswd", "../../deploy/upstream.htpasswd")

	if code := get(t, "http://"+addr+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	if code := get(t, "http://"+addr+"/v2/"); code != http.StatusUnauthorized {
		t.Errorf("/v2/ without credentials: %d", code)
	}
	password, err := os.ReadFile("../../deploy/upstream.password")
	if err != nil {
		t.Fatal(err)
	}
	user := "upstream"
	if _, err := devstack.Seed(t.Context(), addr, user, "wrong"); err == nil {
		t.Error("push with a wrong password accepted")
	}
	pushed, err := devstack.Seed(t.Context(), addr, user, strings.TrimSpace(string(password)))
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(addr+"/"+devstack.LicensedRepo+":1.0", name.Insecure)
	desc, err := remote.Get(ref, remote.WithContext(t.Context()),
		remote.WithAuth(&authn.Basic{Username: user, Password: strings.TrimSpace(string(password))}))
	if err != nil {
		t.Fatal(err)
	}
	if want := pushed[devstack.LicensedRepo+":1.0"]; desc.Digest.String() != want {
		t.Errorf("read back %s, pushed %s", desc.Digest, want)
	}
	if _, err := os.Stat(filepath.Join(root, "docker", "registry", "v2", "repositories", devstack.LicensedRepo)); err != nil {
		t.Errorf("not stored under -root: %v", err)
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	addr := serve(t, "-root", t.TempDir(), "-open")
	if code := get(t, "http://"+addr+"/v2/"); code != http.StatusOK {
		t.Errorf("/v2/ of an open registry: %d", code)
	}
}

// TestBadFlags: every problem is reported at once, and nothing is served.
func TestBadFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{nil, []string{"-root is required", "-htpasswd FILE is required (or -open"}},
		{[]string{"-root", "d", "-open", "-htpasswd", "f"}, []string{"exclude each other"}},
		{[]string{"-root", "d", "-htpasswd", "/nonexistent/htpasswd"}, []string{"-htpasswd: stat /nonexistent/htpasswd"}},
		{[]string{"-root", "d", "-open", "-log-level", "loud", "-registry-log-level", "loud", "extra"},
			[]string{"-log-level:", "-registry-log-level:", `unexpected arguments ["extra"]`}},
		{[]string{"-bogus"}, []string{"flag provided but not defined"}},
	} {
		var stderr strings.Builder
		if code := run(t.Context(), tc.args, io.Discard, &stderr); code != 2 {
			t.Errorf("%q: exit %d", tc.args, code)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("%q: output lacks %q:\n%s", tc.args, w, stderr.String())
			}
		}
	}
	// A port already taken: a start failure, exit 1.
	addr := serve(t, "-root", t.TempDir(), "-open")
	var stderr strings.Builder
	if code := run(t.Context(), []string{"-addr", addr, "-root", t.TempDir(), "-open"}, io.Discard, &stderr); code != 1 || !strings.Contains(stderr.String(), "address already in use") {
		t.Errorf("taken port: exit %d\n%s", code, stderr.String())
	}
}

// TestHelpAndVersion: -h shows the usage and every flag, -version among
// them, and the version is printed on stdout.
func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	var stdout, stderr strings.Builder
	if code := run(t.Context(), []string{"-h"}, &stdout, &stderr); code != 0 {
		t.Errorf("-h: exit %d", code)
	}
	for _, want := range []string{"usage: registry -root DIR", "registry -version", "-htpasswd", "-open", "-version"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("-h lacks %q:\n%s", want, stderr.String())
		}
	}
	want := "registry " + buildinfo.Read().String() + "\n"
	for _, args := range [][]string{{"--version"}, {"-version"}} {
		stdout.Reset()
		if code := run(t.Context(), args, &stdout, &stderr); code != 0 || stdout.String() != want {
			t.Errorf("%v: exit %d, stdout %q, want %q", args, code, stdout.String(), want)
		}
	}
}
