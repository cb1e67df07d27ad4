package license

import (
	"log/slog"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

// newFakeClock is the clock of the cache and file tests.
func newFakeClock() *testutil.Clock {
	return testutil.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// API tokens of the tests.
const (
	aliceToken = "alice-api-token"
	bobToken   = "bob-api-token"
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
