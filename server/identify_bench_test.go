package main

import (
	"context"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/storetest"
)

// BenchmarkIdentify measures identify for a returning user (same userId, same session) through
// the whole HTTP stack, next to the bare store calls that one such identify makes, and reports
// how many times the second the first costs: what HTTP, GraphQL, validation and token signing
// add to the database round trips. It asserts no absolute time.
//
// For a returning user whose session token already names their visitor, service/identify.go
// makes these store calls: widget() reads the Project and the Session; match() reads the user
// by externalId (UserByKey: KeyOwner + User); attach() reads the visitor's user (visitorUser:
// KeyOwner + User); apply() writes UpdateUser; issue() writes SaveSession.
//
// Sub-benchmarks: HTTP (identify over HTTP), StoreCalls (its 8 store round trips, on the same
// database server), and Ratio, which alternates the two in each iteration so that both meet the
// same database conditions, and reports identify/store-calls.
func BenchmarkIdentify(b *testing.B) {
	identify := identifyOverHTTP(b)
	storeCalls := identifyStoreCalls(b)

	b.Run("HTTP", func(b *testing.B) {
		for b.Loop() {
			identify(b)
		}
	})
	b.Run("StoreCalls", func(b *testing.B) {
		for b.Loop() {
			storeCalls(b)
		}
	})
	b.Run("Ratio", func(b *testing.B) {
		var httpT, storeT time.Duration
		for b.Loop() {
			t0 := time.Now()
			identify(b)
			t1 := time.Now()
			storeCalls(b)
			httpT += t1.Sub(t0)
			storeT += time.Since(t1)
		}
		ratio := float64(httpT) / float64(storeT)
		b.ReportMetric(ratio, "identify/store-calls")
		b.ReportMetric(float64(httpT.Nanoseconds())/float64(b.N), "identify-ns/op")
		b.ReportMetric(float64(storeT.Nanoseconds())/float64(b.N), "store-calls-ns/op")
		b.Logf("identify/store-calls = %.1f (identify over HTTP %v/op; its 8 store round trips %v/op; %d iterations)",
			ratio, httpT/time.Duration(b.N), storeT/time.Duration(b.N), b.N)
	})
}

// identifyOverHTTP starts Known (no widget rate limit, log level warn) with a returning user
// and returns a function that identifies that user again with its session token.
func identifyOverHTTP(b *testing.B) func(*testing.B) {
	env := widgetEnv(b) // KNOWN_WIDGET_RATE_LIMIT=0
	env["KNOWN_LOG_LEVEL"] = "warn"
	k := startRun(b, env)
	appID, _ := createProject(b, k.URL, "BenchIdentify")
	input := map[string]any{"appId": appID, "userId": "bench-user", "name": "Bench User"}
	s := mustIdentify(b, k.URL, "", input)
	userID := *s.UserID
	return func(b *testing.B) {
		s = mustIdentify(b, k.URL, s.Token, input)
		if s.UserID == nil || *s.UserID != userID {
			b.Fatalf("identify is user %s, want %s", deref(s.UserID), userID)
		}
	}
}

// identifyStoreCalls opens a store on the test database server with a project, a returning
// user and its session, and returns a function that makes the store calls of one identify.
func identifyStoreCalls(b *testing.B) func(*testing.B) {
	st := storetest.Open(b, nil)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	p := &known.Project{ID: "app_bench", Name: "Bench", StageMode: known.StageOverwrite, AllowedOrigins: []string{},
		CreatedAt: now, UpdatedAt: now}
	if err := st.CreateProject(ctx, p, "bench-key-hash", "bench-sealed-secret"); err != nil {
		b.Fatal(err)
	}
	ext := known.ExternalID("bench-user")
	visitor := known.VisitorID("v_bench")
	u := &known.User{ID: known.UserID(store.NewID()), ProjectID: p.ID, ExternalID: &ext, VisitorIDs: []known.VisitorID{visitor},
		Metadata: map[string]any{}, CreatedAt: now, UpdatedAt: now}
	extKey := store.IdentityKey{Kind: store.KeyExternalID, Value: string(ext)}
	visitorKey := store.IdentityKey{Kind: store.KeyVisitor, Value: string(visitor)}
	if err := st.CreateUser(ctx, u, []store.IdentityKey{extKey, visitorKey}); err != nil {
		b.Fatal(err)
	}
	ss := &known.Session{ID: "bench-session", ProjectID: p.ID, VisitorID: visitor, Level: known.LevelClaimed, UserID: &u.ID,
		CreatedAt: now, ExpiresAt: now.Add(30 * 24 * time.Hour)}
	if err := st.SaveSession(ctx, ss); err != nil {
		b.Fatal(err)
	}
	name, first, last := "Bench User", "Bench", "User"

	return func(b *testing.B) {
		now := time.Now().UTC().Truncate(time.Millisecond)
		if _, err := st.Project(ctx, p.ID); err != nil { // widget()
			b.Fatal(err)
		}
		if _, err := st.Session(ctx, ss.ID, now); err != nil { // widget()
			b.Fatal(err)
		}
		target, err := st.UserByKey(ctx, p.ID, extKey) // match(): KeyOwner + User
		if err != nil {
			b.Fatal(err)
		}
		owner, err := st.KeyOwner(ctx, p.ID, visitorKey) // attach() → visitorUser()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.User(ctx, p.ID, known.UserID(owner)); err != nil {
			b.Fatal(err)
		}
		if _, err := st.UpdateUser(ctx, target.ID, store.UserUpdate{Name: &name, FirstName: &first, LastName: &last,
			UpdatedAt: now, LastSeenAt: &now}); err != nil { // apply()
			b.Fatal(err)
		}
		ss.ExpiresAt = now.Add(30 * 24 * time.Hour)
		if err := st.SaveSession(ctx, ss); err != nil { // issue()
			b.Fatal(err)
		}
	}
}
