// Package ratelimit limits how often each key (for Known's widget: "<appId>|<client IP>") may
// call, with one token bucket per key.
//
// The limit is per Known instance: each instance keeps its own buckets in memory, so behind a
// load balancer with n instances a key may make up to n times the configured rate.
package ratelimit

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

const (
	// idleGrace is how long a key's bucket must have been full before the key is forgotten.
	// Forgetting a full bucket loses nothing (a new one starts full); the grace only keeps
	// steady callers from being dropped and made again.
	idleGrace = time.Minute
	// sweepEvery is how often Allow walks the buckets to forget idle keys.
	sweepEvery = time.Minute
	// defaultMaxKeys caps the buckets kept, whatever the rate of new keys. At the cap a new key
	// displaces an arbitrary one, which then starts again with a full bucket: under a flood of
	// distinct keys the limiter degrades towards allowing, rather than growing or refusing
	// everybody.
	defaultMaxKeys = 100_000
	// maxBurst keeps 2 × perSecond within an int for absurd configurations.
	maxBurst = 1 << 30
)

// Limiter allows each key perSecond calls per second on average, in bursts of up to twice
// that. Keys are independent. Its memory is bounded: a key idle long enough for its bucket to
// have been full for a minute is forgotten, and at most 100,000 keys are kept at once. A
// Limiter needs no closing: it starts no goroutine. It is safe for concurrent use.
type Limiter struct {
	limit   rate.Limit
	burst   int
	off     bool          // no limit: Allow is always true
	idle    time.Duration // a key unseen for this long has had a full bucket for idleGrace
	maxKeys int
	now     func() time.Time // tests inject a clock

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim      *rate.Limiter
	lastSeen time.Time
}

// New returns a Limiter of perSecond calls per second per key, with bursts of 2 × perSecond
// (at least 1). perSecond 0 (or less, NaN or +Inf) means no limit: Allow is always true.
func New(perSecond float64) *Limiter { return NewWithClock(perSecond, time.Now) }

// NewWithClock is New on the clock now, which tests move by hand instead of sleeping.
func NewWithClock(perSecond float64, now func() time.Time) *Limiter {
	l := &Limiter{now: now, maxKeys: defaultMaxKeys}
	if !(perSecond > 0) || math.IsInf(perSecond, 1) {
		l.off = true
		return l
	}
	l.limit = rate.Limit(perSecond)
	l.burst = int(math.Min(2*perSecond, maxBurst))
	if l.burst < 1 {
		l.burst = 1
	}
	// An empty bucket is full again after burst/perSecond seconds.
	fill := time.Duration(float64(l.burst) / perSecond * float64(time.Second))
	if fill < 0 || fill > 24*time.Hour { // overflow, or a rate so low it is near to none
		fill = 24 * time.Hour
	}
	l.idle = fill + idleGrace
	l.buckets = make(map[string]*bucket)
	return l
}

// Allow takes one call from key's bucket and reports whether there was one to take. A refused
// call takes nothing, so a caller that keeps trying is allowed again as the bucket refills.
func (l *Limiter) Allow(key string) bool {
	ok, _ := l.Take(key)
	return ok
}

// Take is Allow that also says, for a refused call, how long until key's bucket holds a call
// again (an HTTP answer's Retry-After). A refused call takes nothing.
func (l *Limiter) Take(key string) (ok bool, wait time.Duration) {
	if l.off {
		return true, 0
	}
	now := l.now()

	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= sweepEvery {
		l.sweep(now)
	}
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.maxKeys {
			for k := range l.buckets { // Go starts a map's iteration at a random place
				delete(l.buckets, k)
				break
			}
		}
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[key] = b
	}
	b.lastSeen = now
	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	// Under one token: the rest of it refills at the rate. (A Reservation cancelled at once
	// would say the same, but gives back more than it took when calls' clocks interleave.)
	missing := 1 - b.lim.TokensAt(now)
	wait = time.Duration(math.Ceil(missing / float64(l.limit) * float64(time.Second)))
	return false, max(wait, time.Nanosecond)
}

// sweep forgets the keys unseen for l.idle; their buckets are full, as a new one would be.
// It runs at most once per sweepEvery, so its cost per call is amortized over the calls of a
// minute. l.mu must be held.
func (l *Limiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, b := range l.buckets {
		if now.Sub(b.lastSeen) >= l.idle {
			delete(l.buckets, k)
		}
	}
}

// size is how many keys l remembers.
func (l *Limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
