package service_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/knownhq/known"
	"github.com/knownhq/known/service"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/storetest"
	"github.com/rs/zerolog"
)

// published returns the events of project p published after sequence number since, oldest
// first, and the last sequence number.
func published(t *testing.T, st *store.Store, p known.ProjectID, since int64) ([]*known.InboxEvent, int64) {
	t.Helper()
	st.WaitPublished()
	evs, err := st.EventsOfProject(context.Background(), p, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []*known.InboxEvent
	for _, e := range evs {
		if e.Seq > since {
			out = append(out, e)
		}
	}
	slices.Reverse(out)
	last, err := st.LastEventSeq(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return out, last
}

func types(evs []*known.InboxEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, string(e.Type))
	}
	return out
}

func find(evs []*known.InboxEvent, ty known.EventType) *known.InboxEvent {
	for _, e := range evs {
		if e.Type == ty {
			return e
		}
	}
	return nil
}

// TestEveryEventTypeComesFromItsMutation: each mutation publishes exactly the events of
// API.md §9 that its change makes, with the payload a receiver needs.
func TestEveryEventTypeComesFromItsMutation(t *testing.T) {
	e := newEnv(t)
	p := e.project.Project.ID
	var seq int64
	step := func(t *testing.T, want ...known.EventType) []*known.InboxEvent {
		t.Helper()
		evs, last := published(t, e.store, p, seq)
		seq = last
		got := types(evs)
		var ws []string
		for _, w := range want {
			ws = append(ws, string(w))
		}
		if !slices.Equal(got, ws) {
			t.Fatalf("events = %v, want %v", got, ws)
		}
		for _, ev := range evs {
			if ev.ProjectID != p || ev.ID == "" || ev.CreatedAt.IsZero() {
				t.Fatalf("event %+v lacks its project, id or time", ev)
			}
		}
		return evs
	}

	t.Run("createUser/user.created", func(t *testing.T) {
		u, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("ann@example.com"), FirstName: str("Ann")})
		if err != nil {
			t.Fatal(err)
		}
		evs := step(t, known.UserCreated)
		user := evs[0].Data["user"].(map[string]any)
		if user["id"] != u.GlobalID() || user["email"] != "ann@example.com" || *evs[0].UserID != u.ID {
			t.Fatalf("user.created data = %v", evs[0].Data)
		}
	})
	var anon *known.Session
	var conv *known.Conversation
	t.Run("startConversation/user.created+conversation.created+message.created", func(t *testing.T) {
		anon = anonymous(t, e)
		step(t) // an anonymous session writes nothing
		conv = startConversation(t, e, anon.Token, "hello")
		evs := step(t, known.UserCreated, known.ConversationCreated, known.MessageCreated)
		c := find(evs, known.ConversationCreated)
		if c.Data["conversation"].(map[string]any)["id"] != conv.GlobalID() || *c.VisitorID != anon.VisitorID {
			t.Fatalf("conversation.created = %+v", c)
		}
		m := find(evs, known.MessageCreated).Data["message"].(map[string]any)
		if m["body"] != "hello" || m["author"] != "VISITOR" {
			t.Fatalf("message.created message = %v", m)
		}
	})
	var claimedID known.UserID
	t.Run("identify/user.created+user.identified", func(t *testing.T) {
		ss := claimed(t, e, "u-1", service.IdentifyInput{Email: str("bo@example.com")})
		claimedID = *ss.UserID
		evs := step(t, known.UserCreated, known.UserIdentified)
		if v := find(evs, known.UserIdentified).Data["visitorId"]; v != string(ss.VisitorID) {
			t.Fatalf("user.identified visitorId = %v, want %s", v, ss.VisitorID)
		}
	})
	t.Run("identify-again/nothing", func(t *testing.T) {
		claimed(t, e, "u-1", service.IdentifyInput{})
		// A new device of the user: identified again (its own visitor), no other change.
		step(t, known.UserIdentified)
	})
	t.Run("setProperties/user.updated-with-changes", func(t *testing.T) {
		ss := claimed(t, e, "u-2", service.IdentifyInput{Metadata: map[string]any{"plan": "free", "seats": 3}})
		step(t, known.UserCreated, known.UserIdentified)
		if _, err := e.svc.SetProperties(widgetCtx(ss.Token), nil, map[string]any{"plan": "pro", "seats": nil}); err != nil {
			t.Fatal(err)
		}
		evs := step(t, known.UserUpdated)
		md := evs[0].Data["changes"].(map[string]any)["metadata"].(map[string]any)
		from, to := md["from"].(map[string]any), md["to"].(map[string]any)
		if from["plan"] != "free" || to["plan"] != "pro" || fmt.Sprint(from["seats"]) != "3" || to["seats"] != nil {
			t.Fatalf("changes.metadata = %v", md)
		}
		if _, err := e.svc.SetProperties(widgetCtx(ss.Token), nil, map[string]any{"plan": "pro"}); err != nil {
			t.Fatal(err)
		}
		step(t) // the same value again is no change
	})
	t.Run("identify-with-name/user.updated-field-from-to", func(t *testing.T) {
		claimed(t, e, "u-1", service.IdentifyInput{Name: str("Bo Diddley")})
		evs := step(t, known.UserUpdated, known.UserIdentified)
		ch := find(evs, known.UserUpdated).Data["changes"].(map[string]any)
		name := ch["name"].(map[string]any)
		if name["from"] != nil || name["to"] != "Bo Diddley" {
			t.Fatalf("changes = %v", ch)
		}
		if _, ok := ch["updatedAt"]; ok {
			t.Fatalf("updatedAt reported as a change: %v", ch)
		}
	})
	t.Run("identify-with-proof/user.verified", func(t *testing.T) {
		// The proof of u-1 makes a verified user of its own; the user that only claimed u-1
		// loses it (API.md §3): user.updated of that one.
		ss := identify(t, e, "", service.IdentifyInput{UserID: str("u-1"), UserHash: str(hashOf(e.project.IdentitySecret, "u-1"))})
		evs := step(t, known.UserCreated, known.UserIdentified, known.UserVerified, known.UserUpdated)
		v := find(evs, known.UserVerified)
		if v.Data["method"] != "HMAC" || *v.UserID != *ss.UserID {
			t.Fatalf("user.verified = %+v", v)
		}
		up := find(evs, known.UserUpdated)
		ext := up.Data["changes"].(map[string]any)["externalId"].(map[string]any)
		if *up.UserID != claimedID || ext["from"] != "u-1" || ext["to"] != nil {
			t.Fatalf("user.updated of the claimant = %+v", up)
		}
	})
	t.Run("verify-claimed/user.updated+user.verified", func(t *testing.T) {
		ss := claimed(t, e, "u-3", service.IdentifyInput{})
		step(t, known.UserCreated, known.UserIdentified)
		identify(t, e, ss.Token, service.IdentifyInput{UserID: str("u-3"), UserHash: str(hashOf(e.project.IdentitySecret, "u-3"))})
		evs := step(t, known.UserUpdated, known.UserVerified)
		ch := evs[0].Data["changes"].(map[string]any)
		if v := ch["verified"].(map[string]any); v["from"] != false || v["to"] != true {
			t.Fatalf("changes = %v", ch)
		}
	})
	t.Run("anonymous-identifies-as-existing/user.merged+conversation.moved", func(t *testing.T) {
		identify(t, e, anon.Token, service.IdentifyInput{UserID: str("u-2")})
		evs := step(t, known.UserIdentified, known.UserMerged, known.ConversationMoved)
		mv := find(evs, known.ConversationMoved)
		if mv.Data["conversation"].(map[string]any)["id"] != conv.GlobalID() || *mv.ConversationID != conv.ID {
			t.Fatalf("conversation.moved = %+v", mv)
		}
		u2 := userByExt(t, e, "u-2")
		if *mv.UserID != u2.ID || mv.Data["conversation"].(map[string]any)["userId"] != u2.GlobalID() {
			t.Fatalf("conversation.moved to %v, want %s", mv.UserID, u2.ID)
		}
		if find(evs, known.UserMerged).Data["mergedUserId"] == nil {
			t.Fatal("user.merged names no merged user")
		}
	})
	t.Run("replyToConversation/message.created", func(t *testing.T) {
		if _, err := e.svc.ReplyToConversation(e.ctx, conv.ID, "an agent's answer"); err != nil {
			t.Fatal(err)
		}
		evs := step(t, known.MessageCreated)
		if m := evs[0].Data["message"].(map[string]any); m["author"] != "AGENT" || m["body"] != "an agent's answer" {
			t.Fatalf("message = %v", m)
		}
	})
	t.Run("deleteUser/user.deleted", func(t *testing.T) {
		if err := e.svc.DeleteUser(e.ctx, claimedID); err != nil {
			t.Fatal(err)
		}
		evs := step(t, known.UserDeleted)
		if *evs[0].UserID != claimedID || evs[0].Data["user"].(map[string]any)["id"] != known.GlobalID(known.KindUser, string(claimedID)) {
			t.Fatalf("user.deleted = %+v", evs[0])
		}
		// Its earlier change events held its data: erased with it, but for user.deleted.
		all, _ := published(t, e.store, p, 0)
		for _, ev := range all {
			if ev.UserID != nil && *ev.UserID == claimedID && ev.Type != known.UserDeleted {
				t.Fatalf("the deleted user's %s event is still stored: %+v", ev.Type, ev)
			}
		}
	})
	t.Run("NothingLeftPending", func(t *testing.T) {
		n, err := e.store.Sweep(context.Background(), 0)
		if err != nil || n != 0 {
			t.Fatalf("Sweep found %d pending events (%v), want 0", n, err)
		}
	})
}

