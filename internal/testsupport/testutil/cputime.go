package testutil

import (
	"testing"
	"time"
)

// CPUMeter measures the CPU time the process spends (user and system, every
// thread, so the garbage collector's share too) while a benchmark runs. On a
// machine shared with other work, wall time per operation moves with the
// neighbours' load; CPU time per operation much less, so it is what
// before/after comparisons of a hot path read.
type CPUMeter struct {
	b     *testing.B
	start time.Duration
}

// StartCPU starts measuring; call Report once the benchmark loop is done.
func StartCPU(b *testing.B) *CPUMeter {
	return &CPUMeter{b: b, start: processCPU(b)}
}

// Report adds the CPU time per operation since StartCPU as cpu-ns/op.
func (m *CPUMeter) Report() {
	if m.b.N > 0 {
		m.b.ReportMetric(float64(processCPU(m.b)-m.start)/float64(m.b.N), "cpu-ns/op")
	}
}

func processCPU(tb testing.TB) time.Duration {
	tb.Helper()
	d, err := cpuTime()
	if err != nil {
		tb.Fatalf("process CPU time: %v", err)
	}
	return d
}
