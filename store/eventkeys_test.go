package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/storetest"
	"github.com/rs/zerolog"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestMigrateEventKeys: events that earlier versions published under their sequence number as
// _id (a number: the embedded store reads the whole collection to find one) are found by
// EventAt after a start, under a string key; a start that stopped half way (an event copied
// but not removed, an event removed but its copy still marked) loses none, and another start
// changes nothing. Every read of an event by number is a find by a string _id, the only
// lookup FerretDB 1.24 serves from an index.
func TestMigrateEventKeys(t *testing.T) {
	ctx := context.Background()
	db, raw := rawDatabase(t)
	events := raw.Collection("inbox_events")
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const n = 620 // more than one batch
	var docs []any
	for seq := int64(1); seq <= n; seq++ {
		docs = append(docs, bson.M{"_id": seq, "eventId": fmt.Sprintf("ev%04d", seq), "projectId": "app_p",
			"type": "user.created", "data": bson.M{"n": seq}, "createdAt": at})
	}
	if _, err := events.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	// A start that stopped after copying event 3 and before removing it; one that removed
	// event 5 and had not unmarked its copy.
	if _, err := events.InsertOne(ctx, bson.M{"_id": fmt.Sprintf("%019d", 3), "seq": int64(3), "eventId": "ev0003|moving",
		"projectId": "app_p", "type": "user.created", "data": bson.M{"n": 3}, "createdAt": at}); err != nil {
		t.Fatal(err)
	}
	if _, err := events.DeleteOne(ctx, bson.M{"_id": int64(5)}); err != nil {
		t.Fatal(err)
	}
	if _, err := events.InsertOne(ctx, bson.M{"_id": fmt.Sprintf("%019d", 5), "seq": int64(5), "eventId": "ev0005|moving",
		"projectId": "app_p", "type": "user.created", "data": bson.M{"n": 5}, "createdAt": at}); err != nil {
		t.Fatal(err)
	}
	for run := range 2 {
		audit := &storetest.Auditor{}
		st, err := store.Open(ctx, store.Config{URI: storetest.URI(), Database: db, Log: zerolog.Nop(), Monitor: audit.Monitor()})
		if err != nil {
			t.Fatal(err)
		}
		audit.Reset()
		for seq := int64(1); seq <= n; seq++ {
			e, err := st.EventAt(ctx, seq)
			if err != nil || e == nil {
				t.Fatalf("start %d: event %d: %v %v", run, seq, e, err)
			}
			if string(e.ID) != fmt.Sprintf("ev%04d", seq) || e.Seq != seq || fmt.Sprint(e.Data["n"]) != fmt.Sprint(seq) {
				t.Fatalf("start %d: event %d is %s seq %d data %v", run, seq, e.ID, e.Seq, e.Data)
			}
		}
		// The log is followed by number: each read is one the embedded store serves by _id.
		if scans := audit.Scans(); len(scans) > 0 {
			t.Fatalf("start %d: reading events by number scans: %s", run, storetest.Summary(scans))
		}
		if c, err := events.CountDocuments(ctx, bson.M{}); err != nil || c != n {
			t.Fatalf("start %d: %d events stored (%v), want %d", run, c, err, n)
		}
		if c, err := events.CountDocuments(ctx, bson.M{"_id": bson.M{"$type": "number"}}); err != nil || c != 0 {
			t.Fatalf("start %d: %d events still under a number (%v)", run, c, err)
		}
		if err := st.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSweepDueAfterEventsLeftPending: on FerretDB (one process per store) the periodic sweep,
// which reads the users, conversations and messages collections whole there, is due only after
// this process left an event pending; here one whose sequence number another writer took. On
// MongoDB it is always due (another instance may have died; an index serves the sweep).
func TestSweepDueAfterEventsLeftPending(t *testing.T) {
	ctx := context.Background()
	db, raw := rawDatabase(t)
	st, err := store.Open(ctx, store.Config{URI: storetest.URI(), Database: db, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	insert := func(id string) {
		t.Helper()
		now := time.Now().UTC()
		if err := st.InsertUser(ctx, &known.User{ID: known.UserID(id), ProjectID: "p", CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		st.WaitPublished()
	}
	insert("u1")
	if !st.FerretDB() {
		if !st.SweepDue() {
			t.Fatal("on MongoDB a sweep is always due")
		}
		return
	}
	if st.SweepDue() {
		t.Fatal("a sweep is due although every event was published")
	}
	seq, err := st.LastEventSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Collection("inbox_events").InsertOne(ctx, bson.M{"_id": fmt.Sprintf("%019d", seq+1),
		"seq": seq + 1, "eventId": "taken", "projectId": "q", "type": "user.created", "data": bson.M{}, "createdAt": time.Now()}); err != nil {
		t.Fatal(err)
	}
	insert("u2") // its event's number is taken: it stays pending
	due := 0
	for st.SweepDue() {
		due++
	}
	if due == 0 {
		t.Fatal("no sweep is due although an event was left pending")
	}
	if n, err := st.Sweep(ctx, 0); err != nil || n != 1 {
		t.Fatalf("the sweep published %d events (%v), want the one left pending", n, err)
	}
}
