package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/storetest"
	"github.com/rs/zerolog"
	"go.mongodb.org/mongo-driver/v2/bson"
)

func eventID(e *known.Event) string { return string(e.ID) }

// brief is ids for a failure message: how many, and the first few.
func brief(ids []string) string {
	if len(ids) > 6 {
		return fmt.Sprintf("%d %v…", len(ids), ids[:6])
	}
	return fmt.Sprintf("%d %v", len(ids), ids)
}

// track stores a tracked event of user u of project p, as track does, and returns its id.
func track(t testing.TB, st *store.Store, p known.ProjectID, u known.UserID) string {
	t.Helper()
	now := time.Now().UTC()
	e := &known.Event{ID: known.EventID(store.NewID()), ProjectID: p, UserID: &u, Name: "clicked",
		Properties: map[string]any{}, OccurredAt: now, CreatedAt: now}
	if err := st.AddEvent(context.Background(), e); err != nil {
		t.Errorf("AddEvent: %v", err)
	}
	return string(e.ID)
}

// userEvents pages user u's list as a pager does a project's.
func userEvents(st *store.Store, u known.UserID) pager[*known.Event] {
	return func(ctx context.Context, p known.ProjectID, page known.Page) ([]*known.Event, []string, bool, error) {
		return st.UserEvents(ctx, p, u, page)
	}
}

// TestUserEventList: a user's list pages its tracked events newest first across buckets, each
// once whatever the page size; another user's events, and another project's, are not in it; a
// bad cursor is BAD_USER_INPUT on after; deleting the user deletes its list.
func TestUserEventList(t *testing.T) {
	st := storetest.Open(t, nil)
	ctx := context.Background()
	u := newUser(t, st, "p", "tracker@example.com", "")
	other := newUser(t, st, "p", "", "visitor")
	elsewhere := newUser(t, st, "q", "tracker@example.com", "")
	var ids, others []string
	for i := range 230 {
		ids = append(ids, track(t, st, "p", u))
		if i%20 == 0 {
			others = append(others, track(t, st, "p", other))
			track(t, st, "q", elsewhere)
		}
	}
	for _, first := range []int{100, 7, 1, 230} {
		if got := readList(t, userEvents(st, u), eventID, "p", first); !slices.Equal(got, reversed(ids)) {
			t.Errorf("pages of %d: %s, want newest first %s", first, brief(got), brief(reversed(ids)))
		}
	}
	if got := readList(t, userEvents(st, other), eventID, "p", 5); !slices.Equal(got, reversed(others)) {
		t.Errorf("the other user's list: %v, want %v", got, reversed(others))
	}
	if got := readList(t, userEvents(st, u), eventID, "q", 100); len(got) != 0 {
		t.Errorf("user %s's list read as project q's: %s, want nothing", u, brief(got))
	}
	if got := readList(t, userEvents(st, elsewhere), eventID, "p", 100); len(got) != 0 {
		t.Errorf("project q's user read as project p's: %s, want nothing", brief(got))
	}
	for _, after := range []string{"x", "0", "-3"} {
		_, _, _, err := st.UserEvents(ctx, "p", u, known.Page{First: 5, After: after})
		var e *known.Error
		if !errors.As(err, &e) || e.Code != known.BadUserInput || !slices.Equal(e.Field, []string{"after"}) {
			t.Errorf("after %q: %v, want BAD_USER_INPUT on after", after, err)
		}
	}
	t.Run("DeleteUserDeletesTheList", func(t *testing.T) {
		before, err := st.ListDocuments(ctx, "p")
		if err != nil {
			t.Fatal(err)
		}
		if err := st.DeleteUser(ctx, "p", u); err != nil {
			t.Fatal(err)
		}
		after, err := st.ListDocuments(ctx, "p")
		if err != nil {
			t.Fatal(err)
		}
		if before-after != 4 { // the head and three buckets of u's events
			t.Errorf("deleting the user deleted %d list documents, want 4", before-after)
		}
		if got := readList(t, userEvents(st, other), eventID, "p", 5); !slices.Equal(got, reversed(others)) {
			t.Errorf("the other user's list after the delete: %v, want %v", got, reversed(others))
		}
	})
}

