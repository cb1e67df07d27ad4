package testutil

import (
	"slices"
	"sync"
	"time"
)

// LicenceObserver records a licence cache's metrics events: it is a
// license.Observer for the tests of the cache and of the backends.
type LicenceObserver struct {
	mu      sync.Mutex
	lookups []string // backend/outcome
	hits    []bool
}

// LookupDone records a backend call as "backend/outcome".
func (o *LicenceObserver) LookupDone(backend, outcome string, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if d < 0 {
		panic("negative duration")
	}
	o.lookups = append(o.lookups, backend+"/"+outcome)
}

// CacheHit records a cache hit, positive or negative.
func (o *LicenceObserver) CacheHit(positive bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.hits = append(o.hits, positive)
}

// Lookups are the backend calls so far, "backend/outcome", oldest first.
func (o *LicenceObserver) Lookups() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.lookups)
}

// Hits are the cache hits so far (true: positive), oldest first.
func (o *LicenceObserver) Hits() []bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.hits)
}
