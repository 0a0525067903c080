package store_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/store/storetest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
)

// TestBatchReadsOnTheEmbeddedStore: one id is one find by _id; a batch of users by id is one
// $in query while the collection is small next to the batch, and one find by _id per distinct
// id once it holds more than 20 documents per id asked (a $in reads the whole collection on
// FerretDB); both answer the same users, each once, without missing ones or another project's.
func TestBatchReadsOnTheEmbeddedStore(t *testing.T) {
	var mu sync.Mutex
	var on bool
	var cmds []string
	monitor := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		mu.Lock()
		defer mu.Unlock()
		if on {
			// "find" for a find by _id, "find $in" for a batch query.
			name := e.CommandName
			if id, err := e.Command.LookupErr("filter", "_id"); err == nil && id.Type == bson.TypeEmbeddedDocument {
				name += " $in"
			}
			cmds = append(cmds, name)
		}
	}}
	st := storetest.Open(t, monitor)
	ctx := context.Background()
	const n = 120
	var ids []known.UserID
	for i := range n {
		p := known.ProjectID("p1")
		if i%50 == 7 {
			p = "p2" // another project's users are never answered
		}
		u := &known.User{ID: known.UserID(fmt.Sprintf("u%03d", i)), ProjectID: p, CreatedAt: time.Now(), UpdatedAt: time.Now()}
		if err := st.InsertUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	st.WaitPublished()
	read := func(want []known.UserID) ([]known.UserID, []string) {
		t.Helper()
		mu.Lock()
		on, cmds = true, nil
		mu.Unlock()
		users, err := st.UsersByIDs(ctx, "p1", want)
		mu.Lock()
		on = false
		got := slices.Clone(cmds)
		mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		var out []known.UserID
		for _, u := range users {
			out = append(out, u.ID)
		}
		slices.Sort(out)
		return out, got
	}
	wantOf := func(asked []known.UserID) []known.UserID {
		var w []known.UserID
		for _, id := range asked {
			if id != "u007" && id != "u057" && id != "u107" && id != "missing" && !slices.Contains(w, id) {
				w = append(w, id)
			}
		}
		slices.Sort(w)
		return w
	}

	few := []known.UserID{"u001", "u007", "u100", "u119", "u100", "missing"} // 5 distinct: 120 > 20×5
	got, commands := read(few)
	if !slices.Equal(got, wantOf(few)) {
		t.Errorf("few: users %v, want %v", got, wantOf(few))
	}
	if len(commands) != 5 || slices.ContainsFunc(commands, func(c string) bool { return c != "find" }) {
		t.Errorf("few: commands %v, want 5 finds by _id (one per distinct id)", commands)
	}

	// One id, even on a collection small enough for $in (two profiles): one find by _id.
	now := time.Now().UTC()
	if err := st.SaveProfiles(ctx, &known.Profile{UserID: "u001", ProjectID: "p1", Status: known.ProfileNotFound, CheckedAt: now},
		&known.Profile{UserID: "u002", ProjectID: "p1", Status: known.ProfileNotFound, CheckedAt: now}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	on, cmds = true, nil
	mu.Unlock()
	prs, err := st.ProfilesOf(ctx, "p1", []known.UserID{"u002", "u002"})
	mu.Lock()
	on, commands = false, slices.Clone(cmds)
	mu.Unlock()
	if err != nil || len(prs) != 1 || prs["u002"] == nil || !slices.Equal(commands, []string{"find"}) {
		t.Errorf("one id: profiles %v (%v), commands %v; want u002's, by one find by _id", prs, err, commands)
	}

	many := append(slices.Clone(ids[:20]), "missing") // 21 distinct: 120 ≤ 20×21
	got, commands = read(many)
	if !slices.Equal(got, wantOf(many)) {
		t.Errorf("many: users %v, want %v", got, wantOf(many))
	}
	if !slices.Equal(commands, []string{"find $in"}) {
		t.Errorf("many: commands %v, want one $in query", commands)
	}
}
