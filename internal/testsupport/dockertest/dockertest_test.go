package dockertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestStart starts a daemon, checks that the CLI and ctr reach it (and only
// it), and that cleanup leaves no process and no directory behind.
func TestStart(t *testing.T) {
	var d *Daemon
	var dockerdPID, containerdPID int
	t.Run("daemon", func(t *testing.T) {
		d = Start(t, Options{DaemonArgs: []string{"--insecure-registry", "registry.test:5999"}})
		if n := len(d.Host) - len("unix://"); n > 100 {
			t.Errorf("socket path is %d bytes, unix sockets hold 108", n)
		}

		out, err := d.Docker(t.Context(), "", "info", "--format", "{{.Driver}} {{.DockerRootDir}} {{json .RegistryConfig.IndexConfigs}}")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if !strings.HasPrefix(out, "vfs "+filepath.Join(d.Dir, "data")+" ") {
			t.Errorf("docker info: %s", out)
		}
		if !strings.Contains(out, `"registry.test:5999"`) {
			t.Errorf("the extra daemon flag did not reach dockerd: %s", out)
		}

		out, err = d.Ctr(t.Context(), "version")
		if err != nil || !strings.Contains(out, "Server:") {
			t.Fatalf("ctr against %s: %v\n%s", d.ContainerdAddress, err, out)
		}

		// The CLI's logins are those of the private config directory.
		cfg := filepath.Join(d.ConfigDir, "config.json")
		if err := os.WriteFile(cfg, []byte(`{"auths":{"registry.test:5999":{"auth":"dTpw"}}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err = d.Docker(t.Context(), "", "logout", "registry.test:5999")
		if err != nil || !strings.Contains(out, "Removing login credentials for registry.test:5999") {
			t.Errorf("docker did not use DOCKER_CONFIG: %v\n%s", err, out)
		}

		dockerdPID = readPID(t, filepath.Join(d.Dir, "dockerd.pid"))
		containerdPID = d.containerdPID()
		if !alive(dockerdPID) || containerdPID == 0 {
			t.Fatalf("dockerd pid %d, containerd pid %d", dockerdPID, containerdPID)
		}
	})
	if d == nil || dockerdPID == 0 {
		return
	}
	for name, pid := range map[string]int{"dockerd": dockerdPID, "containerd": containerdPID} {
		if alive(pid) {
			t.Errorf("%s (pid %d) still runs after cleanup", name, pid)
		}
	}
	if _, err := os.Stat(d.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still there after cleanup: %v", d.Dir, err)
	}
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return pid
}

// recorder is a testing.TB that records Skip and Fatal instead of ending
// the goroutine.
type recorder struct {
	testing.TB
	skipped, fatal string
}

func (r *recorder) Helper()                         {}
func (r *recorder) Skipf(format string, a ...any)   { r.skipped = fmt.Sprintf(format, a...) }
func (r *recorder) Fatalf(format string, a ...any)  { r.fatal = fmt.Sprintf(format, a...) }
func (r *recorder) Cleanup(func())                  {}
func (r *recorder) Logf(format string, args ...any) {}

// TestMissingDockerd: without dockerd the test skips with the install hint
// (off Linux: saying dockerd runs on Linux only), and REQUIRE_DOCKER=1
// makes that a failure.
func TestMissingDockerd(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	hint := "apt-get install -y docker.io"
	if runtime.GOOS != "linux" {
		hint = "linux only, not supported on " + runtime.GOOS
	}
	for _, tc := range []struct {
		require          string
		wantSkip, wantFa bool
	}{
		{"", true, false},
		{"1", false, true},
	} {
		t.Setenv(requireEnv, tc.require)
		r := &recorder{TB: t}
		lookTools(r)
		if (r.skipped != "") != tc.wantSkip || (r.fatal != "") != tc.wantFa {
			t.Errorf("REQUIRE_DOCKER=%q: skipped %q, fatal %q", tc.require, r.skipped, r.fatal)
		}
		if msg := r.skipped + r.fatal; !strings.Contains(msg, hint) {
			t.Errorf("no %q: %q", hint, msg)
		}
	}
}

// TestTrustRegistryCA writes the CA where dockerd reads it and removes it
// at cleanup.
func TestTrustRegistryCA(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("writes under /etc/docker: needs root")
	}
	hostPort := fmt.Sprintf("dockertest-%d.invalid:1", os.Getpid())
	dir := filepath.Join(CertsDir, hostPort)
	t.Run("trust", func(t *testing.T) {
		TrustRegistryCA(t, hostPort, []byte("PEM"))
		if b, err := os.ReadFile(filepath.Join(dir, "ca.crt")); err != nil || string(b) != "PEM" {
			t.Fatalf("%q %v", b, err)
		}
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s not removed: %v", dir, err)
	}
}

func TestShortTempBase(t *testing.T) {
	if platformProblem != "" {
		t.Skip(platformProblem) // and os.TempDir ignores TMPDIR on Windows
	}
	t.Setenv("TMPDIR", "/tmp/"+strings.Repeat("x", 80))
	if got := shortTempBase(); got != "/tmp" {
		t.Errorf("long TMPDIR: %q", got)
	}
	t.Setenv("TMPDIR", "/var/tmp")
	if got := shortTempBase(); got != "/var/tmp" {
		t.Errorf("short TMPDIR: %q", got)
	}
}

// TestCleanupWhenTheTestFails runs a test that starts a daemon and fails, in
// a child process, and checks that it left no daemon, no containerd and no
// directory behind.
func TestCleanupWhenTheTestFails(t *testing.T) {
	const childEnv = "DOCKERTEST_FAILING_CHILD"
	if out := os.Getenv(childEnv); out != "" {
		d := Start(t, Options{})
		pids := fmt.Sprintf("%s %d %d", d.Dir, readPID(t, filepath.Join(d.Dir, "dockerd.pid")), d.containerdPID())
		if err := os.WriteFile(out, []byte(pids), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Fatal("failing on purpose")
	}
	lookTools(t) // skip here, not in the child
	record := filepath.Join(t.TempDir(), "pids")
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestCleanupWhenTheTestFails$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+record)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "failing on purpose") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	b, err := os.ReadFile(record)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var dir string
	var dockerd, containerd int
	if _, err := fmt.Sscan(string(b), &dir, &dockerd, &containerd); err != nil || dockerd == 0 || containerd == 0 {
		t.Fatalf("child recorded %q: %v", b, err)
	}
	for name, pid := range map[string]int{"dockerd": dockerd, "containerd": containerd} {
		if alive(pid) {
			t.Errorf("%s (pid %d) still runs after the failed test", name, pid)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still there after the failed test: %v", dir, err)
	}
}
