package tokencli

import (
	"crypto/ecdsa"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acme/registry-gateway/pkg/auth"
)

func TestKeygenWritesUsableFiles(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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

// -next writes the next key of a rotation beside the current one and leaves
// the current key alone; a second -next needs -force like the first key.
func TestKeygenNext(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if r := runCLI(t, "", nil, "keygen", "-dir", dir); r.code != 0 {
		t.Fatalf("keygen: %d %s", r.code, r.stderr)
	}
	current, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "", nil, "keygen", "-dir", dir, "-next")
	if r.code != 0 {
		t.Fatalf("keygen -next: %d %s", r.code, r.stderr)
	}
	mustContain(t, "stdout", r.stdout, "next.key", "next.crt", "next.pub", "next.jwks.json", "publish_keys")
	if after, _ := os.ReadFile(filepath.Join(dir, KeyFile)); string(after) != string(current) {
		t.Fatal("keygen -next changed the current key")
	}
	cur, err := auth.LoadSigningKey(filepath.Join(dir, KeyFile), filepath.Join(dir, CertFile))
	if err != nil {
		t.Fatal(err)
	}
	next, err := auth.LoadSigningKey(filepath.Join(dir, "next.key"), filepath.Join(dir, "next.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if next.KeyID == cur.KeyID {
		t.Fatal("next key is the current key")
	}
	if fi, err := os.Stat(filepath.Join(dir, "next.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("next.key: %v %v", fi, err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "next.jwks.json"))
	if set, err := auth.ParseJWKS(data); err != nil || set[next.KeyID] == nil || len(set) != 1 {
		t.Errorf("next.jwks.json: %v %v", set, err)
	}
	if r := runCLI(t, "", nil, "keygen", "-dir", dir, "-next"); r.code != 1 || !strings.Contains(r.stderr, "next.key") {
		t.Errorf("second -next: %d %s", r.code, r.stderr)
	}
}
