//go:build !unix

package accountstest

import (
	"fmt"
	"runtime"
	"syscall"
)

// platformSupported: the server is stopped by SIGINT (fast shutdown), which
// cannot be sent to another process here, and started without pg_ctl.
func platformSupported() error {
	return fmt.Errorf("%w on %s (it is stopped with SIGINT)", errUnsupported, runtime.GOOS)
}

func (s *Server) sysProcAttr(bool) *syscall.SysProcAttr { return nil }
