package testutil

import (
	"testing"
	"time"
)

// WaitFor polls cond until it holds, failing the test after timeout; for
// what happens on its own schedule (a file poller), where there is
// nothing to wait on.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
