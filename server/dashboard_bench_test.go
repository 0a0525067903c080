package main

import (
	"testing"
	"time"
)

// BenchmarkDashboard measures the inbox query (dashboard_test.go) through the whole HTTP stack
// for 10 and for 100 conversations of distinct users with fresh external profiles, and reports
// how many times the first the second costs. Batched loaders make the database round trips of
// both the same, so the ratio shows what the other tenfold work (decoding, resolving, encoding)
// costs. It asserts no absolute time.
//
// Sub-benchmarks: Conversations10, Conversations100, and Ratio, which alternates the two in each
// iteration so that both meet the same conditions and reports 100/10.
func BenchmarkDashboard(b *testing.B) {
	api := newProfileAPI(b, time.Millisecond)
	k := startRun(b, profileKnownEnv(b))
	appID, key := createProject(b, k.URL, "BenchInbox")
	setProfileEndpoint(b, k.URL, key, api, false)
	seedInbox(b, k.URL, appID, 100)
	setProfileEndpoint(b, k.URL, key, api, true)
	readInbox(b, k.URL, key, 100) // fetches every profile: later reads find them fresh
	if total, _, _, _ := api.counts(); total != 100 {
		b.Fatalf("%d fetches on the first read, want 100", total)
	}

	b.Run("Conversations10", func(b *testing.B) {
		for b.Loop() {
			readInbox(b, k.URL, key, 10)
		}
	})
	b.Run("Conversations100", func(b *testing.B) {
		for b.Loop() {
			readInbox(b, k.URL, key, 100)
		}
	})
	b.Run("Ratio", func(b *testing.B) {
		var t10, t100 time.Duration
		for b.Loop() {
			t0 := time.Now()
			readInbox(b, k.URL, key, 10)
			t1 := time.Now()
			readInbox(b, k.URL, key, 100)
			t10 += t1.Sub(t0)
			t100 += time.Since(t1)
		}
		ratio := float64(t100) / float64(t10)
		b.ReportMetric(ratio, "100/10")
		b.ReportMetric(float64(t10.Nanoseconds())/float64(b.N), "10-ns/op")
		b.ReportMetric(float64(t100.Nanoseconds())/float64(b.N), "100-ns/op")
		b.Logf("inbox 100/10 = %.2f (10 conversations %v/op; 100 conversations %v/op; %d iterations)",
			ratio, t10/time.Duration(b.N), t100/time.Duration(b.N), b.N)
	})
	if total, _, _, _ := api.counts(); total != 100 {
		b.Errorf("%d fetches in all, want 100: fresh profiles were fetched again", total)
	}
}
