package procstat

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/procfs"
)

// supported: this is the system with /proc.
var supported error

// userHZ is USER_HZ, the unit of the times in /proc/PID/stat: 100 on every
// Linux this runs on (procfs assumes the same).
const userHZ = 100

func proc(pid int) (procfs.Proc, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return procfs.Proc{}, err
	}
	return fs.Proc(pid)
}

// CPUTime is the user+system CPU time the process and its waited-for
// children have used.
func CPUTime(pid int) (time.Duration, error) {
	p, err := proc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.Stat()
	if err != nil {
		return 0, err
	}
	ticks := int64(st.UTime) + int64(st.STime) + int64(st.CUTime) + int64(st.CSTime)
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// ReadMemory returns the process's current and peak resident set
// (VmRSS and VmHWM of /proc/PID/status).
func ReadMemory(pid int) (Memory, error) {
	p, err := proc(pid)
	if err != nil {
		return Memory{}, err
	}
	st, err := p.NewStatus()
	if err != nil {
		return Memory{}, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	return Memory{RSS: int64(st.VmRSS), HWM: int64(st.VmHWM)}, nil
}

// Children are the processes whose parent is pid.
func Children(pid int) ([]int, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return nil, err
	}
	all, err := fs.AllProcs()
	if err != nil {
		return nil, err
	}
	var out []int
	for _, p := range all {
		// A process may exit between the listing and the read.
		if st, err := p.Stat(); err == nil && st.PPID == pid {
			out = append(out, p.PID)
		}
	}
	return out, nil
}

// ReadHost reads the CPU model and total memory; a field that cannot be
// read stays empty.
func ReadHost() Host {
	var h Host
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return h
	}
	if cpus, err := fs.CPUInfo(); err == nil && len(cpus) > 0 {
		h.CPU = strings.TrimSpace(cpus[0].ModelName)
	}
	if mi, err := fs.Meminfo(); err == nil && mi.MemTotalBytes != nil {
		h.MemoryBytes = *mi.MemTotalBytes
	}
	return h
}
