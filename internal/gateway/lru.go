package gateway

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// lru is a map bounded by the summed cost of its entries, evicting the
// least recently used beyond it, whose entries may expire. Both of the
// gateway's in-memory caches use it (the manifest cache counts bytes, the
// blob redirect cache entries). It is not safe for concurrent use: each
// cache holds its own lock around it.
type lru[K comparable, V any] struct {
	max, size int64
	entries   map[K]*lruEntry[K, V]
	root      lruEntry[K, V] // sentinel: root.next is the most recently used
}

type lruEntry[K comparable, V any] struct {
	key K
	val V
	// expires is zero for an entry that does not expire.
	expires    time.Time
	cost       int64
	prev, next *lruEntry[K, V]
}

func newLRU[K comparable, V any](maxCost int64) *lru[K, V] {
	l := &lru[K, V]{max: maxCost, entries: map[K]*lruEntry[K, V]{}}
	l.root.next, l.root.prev = &l.root, &l.root
	return l
}

// get returns the value of k unless it expired by now (and is then
// dropped), making it the most recently used.
func (l *lru[K, V]) get(k K, now time.Time) (v V, ok bool) {
	e := l.entries[k]
	if e == nil {
		return v, false
	}
	if !e.expires.IsZero() && !now.Before(e.expires) {
		l.drop(e)
		return v, false
	}
	l.unlink(e)
	l.pushFront(e)
	return e.val, true
}

// add stores v under k in place of any older value, evicting the least
// recently used entries beyond max; a value that alone costs more than max
// is not stored, and add reports false.
func (l *lru[K, V]) add(k K, v V, cost int64, expires time.Time) bool {
	if cost > l.max {
		return false
	}
	if old := l.entries[k]; old != nil {
		l.drop(old)
	}
	e := &lruEntry[K, V]{key: k, val: v, expires: expires, cost: cost}
	l.entries[k] = e
	l.pushFront(e)
	l.size += cost
	for l.size > l.max {
		l.drop(l.root.prev)
	}
	return true
}

func (l *lru[K, V]) len() int { return len(l.entries) }

func (l *lru[K, V]) pushFront(e *lruEntry[K, V]) {
	e.prev, e.next = &l.root, l.root.next
	e.next.prev, l.root.next = e, e
}

func (l *lru[K, V]) unlink(e *lruEntry[K, V]) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (l *lru[K, V]) drop(e *lruEntry[K, V]) {
	l.unlink(e)
	delete(l.entries, e.key)
	l.size -= e.cost
}

// cacheMetrics are a cache's metrics: NAME_requests_total{result="hit|miss"}
// and a gauge of what it holds.
type cacheMetrics struct {
	hits, misses prometheus.Counter
	held         prometheus.Gauge
}

// newCacheMetrics registers the metrics of the cache called name on reg;
// held is the gauge's name and help.
func newCacheMetrics(reg prometheus.Registerer, name, requestsHelp, heldName, heldHelp string) cacheMetrics {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name + "_requests_total", Help: requestsHelp}, []string{"result"})
	held := prometheus.NewGauge(prometheus.GaugeOpts{Name: heldName, Help: heldHelp})
	reg.MustRegister(requests, held)
	return cacheMetrics{hits: requests.WithLabelValues("hit"), misses: requests.WithLabelValues("miss"), held: held}
}
