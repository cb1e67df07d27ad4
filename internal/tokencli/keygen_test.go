package tokencli

import (
	"crypto/ecdsa"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/acme/registry-gateway/pkg/auth"
)

func TestKeygenWritesUsableFiles(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		alg  string
	}{
		{"p256", nil, "ES256"},
		{"rsa", []string{"-rsa"}, "RS256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "certs") // created by keygen
			r := runCLI(t, "", nil, append([]string{"keygen", "-dir", dir}, tc.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			mustContain(t, "stdout", r.stdout, "Generated "+tc.alg, KeyFile, CertFile, PubFile, JWKSFile)

			fi, err := os.Stat(filepath.Join(dir, KeyFile))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("key mode %v, want 0600", fi.Mode().Perm())
			}
			// The key with its certificate is what the token service loads.
			key, err := auth.LoadSigningKey(filepath.Join(dir, KeyFile), filepath.Join(dir, CertFile))
			if err != nil {
				t.Fatal(err)
			}
			if key.Method.Alg() != tc.alg || len(key.X5C) != 1 {
				t.Errorf("alg %s x5c %d", key.Method.Alg(), len(key.X5C))
			}
			mustContain(t, "stdout", r.stdout, key.KeyID)
			pubs, err := auth.LoadPublicKeys(filepath.Join(dir, PubFile), filepath.Join(dir, CertFile))
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := pubs[key.KeyID]; !ok || len(pubs) != 1 {
				t.Errorf("public key and certificate do not match the key: %v", pubs)
			}
			data, err := os.ReadFile(filepath.Join(dir, JWKSFile))
			if err != nil {
				t.Fatal(err)
			}
			set, err := auth.ParseJWKS(data)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := set[key.KeyID]; !ok {
				t.Errorf("JWKS kids %v lack %s", set, key.KeyID)
			}
			var raw auth.JWKS
			_ = json.Unmarshal(data, &raw)
			if raw.Keys[0].Kid != key.KeyID || raw.Keys[0].Alg != tc.alg {
				t.Errorf("JWKS entry %+v", raw.Keys[0])
			}
			if ec, ok := key.Signer.(*ecdsa.PrivateKey); ok && !fullWidth(ec) {
				t.Error("EC key has a coordinate with a zero leading byte")
			}
		})
	}
}

func TestKeygenRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	if r := runCLI(t, "", nil, "keygen", "-dir", dir); r.code != 0 {
		t.Fatal(r.stderr)
	}
	before, _ := os.ReadFile(filepath.Join(dir, KeyFile))

	r := runCLI(t, "", nil, "keygen", "-dir", dir)
	if r.code != exitFail {
		t.Fatalf("second keygen exit %d", r.code)
	}
	mustContain(t, "stderr", r.stderr, "already exists", "-force")
	after, _ := os.ReadFile(filepath.Join(dir, KeyFile))
	if string(before) != string(after) {
		t.Fatal("key was replaced without -force")
	}

	// -force replaces it, and a key file left world-readable by hand gets
	// its 0600 back.
	if err := os.Chmod(filepath.Join(dir, KeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, "", nil, "keygen", "-dir", dir, "-force"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	after, _ = os.ReadFile(filepath.Join(dir, KeyFile))
	if string(before) == string(after) {
		t.Fatal("-force kept the old key")
	}
	fi, _ := os.Stat(filepath.Join(dir, KeyFile))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("replaced key mode %v", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestKeygenUsage(t *testing.T) {
	if r := runCLI(t, "", nil, "keygen", "-dir", t.TempDir(), "extra"); r.code != exitUsage {
		t.Errorf("extra argument: exit %d", r.code)
	}
	if r := runCLI(t, "", nil, "keygen", "-bogus"); r.code != exitUsage {
		t.Errorf("unknown flag: exit %d", r.code)
	}
	// A directory that cannot be made is reported, not panicked on.
	file := filepath.Join(t.TempDir(), "file")
	_ = os.WriteFile(file, nil, 0o644)
	r := runCLI(t, "", nil, "keygen", "-dir", filepath.Join(file, "sub"))
	if r.code != exitFail || r.stderr == "" {
		t.Errorf("bad dir: exit %d stderr %q", r.code, r.stderr)
	}
}
