package compose

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/devstack"
	"github.com/acme/registry-gateway/internal/testsupport/dockertest"
	"github.com/acme/registry-gateway/internal/tokencli"
)

// repoRoot is the repository, seen from this package's directory.
const repoRoot = "../.."

// upTimeout bounds `docker compose up --build --wait`: four images on the
// vfs storage driver, then the health checks, on a busy 2-core machine.
const upTimeout = 8 * time.Minute

// imageUser is the non-root user of every image (Dockerfile USER).
const imageUser = 65532

// movedSubnet is the test's SUBNET_PREFIX: not .env's, as on a host whose
// bridge already uses 172.30.0.0/24.
const movedSubnet = "172.31.250"

// TestComposeStack builds the stack offline from the repository's
// compose.yaml and Dockerfile, brings it up with the real docker engine,
// and pulls through it the way a customer does. It runs moved: every port
// and the network are set in the environment, over .env, the one place
// they are set (the machine's 5000 may be taken by `make run`, too).
func TestComposeStack(t *testing.T) {
	plugin := findPlugin(t)
	d := dockertest.Start(t, dockertest.Options{})
	installPlugin(t, d, plugin)

	port, tokenPort, gwMetrics, tsMetrics := freePort(t), freePort(t), freePort(t), freePort(t)
	project := newProject(t)
	compose := func(ctx context.Context, args ...string) (string, error) {
		cmd := d.Command(ctx, append([]string{"compose"}, args...)...)
		cmd.Dir = project
		// The last value of a variable wins: the caller's own BUILD_TARGET or
		// HOST_UID cannot change the test.
		cmd.Env = append(cmd.Env, "BUILD_TARGET=offline", fmt.Sprintf("HOST_UID=%d", imageUser), fmt.Sprintf("HOST_GID=%d", imageUser),
			fmt.Sprintf("GATEWAY_PORT=%d", port), fmt.Sprintf("TOKEN_PORT=%d", tokenPort),
			fmt.Sprintf("GATEWAY_METRICS_PORT=%d", gwMetrics), fmt.Sprintf("TOKEN_METRICS_PORT=%d", tsMetrics),
			"SUBNET_PREFIX="+movedSubnet, "GATEWAY_URL=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	downed := false
	t.Cleanup(func() {
		if downed {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if t.Failed() {
			out, _ := compose(ctx, "logs", "--no-color")
			t.Logf("--- compose logs ---\n%s", out)
		}
		if out, err := compose(ctx, "down", "-v"); err != nil {
			t.Errorf("compose down -v at cleanup: %v\n%s", err, out)
		}
	})

	ctx, cancel := context.WithTimeout(t.Context(), upTimeout)
	defer cancel()
	start := time.Now()
	if out, err := compose(ctx, "up", "--build", "--detach", "--wait"); err != nil {
		t.Fatalf("docker compose up --build --wait: %v\n%s", err, out)
	}
	t.Logf("compose up --build --wait took %v", time.Since(start).Round(time.Second))

	// Nothing came from a registry: every image is one the build made.
	images, err := d.Docker(t.Context(), "", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}")
	if err != nil {
		t.Fatalf("%v\n%s", err, images)
	}
	got := strings.Fields(images)
	slices.Sort(got)
	want := []string{"registry-gateway/gateway:dev", "registry-gateway/registry:dev", "registry-gateway/seed:dev", "registry-gateway/tokenserver:dev"}
	if !slices.Equal(got, want) {
		t.Errorf("images %v, want only %v", got, want)
	}

	checkServices(t, compose)
	checkMoved(t, d, tokenPort, gwMetrics, tsMetrics)

	// What a customer does, against the published port. localhost
	// registries are spoken to in plain HTTP by docker.
	host := fmt.Sprintf("localhost:%d", port)
	out, err := d.Docker(t.Context(), devstack.DemoToken, "login", host, "-u", devstack.DemoUser, "--password-stdin")
	if err != nil || !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("docker login: %v\n%s", err, out)
	}
	idx, err := devstack.DemoImage("stable")
	if err != nil {
		t.Fatal(err)
	}
	digest, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	out, err = d.Docker(t.Context(), "", "pull", host+"/"+devstack.LicensedRepo+":1.0")
	if err != nil {
		t.Fatalf("docker pull %s: %v\n%s", devstack.LicensedRepo, err, out)
	}
	if !strings.Contains(out, "Digest: "+digest.String()) {
		t.Errorf("pulled something else than the seeded %s:\n%s", digest, out)
	}
	out, err = d.Docker(t.Context(), "", "pull", host+"/"+devstack.UnlicensedRepo+":1.0")
	if err == nil || !strings.Contains(out, "denied") {
		t.Errorf("pull of the unlicensed channel: %v\n%s", err, out)
	}

	// down -v removes the containers, the network and the registry's data.
	downCtx, cancelDown := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancelDown()
	if out, err := compose(downCtx, "down", "-v"); err != nil {
		t.Fatalf("docker compose down -v: %v\n%s", err, out)
	}
	downed = true
	for _, args := range [][]string{
		{"ps", "-a", "--format", "{{.Names}}"},
		{"volume", "ls", "--format", "{{.Name}}"},
		{"network", "ls", "--filter", "label=com.docker.compose.project", "--format", "{{.Name}}"},
	} {
		out, err := d.Docker(t.Context(), "", args...)
		if err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("after down -v, docker %s: %v %q", strings.Join(args[:2], " "), err, out)
		}
	}
}

// checkMoved: the token service and both metrics listeners answer on the
// moved host ports, and the network is the moved subnet.
func checkMoved(t *testing.T, d *dockertest.Daemon, tokenPort, gwMetrics, tsMetrics int) {
	t.Helper()
	for _, u := range []string{
		fmt.Sprintf("http://127.0.0.1:%d/.well-known/jwks.json", tokenPort),
		fmt.Sprintf("http://127.0.0.1:%d/metrics", gwMetrics),
		fmt.Sprintf("http://127.0.0.1:%d/metrics", tsMetrics),
	} {
		resp, err := http.Get(u)
		if err != nil {
			t.Errorf("%s: %v", u, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %s", u, resp.Status)
		}
	}
	out, err := d.Docker(t.Context(), "", "network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", "registry-gateway_stack")
	if err != nil || strings.TrimSpace(out) != movedSubnet+".0/24" {
		t.Errorf("stack network subnet: %v %q, want %s.0/24", err, out, movedSubnet)
	}
}

// checkServices: every long-running service is healthy by its own health
// check, and the seed job exited 0.
func checkServices(t *testing.T, compose func(context.Context, ...string) (string, error)) {
	t.Helper()
	out, err := compose(t.Context(), "ps", "--all", "--format", "json")
	if err != nil {
		t.Fatalf("compose ps: %v\n%s", err, out)
	}
	type svc struct {
		Service, State, Health string
		ExitCode               int
	}
	seen := map[string]svc{}
	// One JSON object per line (compose ≥ 2.21).
	for line := range strings.Lines(out) {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var s svc
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("compose ps line %q: %v", line, err)
		}
		seen[s.Service] = s
	}
	for _, name := range []string{"registry", "tokenserver", "gateway"} {
		if s := seen[name]; s.State != "running" || s.Health != "healthy" {
			t.Errorf("%s: state %q, health %q", name, s.State, s.Health)
		}
	}
	if s := seen["seed"]; s.State != "exited" || s.ExitCode != 0 {
		t.Errorf("seed: state %q, exit %d", s.State, s.ExitCode)
	}
}

// findPlugin returns the compose v2 plugin binary: COMPOSE_PLUGIN, else
// what .ci/compose-plugin has built into the cache. Without one the test
// is skipped (failed with REQUIRE_DOCKER=1).
func findPlugin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("COMPOSE_PLUGIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("COMPOSE_PLUGIN: %v", err)
		}
		return p
	}
	script, err := filepath.Abs(filepath.Join(repoRoot, ".ci", "compose-plugin"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), script, "--cached").Output()
	if err == nil {
		return strings.TrimSpace(string(out))
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("%s --cached: %v", script, err)
	}
	problem := "the docker compose v2 plugin is not built: `make compose-plugin` (about 8 minutes, once) or COMPOSE_PLUGIN=/path/to/docker-compose"
	if os.Getenv("REQUIRE_DOCKER") == "1" {
		t.Fatalf("%s, and REQUIRE_DOCKER=1", problem)
	}
	t.Skipf("%s; REQUIRE_DOCKER=1 turns this skip into a failure", problem)
	return ""
}

