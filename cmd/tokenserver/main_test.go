package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
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

func TestRunServesAndStops(t *testing.T) {
	dir := t.TempDir()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := write("token.key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	lic := write("licenses.yaml", "accounts: []\n")
	cfg := write("config.yaml", "listen: 127.0.0.1:0\nissuer: i\nservice: s\nsigning_key: "+key+"\nlicenses: {file: "+lic+"}\n")

	for _, args := range [][]string{{"-config", cfg}, {"serve", "-config", cfg}} {
		ctx, cancel := context.WithCancel(context.Background())
		out := &watchWriter{want: "token service listening", seen: make(chan struct{})}
		done := make(chan int, 1)
		go func() { done <- run(ctx, args, out) }()
		select {
		case <-out.seen:
		case code := <-done:
			t.Fatalf("%v: exited %d early: %s", args, code, out)
		case <-time.After(10 * time.Second):
			t.Fatalf("%v: not listening: %s", args, out)
		}
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("%v: exit %d after shutdown: %s", args, code, out)
		}
	}
}

func TestRunRefusesBadInvocations(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("token_ttl: 1s\nlicenses: {file: x, http: {url: 'https://x/'}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{nil, 2, []string{"usage"}},
		{[]string{"-config"}, 2, []string{"flag needs an argument"}},
		{[]string{"-config", filepath.Join(dir, "missing.yaml")}, 1, []string{"missing.yaml"}},
		// Every problem of the file in one message.
		{[]string{"serve", "-config", bad}, 1, []string{"issuer: required", "service: required", "signing_key: required", "token_ttl", "exactly one of file, http and sql"}},
	} {
		var out watchWriter
		out.seen = make(chan struct{})
		if code := run(context.Background(), tc.args, &out); code != tc.code {
			t.Errorf("%v: exit %d, want %d: %s", tc.args, code, tc.code, out.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: output lacks %q: %s", tc.args, w, out.String())
			}
		}
	}
}

func TestRunAccounts(t *testing.T) {
	var out watchWriter
	out.seen = make(chan struct{})
	if code := run(context.Background(), []string{"accounts"}, &out); code != 2 || !strings.Contains(out.String(), "tokenserver accounts migrate") {
		t.Errorf("exit %d: %s", code, out.String())
	}
}
