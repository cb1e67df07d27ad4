package proc

import "syscall"

// sysProcAttr has the kernel kill the process should the harness die
// without stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
