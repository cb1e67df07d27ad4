//go:build !linux

package procstat

import (
	"errors"
	"fmt"
	"runtime"
	"time"
)

// errNotLinux is the error of every function here.
var errNotLinux = fmt.Errorf("procstat: reads /proc, not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported)

var supported = errNotLinux

// CPUTime would read /proc/PID/stat: not supported here.
func CPUTime(int) (time.Duration, error) { return 0, errNotLinux }

// ReadMemory would read /proc/PID/status: not supported here.
func ReadMemory(int) (Memory, error) { return Memory{}, errNotLinux }

// Children would scan /proc: not supported here.
func Children(int) ([]int, error) { return nil, errNotLinux }

// ReadHost would read /proc/cpuinfo and /proc/meminfo: here it returns an
// empty Host, as it does on Linux for fields it cannot read.
func ReadHost() Host { return Host{} }
