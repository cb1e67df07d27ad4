package auth

import (
	"container/heap"
	"container/list"
	"sync"
	"time"
)

// tokenCache holds the claims of verified tokens, keyed by the token as
// received. It is bounded: when full, adding a token evicts one entry, the
// least recently used, so that a flood of distinct valid tokens pushes out
// the idle entries one at a time while the tokens in use stay. It keeps no
// entry past the time its token stops being valid: every call first drops
// the entries whose time has passed, earliest first, from a heap ordered by
// that time; the expired go before any live entry is evicted.
//
// One mutex: a hit moves its entry to the front of the list, which is a
// write. Both are a few pointer updates next to the hash of a token of a
// few KB that the map lookup costs anyway.
type tokenCache struct {
	bound int

	mu      sync.Mutex
	entries map[string]*cacheEntry
	lru     list.List   // of *cacheEntry; front: most recently used
	byTime  expiryQueue // earliest until first
}

type cacheEntry struct {
	raw    string
	claims *Claims
	// until is the last instant the token is valid (exp plus leeway).
	until time.Time
	elem  *list.Element // in lru
	index int           // in byTime
}

func newTokenCache(bound int) *tokenCache {
	return &tokenCache{bound: bound, entries: make(map[string]*cacheEntry)}
}

// get returns the claims of raw if they are held and valid at now, making
// raw the most recently used.
func (c *tokenCache) get(raw string, now time.Time) (*Claims, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now)
	e, ok := c.entries[raw]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(e.elem)
	return e.claims, true
}

// add stores the claims of raw, valid until the instant until, evicting the
// least recently used entry if the cache is full. A token already held
// (verified twice at once) keeps its entry.
func (c *tokenCache) add(raw string, claims *Claims, until, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now)
	if e, ok := c.entries[raw]; ok {
		c.lru.MoveToFront(e.elem)
		return
	}
	if now.After(until) {
		return
	}
	for len(c.entries) >= c.bound {
		c.remove(c.lru.Back().Value.(*cacheEntry))
	}
	e := &cacheEntry{raw: raw, claims: claims, until: until}
	e.elem = c.lru.PushFront(e)
	heap.Push(&c.byTime, e)
	c.entries[raw] = e
}

// len is the number of entries held.
func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// expire drops the entries whose until is before now. The caller holds mu.
func (c *tokenCache) expire(now time.Time) {
	for len(c.byTime) > 0 && now.After(c.byTime[0].until) {
		c.remove(c.byTime[0])
	}
}

// remove drops e from all three structures. The caller holds mu.
func (c *tokenCache) remove(e *cacheEntry) {
	c.lru.Remove(e.elem)
	heap.Remove(&c.byTime, e.index)
	delete(c.entries, e.raw)
}

// expiryQueue is a container/heap of entries, earliest until first; each
// entry knows its index, so that an entry evicted from the list leaves the
// heap in O(log n).
type expiryQueue []*cacheEntry

func (q expiryQueue) Len() int           { return len(q) }
func (q expiryQueue) Less(i, j int) bool { return q[i].until.Before(q[j].until) }
func (q expiryQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}

func (q *expiryQueue) Push(x any) {
	e := x.(*cacheEntry)
	e.index = len(*q)
	*q = append(*q, e)
}

func (q *expiryQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil // no reference kept past the heap's length
	*q = old[:len(old)-1]
	return e
}
