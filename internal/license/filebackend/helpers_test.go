package filebackend

import (
	"testing"
	"time"
)

// eventually polls cond; the file tests wait on a real poller, and a fixed
// sleep would be either slow or flaky.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
