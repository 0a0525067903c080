package service

import (
	"sync"
	"time"
)

// CacheTTL is how long an instance keeps what it read of a secret key's project and of a
// project's user-data endpoint: every request needs the first and every page with profiles
// the second, and a change made on another instance reaches this one within CacheTTL (a
// change made on this one at once).
const CacheTTL = 3 * time.Second

// ttlCache keeps values for ttl after they were read, at most max of them (when full, the
// expired ones go, then any: it is a cache, a miss only costs a read).
type ttlCache[K comparable, V any] struct {
	mu    sync.Mutex
	ttl   time.Duration
	max   int
	now   func() time.Time
	items map[K]cached[V]
}

type cached[V any] struct {
	v       V
	expires time.Time
}

func newTTLCache[K comparable, V any](ttl time.Duration, max int, now func() time.Time) *ttlCache[K, V] {
	return &ttlCache[K, V]{ttl: ttl, max: max, now: now, items: map[K]cached[V]{}}
}

func (c *ttlCache[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.items[k]
	if !ok || !c.now().Before(it.expires) {
		var zero V
		return zero, false
	}
	return it.v, true
}

func (c *ttlCache[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.items) >= c.max {
		for key, it := range c.items {
			if !now.Before(it.expires) {
				delete(c.items, key)
			}
		}
		for key := range c.items {
			if len(c.items) < c.max {
				break
			}
			delete(c.items, key)
		}
	}
	c.items[k] = cached[V]{v: v, expires: now.Add(c.ttl)}
}

func (c *ttlCache[K, V]) forget(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.items, k)
}

func (c *ttlCache[K, V]) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.items)
}