// TestEventSurvivesACrashBetweenChangeAndPublish: the process dies after a change is written
// (with its event, in the same document write) and before the event is moved to the events
// collection; the next start's sweep publishes it, once.
func TestEventSurvivesACrashBetweenChangeAndPublish(t *testing.T) {
	ctx := context.Background()
	db := storetest.NewDatabaseName(t)
	open := func() *store.Store {
		st, err := store.Open(ctx, store.Config{URI: storetest.URI(), Database: db, Log: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	for _, tc := range []struct {
		name string
		want known.EventType
		act  func(e *env, token string, conv known.ConversationID)
	}{
		{"user.created", known.UserCreated, func(e *env, token string, conv known.ConversationID) {
			_, _ = e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("crash@example.com")})
		}},
		{"user.updated", known.UserUpdated, func(e *env, token string, conv known.ConversationID) {
			_, _ = e.svc.SetProperties(widgetCtx(token), nil, map[string]any{"plan": "crash"})
		}},
		{"message.created", known.MessageCreated, func(e *env, token string, conv known.ConversationID) {
			_, _ = e.svc.SendMessage(widgetCtx(token), nil, conv, "sent as it died")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db = storetest.NewDatabaseName(t)
			st := open()
			e := &env{svc: service.New(st, service.Options{Secret: testSecret, AdminToken: adminToken}), store: st}
			e.project = e.newProject(t, "Crash")
			e.ctx = e.as(t, e.project.SecretKey)
			ss := claimed(t, e, "victim", service.IdentifyInput{})
			conv := startConversation(t, e, ss.Token, "first").ID
			_, seq := published(t, st, e.project.Project.ID, 0)

			died := false
			st.BeforePublish = func(string, string) bool { died = true; return true }
			tc.act(e, ss.Token, conv)
			if !died {
				t.Fatal("the work did not reach the point between the change and its event's move")
			}
			if evs, _ := published(t, st, e.project.Project.ID, seq); len(evs) != 0 {
				t.Fatalf("published before the crash point: %v", types(evs))
			}
			_ = st.Close(ctx) // the process is gone

			st = open()
			defer func() { _ = st.Drop(ctx); _ = st.Close(ctx) }()
			n, err := st.Sweep(ctx, 0) // what Known does at start
			if err != nil || n != 1 {
				t.Fatalf("Sweep published %d (%v), want 1", n, err)
			}
			evs, _ := published(t, st, e.project.Project.ID, seq)
			if got := types(evs); !slices.Equal(got, []string{string(tc.want)}) {
				t.Fatalf("after restart: events %v, want [%s]", got, tc.want)
			}
			if n, _ := st.Sweep(ctx, 0); n != 0 {
				t.Fatalf("a second sweep published %d again", n)
			}
		})
	}
}

// TestPublishingTwiceStoresOnce: the sweeper racing the request that publishes (or a crash
// after the insert and before the event leaves its document) never stores an event twice.
func TestPublishingTwiceStoresOnce(t *testing.T) {
	e := newEnv(t)
	var hits int
	e.store.BeforePublish = func(coll, id string) bool {
		hits++
		if hits == 1 && coll == "users" {
			// The sweeper runs while this request is about to publish the same event.
			e.store.BeforePublish = nil
			if n, err := e.store.Sweep(context.Background(), 0); err != nil || n != 1 {
				t.Errorf("Sweep = %d, %v", n, err)
			}
		}
		return false
	}
	if _, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("twice@example.com")}); err != nil {
		t.Fatal(err)
	}
	evs, last := published(t, e.store, e.project.Project.ID, 0)
	if got := types(evs); !slices.Equal(got, []string{"user.created"}) {
		t.Fatalf("events = %v, want one user.created", got)
	}
	if last != 2 {
		t.Fatalf("last sequence number = %d, want 2 (the repeat left a gap)", last)
	}
	if evs[0].Seq != 1 {
		t.Fatalf("event = %+v, want sequence number 1", evs[0])
	}
}
