package tokencli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// decodeStrict decodes JSON refusing unknown fields, so that a field the
// Secret or the docker config must not have (identitytoken) fails.
func decodeStrict(t *testing.T, data []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("strict decode: %v\n%s", err, data)
	}
}

func TestPullSecret(t *testing.T) {
	t.Parallel()
	const token = "api-token-of-alice"
	for _, tc := range []struct {
		name    string
		stdin   string
		environ map[string]string
	}{
		{"stdin", token + "\n", nil},
		{"environment", "", map[string]string{passwordEnv: token}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, tc.stdin, tc.environ, "pull-secret", "-registry", "registry.example.com", "-u", "alice@example.com", "-namespace", "apps", "-name", "vendor-pull")
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			var s PullSecret
			decodeStrict(t, []byte(r.stdout), &s)
			if s.APIVersion != "v1" || s.Kind != "Secret" || s.Type != "kubernetes.io/dockerconfigjson" ||
				s.Metadata.Name != "vendor-pull" || s.Metadata.Namespace != "apps" || len(s.Data) != 1 {
				t.Errorf("secret %+v", s)
			}
			var cfg DockerConfigJSON
			decodeStrict(t, s.Data[".dockerconfigjson"], &cfg)
			a, ok := cfg.Auths["registry.example.com"]
			if !ok || len(cfg.Auths) != 1 || a.Username != "alice@example.com" || a.Password != token {
				t.Fatalf("auths %+v", cfg.Auths)
			}
			if a.Auth != base64.StdEncoding.EncodeToString([]byte("alice@example.com:"+token)) {
				t.Errorf("auth %q", a.Auth)
			}
			if strings.Contains(string(s.Data[".dockerconfigjson"]), "identitytoken") {
				t.Error("identitytoken in the secret")
			}
		})
	}
}

// Every mistake is refused with a message, nothing printed on stdout; the
// token is never taken from the command line.
func TestPullSecretRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		want  []string
	}{
		{"token in argv", "", []string{"-registry", "r.example.com", "-u", "a@example.com", "secret-token"}, []string{"never from the command line"}},
		{"no token", "", []string{"-registry", "r.example.com", "-u", "a@example.com"}, []string{"empty API token on stdin", passwordEnv}},
		{"identity token", "rt1.abcdef\n", []string{"-registry", "r.example.com", "-u", "a@example.com"}, []string{"refresh (identity) token"}},
		{"everything wrong", "tok\n", []string{"-registry", "https://r.example.com/v2", "-name", "Reg_Cred", "-namespace", "a.b"},
			[]string{"-name \"Reg_Cred\"", "-namespace \"a.b\"", "-registry", "-username is required"}},
		{"colon in username", "tok\n", []string{"-registry", "r.example.com:5000", "-u", "a:b"}, []string{"must not contain ':'"}},
		{"unknown flag", "tok\n", []string{"-p", "tok"}, []string{"flag provided but not defined"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, tc.stdin, nil, append([]string{"pull-secret"}, tc.args...)...)
			if r.code != exitUsage || r.stdout != "" {
				t.Errorf("exit %d, stdout %q", r.code, r.stdout)
			}
			mustContain(t, "stderr", r.stderr, tc.want...)
			if strings.Contains(r.stderr, "secret-token") {
				t.Error("the token is echoed")
			}
		})
	}
}
