package filebackend

import (
	"errors"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

// newFakeClock is the clock of the cache and backend tests.
func newFakeClock() *testutil.Clock {
	return testutil.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
}

// wantReason fails unless err is a refusal (ErrBadCredentials, never
// ErrUnavailable) for reason want, or, for ReasonUnavailable, an
// ErrUnavailable.
func wantReason(t *testing.T, what string, err error, want license.Reason) {
	t.Helper()
	if got := license.ReasonOf(err); got != want {
		t.Errorf("%s: reason %q (err %v), want %q", what, got, err, want)
	}
	if want == license.ReasonUnavailable {
		if !errors.Is(err, license.ErrUnavailable) || errors.Is(err, license.ErrBadCredentials) {
			t.Errorf("%s: err %v, want ErrUnavailable alone", what, err)
		}
		return
	}
	if !errors.Is(err, license.ErrBadCredentials) || errors.Is(err, license.ErrUnavailable) {
		t.Errorf("%s: err %v, want ErrBadCredentials alone", what, err)
	}
}
