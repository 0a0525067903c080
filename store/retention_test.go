package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/storetest"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestRetainEventsOldAndBehindDispatch: a pass deletes the events published before the age
// that webhook dispatch has passed, and keeps a younger one behind the position and an old one
// dispatch has not reached; without a retention age, or before any dispatch position is saved,
// it behaves as documented (nothing; the age alone).
func TestRetainEventsOldAndBehindDispatch(t *testing.T) {
	ctx := context.Background()
	name, db := rawDatabase(t)
	st := openNamed(t, name, &storetest.Auditor{})
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	old, young := now.Add(-8*24*time.Hour), now.Add(-6*24*time.Hour)
	// Events 1, 2 and 4 are old and dispatched; 3 is dispatched but young; 5 is old but not
	// dispatched yet; 6 is neither.
	created := map[int64]time.Time{1: old, 2: old, 3: young, 4: old, 5: old, 6: young}
	// The position is saved before the events (it starts at the log's end, here 1).
	if next, err := st.WebhookCursor(ctx); err != nil || next != 1 {
		t.Fatalf("WebhookCursor = %d, %v", next, err)
	}
	for seq := int64(1); seq <= 6; seq++ {
		if _, err := db.Collection("inbox_events").InsertOne(ctx, bson.M{"_id": fmt.Sprintf("%019d", seq), "seq": seq,
			"eventId": fmt.Sprintf("ev%d", seq), "projectId": "app_p", "type": "user.created", "data": bson.M{}, "createdAt": created[seq]}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Collection("meta").InsertOne(ctx, bson.M{"_id": "eventSeq", "seq": int64(6)}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetWebhookCursor(ctx, 5); err != nil {
		t.Fatal(err)
	}
	left := func() []int64 {
		t.Helper()
		var out []int64
		for seq := int64(1); seq <= 6; seq++ {
			e, err := st.EventAt(ctx, seq)
			if err != nil {
				t.Fatal(err)
			}
			if e != nil {
				out = append(out, seq)
			}
		}
		return out
	}

	if r, err := st.Retain(ctx, now, store.Retention{}); err != nil || r != (store.Retained{}) {
		t.Fatalf("Retain without ages = %+v, %v", r, err)
	}
	if got := left(); !slices.Equal(got, []int64{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("without ages, events %v are left, want all", got)
	}
	r, err := st.Retain(ctx, now, store.Retention{Events: 7 * 24 * time.Hour})
	if err != nil || r.Events != 3 {
		t.Fatalf("Retain = %+v, %v; want 3 events deleted", r, err)
	}
	if got := left(); !slices.Equal(got, []int64{3, 5, 6}) {
		t.Fatalf("events %v are left, want 3 (young), 5 (not dispatched) and 6", got)
	}
	// The log goes on: the next event is read by number as before.
	if e, err := st.EventAt(ctx, 5); err != nil || e == nil || e.ID != "ev5" {
		t.Fatalf("EventAt(5) = %v, %v", e, err)
	}

	// Without a saved position (no worker has run), the age alone decides.
	if _, err := db.Collection("meta").DeleteOne(ctx, bson.M{"_id": "webhookCursor"}); err != nil {
		t.Fatal(err)
	}
	if r, err := st.Retain(ctx, now, store.Retention{Events: 7 * 24 * time.Hour}); err != nil || r.Events != 1 {
		t.Fatalf("Retain without a dispatch position = %+v, %v; want event 5 deleted", r, err)
	}
	if got := left(); !slices.Equal(got, []int64{3, 6}) {
		t.Fatalf("events %v are left, want 3 and 6", got)
	}
}

// TestRetainFinishedDeliveries: a pass deletes the deliveries delivered or given up before
// the age, and keeps a pending one however old, one finished recently though made long ago,
// and a recent one. A finished delivery its pending set still lists (its process stopped
// before unlisting it) is deleted too, and the set's reader skips and unlists it; the
// remaining pending delivery is still found, claimed and delivered.
func TestRetainFinishedDeliveries(t *testing.T) {
	ctx := context.Background()
	h := openHookStore(t)
	start := h.now
	delivered := h.add(t, h.hook, 1)
	h.finish(t, delivered, false)
	failed := h.add(t, h.hook, 2)
	h.finish(t, failed, true)
	pending := h.add(t, h.hook, 3)
	lateFinish := h.add(t, h.hook, 4)
	stillListed := h.add(t, h.hook, 5)
	// Delivery 5 finished, but its process stopped before it left the pending set.
	if _, err := h.db.Collection("webhook_deliveries").UpdateOne(ctx, bson.M{"_id": stillListed},
		bson.M{"$set": bson.M{"status": "DELIVERED", "deliveredAt": start, "finishedAt": start}}); err != nil {
		t.Fatal(err)
	}
	h.now = start.Add(25 * 24 * time.Hour)
	h.finish(t, lateFinish, false) // made 25 days ago, delivered now
	recent := h.add(t, h.hook, 6)
	h.finish(t, recent, false)

	now := start.Add(31 * 24 * time.Hour)
	h.now = now
	r, err := h.st.Retain(ctx, now, store.Retention{Deliveries: 30 * 24 * time.Hour})
	if err != nil || r.Deliveries != 3 {
		t.Fatalf("Retain = %+v, %v; want 3 deliveries deleted", r, err)
	}
	ds, _, err := h.st.Deliveries(ctx, h.hook.ID, known.Page{First: 100})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, d := range ds {
		left = append(left, d.ID)
	}
	slices.Sort(left)
	if want := []string{pending, lateFinish, recent}; !slices.Equal(left, want) {
		t.Fatalf("deliveries left %v, want %v (pending, finished recently, recent)", left, want)
	}
	if got := h.pending(t, h.hook, 10, now); !slices.Equal(got, []string{pending}) {
		t.Fatalf("pending = %v, want only %s", got, pending)
	}
	if n := h.listed(t)[stillListed]; n != 0 {
		t.Fatalf("the pending set still lists the deleted delivery %s", stillListed)
	}
	h.finish(t, pending, false)
	if got := h.pending(t, h.hook, 10, now); len(got) != 0 {
		t.Fatalf("pending after delivering the last = %v", got)
	}
}

// TestRetainAudit: the audit log is kept without an age however old, and its entries older
// than a given age are deleted.
func TestRetainAudit(t *testing.T) {
	ctx := context.Background()
	name, _ := rawDatabase(t)
	st := openNamed(t, name, &storetest.Auditor{})
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	var entries []*known.AuditEntry
	for _, age := range []time.Duration{1000 * 24 * time.Hour, 100 * 24 * time.Hour, 10 * 24 * time.Hour} {
		entries = append(entries, &known.AuditEntry{ProjectID: "app_a", Action: known.AuditUserDeleted,
			Actor: known.Actor{Kind: known.ActorSecretKey}, At: now.Add(-age)})
	}
	if err := st.AppendAudit(ctx, entries...); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		t.Helper()
		got, _, err := st.AuditLog(ctx, "app_a", nil, known.Page{First: 100})
		if err != nil {
			t.Fatal(err)
		}
		return len(got)
	}
	if r, err := st.Retain(ctx, now, store.Retention{Events: time.Hour, Deliveries: time.Hour}); err != nil || r.Audit != 0 {
		t.Fatalf("Retain without an audit age = %+v, %v", r, err)
	}
	if n := count(); n != 3 {
		t.Fatalf("%d audit entries left without an age, want 3", n)
	}
	if r, err := st.Retain(ctx, now, store.Retention{Audit: 90 * 24 * time.Hour}); err != nil || r.Audit != 2 {
		t.Fatalf("Retain = %+v, %v; want 2 audit entries deleted", r, err)
	}
	got, _, err := st.AuditLog(ctx, "app_a", nil, known.Page{First: 100})
	if err != nil || len(got) != 1 || !got[0].At.Equal(now.Add(-10*24*time.Hour)) {
		t.Fatalf("audit log after the pass = %v, %v; want the 10-day-old entry", got, err)
	}
}

// TestRetainDeletesByID: on the embedded store a pass reads a whole collection only to find
// what to delete (one find per collection and batch); each delete goes by _id, so that a pass
// over n old documents costs n constant commands, not n reads of the collection.
func TestRetainDeletesByID(t *testing.T) {
	ctx := context.Background()
	h := openHookStore(t)
	start := h.now
	for i := range 12 {
		h.finish(t, h.add(t, h.hook, int64(i+1)), i%2 == 0)
	}
	now := start.Add(31 * 24 * time.Hour)
	h.now = now
	h.audit.Reset()
	r, err := h.st.Retain(ctx, now, store.Retention{Deliveries: 30 * 24 * time.Hour, Audit: time.Hour})
	if err != nil || r.Deliveries != 12 {
		t.Fatalf("Retain = %+v, %v; want 12 deliveries deleted", r, err)
	}
	var other []storetest.Command
	for _, c := range h.audit.Scans() {
		if c.Name != "find" {
			other = append(other, c)
		}
	}
	if len(other) > 0 || len(h.audit.Scans()) > 2 {
		t.Fatalf("a pass read whole collections beyond one find per collection:\n%s", storetest.Summary(h.audit.Commands()))
	}
}
