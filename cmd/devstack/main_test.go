package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/buildinfo"
	"github.com/acme/registry-gateway/internal/embedreg"
)

// TestSeed is compose's seed job against an htpasswd registry like
// registry:3, with the committed credential.
func TestSeed(t *testing.T) {
	t.Parallel()
	reg, err := embedreg.New(t.Context(), embedreg.Options{
		RootDir:  t.TempDir(),
		Htpasswd: &embedreg.HtpasswdAuth{Realm: "upstream", Path: "../../deploy/upstream.htpasswd"},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	defer srv.Close()

	var out, errb bytes.Buffer
	code := run(t.Context(), []string{"seed", "-registry", srv.URL, "-password-file", "../../deploy/upstream.password"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, ref := range []string{"beta/hello:1.0", "beta/hello:latest", "stable/hello:1.0", "stable/hello:latest"} {
		if !strings.Contains(out.String(), "pushed "+host+"/"+ref+" sha256:") {
			t.Errorf("output lacks %s:\n%s", ref, out.String())
		}
	}

	wrong := filepath.Join(t.TempDir(), "pw")
	_ = os.WriteFile(wrong, []byte("wrong\n"), 0o600)
	if code := run(t.Context(), []string{"seed", "-registry", srv.URL, "-password-file", wrong}, &out, &errb); code != 1 {
		t.Errorf("wrong password: exit %d", code)
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	for _, args := range [][]string{{"-bogus"}, {"seed", "-bogus"}, {"-log-level", "loud"}} {
		if code := run(context.Background(), args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d", args, code)
		}
	}
}

// TestHelpAndVersion: -h lists every form of the command line (seed,
// version), and the version is printed on stdout every way.
func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, &out, &errb); code != 0 {
		t.Errorf("-h: exit %d", code)
	}
	for _, want := range []string{"devstack [flags]", "devstack seed", "devstack version", "-licenses", "-version"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("-h lacks %q:\n%s", want, errb.String())
		}
	}
	want := "devstack " + buildinfo.Read().String() + "\n"
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		out.Reset()
		if code := run(context.Background(), args, &out, &errb); code != 0 || out.String() != want {
			t.Errorf("%v: exit %d, stdout %q, want %q", args, code, out.String(), want)
		}
	}
}

// TestRunStops: the stack comes up from the committed configuration, prints
// its banner, and stops cleanly when the context ends (Ctrl-C); with -tls
// over HTTPS.
func TestRunStops(t *testing.T) {
	t.Parallel()
	for name, extra := range map[string][]string{"http": nil, "https": {"-tls"}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testRunStops(t, extra)
		})
	}
}

func testRunStops(t *testing.T, extra []string) {
	dir := t.TempDir()
	for _, f := range []string{"tokenserver.yaml", "gateway.yaml", "licenses.yaml", "upstream.htpasswd", "upstream.password"} {
		data, err := os.ReadFile(filepath.Join("../../deploy", f))
		if err != nil {
			t.Fatal(err)
		}
		_ = os.MkdirAll(filepath.Join(dir, "deploy"), 0o755)
		if err := os.WriteFile(filepath.Join(dir, "deploy", f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	out := &signalWriter{ready: make(chan struct{})}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"-dir", dir, "-gateway-addr", "127.0.0.1:0", "-tokenserver-addr", "127.0.0.1:0",
			"-upstream-addr", "127.0.0.1:0", "-log-level", "error"}, extra...), out, &bytes.Buffer{})
	}()
	select {
	case <-out.ready:
	case code := <-done:
		t.Fatalf("exit %d before the banner", code)
	case <-time.After(30 * time.Second):
		t.Fatal("no banner")
	}
	banner := out.String()
	if tls := len(extra) > 0; tls != strings.Contains(banner, "https://localhost:") || tls != strings.Contains(banner, filepath.Join(dir, "certs", "dev-ca", "ca.crt")) {
		t.Errorf("banner (tls %v):\n%s", tls, banner)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after Ctrl-C", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("did not stop")
	}
}

// signalWriter closes ready once the banner has been written.
type signalWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	once  sync.Once
	ready chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if strings.Contains(w.buf.String(), "Ctrl-C stops it") {
		w.once.Do(func() { close(w.ready) })
	}
	return n, err
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
