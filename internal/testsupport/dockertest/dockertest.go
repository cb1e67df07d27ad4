// Package dockertest starts a private Docker daemon for one test, so that
// tests can drive the real docker CLI (and containerd's ctr) against the
// product without touching the machine's own daemon, its images or its
// logins.
//
// Each daemon has its own data root, exec root, pid file, unix socket and
// daemon.json under a short temporary directory (a unix socket path holds
// at most 108 bytes, which t.TempDir() can exceed), runs without iptables
// and without the default bridge (nothing here runs networked containers),
// and uses the vfs storage driver, which works on every file system.
// The docker CLI runs with DOCKER_HOST pointing at it and a private
// DOCKER_CONFIG, so logins stay inside the test.
//
// dockerd needs root and Linux. Without dockerd or root, Start skips the
// test with the install hint, and off Linux saying so, unless
// REQUIRE_DOCKER=1 (set by CI), which makes it a failure so that CI cannot
// pass by skipping.
//
// The daemon is stopped by PID at t.Cleanup, and so is the containerd it
// manages, also when the test fails; if the test binary dies, the kernel
// kills the daemon (parent-death signal).
package dockertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Options of Start. The zero value is a plain daemon.
type Options struct {
	// DaemonArgs are appended to dockerd's command line, e.g.
	// {"--insecure-registry", "registry.test:5000"}.
	DaemonArgs []string
	// StartTimeout bounds the wait until the daemon answers `docker
	// version`; default 90s (the first start on vfs is slow on a busy
	// machine).
	StartTimeout time.Duration
}

// Daemon is a running private dockerd.
type Daemon struct {
	// Dir is the short temporary directory holding everything of this
	// daemon; removed at cleanup.
	Dir string
	// Host is the DOCKER_HOST value that reaches the daemon
	// ("unix:///tmp/dk…/docker.sock").
	Host string
	// ConfigDir is the docker CLI's private DOCKER_CONFIG directory
	// (config.json with the logins).
	ConfigDir string
	// ContainerdAddress is the socket of the containerd that dockerd
	// started and manages, for `ctr --address`.
	ContainerdAddress string

	execRoot string
	logPath  string
}

// CommandTimeout bounds each Docker and Ctr call.
const CommandTimeout = 3 * time.Minute

// requireEnv makes a missing dockerd a failure instead of a skip.
const requireEnv = "REQUIRE_DOCKER"

