package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/storetest"
	"github.com/rs/zerolog"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// visitorConversations pages visitor v's list of conversations as a pager does a project's.
func visitorConversations(st *store.Store, v known.VisitorID) pager[*known.Conversation] {
	return func(ctx context.Context, p known.ProjectID, page known.Page) ([]*known.Conversation, []string, bool, error) {
		return st.VisitorConversations(ctx, p, v, page)
	}
}

// startVisitorConversation starts a conversation of visitor v in project p (of user u when u
// is not empty) and returns its id.
func startVisitorConversation(t testing.TB, st *store.Store, p known.ProjectID, v known.VisitorID, u known.UserID) string {
	t.Helper()
	now := time.Now().UTC()
	c := &known.Conversation{ID: known.ConversationID(store.NewID()), ProjectID: p, VisitorID: v, Status: "OPEN",
		CreatedAt: now, UpdatedAt: now}
	if u != "" {
		c.UserID = &u
	}
	if err := st.CreateConversation(context.Background(), c); err != nil {
		t.Fatalf("CreateConversation: %v", err)
	}
	return string(c.ID)
}

// TestVisitorConversationPages: a visitor's list pages its conversations newest first across
// buckets, each once whatever the page size, whether they have a user or not; another
// visitor's conversations and another project's visitor of the same id are not in it; a merge
// moving the visitor's conversations to another user leaves them in the visitor's list; a
// deleted conversation is skipped; a bad cursor is BAD_USER_INPUT on after.
func TestVisitorConversationPages(t *testing.T) {
	st := storetest.Open(t, nil)
	ctx := context.Background()
	anon := newUser(t, st, "p", "", "browser")
	var ids, others []string
	for i := range 230 { // three buckets
		u := known.UserID("")
		if i%2 == 0 {
			u = anon
		}
		ids = append(ids, startVisitorConversation(t, st, "p", "browser", u))
		if i%40 == 0 {
			others = append(others, startVisitorConversation(t, st, "p", "other", ""))
			startVisitorConversation(t, st, "q", "browser", "")
		}
	}
	for _, first := range []int{100, 7, 1, 230} {
		if got := readList(t, visitorConversations(st, "browser"), conversationID, "p", first); !slices.Equal(got, reversed(ids)) {
			t.Errorf("pages of %d: %s, want newest first %s", first, brief(got), brief(reversed(ids)))
		}
	}
	if got := readList(t, visitorConversations(st, "other"), conversationID, "p", 2); !slices.Equal(got, reversed(others)) {
		t.Errorf("the other visitor's list: %v, want %v", got, reversed(others))
	}
	if got := readList(t, visitorConversations(st, "browser"), conversationID, "q", 100); len(got) != 6 {
		t.Errorf("project q's visitor of the same id: %d conversations, want its own 6", len(got))
	}

	into := newUser(t, st, "p", "into@example.com", "")
	if err := st.MoveUserData(ctx, anon, into); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteConversationDocument(ctx, known.ConversationID(ids[100])); err != nil {
		t.Fatal(err)
	}
	want := reversed(slices.Delete(slices.Clone(ids), 100, 101))
	if got := readList(t, visitorConversations(st, "browser"), conversationID, "p", 50); !slices.Equal(got, want) {
		t.Errorf("after a merge and a delete: %s, want %s", brief(got), brief(want))
	}

	for _, after := range []string{"x", "0", "-3"} {
		_, _, _, err := st.VisitorConversations(ctx, "p", "browser", known.Page{First: 5, After: after})
		var e *known.Error
		if !errors.As(err, &e) || e.Code != known.BadUserInput || !slices.Equal(e.Field, []string{"after"}) {
			t.Errorf("after %q: %v, want BAD_USER_INPUT on after", after, err)
		}
	}
}

