package devstack

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acme/registry-gateway/internal/testsupport/dockertest"
)

// unlicensedMessage is what every client that shows the registry's words
// prints when the demo account pulls from the beta channel.
const unlicensedMessage = "the token of " + DemoUser + " does not grant pull on channel 'beta' (the license does not include it)"

// TestDocker drives the stack with the real docker CLI and its own dockerd
// (classic image store), then with containerd's ctr against the containerd
// that dockerd runs: what a customer types, and what they read back.
func TestDocker(t *testing.T) {
	d := dockertest.Start(t, dockertest.Options{})
	st, _ := startStack(t)
	host := st.GatewayHost
	licensed, unlicensed := host+"/"+LicensedRepo+":1.0", host+"/"+UnlicensedRepo+":1.0"
	ctx := t.Context()

	// loggedIn is what config.json holds for the gateway: docker keeps the
	// refresh token the login got, never the API token.
	loggedIn := func(t *testing.T) (bool, string) {
		t.Helper()
		var cfg struct {
			Auths map[string]struct{ Auth, IdentityToken string }
		}
		b, err := os.ReadFile(filepath.Join(d.ConfigDir, "config.json"))
		if err != nil {
			return false, ""
		}
		if err := json.Unmarshal(b, &cfg); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), DemoToken) {
			t.Errorf("config.json holds the API token:\n%s", b)
		}
		a, found := cfg.Auths[host]
		return found, a.IdentityToken
	}
	creds := DemoUser + ":" + DemoToken

	// Run in order: each step starts from the state the previous left.
	steps := []struct {
		name    string
		tool    string // docker or ctr
		stdin   string
		args    []string
		succeed bool
		want    string           // in the output
		check   func(*testing.T) // more, after the command
	}{
		{name: "login with -p", tool: "docker", args: []string{"login", host, "-u", DemoUser, "-p", DemoToken},
			succeed: true, want: "Login Succeeded", check: func(t *testing.T) {
				if found, id := loggedIn(t); !found || id == "" {
					t.Errorf("config.json: login stored %v, identity token %q", found, id)
				}
			}},
		{name: "logout", tool: "docker", args: []string{"logout", host}, succeed: true, want: "Removing login credentials for " + host,
			check: func(t *testing.T) {
				if found, _ := loggedIn(t); found {
					t.Error("config.json still holds the login")
				}
			}},
		{name: "login with --password-stdin", tool: "docker", stdin: DemoToken + "\n", args: []string{"login", host, "-u", DemoUser, "--password-stdin"},
			succeed: true, want: "Login Succeeded"},
		{name: "pull licensed", tool: "docker", args: []string{"pull", licensed}, succeed: true, want: "Digest: " + st.Images[licensed],
			check: func(t *testing.T) {
				// In the daemon's store under the pushed digest.
				out, _ := d.Docker(ctx, "", "image", "inspect", "--format", "{{json .RepoDigests}}", licensed)
				if want := host + "/" + LicensedRepo + "@" + st.Images[licensed]; !strings.Contains(out, want) {
					t.Errorf("image inspect: %s, want %s", out, want)
				}
			}},
		{name: "pull unlicensed", tool: "docker", args: []string{"pull", unlicensed}, want: "denied: " + unlicensedMessage},
		{name: "wrong password", tool: "docker", args: []string{"login", host, "-u", DemoUser, "-p", "wrong-token"},
			want: "unauthorized: invalid username or API token"},
		{name: "logout again", tool: "docker", args: []string{"logout", host}, succeed: true, want: "Removing login credentials for " + host},
		{name: "pull after logout", tool: "docker", args: []string{"pull", host + "/" + LicensedRepo + ":latest"},
			want: "unauthorized: authentication required"},

		{name: "ctr pull licensed", tool: "ctr", args: []string{"image", "pull", "--plain-http", "--user", creds, licensed}, succeed: true,
			check: func(t *testing.T) {
				out, _ := d.Ctr(ctx, "image", "ls")
				if !strings.Contains(out, licensed) || !strings.Contains(out, st.Images[licensed]) {
					t.Errorf("ctr image ls:\n%s", out)
				}
			}},
		// containerd shows only the challenge's error= word.
		{name: "ctr pull unlicensed", tool: "ctr", args: []string{"image", "pull", "--plain-http", "--user", creds, unlicensed},
			want: "server message: insufficient_scope"},
		{name: "ctr wrong password", tool: "ctr", args: []string{"image", "pull", "--plain-http", "--user", DemoUser + ":wrong-token", licensed},
			want: "failed to fetch oauth token: unexpected status: 401 Unauthorized"},
	}
	for _, step := range steps {
		ok := t.Run(step.name, func(t *testing.T) {
			var out string
			var err error
			if step.tool == "ctr" {
				out, err = d.Ctr(ctx, step.args...)
			} else {
				out, err = d.Docker(ctx, step.stdin, step.args...)
			}
			t.Logf("%s %s\n%s", step.tool, strings.Join(step.args, " "), out)
			if (err == nil) != step.succeed {
				t.Fatalf("%s: error %v, want success %v", step.tool, err, step.succeed)
			}
			if !strings.Contains(out, step.want) {
				t.Errorf("output lacks %q", step.want)
			}
			if step.check != nil {
				step.check(t)
			}
		})
		if !ok {
			return // later steps build on this one
		}
	}
}
