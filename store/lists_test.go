package store_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/storetest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
)

// startConversations starts n conversations in project p, one after another (of user u when
// u is not empty), and returns their ids in the order they started.
func startConversations(t *testing.T, st *store.Store, p known.ProjectID, u known.UserID, n int) []known.ConversationID {
	t.Helper()
	ctx := context.Background()
	ids := make([]known.ConversationID, n)
	for i := range ids {
		ids[i] = startConversation(t, st, ctx, p, u)
	}
	return ids
}

func startConversation(t testing.TB, st *store.Store, ctx context.Context, p known.ProjectID, u known.UserID) known.ConversationID {
	now := time.Now().UTC()
	c := &known.Conversation{ID: known.ConversationID(store.NewID()), ProjectID: p, VisitorID: "v", Status: "OPEN",
		CreatedAt: now, UpdatedAt: now}
	if u != "" {
		c.UserID = &u
	}
	if err := st.CreateConversation(ctx, c); err != nil {
		t.Errorf("CreateConversation: %v", err)
	}
	return c.ID
}

// readAll pages project p's list with pages of first, following each page's last cursor, and
// returns the ids in the order read; it fails the test where hasNext is wrong.
func readAll(t *testing.T, st *store.Store, p known.ProjectID, first int) []known.ConversationID {
	t.Helper()
	ctx := context.Background()
	var got []known.ConversationID
	page := known.Page{First: first}
	for round := 0; ; round++ {
		cs, after, more, err := st.ProjectConversations(ctx, p, page)
		if err != nil {
			t.Fatalf("page %d: %v", round, err)
		}
		if len(after) != len(cs) {
			t.Fatalf("page %d: %d cursors for %d conversations", round, len(after), len(cs))
		}
		for _, c := range cs {
			got = append(got, c.ID)
		}
		if round > 0 && len(cs) == 0 {
			t.Fatalf("page %d is empty, but the page before said hasNext", round)
		}
		if !more {
			if len(cs) > first {
				t.Fatalf("page %d: %d items for first %d", round, len(cs), first)
			}
			return got
		}
		if len(cs) != first {
			t.Fatalf("page %d: hasNext with %d items of %d", round, len(cs), first)
		}
		page.After = after[len(after)-1]
	}
}

func newestFirst(ids []known.ConversationID) []known.ConversationID {
	out := slices.Clone(ids)
	slices.Reverse(out)
	return out
}

// TestConversationList: the project's list pages its conversations newest first across
// bucket boundaries; following endCursor gives each conversation once, and hasNext is false
// exactly on the last page, also when it is full; other projects' conversations are not in it.
func TestConversationList(t *testing.T) {
	st := storetest.Open(t, nil)
	ctx := context.Background()
	var ids []known.ConversationID
	for i := range 250 {
		ids = append(ids, startConversation(t, st, ctx, "p", ""))
		if i%50 == 0 {
			startConversation(t, st, ctx, "other", "")
		}
	}
	want := newestFirst(ids)
	for _, first := range []int{100, 7, 50, 250} {
		t.Run(fmt.Sprintf("First%d", first), func(t *testing.T) {
			if got := readAll(t, st, "p", first); !slices.Equal(got, want) {
				t.Errorf("read %d conversations, want the %d newest first:\n got %v\nwant %v", len(got), len(want), got, want)
			}
		})
	}
	t.Run("EmptyProject", func(t *testing.T) {
		cs, after, more, err := st.ProjectConversations(ctx, "none", known.Page{First: 10})
		if err != nil || len(cs) != 0 || len(after) != 0 || more {
			t.Errorf("a project without conversations: %v %v %v %v", cs, after, more, err)
		}
	})
	t.Run("BadCursor", func(t *testing.T) {
		for _, after := range []string{"x", "0", "-3", "1.5", string(ids[0])} {
			_, _, _, err := st.ProjectConversations(ctx, "p", known.Page{First: 10, After: after})
			var e *known.Error
			if known.ErrorCode(err) != known.BadUserInput || !asError(err, &e) || !slices.Equal(e.Field, []string{"after"}) {
				t.Errorf("after %q: %v, want BAD_USER_INPUT on after", after, err)
			}
		}
	})
	t.Run("CursorPastTheEnd", func(t *testing.T) {
		cs, _, _, err := st.ProjectConversations(ctx, "p", known.Page{First: 3, After: "1000000000000"})
		if err != nil || len(cs) != 3 || cs[0].ID != want[0] {
			t.Errorf("a position past the end reads from the newest: %v, %v", cs, err)
		}
	})
}

func asError(err error, out **known.Error) bool {
	e, ok := err.(*known.Error)
	*out = e
	return ok
}

// TestConversationListSkipsGapsAndDeleted: a position an interrupted append left empty, and
// the conversations of a deleted user, are skipped, and a page reads on to stay full.
func TestConversationListSkipsGapsAndDeleted(t *testing.T) {
	st := storetest.Open(t, nil)
	ctx := context.Background()
	u := &known.User{ID: known.UserID(store.NewID()), ProjectID: "p", Metadata: map[string]any{}, CreatedAt: time.Now().UTC()}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	var kept []known.ConversationID
	for i := range 60 {
		if i%4 == 1 {
			if err := st.LeaveConversationGap(ctx, "p"); err != nil {
				t.Fatal(err)
			}
		}
		if i >= 20 && i < 45 { // a run of a deleted user's conversations, across a page
			startConversation(t, st, ctx, "p", u.ID)
			continue
		}
		kept = append(kept, startConversation(t, st, ctx, "p", ""))
	}
	if err := st.DeleteUser(ctx, "p", u.ID); err != nil {
		t.Fatal(err)
	}
	want := newestFirst(kept)
	for _, first := range []int{10, 3, 35} {
		if got := readAll(t, st, "p", first); !slices.Equal(got, want) {
			t.Errorf("pages of %d: read %v, want %v", first, got, want)
		}
	}
	cs, _, more, err := st.ProjectConversations(ctx, "p", known.Page{First: 20})
	if err != nil || len(cs) != 20 || !more {
		t.Errorf("a page of 20 over the deleted run: %d conversations, hasNext %v, %v; want 20, true", len(cs), more, err)
	}
}

