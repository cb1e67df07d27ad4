package dockertest

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// platformProblem: none, dockerd runs here.
const platformProblem = ""

// daemonProcAttr puts dockerd in its own process group, away from the
// terminal's signals, killed by the kernel should the test binary die
// without running cleanups.
func daemonProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// terminate sends SIGTERM to pid, and SIGKILL when done has not closed
// within 20 s.
func terminate(pid int, done <-chan struct{}) {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-done:
		return
	case <-time.After(20 * time.Second):
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

// unmountAll detaches whatever is still mounted under Dir (network
// namespaces, a killed daemon's mounts), deepest first, so that RemoveAll
// can work.
func (d *Daemon) unmountAll(t testing.TB) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mounts []string
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == d.Dir || strings.HasPrefix(f[4], d.Dir+"/")) {
			mounts = append(mounts, f[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := syscall.Unmount(mounts[i], syscall.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", mounts[i], err)
		}
	}
}