// installPlugin makes plugin `docker compose` for the daemon's private
// CLI configuration only.
func installPlugin(t *testing.T, d *dockertest.Daemon, plugin string) {
	t.Helper()
	dir := filepath.Join(d.ConfigDir, "cli-plugins")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(plugin, filepath.Join(dir, "docker-compose")); err != nil {
		t.Fatal(err)
	}
	out, err := d.Docker(t.Context(), "", "compose", "version")
	if err != nil || !strings.Contains(out, "Docker Compose version") {
		t.Fatalf("docker compose version with %s: %v\n%s", plugin, err, out)
	}
	t.Logf("%s", strings.TrimSpace(out))
}

// freePort is a loopback port nothing listens on now, for a published
// port.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// newProject lays out a compose project in a temporary directory: the
// repository's compose.yaml, .env, Dockerfile, .dockerignore and deploy/;
// bin/ from `make offline-context`; and a signing key of the images' user.
// Nothing is edited: the ports and the network move through the
// environment alone. The repository itself is not written to.
func newProject(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"compose.yaml", ".env", "Dockerfile", ".dockerignore"} {
		copyFile(t, filepath.Join(repoRoot, f), filepath.Join(dir, f))
	}
	if err := os.CopyFS(filepath.Join(dir, "deploy"), os.DirFS(filepath.Join(repoRoot, "deploy"))); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "-C", repoRoot, "offline-context", "BIN="+filepath.Join(dir, "bin"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make offline-context: %v\n%s", err, out)
	}

	// The key is 0600; the token service runs as the images' user (not
	// HOST_UID: root here), so that user owns it.
	certs := filepath.Join(dir, "certs")
	res, err := tokencli.Keygen(tokencli.KeygenOptions{Dir: certs})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Files {
		if err := os.Chown(f, imageUser, imageUser); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestComposeUpHints: what make compose-up prints follows the moved port
// (from the environment over .env) and the public URL. make -n prints the
// commands without running them.
func TestComposeUpHints(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{nil, "docker login localhost:5000 "},
		{[]string{"GATEWAY_PORT=6123"}, "docker login localhost:6123 "},
		{[]string{"GATEWAY_URL=https://registry.example.com"}, "docker login registry.example.com "},
	} {
		cmd := exec.CommandContext(t.Context(), "make", "-n", "-C", repoRoot, "compose-up")
		cmd.Env = append(os.Environ(), "GATEWAY_PORT=", "GATEWAY_URL=")
		cmd.Env = append(cmd.Env, tc.env...)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v: make -n compose-up: %v, want %q in\n%s", tc.env, err, tc.want, out)
		}
	}
}