// TestConversationListConcurrentAppends: conversations started at once each get a position
// of their own, and none is lost.
func TestConversationListConcurrentAppends(t *testing.T) {
	st := storetest.Open(t, nil)
	ctx := context.Background()
	const n = 50
	var wg sync.WaitGroup
	ids := make([]known.ConversationID, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i] = startConversation(t, st, ctx, "p", "")
		}()
	}
	wg.Wait()
	cs, after, more, err := st.ProjectConversations(ctx, "p", known.Page{First: 100})
	if err != nil || more {
		t.Fatal(more, err)
	}
	var got []known.ConversationID
	for _, c := range cs {
		got = append(got, c.ID)
	}
	slices.Sort(got)
	slices.Sort(ids)
	if !slices.Equal(got, ids) {
		t.Errorf("listed %d of %d conversations started at once", len(got), n)
	}
	if len(slices.Compact(slices.Clone(after))) != len(after) || len(after) != n {
		t.Errorf("positions %v are not %d distinct ones", after, n)
	}
}

// TestConversationListCommands: a page of the list reads only by _id: the head and the
// buckets it spans with find {_id: <string>} (the one filter the embedded store serves from
// an index), then its conversations in one find by _id $in.
func TestConversationListCommands(t *testing.T) {
	var mu sync.Mutex
	var on bool
	var cmds []string
	monitor := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		mu.Lock()
		defer mu.Unlock()
		if !on {
			return
		}
		shape := e.CommandName
		if e.CommandName == "find" {
			coll := e.Command.Lookup("find").StringValue()
			f := e.Command.Lookup("filter").Document()
			shape = "find " + coll + " " + filterShape(f)
		}
		cmds = append(cmds, shape)
	}}
	st := storetest.Open(t, monitor)
	ctx := context.Background()
	startConversations(t, st, "p", "", 150)
	record := func(page known.Page) []*known.Conversation {
		mu.Lock()
		on, cmds = true, nil
		mu.Unlock()
		cs, _, _, err := st.ProjectConversations(ctx, "p", page)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		on = false
		mu.Unlock()
		return cs
	}
	for _, c := range []struct {
		name    string
		page    known.Page
		buckets int
	}{
		{"FirstPage", known.Page{First: 100}, 2},                // positions 150…50: buckets 1 (101…150) and 0
		{"Small", known.Page{First: 5}, 1},                      // 150…145
		{"AfterCursor", known.Page{First: 40, After: "120"}, 2}, // 119…79: 101…119 in bucket 1, the rest in 0
	} {
		t.Run(c.name, func(t *testing.T) {
			cs := record(c.page)
			if len(cs) != c.page.First {
				t.Fatalf("%d conversations, want %d", len(cs), c.page.First)
			}
			mu.Lock()
			got := slices.Clone(cmds)
			mu.Unlock()
			// The head, then the buckets from the newest.
			want := slices.Repeat([]string{"find lists {_id: string}"}, 1+c.buckets)
			if len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
				t.Fatalf("commands %q, want %q first", got, want)
			}
			// Then the conversations, by id (byIDs: one find today).
			rest := got[len(want):]
			for _, cmd := range rest {
				if cmd != "find conversations {_id: {$in: array}}" && cmd != "find conversations {_id: string}" {
					t.Errorf("command %q reads conversations other than by _id", cmd)
				}
			}
			if len(rest) == 0 {
				t.Errorf("no read of the conversations in %q", got)
			}
		})
	}
}

// filterShape describes a filter by its keys and the types of their values.
func filterShape(f bson.Raw) string {
	els, _ := f.Elements()
	s := "{"
	for i, el := range els {
		if i > 0 {
			s += ", "
		}
		s += el.Key() + ": "
		switch v := el.Value(); v.Type {
		case bson.TypeString:
			s += "string"
		case bson.TypeEmbeddedDocument:
			s += filterShape(v.Document())
		default:
			s += v.Type.String()
		}
	}
	return s + "}"
}

// TestDeleteProjectDeletesLists: deleting a project deletes its lists, and no other project's.
func TestDeleteProjectDeletesLists(t *testing.T) {
	st := storetest.Open(t, nil)
	ctx := context.Background()
	for _, p := range []known.ProjectID{"app_gone", "app_kept"} {
		if err := st.CreateProject(ctx, &known.Project{ID: p, Name: string(p), CreatedAt: time.Now().UTC()}, "hash-"+string(p), "sealed"); err != nil {
			t.Fatal(err)
		}
		startConversations(t, st, p, "", 3)
	}
	if err := st.DeleteProject(ctx, "app_gone"); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[known.ProjectID]bool{"app_gone": false, "app_kept": true} {
		n, err := st.ListDocuments(ctx, p)
		if err != nil || (n > 0) != want {
			t.Errorf("project %s has %d list documents (%v), want some: %v", p, n, err, want)
		}
	}
}
