package main

import (
	"bytes"
	"flag"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"syscall"
	"testing"
	"time"
)

var (
	dashboardProfile = flag.String("dashboard-memprofile", "",
		"BenchmarkDashboard: write the allocation profiles before (FILE.base) and after (FILE) Fresh100's requests")
	dashboardCPUProfile = flag.String("dashboard-cpuprofile", "",
		"BenchmarkDashboard: write a CPU profile of Fresh100's requests alone to FILE (not with -cpuprofile)")
)

// BenchmarkDashboard measures the inbox query of issue 10 (dashboardQuery: every field of the
// dashboard page, messages included) through the whole HTTP stack, in this process, for pages
// of 10 and of 100 conversations of distinct users, and reports per request: MongoDB commands
// (commands/op), the allocations and bytes of the whole process (allocs/op, B/op), Known's
// share of them (known-allocs/row, known-B/op), the client's (client-allocs/row, client-B/op)
// and the process's CPU time (cpu-ns/op: user and system; ns/op also waits for the store).
//
// The client's share is measured by replaying the same request's answer to the same client
// code (request encoding, http.Client, decoding and checks of readInbox) through an in-memory
// transport; Known's share is the rest. The real transport's reading and writing stays in
// Known's share, so that share is, if anything, too high. On the default embedded store the
// store's own allocations count as Known's too: set KNOWN_TEST_MONGODB_URI to an external
// FerretDB (bench/peer/ferretdb) to leave them out.
//
// Fresh10, Fresh100: every profile fresh. Stale10, Stale100: the clock moves past
// KNOWN_PROFILE_MAX_AGE before each request, so every profile on the page is fetched again from
// a loopback user API (unchanged, 1 ms each) and stored. Compare the sizes within one run:
//
//	go test ./server -run '^$' -bench BenchmarkDashboard -benchtime 20x
//
// With -dashboard-memprofile FILE it writes the allocation profiles before and after
// Fresh100's requests (go tool pprof -sample_index=alloc_objects -top -base FILE.base FILE;
// add -memprofilerate 1 for exact counts); with -dashboard-cpuprofile FILE, a CPU profile of
// those requests alone.
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

	page := func(n int, stale bool, profile, cpuProfile string) func(b *testing.B) {
		return func(b *testing.B) {
			readInbox(b, k.URL, key, n) // warm: the key's project and the endpoint are cached
			k.settle(b)
			client := clientCost(b, k.URL, key, n)
			var base *bytes.Buffer
			if profile != "" {
				base = allocProfile(b)
			}
			if cpuProfile != "" {
				stop := startCPUProfile(b, cpuProfile)
				defer stop()
			}
			b.ReportAllocs()
			commands, mallocs, allocated, cpu := 0, uint64(0), uint64(0), time.Duration(0)
			var m0, m1 runtime.MemStats
			for b.Loop() {
				if stale {
					b.StopTimer()
					k.settle(b) // what the previous request left behind is not measured
					k.clock.Advance(profileMaxAge + time.Second)
					b.StartTimer()
				}
				runtime.ReadMemStats(&m0)
				cpu0 := processCPU(b)
				c, _ := counter.during(func() { readInbox(b, k.URL, key, n) })
				cpu += processCPU(b) - cpu0
				runtime.ReadMemStats(&m1)
				commands, mallocs = commands+c, mallocs+m1.Mallocs-m0.Mallocs
				allocated += m1.TotalAlloc - m0.TotalAlloc
			}
			if base != nil {
				writeAllocProfile(b, profile, base)
			}
			perOp := func(v uint64) float64 { return float64(v) / float64(b.N) }
			b.ReportMetric(perOp(uint64(commands)), "commands/op")
			b.ReportMetric(perOp(mallocs-client.mallocs*uint64(b.N))/float64(n), "known-allocs/row")
			b.ReportMetric(perOp(allocated-client.bytes*uint64(b.N)), "known-B/op")
			b.ReportMetric(float64(client.mallocs)/float64(n), "client-allocs/row")
			b.ReportMetric(float64(client.bytes), "client-B/op")
			b.ReportMetric(perOp(uint64(cpu)), "cpu-ns/op")
		}
	}
	b.Run("Fresh10", page(10, false, "", ""))
	b.Run("Fresh100", page(100, false, *dashboardProfile, *dashboardCPUProfile))
	b.Run("Stale10", page(10, true, "", ""))
	b.Run("Stale100", page(100, true, "", ""))
}

