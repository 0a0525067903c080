package service_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/service"
	"github.com/knownhq/known/store"
)

// TestWebhookWorkerAfterARetentionPass: a month after a delivery, a pass deletes it and the
// event it came from (dispatch has passed it), keeps the delivery still pending for a receiver
// that fails, and the worker goes on: it retries that one and delivers a new event.
func TestWebhookWorkerAfterARetentionPass(t *testing.T) {
	ctx := context.Background()
	e := newWebhookEnv(t, nil, true)
	ok := newReceiver(t, 200)
	down := newReceiver(t, 500, 500, 200)
	okHook, _, err := e.svc.AddWebhook(e.ctx, ok.srv.URL, []known.EventType{known.UserCreated})
	if err != nil {
		t.Fatal(err)
	}
	downHook, _, err := e.svc.AddWebhook(e.ctx, down.srv.URL, []known.EventType{known.UserCreated})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("old@example.com")}); err != nil {
		t.Fatal(err)
	}
	e.step(t) // delivered to ok; attempt 1 to down fails
	first := e.delivery(t, okHook)
	if first.Status != known.DeliveryDelivered {
		t.Fatalf("first delivery = %+v", first)
	}
	// down's receiver stays down: its webhook is disabled after a day of failures, and its
	// delivery waits, pending, until it is enabled again.
	e.clock.Advance(25 * time.Hour)
	e.step(t)
	e.clock.Advance(31 * 24 * time.Hour)
	r, err := e.svc.Retain(ctx, store.Retention{Events: 7 * 24 * time.Hour, Deliveries: 30 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if r.Events == 0 || r.Deliveries != 1 {
		t.Fatalf("Retain = %+v; want the old events and the delivered delivery deleted", r)
	}
	if ds, _, err := e.svc.WebhookDeliveries(e.ctx, okHook, known.Page{First: 10}); err != nil || len(ds) != 0 {
		t.Fatalf("ok's deliveries after the pass = %v, %v; want none", ds, err)
	}
	if e, err := e.store.EventAt(ctx, first.EventSeq); err != nil || e != nil {
		t.Fatalf("event %d after the pass = %v, %v; want it deleted", first.EventSeq, e, err)
	}
	kept := e.delivery(t, downHook)
	if kept.Status != known.DeliveryPending {
		t.Fatalf("down's delivery after the pass = %+v; want it kept, pending", kept)
	}

	enabled := true
	if _, err := e.svc.UpdateWebhook(e.ctx, downHook.ID, nil, nil, &enabled); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("new@example.com")}); err != nil {
		t.Fatal(err)
	}
	e.step(t)
	e.step(t)
	emails := func(r *receiver) []string {
		var out []string
		for _, g := range r.deliveries() {
			var b struct{ Data map[string]any }
			_ = json.Unmarshal(g.body, &b)
			out = append(out, b.Data["user"].(map[string]any)["email"].(string))
		}
		return out
	}
	if got := emails(ok); len(got) != 2 || got[1] != "new@example.com" {
		t.Fatalf("ok's receiver got %v, want old then new", got)
	}
	if got := emails(down); len(got) < 3 || got[len(got)-1] != "new@example.com" || got[len(got)-2] != "old@example.com" {
		t.Fatalf("down's receiver got %v, want old (failing, then delivered) and new", got)
	}
}
