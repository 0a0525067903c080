package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/storetest"
	"github.com/rs/zerolog"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// lastKeys returns the keys of conversation id's copy of its last message, as stored.
func lastKeys(t *testing.T, coll *mongo.Collection, id string) []string {
	t.Helper()
	var d struct {
		Last bson.Raw `bson:"last"`
	}
	if err := coll.FindOne(context.Background(), bson.M{"_id": id}).Decode(&d); err != nil {
		t.Fatal(err)
	}
	elems, err := d.Last.Elements()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range elems {
		keys = append(keys, e.Key())
	}
	slices.Sort(keys)
	return keys
}

// TestLastMessageCopyHoldsWhatARowShows: a conversation keeps of its last message only what a
// dashboard row shows (id, body, author, time, and verified when it is), and reads back the
// whole message; copies written by earlier versions (the whole message document) are trimmed at
// start, read the same before and after, and a second start changes nothing.
func TestLastMessageCopyHoldsWhatARowShows(t *testing.T) {
	ctx := context.Background()
	db, raw := rawDatabase(t)
	convs := raw.Collection("conversations")
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		id       string
		verified bool
	}{{"c-legacy-plain", false}, {"c-legacy-verified", true}} {
		if _, err := convs.InsertOne(ctx, bson.M{"_id": c.id, "projectId": "p", "visitorId": "v", "status": "OPEN",
			"messages": 1, "createdAt": at, "updatedAt": at, "pendingCount": 0,
			"last": bson.M{"_id": "m-" + c.id, "projectId": "p", "conversationId": c.id, "body": "hello", "author": "VISITOR",
				"verified": c.verified, "createdAt": at}}); err != nil {
			t.Fatal(err)
		}
	}
	want := func(id string, verified bool) *known.Message {
		return &known.Message{ID: known.MessageID("m-" + id), ProjectID: "p", ConversationID: known.ConversationID(id),
			Body: "hello", Author: known.AuthorVisitor, Verified: verified, CreatedAt: at}
	}
	for run := range 2 {
		st, err := store.Open(ctx, store.Config{URI: storetest.URI(), Database: db, Log: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		for id, verified := range map[string]bool{"c-legacy-plain": false, "c-legacy-verified": true} {
			c, err := st.Conversation(ctx, "p", known.ConversationID(id))
			if err != nil {
				t.Fatal(err)
			}
			if c.Last == nil || *c.Last != *want(id, verified) {
				t.Fatalf("start %d: %s's last message %+v, want %+v", run, id, c.Last, want(id, verified))
			}
		}
		if got := lastKeys(t, convs, "c-legacy-plain"); !slices.Equal(got, []string{"_id", "author", "body", "createdAt"}) {
			t.Fatalf("start %d: a legacy copy keeps %v", run, got)
		}
		if got := lastKeys(t, convs, "c-legacy-verified"); !slices.Equal(got, []string{"_id", "author", "body", "createdAt", "verified"}) {
			t.Fatalf("start %d: a legacy verified copy keeps %v", run, got)
		}
		if run == 0 {
			// A message added now is copied in the new shape.
			cid := startConversation(t, st, ctx, "p", "")
			c, err := st.Conversation(ctx, "p", cid)
			if err != nil {
				t.Fatal(err)
			}
			mid := addMessage(t, st, c)
			if got := lastKeys(t, convs, string(cid)); !slices.Equal(got, []string{"_id", "author", "body", "createdAt"}) {
				t.Fatalf("a new message's copy keeps %v", got)
			}
			if c, err = st.Conversation(ctx, "p", cid); err != nil || c.Last == nil || string(c.Last.ID) != mid ||
				c.Last.ConversationID != cid || c.Last.ProjectID != "p" {
				t.Fatalf("the new message reads back as %+v (%v)", c.Last, err)
			}
		}
		if err := st.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// docKeys returns the top-level keys of document id of coll, as stored.
func docKeys(t *testing.T, coll *mongo.Collection, id string) []string {
	t.Helper()
	raw, err := coll.FindOne(context.Background(), bson.M{"_id": id}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	elems, err := raw.Elements()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range elems {
		keys = append(keys, e.Key())
	}
	return keys
}

// TestPublishedDocumentsKeepNoOutboxFields: once its events are published, a user, a
// conversation and a message hold no outbox fields (no empty map, no zero count: a dashboard
// page reads these documents, and the embedded store decodes every field of every document a
// batch read passes over); documents of earlier versions lose them at start, unless they still
// hold an event to publish.
func TestPublishedDocumentsKeepNoOutboxFields(t *testing.T) {
	ctx := context.Background()
	db, raw := rawDatabase(t)
	users := raw.Collection("users")
	for id, count := range map[string]int{"u-legacy-published": 0, "u-legacy-pending": 1} {
		pending := bson.M{}
		if count > 0 {
			pending["x"] = bson.M{"type": "user.updated"}
		}
		if _, err := users.InsertOne(ctx, bson.M{"_id": id, "projectId": "p", "visitorIds": bson.A{}, "identities": bson.A{},
			"metadata": bson.M{}, "pendingEvents": pending, "pendingCount": count}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := store.Open(ctx, store.Config{URI: storetest.URI(), Database: db, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	outbox := func(keys []string) []string {
		return slices.DeleteFunc(keys, func(k string) bool { return k != "pendingEvents" && k != "pendingCount" })
	}
	if got := outbox(docKeys(t, users, "u-legacy-published")); len(got) > 0 {
		t.Errorf("a legacy user with nothing to publish keeps %v", got)
	}
	if got := outbox(docKeys(t, users, "u-legacy-pending")); len(got) != 2 {
		t.Errorf("a legacy user with an event to publish keeps %v of its outbox fields", got)
	}

	u := newUser(t, st, "p", "kate@example.com", "v1")
	cid := startConversation(t, st, ctx, "p", u)
	c, err := st.Conversation(ctx, "p", cid)
	if err != nil {
		t.Fatal(err)
	}
	mid := addMessage(t, st, c)
	st.WaitPublished()
	for _, d := range []struct{ coll, id string }{{"users", string(u)}, {"conversations", string(cid)}, {"messages", mid}} {
		if got := outbox(docKeys(t, raw.Collection(d.coll), d.id)); len(got) > 0 {
			t.Errorf("a published %s document keeps %v", d.coll, got)
		}
	}
}