// TestUserEventListConcurrentAppends: events tracked at once are each listed once.
func TestUserEventListConcurrentAppends(t *testing.T) {
	st := storetest.Open(t, nil)
	u := newUser(t, st, "p", "busy@example.com", "")
	added := make([]string, 50)
	var wg sync.WaitGroup
	for i := range added {
		wg.Go(func() { added[i] = track(t, st, "p", u) })
	}
	wg.Wait()
	got := readList(t, userEvents(st, u), eventID, "p", 100)
	if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(added))) {
		t.Errorf("listed %s, want the %d tracked, each once", brief(got), len(added))
	}
}

// TestUserEventListFollowsMerges: the events of a user merged into another show in the other's
// list (newest on top, after its own) and in no list of the merged user; while they are
// copied and not yet moved they show only for the user they still belong to; a merge
// interrupted after the copy and done again lists each event once, and so does one
// interrupted after the merged user's list went, for a record made again under its id.
func TestUserEventListFollowsMerges(t *testing.T) {
	st := storetest.Open(t, nil)
	ctx := context.Background()
	into := newUser(t, st, "p", "into@example.com", "")
	anon := newUser(t, st, "p", "", "browser")
	var own, moved []string
	for range 3 {
		own = append(own, track(t, st, "p", into))
	}
	for range 105 { // two buckets
		moved = append(moved, track(t, st, "p", anon))
	}
	read := func(u known.UserID) []string { return readList(t, userEvents(st, u), eventID, "p", 40) }

	// Copied twice, as a merge interrupted after the copy and then done again does.
	for range 2 {
		if err := st.CopyEventList(ctx, "p", anon, into); err != nil {
			t.Fatal(err)
		}
		if got := read(into); !slices.Equal(got, reversed(own)) {
			t.Errorf("copied, not moved: into lists %s, want only its own %s", brief(got), brief(reversed(own)))
		}
		if got := read(anon); !slices.Equal(got, reversed(moved)) {
			t.Errorf("copied, not moved: the merged user lists %d events, want its %d", len(got), len(moved))
		}
	}
	if err := st.MoveUserData(ctx, anon, into); err != nil {
		t.Fatal(err)
	}
	want := append(reversed(moved), reversed(own)...)
	if got := read(into); !slices.Equal(got, want) {
		t.Errorf("merged: into lists %s, want %s", brief(got), brief(want))
	}
	if got := read(anon); len(got) != 0 {
		t.Errorf("merged: the merged user lists %s, want nothing", brief(got))
	}
	if err := st.DeleteMergedUser(ctx, anon); err != nil {
		t.Fatal(err)
	}

	// The visitor comes back: a record made again under the same id tracks, and its merge is
	// interrupted after its list went but before the record of its move did.
	again := newUser(t, st, "p", "", "browser")
	if again != anon {
		t.Fatalf("the visitor's record is %s, was %s", again, anon)
	}
	var more []string
	for range 4 {
		more = append(more, track(t, st, "p", again))
	}
	if err := st.CopyEventList(ctx, "p", again, into); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteEventList(ctx, "p", again); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		more = append(more, track(t, st, "p", again))
	}
	if err := st.MoveUserData(ctx, again, into); err != nil {
		t.Fatal(err)
	}
	// The first four were copied before the interruption; the two tracked since, into the
	// list made anew, are copied then, after them.
	want = append(append(reversed(more[4:]), reversed(more[:4])...), want...)
	if got := read(into); !slices.Equal(got, want) {
		t.Errorf("merged again: into lists %s, want %s", brief(got), brief(want))
	}
	if got := read(again); len(got) != 0 {
		t.Errorf("merged again: the merged user lists %s, want nothing", brief(got))
	}
}