// allocs are the allocations and bytes of one request.
type allocs struct{ mallocs, bytes uint64 }

// clientCost measures what readInbox costs the client alone: it records Known's answer to
// the inbox query of n, then replays it to readInbox through an in-memory transport and counts
// the allocations (the least of 5 runs: nothing else allocates in between, but a background
// goroutine of the store's driver might).
func clientCost(tb testing.TB, baseURL, key string, n int) allocs {
	tb.Helper()
	rec := &recording{next: http.DefaultTransport}
	httpClient.Transport = rec
	readInbox(tb, baseURL, key, n)
	httpClient.Transport = &replay{rec: rec}
	// The test client is a package variable: the benchmark runs alone (-run '^$'), so nothing
	// else uses it while it replays.
	defer func() { httpClient.Transport = nil }()
	least := allocs{mallocs: ^uint64(0), bytes: ^uint64(0)}
	var m0, m1 runtime.MemStats
	for range 5 {
		runtime.ReadMemStats(&m0)
		readInbox(tb, baseURL, key, n)
		runtime.ReadMemStats(&m1)
		least.mallocs = min(least.mallocs, m1.Mallocs-m0.Mallocs)
		least.bytes = min(least.bytes, m1.TotalAlloc-m0.TotalAlloc)
	}
	return least
}

// recording is a transport that keeps the last answer it carried.
type recording struct {
	next   http.RoundTripper
	status int
	header http.Header
	body   []byte
}

func (r *recording) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := r.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	r.status, r.header, r.body = res.StatusCode, res.Header, body
	res.Body = io.NopCloser(bytes.NewReader(body))
	return res, nil
}

// replay is a transport that answers every request with a recorded answer, reading the
// request's body as a server would.
type replay struct{ rec *recording }

func (r *replay) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		_ = req.Body.Close()
	}
	return &http.Response{StatusCode: r.rec.status, Header: r.rec.header, Request: req,
		Body: io.NopCloser(bytes.NewReader(r.rec.body)), ContentLength: int64(len(r.rec.body))}, nil
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU(tb testing.TB) time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

// allocProfile returns the allocation profile so far; the runtime's profile counts what the
// last completed garbage collection saw, so it collects first.
func allocProfile(tb testing.TB) *bytes.Buffer {
	tb.Helper()
	runtime.GC()
	var buf bytes.Buffer
	if err := pprof.Lookup("allocs").WriteTo(&buf, 0); err != nil {
		tb.Fatalf("allocation profile: %v", err)
	}
	return &buf
}

// writeAllocProfile writes the allocation profile now to path and base to path.base:
// go tool pprof -base path.base path shows what was allocated in between.
func writeAllocProfile(tb testing.TB, path string, base *bytes.Buffer) {
	tb.Helper()
	after := allocProfile(tb)
	if err := os.WriteFile(path, after.Bytes(), 0o644); err != nil {
		tb.Fatalf("writing %s: %v", path, err)
	}
	if err := os.WriteFile(path+".base", base.Bytes(), 0o644); err != nil {
		tb.Fatalf("writing %s.base: %v", path, err)
	}
}

// startCPUProfile starts writing a CPU profile to path and returns what stops it.
func startCPUProfile(tb testing.TB, path string) func() {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatalf("CPU profile: %v", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		tb.Fatalf("CPU profile: %v", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			tb.Errorf("CPU profile: %v", err)
		}
	}
}
