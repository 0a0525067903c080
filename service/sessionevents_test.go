package service_test

import (
	"context"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/clocktest"
	"github.com/knownhq/known/events"
	"github.com/knownhq/known/service"
)

// TestIdleSessionEventsEndWithTheSession: a widget's sessionEvents stream on which no event
// comes ends once its session does (resetSession, its user erased, or expiry on the service's
// clock), and frees its subscription; a live session's idle stream goes on. The streams check
// their session every 10 ms here (Options.SessionCheck) instead of every 5 s.
func TestIdleSessionEventsEndWithTheSession(t *testing.T) {
	e := newEnv(t)
	clock := clocktest.New(time.Now().UTC().Truncate(time.Millisecond))
	hub := events.New(e.store, events.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e.svc = service.New(e.store, service.Options{Secret: testSecret, AdminToken: adminToken, Now: clock.Now,
		Events: hub, SessionCheck: 10 * time.Millisecond})

	// stream opens a session's stream, which ends with the test at the latest.
	stream := func(t *testing.T, token string) <-chan *known.InboxEvent {
		t.Helper()
		ctx, cancel := context.WithCancel(widgetCtx(token))
		t.Cleanup(cancel)
		c, err := e.svc.SessionEvents(ctx)
		if err != nil {
			t.Fatalf("SessionEvents: %v", err)
		}
		return c
	}
	// ends waits for c to close without an event: the bound is a failure, not a wait.
	ends := func(t *testing.T, c <-chan *known.InboxEvent, why string) {
		t.Helper()
		select {
		case ev, ok := <-c:
			if ok {
				t.Fatalf("%s: the stream sent %+v", why, ev)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: an idle stream still open 10 s later (checked every 10 ms)", why)
		}
	}

	t.Run("resetSession", func(t *testing.T) {
		live, gone := anonymous(t, e), anonymous(t, e)
		liveStream, goneStream := stream(t, live.Token), stream(t, gone.Token)
		if n := hub.Subscribers(); n != 2 {
			t.Fatalf("%d subscribers, want 2", n)
		}
		if _, err := e.svc.ResetSession(widgetCtx(gone.Token)); err != nil {
			t.Fatal(err)
		}
		ends(t, goneStream, "after resetSession")
		// Both streams checked their sessions at about the same ticks: the live one is open.
		select {
		case ev, ok := <-liveStream:
			t.Fatalf("a live session's idle stream ended or sent (%+v, %v)", ev, ok)
		default:
		}
		if n := hub.Subscribers(); n != 1 {
			t.Errorf("%d subscribers after the reset session's stream ended, want 1", n)
		}
	})

	t.Run("its user erased", func(t *testing.T) {
		ss := claimed(t, e, "erased-1", service.IdentifyInput{})
		c := stream(t, ss.Token)
		if err := e.svc.DeleteUser(e.ctx, *ss.UserID); err != nil {
			t.Fatal(err)
		}
		ends(t, c, "after its user was erased")
	})

	t.Run("expiry", func(t *testing.T) {
		ss := anonymous(t, e)
		c := stream(t, ss.Token)
		clock.Advance(service.SessionTTL + time.Second)
		ends(t, c, "after the session expired")
	})
}

// TestSessionEventsThroughTheUserNeedItsProof: a verified session's stream carries the events
// of its user's conversations from the user's other browsers only while the user still holds a
// proven identity (as Messages; no path removes a user's last proof today, the store write
// below stands in for one); the events of its own visitor's conversations go on.
func TestSessionEventsThroughTheUserNeedItsProof(t *testing.T) {
	e := newEnv(t)
	hub := events.New(e.store, events.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e.svc = service.New(e.store, service.Options{Secret: testSecret, AdminToken: adminToken, Events: hub})

	proof := service.IdentifyInput{UserID: str("proven-3"), UserHash: str(hashOf(e.project.IdentitySecret, "proven-3"))}
	d1, d2 := identify(t, e, "", proof), identify(t, e, "", proof)
	sctx, scancel := context.WithCancel(widgetCtx(d2.Token))
	defer scancel()
	stream, err := e.svc.SessionEvents(sctx)
	if err != nil {
		t.Fatal(err)
	}
	next := func(why string) *known.InboxEvent {
		t.Helper()
		select {
		case ev, ok := <-stream:
			if !ok {
				t.Fatalf("%s: the stream ended", why)
			}
			return ev
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no event within 10 s", why)
		}
		return nil
	}
	c1 := startConversation(t, e, d1.Token, "from browser 1")
	for _, want := range []known.EventType{known.ConversationCreated, known.MessageCreated} {
		if ev := next("browser 1's conversation"); ev.ConversationID == nil || *ev.ConversationID != c1.ID || ev.Type != want {
			t.Fatalf("browser 2 got %+v, want %s of browser 1's conversation %s", ev, want, c1.ID)
		}
	}

	unprove(t, e, *d1.UserID)
	if _, err := e.svc.SendMessage(widgetCtx(d1.Token), nil, c1.ID, "after the proof is gone"); err != nil {
		t.Fatal(err)
	}
	c2 := startConversation(t, e, d2.Token, "from browser 2")
	// Events come in order: the first after the proof is gone is browser 2's own.
	if ev := next("browser 2's own conversation"); ev.ConversationID == nil || *ev.ConversationID != c2.ID {
		t.Fatalf("browser 2 got %+v (%s), want only its own conversation %s", ev, ev.Type, c2.ID)
	}
}