// TestVisitorConversationPageCommands: a page of a visitor's conversations reads only by _id
// on the embedded store, where the query by visitor it replaces reads the whole collection.
func TestVisitorConversationPageCommands(t *testing.T) {
	var a storetest.Auditor
	st := storetest.OpenEmbedded(t, a.Monitor())
	ctx := context.Background()
	var ids []string
	for range 120 {
		ids = append(ids, startVisitorConversation(t, st, "p", "audited", ""))
		startVisitorConversation(t, st, "p", "other", "")
	}
	st.WaitPublished()
	v := known.VisitorID("audited")
	a.Reset()
	if old, _, err := st.Conversations(ctx, "p", store.ConversationFilter{VisitorID: &v}, known.Page{First: 10}); err != nil || len(old) != 10 {
		t.Fatalf("Conversations: %d, %v", len(old), err)
	}
	if len(a.Scans()) == 0 {
		t.Errorf("the query by visitor did not scan: the audit would not see a scan")
	}
	a.Reset()
	cs, _, _, err := st.VisitorConversations(ctx, "p", v, known.Page{First: 10, After: "105"}) // 104…95: buckets 1 and 0
	if err != nil {
		t.Fatal(err)
	}
	if got := strs(mapIDs(cs)); !slices.Equal(got, reversed(ids[94:104])) {
		t.Errorf("the page after place 105: %v, want %v", got, reversed(ids[94:104]))
	}
	t.Logf("a page of the visitor's list:\n%s", storetest.Summary(a.Commands()))
	if scans := a.Scans(); len(scans) > 0 {
		t.Errorf("a page of a visitor's list sends commands that scan:\n%s", storetest.Summary(scans))
	}
}

// TestMigrateVisitorConversationLists: conversations started before visitors kept lists of
// them are listed on start, newest first by id, each visitor its own (a visitor id of two
// projects two lists); a start interrupted after listing some visitors lists the rest and
// leaves those done as they are; later starts change nothing, and new conversations go on the
// end. A listed conversation of another visitor or project is skipped.
func TestMigrateVisitorConversationLists(t *testing.T) {
	ctx := context.Background()
	db, raw := rawDatabase(t)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	type owner struct {
		p known.ProjectID
		v known.VisitorID
	}
	owners := []owner{{"app_p", "v_a"}, {"app_p", "v_b"}, {"app_q", "v_a"}}
	for _, p := range []string{"app_p", "app_q"} {
		if _, err := raw.Collection("projects").InsertOne(ctx, bson.M{"_id": p, "name": p, "createdAt": at}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[owner][]string{}
	var docs []any
	for i := range 250 { // v_a of app_q has two buckets
		o := owners[min(i%4, 2)]
		id := bson.NewObjectID().Hex()
		d := bson.M{"_id": id, "projectId": string(o.p), "visitorId": string(o.v), "status": "OPEN", "messages": 0,
			"createdAt": at, "updatedAt": at}
		if i%3 == 0 {
			d["userId"] = fmt.Sprint("user-", i%5)
		}
		want[o] = append(want[o], id)
		docs = append(docs, d)
	}
	rand.Shuffle(len(docs), func(i, j int) { docs[i], docs[j] = docs[j], docs[i] })
	if _, err := raw.Collection("conversations").InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	for o, ids := range want {
		want[o] = reversed(ids)
	}
	for run := range 3 {
		st, err := store.Open(ctx, store.Config{URI: storetest.URI(), Database: db, Log: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range owners {
			if got := readList(t, visitorConversations(st, o.v), conversationID, o.p, 40); !slices.Equal(got, want[o]) {
				t.Errorf("run %d: %s of %s lists %s, want %s", run, o.v, o.p, brief(got), brief(want[o]))
			}
			if run == 1 && o.v == "v_a" {
				want[o] = append([]string{startVisitorConversation(t, st, o.p, o.v, "")}, want[o]...)
			}
		}
		if err := st.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if run == 1 {
			// v_b's list names, on top, a conversation of v_a and one of project app_q: its
			// reader skips them.
			for i, id := range []string{want[owners[0]][0], want[owners[2]][0]} {
				pos := fmt.Sprint(len(want[owners[1]]) + 1 + i)
				if _, err := raw.Collection("lists").UpdateOne(ctx, bson.M{"_id": "app_p|visitorConversations|v_b|0"},
					bson.M{"$set": bson.M{"e." + pos: id}}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := raw.Collection("lists").UpdateOne(ctx, bson.M{"_id": "app_p|visitorConversations|v_b|h"},
				bson.M{"$inc": bson.M{"n": int64(2)}}); err != nil {
				t.Fatal(err)
			}
		}
		if run == 0 {
			// As if the first start had stopped before listing v_b and marking the step done:
			// the next start runs the step again.
			if _, err := raw.Collection("meta").DeleteOne(ctx, bson.M{"_id": "visitorConversationsListed"}); err != nil {
				t.Fatal(err)
			}
			if r, err := raw.Collection("lists").DeleteOne(ctx, bson.M{"_id": "app_p|visitorConversations|v_b|h"}); err != nil || r.DeletedCount != 1 {
				t.Fatalf("deleting v_b's head: %v, %v", r, err)
			}
		}
	}
}