// Start runs a private dockerd for the test and returns once it answers.
func Start(t testing.TB, opts Options) *Daemon {
	t.Helper()
	dockerd := lookTools(t)
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 90 * time.Second
	}

	dir, err := os.MkdirTemp(shortTempBase(), "dk")
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{
		Dir:       dir,
		Host:      "unix://" + filepath.Join(dir, "docker.sock"),
		ConfigDir: filepath.Join(dir, "config"),
		execRoot:  filepath.Join(dir, "exec"),
		logPath:   filepath.Join(dir, "dockerd.log"),
	}
	d.ContainerdAddress = filepath.Join(d.execRoot, "containerd", "containerd.sock")
	if err := os.Mkdir(d.ConfigDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// An own daemon.json, so that a machine-wide /etc/docker/daemon.json
	// (mirrors, other storage drivers, hosts) cannot change the test.
	daemonJSON := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(daemonJSON, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(d.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()

	args := []string{
		"--iptables=false", "--ip6tables=false", "--bridge=none",
		"--storage-driver=vfs",
		"--config-file", daemonJSON,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", d.execRoot,
		"--pidfile", filepath.Join(dir, "dockerd.pid"),
		"-H", d.Host,
	}
	args = append(args, opts.DaemonArgs...)
	cmd := exec.Command(dockerd, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = daemonProcAttr()
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("start dockerd: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() { d.stop(t, cmd.Process, exited) })

	if err := d.waitReady(t, exited, opts.StartTimeout); err != nil {
		t.Fatalf("dockerd did not come up: %v\n--- dockerd log ---\n%s", err, d.Log())
	}
	return d
}

// shortTempBase is $TMPDIR, or /tmp when $TMPDIR is so long that the
// deepest socket (<exec-root>/containerd/containerd.sock.ttrpc) would not
// fit in the 108 bytes of a unix socket address.
func shortTempBase() string {
	base := os.TempDir()
	if len(base)+len("/dk0123456789/exec/containerd/containerd.sock.ttrpc") >= 108 {
		return "/tmp"
	}
	return base
}

// lookTools finds dockerd and the docker CLI, or skips (fails with
// REQUIRE_DOCKER=1) with the install hint.
func lookTools(t testing.TB) string {
	t.Helper()
	var problem string
	dockerd, err := exec.LookPath("dockerd")
	switch {
	case platformProblem != "":
		problem = platformProblem
	case err != nil:
		problem = "dockerd is not installed (apt-get install -y docker.io)"
	case os.Geteuid() != 0:
		problem = "dockerd needs root"
	default:
		if _, err := exec.LookPath("docker"); err != nil {
			problem = "the docker CLI is not installed (apt-get install -y docker.io)"
		}
	}
	if problem == "" {
		return dockerd
	}
	if os.Getenv(requireEnv) == "1" {
		t.Fatalf("%s, and %s=1", problem, requireEnv)
		return ""
	}
	t.Skipf("%s; %s=1 turns this skip into a failure", problem, requireEnv)
	return ""
}

func (d *Daemon) waitReady(t testing.TB, exited <-chan struct{}, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	var last string
	for {
		probe, cancelProbe := context.WithTimeout(ctx, 10*time.Second)
		out, err := d.Docker(probe, "", "version", "--format", "{{.Server.Version}}")
		cancelProbe()
		if err == nil {
			return nil
		}
		last = out
		select {
		case <-exited:
			return errors.New("dockerd exited")
		case <-ctx.Done():
			return fmt.Errorf("no answer within %v: %s", timeout, strings.TrimSpace(last))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Env is the environment of a docker CLI process that talks to this
// daemon with the private configuration: the test's own environment with
// DOCKER_HOST and DOCKER_CONFIG replaced.
func (d *Daemon) Env() []string {
	env := make([]string, 0, len(os.Environ())+2)
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "DOCKER_") {
			continue // DOCKER_CONTEXT, DOCKER_TLS_VERIFY, … of the caller
		}
		env = append(env, kv)
	}
	return append(env, "DOCKER_HOST="+d.Host, "DOCKER_CONFIG="+d.ConfigDir)
}

// Command is the docker CLI with args, bound to this daemon. The caller
// runs it (for `docker compose …`, streaming output, …).
func (d *Daemon) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = d.Env()
	cmd.Dir = d.Dir
	return cmd
}

// Docker runs the docker CLI with args (and stdin, when not empty) and
// returns its combined output; at most CommandTimeout.
func (d *Daemon) Docker(ctx context.Context, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, CommandTimeout)
	defer cancel()
	return run(d.Command(ctx, args...), stdin)
}

// Ctr runs containerd's ctr against the containerd that dockerd manages
// (its default namespace, not the daemon's "moby") and returns its
// combined output; at most CommandTimeout.
func (d *Daemon) Ctr(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", d.ContainerdAddress}, args...)...)
	cmd.Dir = d.Dir
	return run(cmd, "")
}

func run(cmd *exec.Cmd, stdin string) (string, error) {
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// Log is what dockerd has logged so far.
func (d *Daemon) Log() string {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// stop ends dockerd (SIGTERM, then SIGKILL), then its containerd should it
// have outlived it, unmounts what the daemon left mounted and removes Dir.
func (d *Daemon) stop(t testing.TB, p *os.Process, exited <-chan struct{}) {
	if t.Failed() {
		t.Logf("--- dockerd log (%s) ---\n%s", d.Host, tail(d.Log(), 8000))
	}
	containerdPID := d.containerdPID()
	terminate(p.Pid, exited)
	if containerdPID > 0 {
		gone := make(chan struct{})
		go func() {
			for alive(containerdPID) {
				time.Sleep(50 * time.Millisecond)
			}
			close(gone)
		}()
		terminate(containerdPID, gone)
	}
	d.unmountAll(t)
	if err := os.RemoveAll(d.Dir); err != nil {
		t.Errorf("remove %s: %v", d.Dir, err)
	}
}

// containerdPID reads the pid file dockerd's supervisor writes for the
// containerd it started, and returns the pid only when that process is
// still the containerd of this daemon (so that a recycled pid is never
// signalled).
func (d *Daemon) containerdPID() int {
	b, err := os.ReadFile(filepath.Join(d.execRoot, "containerd", "containerd.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(d.execRoot)) {
		return 0
	}
	return pid
}

// alive: the process exists and is not a zombie waiting for its parent.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "pid (comm) S …": the state follows the last ')'.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// TrustRegistryCA makes every daemon on this machine trust caPEM for the
// registry at hostPort, for the test's duration.
//
// dockerd reads registry CAs only from /etc/docker/certs.d/<host:port>/
// (no flag moves it; only rootless mode reads another directory), and it
// reads them on each connection, so the file works for daemons already
// running. The directory is removed at cleanup; ports of test servers are
// unique, so parallel tests do not collide.
//
// dockerd always counts 127.0.0.0/8 (and names resolving there, such as
// localhost) as an insecure registry: it talks HTTPS to it without
// verifying the certificate, falls back to plain HTTP, and never reads
// certs.d for it. A test that must show the CA is trusted (and that an
// untrusted one is refused: "x509: certificate signed by unknown
// authority") has to name the registry by a non-loopback address of this
// machine.
func TrustRegistryCA(t testing.TB, hostPort string, caPEM []byte) {
	t.Helper()
	dir := filepath.Join(CertsDir, hostPort)
	if _, err := os.Stat(dir); err == nil {
		t.Fatalf("%s exists already: not overwriting a trust another test or the machine set up", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
}

// CertsDir is where dockerd looks for per-registry CAs.
const CertsDir = "/etc/docker/certs.d"
