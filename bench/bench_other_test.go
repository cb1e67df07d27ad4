//go:build !linux

package bench

import (
	"context"
	"errors"
	"io"
	"testing"
)

// Off Linux the harness refuses before building or starting anything,
// instead of writing a report whose CPU and memory columns are zeros.
func TestRunRefusesOffLinux(t *testing.T) {
	o := DefaultOptions()
	o.Log = io.Discard
	o.Root = t.TempDir()
	if _, err := Run(context.Background(), o); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Run = %v, want an unsupported error", err)
	}
}
