//go:build !linux

package procstat

import (
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"
)

// Off Linux every reader says it is unsupported, naming the system, rather
// than returning zeros that a report would print as measurements.
func TestUnsupported(t *testing.T) {
	err := Supported()
	if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), runtime.GOOS) {
		t.Fatalf("Supported() = %v", err)
	}
	if _, err := CPUTime(os.Getpid()); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("CPUTime: %v", err)
	}
	if _, err := ReadMemory(os.Getpid()); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("ReadMemory: %v", err)
	}
	if _, err := Children(os.Getpid()); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Children: %v", err)
	}
	if h := ReadHost(); h != (Host{}) {
		t.Errorf("ReadHost() = %+v", h)
	}
	if d := SumCPU([]int{os.Getpid()}); d != 0 {
		t.Errorf("SumCPU = %s", d)
	}
}
