package store_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/storetest"
	"github.com/rs/zerolog"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// hookStore is a store on a fresh database with a webhook, and the database itself at hand:
// to look at the pending sets, and to play the parts of earlier versions and of processes that
// stopped half way.
type hookStore struct {
	st    *store.Store
	db    *mongo.Database
	audit *storetest.Auditor
	hook  *known.Webhook
	now   time.Time
}

func openHookStore(t *testing.T) *hookStore {
	t.Helper()
	h := &hookStore{audit: &storetest.Auditor{}, now: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
	name, db := rawDatabase(t)
	h.db = db
	h.st = openNamed(t, name, h.audit)
	h.hook = h.newWebhook(t, "app_hooks")
	return h
}

// openNamed starts a store on database name (running its migrations), closed when the test ends.
func openNamed(t *testing.T, name string, audit *storetest.Auditor) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{URI: storetest.URI(), Database: name, Log: zerolog.Nop(),
		Monitor: audit.Monitor(), ServerSelectionTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}

func (h *hookStore) newWebhook(t *testing.T, p known.ProjectID) *known.Webhook {
	t.Helper()
	w := &known.Webhook{ID: known.WebhookID(store.NewID()), ProjectID: p, URL: "https://crm.example.com/known", Enabled: true,
		CreatedAt: h.now, UpdatedAt: h.now}
	if err := h.st.InsertWebhook(context.Background(), w, "sealed"); err != nil {
		t.Fatal(err)
	}
	return w
}

// add makes the delivery of event seq to webhook w, as the worker's dispatch does.
func (h *hookStore) add(t *testing.T, w *known.Webhook, seq int64) string {
	t.Helper()
	id := store.DeliveryID(w.ID, seq)
	err := h.st.AddDelivery(context.Background(), &known.WebhookDelivery{ID: id, WebhookID: w.ID, ProjectID: w.ProjectID,
		EventID: known.InboxEventID(fmt.Sprintf("ev%d", seq)), EventSeq: seq, EventType: known.UserCreated,
		OrderKey: string(w.ID) + "|u", Body: `{"id":"x"}`, NextAttemptAt: &h.now, CreatedAt: h.now})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// pending is the ids of webhook w's pending deliveries (up to limit) as the worker reads them
// at now.
func (h *hookStore) pending(t *testing.T, w *known.Webhook, limit int, now time.Time) []string {
	t.Helper()
	ds, err := h.st.PendingDeliveries(context.Background(), w.ID, limit, now)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(ds))
	for i, d := range ds {
		if d.Status != known.DeliveryPending || d.WebhookID != w.ID {
			t.Fatalf("PendingDeliveries returned %+v", d)
		}
		ids[i] = d.ID
	}
	return ids
}

// finish claims delivery id and records an attempt that delivers it (or, failed, gives it up).
func (h *hookStore) finish(t *testing.T, id string, failed bool) {
	t.Helper()
	ctx := context.Background()
	token := "tok-" + id
	if ok, err := h.st.ClaimDelivery(ctx, id, h.now, h.now.Add(30*time.Second), token); err != nil || !ok {
		t.Fatalf("claiming %s: %v %v", id, ok, err)
	}
	code := 200
	a := store.Attempt{Delivered: !failed, Failed: failed, ResponseCode: &code, At: h.now}
	if ok, err := h.st.RecordAttempt(ctx, id, token, a); err != nil || !ok {
		t.Fatalf("recording an attempt of %s: %v %v", id, ok, err)
	}
}

// listed is every delivery id the pending sets list, with how often, read whole from the
// database.
func (h *hookStore) listed(t *testing.T) map[string]int {
	t.Helper()
	cur, err := h.db.Collection("webhook_pending").Find(context.Background(), bson.M{})
	if err != nil {
		t.Fatal(err)
	}
	var docs []struct {
		E map[string]any `bson:"e"`
	}
	if err := cur.All(context.Background(), &docs); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, d := range docs {
		for id := range d.E {
			out[id]++
		}
	}
	return out
}

// deliveryNow is delivery id as the dashboard shows it.
func (h *hookStore) deliveryNow(t *testing.T, w *known.Webhook, id string) *known.WebhookDelivery {
	t.Helper()
	ds, _, err := h.st.Deliveries(context.Background(), w.ID, known.Page{First: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.ID == id {
			return d
		}
	}
	t.Fatalf("no delivery %s", id)
	return nil
}

// TestWebhookDeliveryCycleReadsNoWholeCollection: making a delivery, finding it pending,
// claiming it, recording a failed attempt, claiming it again and recording its delivery send
// only commands the embedded store serves by _id, however many deliveries were made before.
func TestWebhookDeliveryCycleReadsNoWholeCollection(t *testing.T) {
	h := openHookStore(t)
	ctx := context.Background()
	// Deliveries made before: many more than the cycle reads (byIDs then finds by _id).
	var old []any
	for seq := int64(1); seq <= 200; seq++ {
		old = append(old, bson.M{"_id": store.DeliveryID(h.hook.ID, seq), "webhookId": string(h.hook.ID), "projectId": "app_hooks",
			"eventId": fmt.Sprintf("ev%d", seq), "eventSeq": seq, "status": "DELIVERED", "attempts": 1, "body": "{}", "createdAt": h.now})
	}
	if _, err := h.db.Collection("webhook_deliveries").InsertMany(ctx, old); err != nil {
		t.Fatal(err)
	}
	h.audit.Reset()

	id := h.add(t, h.hook, 500)
	if got := h.pending(t, h.hook, 1000, h.now); !slices.Equal(got, []string{id}) {
		t.Fatalf("pending = %v, want [%s]", got, id)
	}
	if ok, err := h.st.ClaimDelivery(ctx, id, h.now, h.now.Add(30*time.Second), "a"); err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	next := h.now.Add(time.Minute)
	msg := "answered 500"
	code := 500
	if ok, err := h.st.RecordAttempt(ctx, id, "a", store.Attempt{ResponseCode: &code, Error: &msg, At: h.now, Next: &next}); err != nil || !ok {
		t.Fatalf("record: %v %v", ok, err)
	}
	if got := h.pending(t, h.hook, 1000, next); !slices.Equal(got, []string{id}) {
		t.Fatalf("pending after a failed attempt = %v, want [%s]", got, id)
	}
	if ok, err := h.st.ClaimDelivery(ctx, id, next, next.Add(30*time.Second), "b"); err != nil || !ok {
		t.Fatalf("claim again: %v %v", ok, err)
	}
	code = 200
	if ok, err := h.st.RecordAttempt(ctx, id, "b", store.Attempt{Delivered: true, ResponseCode: &code, At: next}); err != nil || !ok {
		t.Fatalf("record delivery: %v %v", ok, err)
	}
	if got := h.pending(t, h.hook, 1000, next); len(got) != 0 {
		t.Fatalf("pending after delivery = %v", got)
	}
	t.Logf("commands of the cycle:\n%s", storetest.Summary(h.audit.Commands()))
	wantNoScans(t, h.st, h.audit)
}

// TestPendingDeliveriesOldestFirstEachOnce: across several buckets, pending deliveries come
// back by event, each once (also one made twice), up to the limit; once the older ones are
// delivered, a read no longer visits the buckets that listed them.
func TestPendingDeliveriesOldestFirstEachOnce(t *testing.T) {
	h := openHookStore(t)
	const n = 250
	var want []string
	for seq := int64(1); seq <= n; seq++ {
		want = append(want, h.add(t, h.hook, seq))
	}
	for seq := int64(1); seq <= 10; seq++ {
		h.add(t, h.hook, seq) // dispatched again (a restart before the position was saved)
	}
	other := h.newWebhook(t, "app_other")
	h.add(t, other, 7)

	if got := h.pending(t, h.hook, 1000, h.now); !slices.Equal(got, want) {
		t.Fatalf("pending = %d ids %v…, want the %d by event", len(got), got[:min(len(got), 5)], n)
	}
	if got := h.pending(t, h.hook, 50, h.now); !slices.Equal(got, want[:50]) {
		t.Fatalf("pending, limit 50 = %v…, want the 50 oldest", got[:min(len(got), 5)])
	}
	for _, id := range want[:220] {
		h.finish(t, id, false)
	}
	if got := h.pending(t, h.hook, 1000, h.now); !slices.Equal(got, want[220:]) {
		t.Fatalf("pending after delivering 220 = %v, want the last 30", got)
	}
	h.audit.Reset()
	if got := h.pending(t, h.hook, 1000, h.now); !slices.Equal(got, want[220:]) {
		t.Fatalf("pending read again = %v, want the last 30", got)
	}
	var sets []string
	for _, c := range h.audit.Commands() {
		if c.Collection == "webhook_pending" {
			sets = append(sets, c.String())
		}
	}
	// The head and the one bucket that lists the 30; the two emptied ones are passed by.
	if len(sets) != 2 {
		t.Fatalf("a read of 30 pending deliveries sent %d commands to the pending set:\n%s", len(sets), strings.Join(sets, "\n"))
	}
	if got := h.pending(t, other, 1000, h.now); !slices.Equal(got, []string{store.DeliveryID(other.ID, 7)}) {
		t.Fatalf("the other webhook's pending = %v", got)
	}
}

// TestFinishedDeliveryLeavesThePendingSet: a delivery is listed from when it is made until the
// attempt that delivers it or gives it up; a failed attempt with more to come keeps it listed.
func TestFinishedDeliveryLeavesThePendingSet(t *testing.T) {
	h := openHookStore(t)
	ctx := context.Background()
	delivered, failed, retried := h.add(t, h.hook, 1), h.add(t, h.hook, 2), h.add(t, h.hook, 3)
	if l := h.listed(t); l[delivered] != 1 || l[failed] != 1 || l[retried] != 1 {
		t.Fatalf("listed after making them: %v", l)
	}
	h.finish(t, delivered, false)
	h.finish(t, failed, true)
	if ok, err := h.st.ClaimDelivery(ctx, retried, h.now, h.now.Add(time.Minute), "r"); err != nil || !ok {
		t.Fatal(ok, err)
	}
	next, msg := h.now.Add(time.Hour), "answered 503"
	if ok, err := h.st.RecordAttempt(ctx, retried, "r", store.Attempt{Error: &msg, At: h.now, Next: &next}); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if l := h.listed(t); l[delivered] != 0 || l[failed] != 0 || l[retried] != 1 {
		t.Fatalf("listed after the attempts: %v; want only %s", l, retried)
	}
	if got := h.pending(t, h.hook, 1000, h.now); !slices.Equal(got, []string{retried}) {
		t.Fatalf("pending = %v, want [%s]", got, retried)
	}
	if d := h.deliveryNow(t, h.hook, failed); d.Status != known.DeliveryFailed {
		t.Fatalf("the given-up delivery: %+v", d)
	}
}

// TestPendingIDWithoutDeliveryIsSkippedThenDropped: an id listed whose delivery is missing (a
// process stopped between listing it and storing it, or the user was erased) is never
// returned; it stays listed while its delivery may still be being stored, and a later read
// removes it.
func TestPendingIDWithoutDeliveryIsSkippedThenDropped(t *testing.T) {
	h := openHookStore(t)
	ctx := context.Background()
	lost, kept := h.add(t, h.hook, 1), h.add(t, h.hook, 2)
	if _, err := h.db.Collection("webhook_deliveries").DeleteOne(ctx, bson.M{"_id": lost}); err != nil {
		t.Fatal(err)
	}
	if got := h.pending(t, h.hook, 1000, h.now.Add(time.Second)); !slices.Equal(got, []string{kept}) {
		t.Fatalf("pending = %v, want [%s]", got, kept)
	}
	if h.listed(t)[lost] != 1 {
		t.Fatal("an id listed a second ago was dropped: its delivery may be being stored")
	}
	if got := h.pending(t, h.hook, 1000, h.now.Add(time.Hour)); !slices.Equal(got, []string{kept}) {
		t.Fatalf("pending an hour later = %v, want [%s]", got, kept)
	}
	if l := h.listed(t); l[lost] != 0 || l[kept] != 1 {
		t.Fatalf("listed an hour later: %v; want only %s", l, kept)
	}
}

// TestClaimDeliveryOnceAtATime: of concurrent claims of one delivery exactly one wins, without
// a command that reads the whole collection; the lease can be taken again once it ended; an
// attempt recorded under a lease that was lost changes nothing; a delivered delivery cannot
// be claimed.
func TestClaimDeliveryOnceAtATime(t *testing.T) {
	h := openHookStore(t)
	ctx := context.Background()
	id := h.add(t, h.hook, 1)
	until := h.now.Add(30 * time.Second)
	h.audit.Reset()

	const claims = 8
	var wg sync.WaitGroup
	won := make([]bool, claims)
	errs := make([]error, claims)
	for i := range claims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			won[i], errs[i] = h.st.ClaimDelivery(ctx, id, h.now, until, fmt.Sprintf("t%d", i))
		}()
	}
	wg.Wait()
	winner := -1
	for i := range claims {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if won[i] {
			if winner >= 0 {
				t.Fatalf("claims %d and %d both took the lease", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatal("no claim took the lease")
	}
	wantNoScans(t, h.st, h.audit)
	first := fmt.Sprintf("t%d", winner)

	if ok, err := h.st.ClaimDelivery(ctx, id, until.Add(-time.Millisecond), until.Add(time.Minute), "early"); err != nil || ok {
		t.Fatalf("a claim before the lease ended: %v %v", ok, err)
	}
	if ok, err := h.st.ClaimDelivery(ctx, id, until, until.Add(30*time.Second), "late"); err != nil || !ok {
		t.Fatalf("a claim once the lease ended: %v %v", ok, err)
	}
	code := 200
	if ok, err := h.st.RecordAttempt(ctx, id, first, store.Attempt{Delivered: true, ResponseCode: &code, At: until}); err != nil || ok {
		t.Fatalf("an attempt under the lost lease was recorded: %v %v", ok, err)
	}
	if d := h.deliveryNow(t, h.hook, id); d.Status != known.DeliveryPending || d.Attempts != 0 || d.LastResponseCode != nil {
		t.Fatalf("after the stale attempt: %+v, want it untouched", d)
	}
	if ok, err := h.st.RecordAttempt(ctx, id, "", store.Attempt{Delivered: true, At: until}); err != nil || ok {
		t.Fatalf("an attempt without a lease was recorded: %v %v", ok, err)
	}
	if ok, err := h.st.RecordAttempt(ctx, id, "late", store.Attempt{Delivered: true, ResponseCode: &code, At: until}); err != nil || !ok {
		t.Fatalf("the holder's attempt: %v %v", ok, err)
	}
	if ok, err := h.st.ClaimDelivery(ctx, id, until.Add(time.Hour), until.Add(2*time.Hour), "after"); err != nil || ok {
		t.Fatalf("a delivered delivery was claimed: %v %v", ok, err)
	}
	if d := h.deliveryNow(t, h.hook, id); d.Status != known.DeliveryDelivered || d.Attempts != 1 {
		t.Fatalf("after the holder's attempt: %+v", d)
	}
}

// TestDeletingAWebhookOrProjectDeletesItsPendingSet: removing a webhook removes its pending
// set with its deliveries; deleting a project removes its webhooks, their deliveries and
// their pending sets, and nothing of another project's.
func TestDeletingAWebhookOrProjectDeletesItsPendingSet(t *testing.T) {
	h := openHookStore(t)
	ctx := context.Background()
	p := &known.Project{ID: "app_gone", Name: "Gone", CreatedAt: h.now, UpdatedAt: h.now}
	if err := h.st.CreateProject(ctx, p, "keyhash-gone", "sealed"); err != nil {
		t.Fatal(err)
	}
	w1, w2 := h.newWebhook(t, p.ID), h.newWebhook(t, p.ID)
	h.add(t, w1, 1)
	h.add(t, w2, 1)
	kept := h.add(t, h.hook, 1) // another project's

	sets := func() map[string]bool {
		cur, err := h.db.Collection("webhook_pending").Find(ctx, bson.M{})
		if err != nil {
			t.Fatal(err)
		}
		var docs []struct {
			ID string `bson:"_id"`
		}
		if err := cur.All(ctx, &docs); err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, d := range docs {
			w, _, _ := strings.Cut(d.ID, "|")
			out[w] = true
		}
		return out
	}
	if s := sets(); !s[string(w1.ID)] || !s[string(w2.ID)] || !s[string(h.hook.ID)] {
		t.Fatalf("pending sets before: %v", s)
	}
	if err := h.st.DeleteWebhook(ctx, p.ID, w1.ID); err != nil {
		t.Fatal(err)
	}
	if s := sets(); s[string(w1.ID)] || !s[string(w2.ID)] {
		t.Fatalf("pending sets after removing webhook 1: %v", s)
	}
	if err := h.st.DeleteProject(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if s := sets(); s[string(w2.ID)] || !s[string(h.hook.ID)] {
		t.Fatalf("pending sets after deleting the project: %v", s)
	}
	for coll, filter := range map[string]bson.M{"webhooks": {"projectId": string(p.ID)}, "webhook_deliveries": {"projectId": string(p.ID)}} {
		if n, err := h.db.Collection(coll).CountDocuments(ctx, filter); err != nil || n != 0 {
			t.Fatalf("%d of the deleted project's %s left (%v)", n, coll, err)
		}
	}
	if got := h.pending(t, h.hook, 1000, h.now); !slices.Equal(got, []string{kept}) {
		t.Fatalf("the other project's pending = %v", got)
	}
}

// TestMigrateListsPendingDeliveriesOfEarlierVersions: the pending deliveries an earlier version
// made (with no pending set) are found after a start, oldest first, and leave the set when
// delivered; a second start changes nothing.
func TestMigrateListsPendingDeliveriesOfEarlierVersions(t *testing.T) {
	ctx := context.Background()
	name, db := rawDatabase(t)
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	hooks := []string{store.NewID(), store.NewID()}
	want := map[string][]string{}
	var docs []any
	for i, w := range hooks {
		if _, err := db.Collection("webhooks").InsertOne(ctx, bson.M{"_id": w, "projectId": "app_old", "url": "https://crm.example.com",
			"events": bson.A{}, "secret": "sealed", "enabled": true, "fromSeq": int64(1), "createdAt": at, "updatedAt": at}); err != nil {
			t.Fatal(err)
		}
		for seq := int64(1); seq <= int64(130+20*i); seq++ {
			id := store.DeliveryID(known.WebhookID(w), seq)
			status := "PENDING"
			if seq%10 == 0 {
				status = "DELIVERED"
			} else {
				want[w] = append(want[w], id)
			}
			docs = append(docs, bson.M{"_id": id, "webhookId": w, "projectId": "app_old", "eventId": fmt.Sprintf("ev%d", seq),
				"eventSeq": seq, "eventType": "user.created", "orderKey": w + "|u", "body": "{}", "status": status, "attempts": 0,
				"createdAt": at})
		}
	}
	rand.Shuffle(len(docs), func(i, j int) { docs[i], docs[j] = docs[j], docs[i] })
	if _, err := db.Collection("webhook_deliveries").InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}

	// The pending sets' documents, each as its _id, counters and the ids it lists.
	snapshot := func() string {
		cur, err := db.Collection("webhook_pending").Find(ctx, bson.M{}, options.Find().SetSort(bson.M{"_id": 1}))
		if err != nil {
			t.Fatal(err)
		}
		var all []struct {
			ID     string         `bson:"_id"`
			N      int64          `bson:"n"`
			Lo     int64          `bson:"lo"`
			Next   int64          `bson:"next"`
			Closed bool           `bson:"closed"`
			E      map[string]any `bson:"e"`
		}
		if err := cur.All(ctx, &all); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, d := range all {
			fmt.Fprintf(&b, "%s n=%d lo=%d next=%d closed=%v %v\n", d.ID, d.N, d.Lo, d.Next, d.Closed, slices.Sorted(maps.Keys(d.E)))
		}
		return b.String()
	}
	audit := &storetest.Auditor{}
	st := openNamed(t, name, audit)
	first := snapshot()
	if err := st.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st = openNamed(t, name, audit)
	if again := snapshot(); again != first {
		t.Fatalf("a second start changed the pending sets:\n%s\nthen\n%s", first, again)
	}
	h := &hookStore{st: st, db: db, audit: audit, now: at.Add(time.Hour)}
	for _, w := range hooks {
		hook := &known.Webhook{ID: known.WebhookID(w), ProjectID: "app_old"}
		if got := h.pending(t, hook, 1000, h.now); !slices.Equal(got, want[w]) {
			t.Fatalf("webhook %s: %d pending after the start, want %d, oldest first", w, len(got), len(want[w]))
		}
	}
	// They are now listed like any other: delivering one removes it.
	id := want[hooks[0]][0]
	h.finish(t, id, false)
	if l := h.listed(t); l[id] != 0 || l[want[hooks[0]][1]] != 1 {
		t.Fatalf("after delivering %s the set lists it %d times", id, l[id])
	}
}
