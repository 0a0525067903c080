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
	"github.com/rs/zerolog"
	"go.mongodb.org/mongo-driver/v2/bson"
)

func messageID(m *known.Message) string { return string(m.ID) }

// addMessage adds a message to conversation c and returns its id.
func addMessage(t testing.TB, st *store.Store, c *known.Conversation) string {
	t.Helper()
	m := &known.Message{ID: known.MessageID(store.NewID()), ProjectID: c.ProjectID, ConversationID: c.ID, Body: "hi",
		Author: known.AuthorVisitor, CreatedAt: time.Now().UTC()}
	if err := st.AddMessage(context.Background(), c, m); err != nil {
		t.Fatalf("AddMessage: %v", err)
	}
	return string(m.ID)
}

// conversationMessages pages conversation c's list as a pager does a project's.
func conversationMessages(st *store.Store, c *known.Conversation) pager[*known.Message] {
	return func(ctx context.Context, _ known.ProjectID, page known.Page) ([]*known.Message, []string, bool, error) {
		return st.ConversationMessages(ctx, c, page)
	}
}

// TestMessageList: a conversation's list pages its messages newest first across buckets, each
// once, also those added at once; another conversation's are not in it; deleting the user
// deletes the lists of its conversations' messages.
func TestMessageList(t *testing.T) {
	st := storetest.Open(t, nil)
	ctx := context.Background()
	u := newUser(t, st, "p", "talker@example.com", "")
	cid := startConversation(t, st, ctx, "p", u)
	oid := startConversation(t, st, ctx, "p", "")
	c, err := st.Conversation(ctx, "p", cid)
	if err != nil {
		t.Fatal(err)
	}
	other, err := st.Conversation(ctx, "p", oid)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 130 {
		ids = append(ids, addMessage(t, st, c))
		if i%30 == 0 {
			addMessage(t, st, other)
		}
	}
	for _, first := range []int{100, 7, 130} {
		if got := readList(t, conversationMessages(st, c), messageID, "p", first); !slices.Equal(got, reversed(ids)) {
			t.Errorf("pages of %d: %d messages %v, want %d newest first %v", first, len(got), got, len(ids), reversed(ids))
		}
	}
	t.Run("Concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		added := make([]string, 20)
		for i := range added {
			wg.Add(1)
			go func() { defer wg.Done(); added[i] = addMessage(t, st, other) }()
		}
		wg.Wait()
		got := readList(t, conversationMessages(st, other), messageID, "p", 100)
		if len(got) != 5+len(added) || len(slices.Compact(slices.Sorted(slices.Values(got)))) != len(got) {
			t.Errorf("listed %d messages (%v), want %d distinct", len(got), got, 5+len(added))
		}
	})
	t.Run("DeleteUserDeletesTheLists", func(t *testing.T) {
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
		// The head and two buckets of c's messages, and the head and bucket of the user's
		// list of its conversations.
		if before-after != 5 {
			t.Errorf("deleting the user deleted %d list documents, want 5", before-after)
		}
	})
}

// TestMigrateMessageLists: messages written before conversations kept lists of them are
// listed on start, newest first by id, each conversation its own; a conversation without
// messages gets an empty list; a second start changes nothing, and new messages go on the end.
func TestMigrateMessageLists(t *testing.T) {
	ctx := context.Background()
	db, raw := rawDatabase(t)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, err := raw.Collection("projects").InsertOne(ctx, bson.M{"_id": "app_p", "name": "p", "createdAt": at}); err != nil {
		t.Fatal(err)
	}
	convs := []string{"conv-a", "conv-b", "conv-empty"}
	for _, c := range convs {
		if _, err := raw.Collection("conversations").InsertOne(ctx, bson.M{"_id": c, "projectId": "app_p",
			"visitorId": "v", "status": "OPEN", "messages": 0, "createdAt": at, "updatedAt": at}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]string{}
	var docs []any
	for i := range 140 {
		c := convs[i%2]
		id := bson.NewObjectID().Hex()
		want[c] = append(want[c], id)
		docs = append(docs, bson.M{"_id": id, "projectId": "app_p", "conversationId": c, "body": fmt.Sprint(i),
			"author": "VISITOR", "verified": false, "createdAt": at})
	}
	slices.Reverse(docs)
	if _, err := raw.Collection("messages").InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	for c, ids := range want {
		want[c] = reversed(ids)
	}
	for run := range 3 {
		st, err := store.Open(ctx, store.Config{URI: storetest.URI(), Database: db, Log: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		for _, cid := range convs {
			c, err := st.Conversation(ctx, "app_p", known.ConversationID(cid))
			if err != nil {
				t.Fatal(err)
			}
			if got := readList(t, conversationMessages(st, c), messageID, "app_p", 50); !slices.Equal(got, want[cid]) {
				t.Errorf("run %d: %s lists %d messages %v, want %d %v", run, cid, len(got), got, len(want[cid]), want[cid])
			}
			if run == 1 && cid == "conv-a" {
				want[cid] = append([]string{addMessage(t, st, c)}, want[cid]...)
			}
		}
		if err := st.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLastMessageIsTheNewest: whatever order messages of one conversation are stored in, also
// at once, the conversation shows the newest as its last message and counts every one; on the
// embedded store without a command that reads the whole conversations collection (its
// conditional write is made in the conversation's turn, by _id).
func TestLastMessageIsTheNewest(t *testing.T) {
	audit := &storetest.Auditor{}
	st := storetest.Open(t, audit.Monitor())
	ctx := context.Background()
	cid := startConversation(t, st, ctx, "p", "")
	c, err := st.Conversation(ctx, "p", cid)
	if err != nil {
		t.Fatal(err)
	}
	var ids []known.MessageID
	for range 24 {
		ids = append(ids, known.MessageID(store.NewID())) // in the order they were made
	}
	order := []int{3, 0, 23, 5, 1} // the newest among the first stored
	for i := range ids {
		if !slices.Contains(order, i) {
			order = append(order, i)
		}
	}
	audit.Reset()
	add := func(i int) {
		m := &known.Message{ID: ids[i], ProjectID: "p", ConversationID: cid, Body: fmt.Sprint("m", i),
			Author: known.AuthorVisitor, CreatedAt: time.Now().UTC()}
		if err := st.AddMessage(ctx, c, m); err != nil {
			t.Error(err)
		}
	}
	for _, i := range order[:5] {
		add(i)
	}
	var wg sync.WaitGroup
	for _, i := range order[5:] {
		wg.Add(1)
		go func() { defer wg.Done(); add(i) }()
	}
	wg.Wait()
	st.WaitPublished()
	got, err := st.Conversation(ctx, "p", cid)
	if err != nil {
		t.Fatal(err)
	}
	if got.Last == nil || got.Last.ID != ids[23] || got.Last.Body != "m23" || got.MessageCount != len(ids) {
		t.Fatalf("last message %+v, %d messages; want m23 of %d", got.Last, got.MessageCount, len(ids))
	}
	if st.FerretDB() {
		var scans []storetest.Command
		for _, cmd := range audit.Scans() {
			if cmd.Collection == "conversations" {
				scans = append(scans, cmd)
			}
		}
		if len(scans) > 0 {
			t.Fatalf("storing messages scanned the conversations:\n%s", storetest.Summary(scans))
		}
	}
}
