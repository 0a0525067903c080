package ratelimit

import (
	"fmt"
	"github.com/knownhq/known/clocktest"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newClock() *clocktest.Clock { return clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) }

// newAt returns New(perSecond) on clock c.
func newAt(perSecond float64, c *clocktest.Clock) *Limiter {
	l := New(perSecond)
	l.now = c.Now
	return l
}

// allowed counts how many of n calls for key l allows.
func allowed(l *Limiter, key string, n int) int {
	got := 0
	for range n {
		if l.Allow(key) {
			got++
		}
	}
	return got
}

func TestLimiter(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, c *clocktest.Clock)
	}{
		{"BurstOfTwiceTheRateThenRefused", func(t *testing.T, c *clocktest.Clock) {
			for _, tc := range []struct {
				perSecond float64
				burst     int
			}{{10, 20}, {1, 2}, {2.5, 5}, {0.5, 1}, {0.1, 1}} {
				l := newAt(tc.perSecond, c)
				if got := allowed(l, "k", tc.burst+5); got != tc.burst {
					t.Errorf("New(%v): %d calls allowed at once, want %d", tc.perSecond, got, tc.burst)
				}
			}
		}},
		{"RefillsAtTheRate", func(t *testing.T, c *clocktest.Clock) {
			l := newAt(10, c)
			allowed(l, "k", 20)
			if l.Allow("k") {
				t.Fatal("allowed with an empty bucket")
			}
			c.Advance(500 * time.Millisecond)
			if got := allowed(l, "k", 10); got != 5 {
				t.Errorf("after 0.5 s at 10/s: %d allowed, want 5", got)
			}
			c.Advance(time.Hour)
			if got := allowed(l, "k", 30); got != 20 {
				t.Errorf("after an hour: %d allowed, want the burst of 20", got)
			}
		}},
		{"RefusedCallsTakeNothing", func(t *testing.T, c *clocktest.Clock) {
			l := newAt(1, c)
			allowed(l, "k", 2)
			for range 99 {
				c.Advance(10 * time.Millisecond)
				if l.Allow("k") {
					t.Fatal("allowed with under one token")
				}
			}
			c.Advance(20 * time.Millisecond) // 1.01 s since empty
			if !l.Allow("k") {
				t.Error("a caller that kept trying was not allowed once a token had refilled")
			}
		}},
		{"KeysAreIndependent", func(t *testing.T, c *clocktest.Clock) {
			l := newAt(1, c)
			if got := allowed(l, "app1|1.2.3.4", 10); got != 2 {
				t.Fatalf("first key: %d allowed, want 2", got)
			}
			for _, k := range []string{"app1|5.6.7.8", "app2|1.2.3.4"} {
				if got := allowed(l, k, 10); got != 2 {
					t.Errorf("%s after another key's bucket emptied: %d allowed, want 2", k, got)
				}
			}
		}},
		{"ZeroDisablesTheLimit", func(t *testing.T, c *clocktest.Clock) {
			for _, perSecond := range []float64{0, -1, math.NaN(), math.Inf(1)} {
				l := newAt(perSecond, c)
				if got := allowed(l, "k", 10_000); got != 10_000 {
					t.Errorf("New(%v): %d of 10000 allowed, want all", perSecond, got)
				}
				if n := l.size(); n != 0 {
					t.Errorf("New(%v) keeps %d buckets, want none", perSecond, n)
				}
			}
		}},
		{"IdleKeysAreForgottenWithoutLosingState", func(t *testing.T, c *clocktest.Clock) {
			l := newAt(10, c)
			allowed(l, "busy", 20)
			allowed(l, "idle", 1)
			// "busy" keeps coming back with an empty bucket; "idle" does not come back.
			for range 30 {
				c.Advance(5 * time.Second)
				allowed(l, "busy", 100)
			}
			if n := l.size(); n != 1 {
				t.Errorf("%d keys remembered after 150 s, want 1 (busy)", n)
			}
			if l.Allow("busy") {
				t.Error("the busy key's empty bucket was forgotten")
			}
			if got := allowed(l, "idle", 30); got != 20 {
				t.Errorf("the forgotten key: %d allowed, want a full burst of 20", got)
			}
		}},
		{"MemoryStaysBoundedAsTimePasses", func(t *testing.T, c *clocktest.Clock) {
			l := newAt(10, c)
			// 100,000 distinct keys, one every 100 ms: a key is forgotten after it has been
			// idle for 2 s + 1 min and a sweep comes, so at most ~(62 s + 60 s) / 100 ms stay.
			biggest := 0
			for i := range 100_000 {
				l.Allow(fmt.Sprintf("app|10.0.%d.%d", i/256, i%256))
				c.Advance(100 * time.Millisecond)
				biggest = max(biggest, l.size())
			}
			if biggest > 1300 {
				t.Errorf("up to %d keys remembered at once, want at most 1300", biggest)
			}
		}},
		{"MemoryStaysBoundedWhenTimeStandsStill", func(t *testing.T, c *clocktest.Clock) {
			l := newAt(10, c)
			l.maxKeys = 1000
			for i := range 100_000 {
				l.Allow(fmt.Sprint("key", i))
			}
			if n := l.size(); n > 1000 {
				t.Errorf("%d keys remembered, want at most the cap of 1000", n)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newClock()) })
	}
}

func TestLimiterConcurrentUse(t *testing.T) {
	c := newClock()
	l := newAt(10, c)
	var ok atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 1000 {
				if l.Allow("shared") {
					ok.Add(1)
				}
				l.Allow(fmt.Sprint("own", g, i%50))
				if i%100 == 0 {
					c.Advance(time.Millisecond) // concurrently with Allow; never enough to refill
				}
			}
		})
	}
	wg.Wait()
	// 16 × 10 ms of advance refill at most 1.6 tokens on top of the burst of 20.
	if got := ok.Load(); got < 20 || got > 21 {
		t.Errorf("%d calls allowed for the shared key, want 20 or 21", got)
	}
}

func BenchmarkAllow(b *testing.B) {
	b.Run("OneKey", func(b *testing.B) {
		l := New(1e9)
		for b.Loop() {
			l.Allow("app|203.0.113.7")
		}
	})
	b.Run("ManyKeysParallel", func(b *testing.B) {
		l := New(10)
		keys := make([]string, 10_000)
		for i := range keys {
			keys[i] = fmt.Sprintf("app|10.0.%d.%d", i/256, i%256)
		}
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				l.Allow(keys[i%len(keys)])
				i++
			}
		})
	})
}
