package devstack

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acme/registry-gateway/internal/dockertest"
)

// unlicensedMessage is what every client that shows the registry's words
// prints when the demo account pulls from the beta channel.
const unlicensedMessage = "the token does not grant pull on channel 'beta' (your license does not include it)"

// TestDocker drives the stack with the real docker CLI and its own dockerd
// (classic image store), then with containerd's ctr against the containerd
// that dockerd runs: what a customer types, and what they read back.
func TestDocker(t *testing.T) {
	d := dockertest.Start(t, dockertest.Options{})
	st, _ := startStack(t)
	host := st.GatewayHost
	licensed, unlicensed := host+"/"+LicensedRepo+":1.0", host+"/"+UnlicensedRepo+":1.0"
	ctx := t.Context()

	docker := func(t *testing.T, stdin string, args ...string) (string, bool) {
		t.Helper()
		out, err := d.Docker(ctx, stdin, args...)
		t.Logf("docker %s\n%s", strings.Join(args, " "), out)
		return out, err == nil
	}
	mustContain := func(t *testing.T, out, want string) {
		t.Helper()
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// loggedIn is what config.json holds for the gateway: docker keeps the
	// refresh token the login got, not the API token.
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
		a, found := cfg.Auths[host]
		if strings.Contains(string(b), DemoToken) {
			t.Errorf("config.json holds the API token:\n%s", b)
		}
		return found, a.IdentityToken
	}

	t.Run("login with -p", func(t *testing.T) {
		out, ok := docker(t, "", "login", host, "-u", DemoUser, "-p", DemoToken)
		if !ok {
			t.Fatal("login failed")
		}
		mustContain(t, out, "Login Succeeded")
		if found, id := loggedIn(t); !found || id == "" {
			t.Errorf("config.json: login stored %v, identity token %q", found, id)
		}
	})
	t.Run("login with --password-stdin", func(t *testing.T) {
		if _, ok := docker(t, "", "logout", host); !ok {
			t.Fatal("logout failed")
		}
		out, ok := docker(t, DemoToken+"\n", "login", host, "-u", DemoUser, "--password-stdin")
		if !ok {
			t.Fatal("login failed")
		}
		mustContain(t, out, "Login Succeeded")
	})
	t.Run("pull licensed", func(t *testing.T) {
		out, ok := docker(t, "", "pull", licensed)
		if !ok {
			t.Fatal("pull failed")
		}
		digest := st.Images[licensed]
		mustContain(t, out, "Digest: "+digest)
		// The image is in the daemon's store under the pushed digest.
		out, _ = docker(t, "", "image", "inspect", "--format", "{{json .RepoDigests}}", licensed)
		mustContain(t, out, host+"/"+LicensedRepo+"@"+digest)
	})
	t.Run("pull unlicensed", func(t *testing.T) {
		out, ok := docker(t, "", "pull", unlicensed)
		if ok {
			t.Fatal("pull of an unlicensed channel succeeded")
		}
		mustContain(t, out, "denied: "+unlicensedMessage)
	})
	t.Run("wrong password", func(t *testing.T) {
		out, ok := docker(t, "", "login", host, "-u", DemoUser, "-p", "wrong-token")
		if ok {
			t.Fatal("login with a wrong API token succeeded")
		}
		mustContain(t, out, "unauthorized: invalid username or API token")
	})
	t.Run("logout then pull refused", func(t *testing.T) {
		out, ok := docker(t, "", "logout", host)
		if !ok {
			t.Fatal("logout failed")
		}
		mustContain(t, out, "Removing login credentials for "+host)
		if found, _ := loggedIn(t); found {
			t.Error("config.json still holds the login")
		}
		out, ok = docker(t, "", "pull", host+"/"+LicensedRepo+":latest")
		if ok {
			t.Fatal("pull without a login succeeded")
		}
		mustContain(t, out, "unauthorized: authentication required")
	})

	ctr := func(t *testing.T, args ...string) (string, bool) {
		t.Helper()
		out, err := d.Ctr(ctx, args...)
		t.Logf("ctr %s\n%s", strings.Join(args, " "), out)
		return out, err == nil
	}
	creds := DemoUser + ":" + DemoToken
	t.Run("ctr pull licensed", func(t *testing.T) {
		if _, ok := ctr(t, "image", "pull", "--plain-http", "--user", creds, licensed); !ok {
			t.Fatal("ctr pull failed")
		}
		out, _ := ctr(t, "image", "ls")
		mustContain(t, out, st.Images[licensed])
	})
	t.Run("ctr pull unlicensed", func(t *testing.T) {
		out, ok := ctr(t, "image", "pull", "--plain-http", "--user", creds, unlicensed)
		if ok {
			t.Fatal("ctr pull of an unlicensed channel succeeded")
		}
		// containerd shows only the challenge's error= word.
		mustContain(t, out, "server message: insufficient_scope")
	})
	t.Run("ctr wrong password", func(t *testing.T) {
		out, ok := ctr(t, "image", "pull", "--plain-http", "--user", DemoUser+":wrong-token", licensed)
		if ok {
			t.Fatal("ctr pull with a wrong API token succeeded")
		}
		mustContain(t, out, "failed to fetch oauth token: unexpected status: 401 Unauthorized")
	})
}
