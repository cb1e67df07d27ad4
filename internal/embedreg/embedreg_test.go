package embedreg

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acme/registry-gateway/internal/testsupport/ecrfake"
)

func TestOpenRegistryAnswersV2(t *testing.T) {
	h, err := New(context.Background(), Options{RootDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v2/", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("open registry /v2/: %d", rec.Code)
	}
	// The catalog works on a configuration built in Go (MaxEntries set).
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v2/_catalog", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("catalog: %d %s", rec.Code, rec.Body)
	}
}

func TestHtpasswdRegistryChallenges(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "htpasswd")
	if err := ecrfake.WriteHtpasswd(pw, "u", "secret"); err != nil {
		t.Fatal(err)
	}
	h, err := New(context.Background(), Options{RootDir: dir, Htpasswd: &HtpasswdAuth{Realm: "up", Path: pw}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v2/", nil))
	if rec.Code != http.StatusUnauthorized || !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("htpasswd registry: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	req := httptest.NewRequest("GET", "/v2/", nil)
	req.SetBasicAuth("u", "secret")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("with the password: %d", rec.Code)
	}
}

func TestBadOptions(t *testing.T) {
	dir := t.TempDir()
	for name, opts := range map[string]Options{
		"no root":        {},
		"both auths":     {RootDir: dir, Token: &TokenAuth{}, Htpasswd: &HtpasswdAuth{}},
		"bad log level":  {RootDir: dir, LogLevel: "loud"},
		"token no trust": {RootDir: dir, Token: &TokenAuth{Realm: "http://x/token", Service: "s", Issuer: "i", JWKS: filepath.Join(dir, "missing.json")}},
	} {
		if _, err := New(context.Background(), opts); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
