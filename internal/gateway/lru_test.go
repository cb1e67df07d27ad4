package gateway

import (
	"testing"
	"time"
)

func TestLRU(t *testing.T) {
	t.Parallel()
	now := time.Now()
	l := newLRU[string, int](10)
	if !l.add("a", 1, 4, time.Time{}) || !l.add("b", 2, 4, now.Add(time.Second)) {
		t.Fatal("not stored")
	}
	if l.add("huge", 3, 11, time.Time{}) {
		t.Error("stored a value that costs more than max")
	}
	if v, ok := l.get("a", now); !ok || v != 1 {
		t.Errorf("a: %d %v", v, ok)
	}
	// b is now the least recently used: c evicts it.
	l.add("c", 3, 4, time.Time{})
	if _, ok := l.get("b", now); ok || l.len() != 2 || l.size != 8 {
		t.Errorf("b not evicted: len %d, size %d", l.len(), l.size)
	}
	// Replacing a key counts its new cost only.
	l.add("c", 4, 2, now.Add(time.Second))
	if v, ok := l.get("c", now); !ok || v != 4 || l.size != 6 {
		t.Errorf("c: %d %v, size %d", v, ok, l.size)
	}
	// Expired at its expiry, and dropped.
	if _, ok := l.get("c", now.Add(time.Second)); ok || l.len() != 1 || l.size != 4 {
		t.Errorf("c past its expiry: len %d, size %d", l.len(), l.size)
	}
	if _, ok := l.get("a", now.Add(time.Hour)); !ok {
		t.Error("an entry without expiry expired")
	}
}