// TestUserEventListCommands: a page of a user's events reads only by _id on the embedded
// store (the lists' head and buckets, then each event), where the query by user it replaces
// reads the whole collection.
func TestUserEventListCommands(t *testing.T) {
	var a storetest.Auditor
	st := storetest.OpenEmbedded(t, a.Monitor())
	ctx := context.Background()
	u := newUser(t, st, "p", "audited@example.com", "")
	other := newUser(t, st, "p", "", "v")
	for range 150 {
		track(t, st, "p", u)
		track(t, st, "p", other)
	}
	a.Reset()
	old, _, err := st.Events(ctx, "p", store.EventFilter{UserID: &u}, known.Page{First: 10})
	if err != nil || len(old) != 10 {
		t.Fatalf("Events: %d, %v", len(old), err)
	}
	t.Logf("the query by user:\n%s", storetest.Summary(a.Commands()))
	if len(a.Scans()) == 0 {
		t.Errorf("the query by user did not scan: the audit would not see a scan")
	}
	a.Reset()
	es, _, _, err := st.UserEvents(ctx, "p", u, known.Page{First: 10, After: "105"}) // 104…95: buckets 1 and 0
	if err != nil || len(es) != 10 {
		t.Fatalf("UserEvents: %d, %v", len(es), err)
	}
	t.Logf("a page of the user's list:\n%s", storetest.Summary(a.Commands()))
	if scans := a.Scans(); len(scans) > 0 {
		t.Errorf("a page of a user's events sends commands that scan:\n%s", storetest.Summary(scans))
	}
	for _, c := range a.Commands() {
		if c.Collection != "lists" && c.Collection != "events" {
			t.Errorf("a page of a user's events reads %s", c)
		}
	}
}

// TestMigrateUserEventLists: events tracked before users kept lists of them are listed on
// start, newest first by id, each user its own (a bucket an interrupted start left behind
// rewritten); a user without events gets an empty list; later starts change nothing, and new
// events go on the end.
func TestMigrateUserEventLists(t *testing.T) {
	ctx := context.Background()
	db, raw := rawDatabase(t)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, err := raw.Collection("projects").InsertOne(ctx, bson.M{"_id": "app_p", "name": "p", "createdAt": at}); err != nil {
		t.Fatal(err)
	}
	users := []string{"user-a", "user-b", "user-idle"}
	for _, u := range users {
		if _, err := raw.Collection("users").InsertOne(ctx, bson.M{"_id": u, "projectId": "app_p",
			"identities": bson.A{}, "metadata": bson.M{}, "createdAt": at, "updatedAt": at}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]string{}
	var docs []any
	for i := range 140 {
		u := users[i%2]
		id := bson.NewObjectID().Hex()
		want[u] = append(want[u], id)
		docs = append(docs, bson.M{"_id": id, "projectId": "app_p", "userId": u, "name": fmt.Sprint(i),
			"properties": bson.M{}, "occurredAt": at, "createdAt": at})
	}
	rand.Shuffle(len(docs), func(i, j int) { docs[i], docs[j] = docs[j], docs[i] })
	if _, err := raw.Collection("events").InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	// A bucket of user-a's list, as a start interrupted before its head leaves it.
	if _, err := raw.Collection("lists").InsertOne(ctx, bson.M{"_id": "app_p|events|user-a|0",
		"e": bson.M{"1": want["user-b"][0], "99": "gone"}}); err != nil {
		t.Fatal(err)
	}
	for u, ids := range want {
		want[u] = reversed(ids)
	}
	for run := range 3 {
		st, err := store.Open(ctx, store.Config{URI: storetest.URI(), Database: db, Log: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range users {
			if got := readList(t, userEvents(st, known.UserID(u)), eventID, "app_p", 30); !slices.Equal(got, want[u]) {
				t.Errorf("run %d: %s lists %s, want %s", run, u, brief(got), brief(want[u]))
			}
			if run == 1 && u != "user-b" {
				want[u] = append([]string{track(t, st, "app_p", known.UserID(u))}, want[u]...)
			}
		}
		if err := st.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
