// Package procstat reads what the benchmark reports about processes and the
// machine from /proc, through github.com/prometheus/procfs: a process's CPU
// time and resident set, its children (nginx's workers), and the CPU model
// and memory of the host.
//
// /proc is Linux's: on other systems every function returns an error
// wrapping errors.ErrUnsupported (ReadHost an empty Host, SumCPU 0), and
// Supported says so up front, so that the benchmark refuses to run there
// instead of reporting zeros.
package procstat

import "time"

// Memory is a process's resident set, in bytes.
type Memory struct {
	RSS int64 `json:"rss"`
	HWM int64 `json:"hwm"` // peak RSS since the process started
}

// Host is the machine as /proc describes it.
type Host struct {
	CPU         string // model name of the first CPU
	MemoryBytes uint64 // MemTotal
}

// Supported is nil where this package can read what it reports (Linux),
// else the error every function returns.
func Supported() error { return supported }

// SumCPU sums the CPU time of pids, counting 0 for any that cannot be read
// (a process that has exited).
func SumCPU(pids []int) time.Duration {
	var t time.Duration
	for _, pid := range pids {
		d, _ := CPUTime(pid)
		t += d
	}
	return t
}
