//go:build !race

package gateway

// raceEnabled: built with -race, whose instrumentation changes stack sizes.
const raceEnabled = false
