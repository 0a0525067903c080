package main

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/profile"
	"github.com/knownhq/known/service"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/storetest"
	"github.com/rs/zerolog"
	"go.mongodb.org/mongo-driver/v2/event"
)

// inProcess is Known's HTTP handler served by httptest on a fresh database, with the store, the
// service and the log at hand, so that a test can inject what run() would read from the
// environment (a limiter on a clock, a store that fails) and read what Known logged.
type inProcess struct {
	URL   string
	store *store.Store
	svc   *service.Service
	log   *syncBuffer
}

// startInProcess serves Known in-process; opts, when set, adjusts the service's options
// (which start with the test secret, the admin token, no widget rate limit and profile
// fetches allowed to loopback).
func startInProcess(tb testing.TB, opts func(*service.Options)) *inProcess {
	tb.Helper()
	return startMonitored(tb, nil, opts)
}

// startMonitored is startInProcess on a store whose commands monitor sees (nil: none).
func startMonitored(tb testing.TB, monitor *event.CommandMonitor, opts func(*service.Options)) *inProcess {
	tb.Helper()
	st := storetest.Open(tb, monitor)
	buf := &syncBuffer{}
	log := zerolog.New(buf).With().Timestamp().Logger()
	o := service.Options{Secret: []byte(testSecret), AdminToken: testAdminToken, Log: log,
		Profiles: profile.New(profile.Options{AllowPrivate: true, Timeout: 5 * time.Second})}
	if opts != nil {
		opts(&o)
	}
	svc := service.New(st, o)
	srv := httptest.NewServer(newServer(log, svc, st, newMetrics()))
	tb.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := svc.Wait(ctx); err != nil {
			tb.Errorf("background work did not end: %v", err)
		}
	})
	return &inProcess{URL: srv.URL, store: st, svc: svc, log: buf}
}

// counts returns how many documents of project p each collection holds (companies and
// organizations up to 100).
func (k *inProcess) counts(tb testing.TB, p string) map[string]int64 {
	tb.Helper()
	ctx := context.Background()
	n, err := k.store.Counts(ctx, known.ProjectID(p))
	if err != nil {
		tb.Fatal(err)
	}
	cs, _, err := k.store.Companies(ctx, known.ProjectID(p), known.Page{First: 100})
	if err != nil {
		tb.Fatal(err)
	}
	os, _, err := k.store.Organizations(ctx, known.ProjectID(p), known.Page{First: 100})
	if err != nil {
		tb.Fatal(err)
	}
	n["companies"], n["organizations"] = int64(len(cs)), int64(len(os))
	return n
}

// errorLines returns the log lines at level error.
func (k *inProcess) errorLines(tb testing.TB) []map[string]any {
	tb.Helper()
	var out []map[string]any
	for _, l := range k.log.logLines(tb) {
		if l["level"] == "error" {
			out = append(out, l)
		}
	}
	return out
}
