//go:build !linux

package accountstest

import (
	"fmt"
	"runtime"
)

// nobody: postgres refuses to run as root, and the unprivileged account to
// drop to (and whether postgres can look it up) differs between systems;
// this package knows only Linux's.
func nobody() (ids, error) {
	return ids{}, fmt.Errorf("%w as root on %s (the server drops to nobody on Linux only): run the tests as an ordinary user", errUnsupported, runtime.GOOS)
}
