//go:build race

package gateway

import "testing"

// The race detector allocates on its own: allocation counts mean nothing.
func skipUnderRace(t *testing.T) { t.Skip("allocation counts are not meaningful under -race") }
