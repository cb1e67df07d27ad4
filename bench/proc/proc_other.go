//go:build !linux

package proc

import "syscall"

// sysProcAttr: there is no parent-death signal off Linux; a harness that
// dies leaves its servers running. bench.Run refuses to run here anyway.
func sysProcAttr() *syscall.SysProcAttr { return nil }
