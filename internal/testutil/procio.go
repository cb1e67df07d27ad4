package testutil

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// ReadChars is the bytes this process has read with read(2) and its kin so
// far (rchar in /proc/self/io). splice(2) moves bytes without counting them
// there, which lets a test see whether a copy went through user space. It
// skips the test where /proc/self/io does not exist.
func ReadChars(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io: %v", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("/proc/self/io: %v", err)
			}
			return n
		}
	}
	t.Skip("no rchar in /proc/self/io")
	return 0
}
