package testutil

import (
	"syscall"
	"time"
)

// cpuTime is the kernel and user time of the whole process
// (GetProcessTimes).
func cpuTime() (time.Duration, error) {
	h, err := syscall.GetCurrentProcess()
	if err != nil {
		return 0, err
	}
	var creation, exit, kernel, user syscall.Filetime
	if err := syscall.GetProcessTimes(h, &creation, &exit, &kernel, &user); err != nil {
		return 0, err
	}
	return filetimeSpan(kernel) + filetimeSpan(user), nil
}

// filetimeSpan reads a FILETIME holding a span, in 100 ns units.
// (Filetime.Nanoseconds is for instants: it subtracts the 1601 epoch.)
func filetimeSpan(ft syscall.Filetime) time.Duration {
	return time.Duration(uint64(ft.HighDateTime)<<32|uint64(ft.LowDateTime)) * 100
}
