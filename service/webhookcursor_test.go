package service_test

import (
	"context"
	"testing"

	"github.com/knownhq/known"
	"github.com/knownhq/known/service"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/storetest"
	"github.com/rs/zerolog"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// TestWebhookStepSavesThePositionOnlyWhenItMoved: a step that saw no new event writes no
// dispatch position (the worker steps every second and after every published batch); a step
// that dispatched an event saves the position past it.
func TestWebhookStepSavesThePositionOnlyWhenItMoved(t *testing.T) {
	ctx := context.Background()
	name := storetest.NewDatabaseName(t)
	st, err := store.Open(ctx, store.Config{URI: storetest.URI(), Database: name, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Drop(ctx); _ = st.Close(ctx) }()
	client, err := mongo.Connect(options.Client().ApplyURI(storetest.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Disconnect(ctx) }()
	meta := client.Database(name).Collection("meta")
	saved := func() int64 {
		t.Helper()
		var d struct {
			Next int64 `bson:"next"`
		}
		if err := meta.FindOne(ctx, bson.M{"_id": "webhookCursor"}).Decode(&d); err != nil {
			t.Fatal(err)
		}
		return d.Next
	}

	e := newWebhookEnv(t, st, true)
	rcv := newReceiver(t, 200)
	if _, _, err := e.svc.AddWebhook(e.ctx, rcv.srv.URL, []known.EventType{known.UserCreated}); err != nil {
		t.Fatal(err)
	}
	e.step(t)
	// A mark below the position: any write of the position ($max) replaces it.
	if _, err := meta.UpdateOne(ctx, bson.M{"_id": "webhookCursor"}, bson.M{"$set": bson.M{"next": int64(-1)}}); err != nil {
		t.Fatal(err)
	}
	e.step(t)
	e.step(t)
	if got := saved(); got != -1 {
		t.Fatalf("steps without a new event wrote the position %d", got)
	}
	if _, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("moved@example.com")}); err != nil {
		t.Fatal(err)
	}
	e.step(t)
	last, err := st.LastEventSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := saved(); got != last+1 {
		t.Fatalf("after dispatching event %d the saved position is %d, want %d", last, got, last+1)
	}
	if n := len(rcv.deliveries()); n != 1 {
		t.Fatalf("the receiver got %d requests, want 1", n)
	}
}
