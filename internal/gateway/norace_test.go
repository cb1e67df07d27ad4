//go:build bounds && !race

package gateway

// raceEnabled: built with -race, whose instrumentation allocates on its own
// and changes stack sizes.
const raceEnabled = false
