package main

import (
	"runtime"
	"testing"
	"time"
)

// BenchmarkDashboard measures the inbox query of issue 10 (dashboardQuery: every field of the
// dashboard page, messages included) through the whole HTTP stack, in this process, on the
// embedded store, for pages of 10 and of 100 conversations of distinct users, and reports per
// request: MongoDB commands (commands/op), allocations and bytes (allocs/op, B/op: the client's
// and the server's, both in this process) and allocations per row (allocs/row).
//
// Fresh10, Fresh100: every profile fresh. Stale10, Stale100: the clock moves past
// KNOWN_PROFILE_MAX_AGE before each request, so every profile on the page is fetched again from
// a loopback user API (unchanged, 1 ms each) and stored. Compare the sizes within one run:
//
//	go test ./server -run '^$' -bench BenchmarkDashboard -benchtime 20x
func BenchmarkDashboard(b *testing.B) {
	counter := &commandCounter{}
	k := inProcessKnown(b, counter.monitor())
	api := newProfileAPI(b, time.Millisecond)
	appID, key := createProject(b, k.URL, "BenchInbox")
	setProfileEndpoint(b, k.URL, key, api, false)
	seedInbox(b, k.URL, appID, 100)
	setProfileEndpoint(b, k.URL, key, api, true)
	k.settle(b)
	readInbox(b, k.URL, key, 100) // fetches every profile: later reads find them fresh
	k.settle(b)

	page := func(n int, stale bool) func(b *testing.B) {
		return func(b *testing.B) {
			readInbox(b, k.URL, key, n) // warm: the key's project and the endpoint are cached
			k.settle(b)
			b.ReportAllocs()
			commands, mallocs := 0, uint64(0)
			var m0, m1 runtime.MemStats
			for b.Loop() {
				if stale {
					b.StopTimer()
					k.settle(b) // what the previous request left behind is not measured
					k.clock.Advance(profileMaxAge + time.Second)
					b.StartTimer()
				}
				runtime.ReadMemStats(&m0)
				c, _ := counter.during(func() { readInbox(b, k.URL, key, n) })
				runtime.ReadMemStats(&m1)
				commands, mallocs = commands+c, mallocs+m1.Mallocs-m0.Mallocs
			}
			b.ReportMetric(float64(commands)/float64(b.N), "commands/op")
			b.ReportMetric(float64(mallocs)/float64(b.N)/float64(n), "allocs/row")
		}
	}
	b.Run("Fresh10", page(10, false))
	b.Run("Fresh100", page(100, false))
	b.Run("Stale10", page(10, true))
	b.Run("Stale100", page(100, true))
}
