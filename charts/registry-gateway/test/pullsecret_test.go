package charttest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	sigsjson "sigs.k8s.io/json"
)

// `tokenserver pull-secret` prints a Secret the API server takes as it is:
// it decodes strictly into core/v1 Secret, of the type kubelet reads, with
// the fields kubelet uses (username, password, auth) and no identitytoken.
func TestPullSecretIsAKubernetesSecret(t *testing.T) {
	cmd := exec.Command(filepath.Join(bins, "tokenserver"), "pull-secret",
		"-registry", "registry.example.com", "-username", "alice@example.com", "-namespace", "apps")
	cmd.Stdin = bytes.NewBufferString("the-api-token\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pull-secret: %v\n%s", err, stderr.String())
	}
	var s corev1.Secret
	strict, err := sigsjson.UnmarshalStrict(out, &s)
	if err != nil || len(strict) > 0 {
		t.Fatalf("not a strict core/v1 Secret: %v %v\n%s", err, strict, out)
	}
	if s.Type != corev1.SecretTypeDockerConfigJson || s.Name != "regcred" || s.Namespace != "apps" || s.Kind != "Secret" || s.APIVersion != "v1" {
		t.Errorf("secret %+v", s.ObjectMeta)
	}
	// The entry as kubelet's credential provider reads it; strict, so an
	// identitytoken (or any other field) fails.
	var cfg struct {
		Auths map[string]struct {
			Username string `json:"username"`
			Password string `json:"password"`
			Auth     string `json:"auth"`
		} `json:"auths"`
	}
	dec := json.NewDecoder(bytes.NewReader(s.Data[corev1.DockerConfigJsonKey]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf(".dockerconfigjson: %v", err)
	}
	a := cfg.Auths["registry.example.com"]
	if a.Username != "alice@example.com" || a.Password != "the-api-token" ||
		a.Auth != base64.StdEncoding.EncodeToString([]byte("alice@example.com:the-api-token")) {
		t.Errorf("entry %+v", a)
	}
}
