package store_test

import (
	"context"
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

// conversationsOf returns user u's conversation ids from its list, as strings.
func conversationsOf(t *testing.T, st *store.Store, p known.ProjectID, u known.UserID) []string {
	t.Helper()
	m, err := st.UserConversationIDs(context.Background(), p, []known.UserID{u})
	if err != nil {
		t.Fatalf("UserConversationIDs: %v", err)
	}
	return strs(m[u])
}

func strs[T ~string](ids []T) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = string(id)
	}
	return out
}

// TestUserConversationList: a user's list gives its conversations newest first across
// buckets, each once, also those started at once; another user's and another project's are
// not in it; several users are read at once; deleting the user deletes its list.
func TestUserConversationList(t *testing.T) {
	st := storetest.Open(t, nil)
	ctx := context.Background()
	u := newUser(t, st, "p", "talker@example.com", "")
	other := newUser(t, st, "p", "", "visitor")
	elsewhere := newUser(t, st, "q", "talker@example.com", "")
	var ids, others []string
	for i := range 130 {
		ids = append(ids, string(startConversation(t, st, ctx, "p", u)))
		if i%30 == 0 {
			others = append(others, string(startConversation(t, st, ctx, "p", other)))
			startConversation(t, st, ctx, "q", elsewhere)
			startConversation(t, st, ctx, "p", "")
		}
	}
	m, err := st.UserConversationIDs(ctx, "p", []known.UserID{u, other, elsewhere, u})
	if err != nil {
		t.Fatal(err)
	}
	if got := strs(m[u]); !slices.Equal(got, reversed(ids)) {
		t.Errorf("user's conversations: %s, want newest first %s", brief(got), brief(reversed(ids)))
	}
	if got := strs(m[other]); !slices.Equal(got, reversed(others)) {
		t.Errorf("the other user's conversations: %s, want %s", brief(got), brief(reversed(others)))
	}
	if got := m[elsewhere]; len(got) != 0 {
		t.Errorf("project q's user read as project p's: %v, want nothing", got)
	}
	if got := conversationsOf(t, st, "q", u); len(got) != 0 {
		t.Errorf("user %s read as project q's: %s, want nothing", u, brief(got))
	}
	t.Run("Concurrent", func(t *testing.T) {
		added := make([]string, 50)
		var wg sync.WaitGroup
		for i := range added {
			wg.Go(func() { added[i] = string(startConversation(t, st, ctx, "p", other)) })
		}
		wg.Wait()
		got := conversationsOf(t, st, "p", other)
		want := append(slices.Clone(added), others...)
		if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
			t.Errorf("listed %s, want the %d started, each once", brief(got), len(want))
		}
	})
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
		// The head and two buckets of u's conversations, and of their messages none (no
		// conversation of u has a message).
		if before-after != 3 {
			t.Errorf("deleting the user deleted %d list documents, want 3", before-after)
		}
	})
}

