package testutil

import (
	"testing"
	"time"
)

func TestWaitFor(t *testing.T) {
	t.Parallel()
	n := 0
	WaitFor(t, "the third call", time.Second, func() bool { n++; return n == 3 })
	if n != 3 {
		t.Errorf("cond called %d times", n)
	}
}
