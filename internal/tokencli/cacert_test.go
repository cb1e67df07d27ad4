package tokencli

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCACert: --cacert lets inspect and token verify an https server
// signed by a private CA (the development CA of make run TLS=1).
func TestCACert(t *testing.T) {
	t.Parallel()
	key, dir := testKey(t, false)
	jwks, _ := os.ReadFile(filepath.Join(dir, JWKSFile))
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(jwks) }))
	defer srv.Close()
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	valid := sign(t, key, claims(t0.Add(-time.Minute), 5*time.Minute, pull("stable/hello")))

	r := runCLI(t, "", nil, "inspect", valid, "--jwks", srv.URL+"/jwks.json", "--cacert", ca)
	mustContain(t, "with --cacert", r.stdout, "OK signature verified")

	r = runCLI(t, "", nil, "inspect", valid, "--jwks", srv.URL+"/jwks.json")
	if r.code == exitOK {
		t.Errorf("without --cacert: exit 0\n%s", r.stdout)
	}
	mustContain(t, "without --cacert", r.stdout+r.stderr, "certificate signed by unknown authority")

	r = runCLI(t, "", nil, "inspect", valid, "--cacert", filepath.Join(dir, JWKSFile))
	if r.code != exitUsage {
		t.Errorf("--cacert without a certificate: exit %d", r.code)
	}
	mustContain(t, "--cacert without a certificate", r.stderr, "--cacert:", "no PEM certificate")

	r = runCLI(t, "", nil, "token", "-u", "u", "-p", "p", "--realm", srv.URL+"/token", "--cacert", ca, "--insecure")
	if r.code != exitUsage {
		t.Errorf("--cacert with --insecure: exit %d", r.code)
	}
}
