package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, listen string) string {
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
realm: "http://localhost:5000/token"
service: "registry.example.com"
issuer: "test"
access_log: false
shutdown_timeout: 2s
keys: {public_keys: ["` + pub + `"]}
upstream:
  url: "http://127.0.0.1:1"
  static: {username: puller, password_file: "` + pw + `"}
`),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cfg
}

func TestRunServesAndShutsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := writeConfig(t, addr)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() { done <- run(ctx, []string{"-config", cfg}, &bytes.Buffer{}, &stderr) }()

	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("Www-Authenticate"), "Bearer ") {
				t.Fatalf("GET /v2/: %d %q", resp.StatusCode, resp.Header.Get("Www-Authenticate"))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
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
}

func TestRunCheckAndErrors(t *testing.T) {
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

func TestRunReport(t *testing.T) {
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
