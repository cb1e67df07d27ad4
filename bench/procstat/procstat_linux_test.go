package procstat

import (
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// noPID is above the kernel's pid_max limit (4194304), so no process has it.
const noPID = 1 << 23

func TestCPUTimeOfThisProcess(t *testing.T) {
	before, err := CPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until /proc (10 ms ticks) shows it, for at most 5 s.
	deadline := time.Now().Add(5 * time.Second)
	x := 0
	for time.Now().Before(deadline) {
		for i := range 1_000_000 {
			x += i
		}
		if now, _ := CPUTime(os.Getpid()); now >= before+20*time.Millisecond {
			break
		}
	}
	after, err := CPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after < before+20*time.Millisecond || after > before+time.Minute {
		t.Errorf("CPU time went from %s to %s (x=%d)", before, after, x)
	}
	if sum := SumCPU([]int{os.Getpid(), noPID}); sum < after {
		t.Errorf("SumCPU = %s, want at least %s", sum, after)
	}
	if _, err := CPUTime(noPID); err == nil {
		t.Error("CPUTime of no process succeeded")
	}
}

// The figures are in bytes: touching 64 MiB raises the peak by about that.
func TestReadMemoryOfThisProcess(t *testing.T) {
	m0, err := ReadMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m0.RSS < 1<<20 || m0.HWM < m0.RSS {
		t.Fatalf("%+v", m0)
	}
	buf := make([]byte, 64<<20)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	m1, err := ReadMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m1.HWM < m0.RSS+48<<20 || m1.HWM > m0.HWM+1<<30 {
		t.Errorf("after touching 64 MiB: %+v (before %+v)", m1, m0)
	}
	_ = buf[len(buf)-1]
	if _, err := ReadMemory(noPID); err == nil {
		t.Error("ReadMemory of no process succeeded")
	}
}

func TestChildren(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep binary:", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	kids, err := Children(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(kids, cmd.Process.Pid) {
		t.Errorf("children %v lack %d", kids, cmd.Process.Pid)
	}
	if kids, err := Children(cmd.Process.Pid); err != nil || len(kids) != 0 {
		t.Errorf("children of sleep: %v, %v", kids, err)
	}
}

func TestReadHost(t *testing.T) {
	h := ReadHost()
	if h.MemoryBytes < 64<<20 {
		t.Errorf("%+v", h)
	}
}

func TestSupported(t *testing.T) {
	if err := Supported(); err != nil {
		t.Fatal(err)
	}
}
