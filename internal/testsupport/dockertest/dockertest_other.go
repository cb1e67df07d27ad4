//go:build !linux

package dockertest

import (
	"runtime"
	"syscall"
	"testing"
)

// platformProblem makes Start skip (or fail with REQUIRE_DOCKER=1) before
// anything below is reached: dockerd, its mounts and its containerd are
// Linux's (Docker Desktop runs them in a VM this package cannot drive).
var platformProblem = "dockerd runs on linux only, not supported on " + runtime.GOOS

func daemonProcAttr() *syscall.SysProcAttr { return nil }

// terminate is never reached here (Start skipped); nothing to signal.
func terminate(int, <-chan struct{}) {}

// unmountAll: no daemon ran, nothing is mounted.
func (d *Daemon) unmountAll(testing.TB) {}
