package service

import (
	"context"
	"slices"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/identity"
)

// EventSource is this instance's live change events (the events.Hub, which follows the
// events every instance publishes).
type EventSource interface {
	// Subscribe returns the events accept takes, from now on, and the function that ends the
	// subscription; the channel is closed when it ends.
	Subscribe(accept func(*known.InboxEvent) bool) (<-chan *known.InboxEvent, func())
}

// InboxEvents streams the change events of the secret key's project, of the given types (all
// when none), until ctx is done. UNAUTHENTICATED without a secret key.
func (s *Service) InboxEvents(ctx context.Context, types []known.EventType) (<-chan *known.InboxEvent, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, err
	}
	if s.events == nil {
		return nil, known.Errorf(known.Internal, "this instance does not follow events")
	}
	types = slices.Clone(types)
	c, stop := s.events.Subscribe(func(e *known.InboxEvent) bool {
		return e.ProjectID == p && (len(types) == 0 || slices.Contains(types, e.Type))
	})
	// The stream ends once its secret key no longer names the project (rotated, expired, the
	// project deleted): checked before each event and every CacheTTL/2, from what this
	// instance keeps of the key for CacheTTL, so no event reaches it later than CacheTTL after
	// the change, and an idle stream ends within 1.5×CacheTTL (4.5 s), on every instance. A
	// failed read ends it too (the client subscribes again).
	hash := known.CallerFromContext(ctx).KeyHash
	alive := func(ctx context.Context) bool {
		kp, err := s.projectOfKey(ctx, hash)
		return err == nil && kp.found && kp.project == p
	}
	if hash == "" {
		alive = nil
	}
	return followWhile(ctx, c, stop, nil, alive, CacheTTL/2), nil
}

// SessionEvents streams the events of the conversations the widget session may read (its
// visitor's; a verified session's, all of its user's), as the widget may see them: the
// conversation's id and status and the message, nothing of users. The session is the one the
// call carries (rate limit and allowed origins as for every widget call).
func (s *Service) SessionEvents(ctx context.Context) (<-chan *known.InboxEvent, error) {
	wc, err := s.widget(ctx, nil, true)
	if err != nil {
		return nil, err
	}
	if s.events == nil {
		return nil, known.Errorf(known.Internal, "this instance does not follow events")
	}
	ss := *wc.session
	c, stop := s.events.Subscribe(func(e *known.InboxEvent) bool {
		switch e.Type {
		case known.ConversationCreated, known.ConversationMoved, known.MessageCreated:
		default:
			return false
		}
		return e.ProjectID == ss.ProjectID && e.VisitorID != nil && e.ConversationID != nil &&
			identity.MayRead(&ss, &known.Conversation{ProjectID: e.ProjectID, UserID: e.UserID, VisitorID: *e.VisitorID})
	})
	// A session that ended (resetSession, expiry, its user erased) stops its stream before the
	// next event, so no event reaches it afterwards: one read by _id per event, which a widget
	// receives few of. An idle stream checks every sessionCheck too, so that it ends (and
	// frees its subscription) even when no event comes. A failed read ends it too (the client
	// subscribes again).
	alive := func(ctx context.Context) bool {
		_, err := s.store.Session(ctx, ss.ID, s.clock())
		return err == nil
	}
	// An event of a conversation the session reads through its user (one of the user's other
	// browsers) goes only while the user still holds a proven identity, as Messages checks
	// (readsThroughUser): one more read by _id for such an event, not shared across events, so
	// that a stream never acts on a user it read long ago.
	send := func(e *known.InboxEvent) *known.InboxEvent {
		if *e.VisitorID != ss.VisitorID {
			u, err := s.currentUser(ctx, ss.ProjectID, &ss)
			if err != nil || !stillProven(&ss, u) {
				return nil
			}
		}
		return widgetEvent(e)
	}
	return followWhile(ctx, c, stop, send, alive, s.sessionCheck), nil
}

// DefaultSessionCheck is how often an idle sessionEvents stream reads its session. No event
// depends on it (each is checked before it is sent); it only bounds how long an ended
// session's stream holds its subscription and connection. Each check is one read by _id per
// open widget, so 5 s keeps a thousand open widgets to 200 of the cheapest reads a second,
// and an idle stream ends within 5 s of its session, as an agent's does of its key (4.5 s).
const DefaultSessionCheck = 5 * time.Second

// widgetEvent is e as a widget may read it.
func widgetEvent(e *known.InboxEvent) *known.InboxEvent {
	w := *e
	w.UserID, w.VisitorID = nil, nil
	data := map[string]any{}
	if c, ok := e.Data["conversation"].(map[string]any); ok {
		data["conversation"] = map[string]any{"id": c["id"], "status": c["status"], "createdAt": c["createdAt"]}
	}
	if m, ok := e.Data["message"]; ok {
		data["message"] = m
	}
	w.Data = data
	return &w
}

// followWhile passes the events of c on (through transform, when set; one it makes nil is
// dropped) until ctx is done or c
// closes, then ends the subscription; it ends it instead of passing an event on once alive
// (when set) says the subscriber may no longer read, and, with every > 0, also when alive says
// so at one of its ticks (so that a stream without events ends too).
func followWhile(ctx context.Context, c <-chan *known.InboxEvent, stop func(), transform func(*known.InboxEvent) *known.InboxEvent,
	alive func(context.Context) bool, every time.Duration) <-chan *known.InboxEvent {
	out := make(chan *known.InboxEvent)
	go func() {
		defer close(out)
		defer stop()
		var tick <-chan time.Time
		if alive != nil && every > 0 {
			t := time.NewTicker(every)
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick:
				if !alive(ctx) {
					return
				}
			case e, ok := <-c:
				if !ok || (alive != nil && !alive(ctx)) {
					return
				}
				if transform != nil {
					if e = transform(e); e == nil {
						continue // not for this subscriber
					}
				}
				select {
				case out <- e:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}
