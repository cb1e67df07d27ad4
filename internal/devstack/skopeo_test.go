package devstack

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// skopeoPath finds skopeo, the containers/image client (podman's library).
// Without it the test is skipped, unless REQUIRE_SKOPEO=1 (.ci/run sets it)
// makes that a failure, so that CI cannot pass by skipping.
func skopeoPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("skopeo")
	if err != nil {
		if os.Getenv("REQUIRE_SKOPEO") == "1" {
			t.Fatal("skopeo is not installed and REQUIRE_SKOPEO=1: apt-get install -y skopeo")
		}
		t.Skip("skopeo is not installed (apt-get install -y skopeo); REQUIRE_SKOPEO=1 turns this skip into a failure")
	}
	return p
}

// runSkopeo runs skopeo with args in dir, with no user configuration in
// the way (registries.conf mirrors, stored logins).
func runSkopeo(t *testing.T, skopeo, dir string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, skopeo, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"REGISTRY_AUTH_FILE="+filepath.Join(dir, "auth.json"),
		"HOME="+dir,
	)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestSkopeo runs the skopeo commands the stack prints, word for word, and
// checks what they answer.
func TestSkopeo(t *testing.T) {
	skopeo := skopeoPath(t)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { testSkopeo(t, skopeo, m.mod) })
	}
}

func testSkopeo(t *testing.T, skopeo string, mod func(*Options)) {
	st, _ := startStack(t, mod)
	// The commands run from a directory that is not the stack's: they are
	// pasted from anywhere, so every path they name must be absolute.
	dir := t.TempDir()

	var ran int
	for _, c := range st.Commands() {
		if c.Tool != "skopeo" {
			continue
		}
		ran++
		args := strings.Fields(c.Line)[1:]
		t.Run(strings.Join(args[:1], " ")+" "+args[len(args)-1], func(t *testing.T) {
			out, err := runSkopeo(t, skopeo, dir, args...)
			if c.Refused {
				if err == nil {
					t.Fatalf("refused command succeeded:\n%s", out)
				}
				// The only refused command is the unlicensed channel's.
				if !strings.Contains(out, unlicensedMessage) {
					t.Errorf("refusal does not say why (%q):\n%s", unlicensedMessage, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			switch args[0] {
			case "inspect":
				var v struct {
					Name         string
					Digest       string
					RepoTags     []string
					Architecture string
				}
				if err := json.Unmarshal([]byte(out), &v); err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				if !slices.Equal(v.RepoTags, DemoTags) || v.Name != st.GatewayHost+"/"+LicensedRepo {
					t.Errorf("inspect: %+v", v)
				}
			case "list-tags":
				var v struct{ Tags []string }
				if err := json.Unmarshal([]byte(out), &v); err != nil || !slices.Equal(v.Tags, DemoTags) {
					t.Errorf("list-tags: %v\n%s", err, out)
				}
			case "copy":
				dst := strings.TrimPrefix(args[len(args)-1], "oci:")
				dst, _, _ = strings.Cut(dst, ":")
				if want := filepath.Join(filepath.Dir(st.DataDir), "hello-oci"); dst != want {
					t.Errorf("copied to %s, want %s (next to the stack's data)", dst, want)
				}
				index, err := os.ReadFile(filepath.Join(dst, "index.json"))
				if err != nil || !strings.Contains(string(index), `"org.opencontainers.image.ref.name":"1.0"`) {
					t.Errorf("copied layout: %v\n%s", err, index)
				}
			}
		})
	}
	if ran != 4 {
		t.Errorf("%d skopeo commands printed, want 4", ran)
	}

	// Not printed, but a customer will meet them.
	ok := "docker://" + st.GatewayHost + "/" + LicensedRepo
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"wrong API token", []string{"inspect", "--tls-verify=false", "--creds", DemoUser + ":wrong", ok + ":1.0"}},
		{"lapsed licence", []string{"list-tags", "--tls-verify=false", "--creds", "lapsed@example.com:expired-api-token", ok}},
		{"anonymous", []string{"inspect", "--tls-verify=false", "--no-creds", ok + ":1.0"}},
		{"push", []string{"copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--src-creds", DemoUser + ":" + DemoToken,
			"--dest-creds", DemoUser + ":" + DemoToken, ok + ":1.0", ok + ":pushed"}},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			out, err := runSkopeo(t, skopeo, dir, tc.args...)
			if err == nil {
				t.Fatalf("succeeded:\n%s", out)
			}
		})
	}

	if st.TLS != nil {
		// A verifying client without the development CA.
		out, err := runSkopeo(t, skopeo, dir, "inspect", "--tls-verify=true", "--creds", DemoUser+":"+DemoToken, ok+":1.0")
		if err == nil || !strings.Contains(out, "certificate signed by unknown authority") {
			t.Errorf("without the CA: %v\n%s", err, out)
		}
	}

	// The beta image skopeo cannot reach does exist upstream: the refusal
	// is the licence, not a missing image.
	out, err := runSkopeo(t, skopeo, dir, "inspect", "--tls-verify=false", "--creds", "upstream:demo-upstream-password",
		"docker://"+strings.TrimPrefix(st.UpstreamURL, "http://")+"/"+UnlicensedRepo+":1.0")
	if err != nil {
		t.Fatalf("beta/hello upstream: %v\n%s", err, out)
	}
}