// TestUserConversationListFollowsMerges: a merged user's conversations show for the user it
// merged into, newest on top, and not for the merged user; a conversation moved away and back
// shows once, at its last place; a merge done again lists nothing twice; a conversation at the
// same place of the list it left and the list it joined shows only in the second; the merged
// user's list is deleted.
func TestUserConversationListFollowsMerges(t *testing.T) {
	st := storetest.Open(t, nil)
	ctx := context.Background()
	into := newUser(t, st, "p", "into@example.com", "")
	anon := newUser(t, st, "p", "", "browser")
	own := []string{string(startConversation(t, st, ctx, "p", into)), string(startConversation(t, st, ctx, "p", into))}
	moved := []string{string(startConversation(t, st, ctx, "p", anon)), string(startConversation(t, st, ctx, "p", anon))}
	for range 2 {
		if err := st.MoveUserData(ctx, anon, into); err != nil {
			t.Fatal(err)
		}
	}
	want := append(reversed(moved), reversed(own)...)
	if got := conversationsOf(t, st, "p", into); !slices.Equal(got, want) {
		t.Errorf("merged: into lists %v, want %v", got, want)
	}
	if got := conversationsOf(t, st, "p", anon); len(got) != 0 {
		t.Errorf("merged: the merged user lists %v, want nothing", got)
	}
	// And back: every conversation of into goes to anon, whose list named two of them before.
	if err := st.MoveUserData(ctx, into, anon); err != nil {
		t.Fatal(err)
	}
	if got := conversationsOf(t, st, "p", anon); len(got) != 4 || !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
		t.Errorf("moved back: anon lists %v, want each of %v once", got, want)
	}
	if got := conversationsOf(t, st, "p", into); len(got) != 0 {
		t.Errorf("moved back: into lists %v, want nothing", got)
	}
	// Moved to the same place of an empty list: only its user shows it.
	from := newUser(t, st, "p", "", "other browser")
	to := newUser(t, st, "p", "fresh@example.com", "")
	c := string(startConversation(t, st, ctx, "p", from))
	before, err := st.ListDocuments(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.MoveUserData(ctx, from, to); err != nil {
		t.Fatal(err)
	}
	// to's list (a head and a bucket) is made, from's (the same) deleted.
	if after, err := st.ListDocuments(ctx, "p"); err != nil || after != before {
		t.Errorf("the merge left %d list documents (%v), want %d: the merged user's list stays behind", after, err, before)
	}
	if got := conversationsOf(t, st, "p", to); !slices.Equal(got, []string{c}) {
		t.Errorf("moved to an empty list: it lists %v, want [%s]", got, c)
	}
	if got := conversationsOf(t, st, "p", from); len(got) != 0 {
		t.Errorf("moved to an empty list: the user it left lists %v, want nothing", got)
	}
}

// TestUserConversationListCommands: reading a user's conversation ids from its list reads only
// by _id on the embedded store, where the query by user it replaces reads the whole
// collection.
func TestUserConversationListCommands(t *testing.T) {
	var a storetest.Auditor
	st := storetest.OpenEmbedded(t, a.Monitor())
	ctx := context.Background()
	u := newUser(t, st, "p", "audited@example.com", "")
	other := newUser(t, st, "p", "", "v")
	mine := []string{string(startConversation(t, st, ctx, "p", u)), string(startConversation(t, st, ctx, "p", u))}
	for range 60 {
		startConversation(t, st, ctx, "p", other)
	}
	a.Reset()
	if _, err := st.ConversationIDsOfUsers(ctx, []known.UserID{u}); err != nil {
		t.Fatal(err)
	}
	t.Logf("the query by user:\n%s", storetest.Summary(a.Commands()))
	if len(a.Scans()) == 0 {
		t.Errorf("the query by user did not scan: the audit would not see a scan")
	}
	a.Reset()
	if got := conversationsOf(t, st, "p", u); !slices.Equal(got, reversed(mine)) {
		t.Fatalf("listed %v, want %v", got, reversed(mine))
	}
	t.Logf("the user's list:\n%s", storetest.Summary(a.Commands()))
	if scans := a.Scans(); len(scans) > 0 {
		t.Errorf("reading a user's conversations sends commands that scan:\n%s", storetest.Summary(scans))
	}
}

// TestMigrateUserConversationLists: conversations started before users kept lists of them are
// listed on start, newest first by id, each user its own; a user without conversations gets an
// empty list; later starts change nothing, and new conversations go on the end.
func TestMigrateUserConversationLists(t *testing.T) {
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
		id := bson.NewObjectID().Hex()
		d := bson.M{"_id": id, "projectId": "app_p", "visitorId": fmt.Sprint("v", i), "status": "OPEN", "messages": 0,
			"createdAt": at, "updatedAt": at}
		if i%7 != 0 { // every seventh has no user
			u := users[i%2]
			d["userId"] = u
			want[u] = append(want[u], id)
		}
		docs = append(docs, d)
	}
	rand.Shuffle(len(docs), func(i, j int) { docs[i], docs[j] = docs[j], docs[i] })
	if _, err := raw.Collection("conversations").InsertMany(ctx, docs); err != nil {
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
			if got := conversationsOf(t, st, "app_p", known.UserID(u)); !slices.Equal(got, want[u]) {
				t.Errorf("run %d: %s lists %s, want %s", run, u, brief(got), brief(want[u]))
			}
			if run == 1 && u != "user-b" {
				want[u] = append([]string{string(startConversation(t, st, ctx, "app_p", known.UserID(u)))}, want[u]...)
			}
		}
		if err := st.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
