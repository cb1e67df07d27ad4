//go:build bounds

package license

import "testing"

// Allocation bounds break on a Go upgrade without a bug, so they run only
// with -tags bounds (go test -tags bounds ./internal/license/), not in
// make test.

// A refusal is a shared error: it allocates nothing.
func TestBadCredentialsAllocates(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _ = BadCredentials(ReasonWrongToken) }); n != 0 {
		t.Errorf("a refusal allocates %v times", n)
	}
}
