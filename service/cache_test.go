package service

import (
	"testing"
	"time"
)

// TestTTLCache: a value is served until its TTL passes on the injected clock, forget drops it
// at once, and a full cache makes room.
func TestTTLCache(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	c := newTTLCache[string, int](3*time.Second, 2, func() time.Time { return now })
	c.put("a", 1)
	now = now.Add(2999 * time.Millisecond)
	if v, ok := c.get("a"); !ok || v != 1 {
		t.Fatalf("get within the TTL = %v, %v; want 1", v, ok)
	}
	now = now.Add(time.Millisecond)
	if _, ok := c.get("a"); ok {
		t.Fatal("get after the TTL still hits")
	}
	c.put("a", 2)
	c.forget("a")
	if _, ok := c.get("a"); ok {
		t.Fatal("get after forget still hits")
	}
	c.put("x", 1)
	c.put("y", 2)
	c.put("z", 3)
	if len(c.items) > 2 {
		t.Fatalf("%d items in a cache of 2", len(c.items))
	}
	if v, ok := c.get("z"); !ok || v != 3 {
		t.Fatalf("the newest value is gone: %v, %v", v, ok)
	}
}
