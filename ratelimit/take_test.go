package ratelimit

import (
	"testing"
	"time"
)

// TestTakeSaysWhenTheNextCallIsAllowed: a refused Take says how long until the key's bucket
// holds a call again, and a call made after that wait is allowed.
func TestTakeSaysWhenTheNextCallIsAllowed(t *testing.T) {
	c := newClock()
	l := NewWithClock(2, c.Now) // burst 4, one call per 500 ms
	for i := range 4 {
		if ok, wait := l.Take("k"); !ok || wait != 0 {
			t.Fatalf("call %d of the burst: %v, wait %v", i, ok, wait)
		}
	}
	ok, wait := l.Take("k")
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("with an empty bucket: %v, wait %v; want refused, 500ms", ok, wait)
	}
	c.Advance(200 * time.Millisecond)
	if ok, wait = l.Take("k"); ok || wait != 300*time.Millisecond {
		t.Fatalf("200 ms later: %v, wait %v; want refused, 300ms", ok, wait)
	}
	c.Advance(wait)
	if ok, _ = l.Take("k"); !ok {
		t.Fatal("refused after the wait it named")
	}
	if ok, wait := New(0).Take("k"); !ok || wait != 0 {
		t.Fatalf("no limit: %v, %v", ok, wait)
	}
}
