//go:build !unix

package pgserver

import (
	"errors"
	"syscall"
)

// runAs: the benchmark runs the server on Unix only.
func runAs() (*ids, error) {
	return nil, errors.New("running a PostgreSQL server for the benchmark is supported on Unix only")
}

func sysProcAttr(*ids, bool) *syscall.SysProcAttr { return nil }
