package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/sync/errgroup"
)

type conversationDoc struct {
	ID        string          `bson:"_id"`
	ProjectID string          `bson:"projectId"`
	UserID    *string         `bson:"userId,omitempty"`
	VisitorID string          `bson:"visitorId"`
	Status    string          `bson:"status"`
	Last      *lastMessageDoc `bson:"last,omitempty"`
	// Messages counts the conversation's messages; nil on conversations of earlier versions
	// until the start-up migration counts them.
	Messages  *int      `bson:"messages,omitempty"`
	CreatedAt time.Time `bson:"createdAt"`
	UpdatedAt time.Time `bson:"updatedAt"`
	// UserListed is the conversation's place in its user's list of conversations
	// (userConversationList) when a merge moved it there; 0 when it was listed at its start or
	// by the migration, at the one place its user's list names it.
	UserListed int64 `bson:"userListed,omitempty"`
	// Events recorded with a change and not yet published (outbox.go).
	Pending      map[string]changeDoc `bson:"pendingEvents,omitempty"`
	PendingCount int                  `bson:"pendingCount,omitempty"`
}

// lastMessageDoc is a conversation's copy of its newest message: what a dashboard row shows
// (its project and conversation are the conversation's own). Copies written by earlier versions
// held a whole messageDoc; the start-up migration trims them (migrateLastMessages).
type lastMessageDoc struct {
	ID        string    `bson:"_id"`
	Body      string    `bson:"body"`
	Author    string    `bson:"author"`
	Verified  bool      `bson:"verified,omitempty"`
	CreatedAt time.Time `bson:"createdAt"`
}

func lastOf(d *messageDoc) *lastMessageDoc {
	return &lastMessageDoc{ID: d.ID, Body: d.Body, Author: d.Author, Verified: d.Verified, CreatedAt: d.CreatedAt}
}

type messageDoc struct {
	ID             string    `bson:"_id"`
	ProjectID      string    `bson:"projectId"`
	ConversationID string    `bson:"conversationId"`
	Body           string    `bson:"body"`
	Author         string    `bson:"author"`
	Verified       bool      `bson:"verified"`
	CreatedAt      time.Time `bson:"createdAt"`
	// Events recorded with the message and not yet published (outbox.go); never part of a
	// conversation's copy of its last message.
	Pending      map[string]changeDoc `bson:"pendingEvents,omitempty"`
	PendingCount int                  `bson:"pendingCount,omitempty"`
}

type eventDoc struct {
	ID         string         `bson:"_id"`
	ProjectID  string         `bson:"projectId"`
	UserID     *string        `bson:"userId,omitempty"`
	CompanyID  *string        `bson:"companyId,omitempty"`
	Name       string         `bson:"name"`
	Properties map[string]any `bson:"properties"`
	OccurredAt time.Time      `bson:"occurredAt"`
	CreatedAt  time.Time      `bson:"createdAt"`
}

// CreateConversation stores a new conversation, with its conversation.created event
// (published after the insert, outbox.go), and lists it in its project's list, its visitor's
// (visitorConversationList) and, when it has a user, in the user's (userConversationList):
// their places are reserved while the conversation is inserted, and the lists name it once the
// insert has landed.
func (s *Store) CreateConversation(ctx context.Context, c *known.Conversation) error {
	none := 0
	evs := []changeDoc{conversationChange(known.ConversationCreated, c, map[string]any{"conversation": conversationSnapshot(c)}, c.CreatedAt)}
	var ul list
	pl := s.conversationList(c.ProjectID)
	vl := s.visitorConversationList(c.ProjectID, c.VisitorID)
	var pos, ppos, vpos int64
	var inserted, reserved, preserved, vreserved error
	var wg sync.WaitGroup
	wg.Go(func() {
		_, inserted = s.conversations.InsertOne(ctx, conversationDoc{
			ID: string(c.ID), ProjectID: string(c.ProjectID), UserID: (*string)(c.UserID),
			VisitorID: string(c.VisitorID), Status: string(c.Status), Messages: &none, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
			Pending: pendingMap(evs), PendingCount: len(evs),
		})
	})
	// Its places in the lists are reserved meanwhile: a place whose item never lands stays
	// empty, which readers skip.
	wg.Go(func() { ppos, preserved = pl.reserve(ctx) })
	wg.Go(func() { vpos, vreserved = vl.reserve(ctx) })
	if c.UserID != nil {
		ul = s.userConversationList(c.ProjectID, *c.UserID)
		wg.Go(func() { pos, reserved = ul.reserve(ctx) })
	}
	wg.Wait()
	if inserted != nil {
		return fmt.Errorf("store: creating conversation: %w", inserted)
	}
	s.publish(ctx, s.conversations, string(c.ID), evs)
	// Listed after the insert, so that the lists never name a conversation that is not
	// there. Should this fail, the conversation exists but is missing from the project's
	// unfiltered list (ProjectConversations), its visitor's (VisitorConversations) or its
	// user's (UserConversationIDs) until the repairer lists it; the error says the call did not
	// complete.
	var named, pnamed, vnamed error
	if c.UserID != nil && reserved == nil {
		wg.Go(func() { named = ul.set(ctx, pos, string(c.ID)) })
	}
	if preserved == nil {
		wg.Go(func() { pnamed = pl.set(ctx, ppos, string(c.ID)) })
	}
	if vreserved == nil {
		wg.Go(func() { vnamed = vl.set(ctx, vpos, string(c.ID)) })
	}
	wg.Wait()
	// A list that did not name the conversation is repaired in the background (listrepair.go):
	// at its reserved place, or at a new one when reserving failed (a failed reserve gives
	// position 0).
	if c.UserID != nil && (reserved != nil || named != nil) {
		s.unlisted(ctx, ul, s.conversations, pos, string(c.ID))
	}
	if preserved != nil || pnamed != nil {
		s.unlisted(ctx, pl, s.conversations, ppos, string(c.ID))
	}
	if vreserved != nil || vnamed != nil {
		s.unlisted(ctx, vl, s.conversations, vpos, string(c.ID))
	}
	return cmp.Or(preserved, pnamed, vreserved, vnamed, reserved, named)
}

// userConversationList is user u's list of its conversations, in the order they started or
// were moved to it (lists.go): one of its project's lists, so that DeleteProject deletes it
// with them.
func (s *Store) userConversationList(p known.ProjectID, u known.UserID) list {
	return s.projectList(p, listUserConversations+string(u))
}

// visitorConversationList is visitor v's list of its conversations, in the order they started
// (lists.go): one of its project's lists, so that DeleteProject deletes it with them. A
// conversation keeps its visitor for life (a merge moves its user, not its visitor), so the
// list needs nothing on merges.
func (s *Store) visitorConversationList(p known.ProjectID, v known.VisitorID) list {
	return s.projectList(p, listVisitorConversations+string(v))
}

// conversationList is project p's list of its conversations, in the order they started
// (lists.go).
func (s *Store) conversationList(p known.ProjectID) list { return s.projectList(p, listConversations) }

// messageList is the list of conversation c's messages, in the order they were added
// (lists.go): one of its project's lists, so that DeleteProject deletes it with them.
func (s *Store) messageList(p known.ProjectID, c known.ConversationID) list {
	return s.projectList(p, listMessages+string(c))
}

// moveConversation gives conversation id of user from to user into, with its
// conversation.moved event, in one write; a conversation no longer of from stays. It takes a
// place in into's list of conversations first, and the write names it (UserListed), so that
// readers show the conversation there, and only there: at no place of from's list (it is no
// longer from's), nor at a place a repeated move took.
func (s *Store) moveConversation(ctx context.Context, id known.ConversationID, from, into known.UserID) error {
	var d conversationDoc
	if err := s.conversations.FindOne(ctx, bson.M{"_id": string(id)}).Decode(&d); err != nil {
		if isNoDocuments(err) {
			return nil
		}
		return fmt.Errorf("store: moving conversation: %w", err)
	}
	l := s.userConversationList(known.ProjectID(d.ProjectID), into)
	pos, err := l.reserve(ctx)
	if err != nil {
		return err
	}
	c := d.conversation()
	c.UserID = &into
	evs := []changeDoc{conversationChange(known.ConversationMoved, c, map[string]any{"conversation": conversationSnapshot(c),
		"fromUserId": known.GlobalID(known.KindUser, string(from))}, time.Now())}
	update := bson.M{"$set": bson.M{"userId": string(into), "userListed": pos}}
	pending(update, evs)
	// The place is named alongside the write: should the write not happen, the conversation
	// does not name the place, and readers skip it.
	var named error
	var wg sync.WaitGroup
	wg.Go(func() { named = l.set(ctx, pos, string(id)) })
	before, err := updateIf(ctx, s, s.conversations, string(id), bson.M{"userId": string(from)},
		func(d *conversationDoc) bool { return d.UserID != nil && *d.UserID == string(from) }, update)
	wg.Wait()
	if err != nil {
		return fmt.Errorf("store: moving conversation: %w", err)
	}
	if before == nil { // no longer from's, or gone
		return nil
	}
	s.publish(ctx, s.conversations, string(id), evs)
	if named != nil {
		// The repairer names this same place, which the conversation names (userListed).
		s.unlisted(ctx, l, s.conversations, pos, string(id))
	}
	return named
}

// AddMessage stores a new message of conversation c, counts it, and makes it the
// conversation's last message (unless a newer one got there first): one insert and, as a
// rule, one update by _id. The message carries its message.created event, published after the
// insert (outbox.go).
func (s *Store) AddMessage(ctx context.Context, c *known.Conversation, m *known.Message) error {
	evs := []changeDoc{conversationChange(known.MessageCreated, c, map[string]any{"conversation": conversationSnapshot(c),
		"message": messageSnapshot(m)}, m.CreatedAt)}
	d := messageDoc{
		ID: string(m.ID), ProjectID: string(m.ProjectID), ConversationID: string(m.ConversationID),
		Body: m.Body, Author: string(m.Author), Verified: m.Verified, CreatedAt: m.CreatedAt,
		Pending: pendingMap(evs), PendingCount: len(evs),
	}
	if _, err := s.messages.InsertOne(ctx, d); err != nil {
		return fmt.Errorf("store: adding message: %w", err)
	}
	// Listed after the insert, so that the list never names a message that is not there.
	// Should this fail, the message exists but is missing from the conversation's list
	// (ConversationMessages) until the repairer lists it, and is not counted; the error says
	// the call did not complete, so that a client may retry (and then has two).
	defer s.publish(ctx, s.messages, d.ID, evs)
	ml := s.messageList(c.ProjectID, c.ID)
	if pos, err := ml.append(ctx, d.ID); err != nil {
		// Repaired in the background (listrepair.go): at the reserved place, or at a new one
		// when reserving failed (append then gives position 0). The conversation's count and
		// last message stay as they are.
		s.unlisted(ctx, ml, s.messages, pos, d.ID)
		return err
	}
	newer := bson.M{"$set": bson.M{"last": lastOf(&d), "updatedAt": m.CreatedAt}, "$inc": bson.M{"messages": 1}}
	type lastID struct {
		Last *struct {
			ID string `bson:"_id"`
		} `bson:"last"`
	}
	before, err := updateIf(ctx, s, s.conversations, d.ConversationID,
		bson.M{"$or": bson.A{bson.M{"last": nil}, bson.M{"last._id": bson.M{"$lt": d.ID}}}},
		func(c *lastID) bool { return c.Last == nil || c.Last.ID < d.ID }, newer)
	if err == nil && before == nil {
		// A newer message is the last one already (or the conversation is gone): count only,
		// in the conversation's turn too (FerretDB would lose one of two concurrent $inc).
		err = func() error {
			defer s.serial.lock(s.conversations, d.ConversationID)()
			return s.conversations.FindOneAndUpdate(ctx, bson.M{"_id": d.ConversationID}, bson.M{"$inc": bson.M{"messages": 1}}).Err()
		}()
	}
	if err != nil && !isNoDocuments(err) {
		return fmt.Errorf("store: updating last message: %w", err)
	}
	return nil
}

// AddEvent stores a tracked event and, when it has a user, lists it in the user's list of
// events (eventList): its place is reserved while the event is inserted, and named once the
// insert has landed, so that the list never names an event that is not there; a failed insert
// leaves its place empty, which readers skip. Should the naming fail, the event exists but is
// missing from the user's list (UserEvents) until the repairer lists it; the error says the
// call did not complete.
func (s *Store) AddEvent(ctx context.Context, e *known.Event) error {
	props := e.Properties
	if props == nil {
		props = map[string]any{}
	}
	d := eventDoc{
		ID: string(e.ID), ProjectID: string(e.ProjectID), UserID: (*string)(e.UserID), CompanyID: (*string)(e.CompanyID),
		Name: e.Name, Properties: props, OccurredAt: e.OccurredAt, CreatedAt: e.CreatedAt,
	}
	if e.UserID == nil {
		if _, err := s.events.InsertOne(ctx, d); err != nil {
			return fmt.Errorf("store: adding event: %w", err)
		}
		return nil
	}
	l := s.eventList(e.ProjectID, *e.UserID)
	var pos int64
	var inserted, reserved error
	var wg sync.WaitGroup
	wg.Go(func() { _, inserted = s.events.InsertOne(ctx, d) })
	wg.Go(func() { pos, reserved = l.reserve(ctx) })
	wg.Wait()
	if inserted != nil {
		return fmt.Errorf("store: adding event: %w", inserted)
	}
	if reserved == nil {
		reserved = l.set(ctx, pos, d.ID)
	}
	if reserved != nil {
		// Repaired in the background (listrepair.go): at the reserved place, or at a new one
		// when reserving failed (a failed reserve gives position 0).
		s.unlisted(ctx, l, s.events, pos, d.ID)
	}
	return reserved
}

// eventList is user u's list of its tracked events, in the order they were tracked or moved to
// it (lists.go): one of its project's lists, so that DeleteProject deletes it with them.
func (s *Store) eventList(p known.ProjectID, u known.UserID) list {
	return s.projectList(p, listUserEvents+string(u))
}

// eventsMove records that user from's list of events was copied into user into's, so that a
// merge done again after an interruption puts each event at the place the first try gave it
// instead of listing it twice. Its _id is from's list key, "|moved|" and into.
type eventsMove struct {
	ID string `bson:"_id"`
	// At is the place in into's list of the first place of from's.
	At int64 `bson:"at"`
	// N is the number of from's places copied.
	N int64 `bson:"n"`
	// First is the id at from's first named place: a list made anew under the same key (an
	// anonymous record made again for its visitor) names another, and is copied afresh.
	First string `bson:"first"`
}

// copyEventList copies user from's list of events onto the end of user into's, before a merge
// moves the events themselves (MoveUserData): into's readers skip the copies while the events
// are still from's, and show them once they move. It returns the function that deletes from's
// list and the move's record, to call once the events are moved. Run again after an
// interruption, it copies each place to where the first try did (eventsMove). A list of n
// places costs two reads by _id, a bucket read per 100 places, one reservation of n places,
// one insert of the record and one update per bucket written.
func (s *Store) copyEventList(ctx context.Context, p known.ProjectID, from, into known.UserID) (func(context.Context) error, error) {
	src, dst := s.eventList(p, from), s.eventList(p, into)
	markID := src.key + "|moved|" + string(into)
	var n int64
	var m eventsMove
	var marked bool
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { n, err = src.length(gctx); return err })
	g.Go(func() error {
		err := s.lists().FindOne(gctx, bson.M{"_id": markID}).Decode(&m)
		if isNoDocuments(err) {
			return nil
		}
		marked = err == nil
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("store: moving events: %w", err)
	}
	done := func(ctx context.Context) error {
		if err := src.delete(ctx); err != nil {
			return err
		}
		// The record goes last: while from's list is there, a repeated merge needs it.
		if _, err := s.lists().DeleteOne(ctx, bson.M{"_id": markID}); err != nil {
			return fmt.Errorf("store: moving events: %w", err)
		}
		return nil
	}
	if n == 0 && !marked {
		return func(context.Context) error { return nil }, nil
	}
	r := &listReader{l: src, next: n}
	entries, err := r.read(ctx, int(n))
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return done, nil
	}
	slices.Reverse(entries) // oldest first
	first := entries[0].id
	if !marked || m.First != first {
		at, err := reserveRun(ctx, dst, n)
		if err != nil {
			return nil, err
		}
		stale := marked
		m = eventsMove{ID: markID, At: at, N: n, First: first}
		if stale { // a record of a list of the same key that was deleted since
			_, err = s.lists().ReplaceOne(ctx, bson.M{"_id": markID}, m, options.Replace().SetUpsert(true))
		} else if _, err = s.lists().InsertOne(ctx, m); mongo.IsDuplicateKeyError(err) {
			// Another merge of the same users got there first: its places are the ones, and
			// the ones reserved here stay empty.
			err = s.lists().FindOne(ctx, bson.M{"_id": markID}).Decode(&m)
		}
		if err != nil {
			return nil, fmt.Errorf("store: moving events: %w", err)
		}
	}
	places := make(map[int64]string, len(entries))
	var later []listEntry
	for _, e := range entries {
		if e.pos <= m.N {
			places[m.At+e.pos-1] = e.id
		} else {
			later = append(later, e)
		}
	}
	if len(later) > 0 {
		// Listed for from after an interrupted try recorded its move: new places for them.
		at, err := reserveRun(ctx, dst, n-m.N)
		if err != nil {
			return nil, err
		}
		for _, e := range later {
			places[at+e.pos-m.N-1] = e.id
		}
	}
	if err := setPlaces(ctx, dst, places); err != nil {
		return nil, err
	}
	return done, nil
}

// reserveRun takes the next k places of list l at once and returns the first: list.reserve
// for many.
func reserveRun(ctx context.Context, l list, k int64) (int64, error) {
	var h listHead
	err := func() error {
		defer l.s.serial.lock(l.s.lists(), l.headID())()
		return upsertByID(ctx, l.s.lists(), l.headID(), bson.M{"$inc": bson.M{"n": k}}, &h)
	}()
	if err != nil {
		return 0, fmt.Errorf("store: appending to list %s: %w", l.key, err)
	}
	return h.N - k + 1, nil
}

// setPlaces names the ids at the places of list l that reserveRun gave out: one update by _id
// per bucket, each in the bucket's turn (list.set for many).
func setPlaces(ctx context.Context, l list, places map[int64]string) error {
	byBucket := map[int64]bson.M{}
	for pos, id := range places {
		b := bucketOf(pos)
		if byBucket[b] == nil {
			byBucket[b] = bson.M{}
		}
		byBucket[b]["e."+strconv.FormatInt(pos, 10)] = id
	}
	for b, set := range byBucket {
		bucket := l.bucketID(b)
		err := func() error {
			defer l.s.serial.lock(l.s.lists(), bucket)()
			return upsertByID(ctx, l.s.lists(), bucket, bson.M{"$set": set}, nil)
		}()
		if err != nil {
			return fmt.Errorf("store: appending to list %s: %w", l.key, err)
		}
	}
	return nil
}

// Counts returns how many documents of a project each collection holds: for tests and checks
// that an operation left nothing behind.
func (s *Store) Counts(ctx context.Context, p known.ProjectID) (map[string]int64, error) {
	out := map[string]int64{}
	for _, c := range []struct {
		name   string
		filter bson.M
	}{
		{"users", bson.M{"projectId": string(p)}},
		{"identity_keys", bson.M{"projectId": string(p)}},
		{"conversations", bson.M{"projectId": string(p)}},
		{"messages", bson.M{"projectId": string(p)}},
		{"events", bson.M{"projectId": string(p)}},
	} {
		n, err := s.db.Collection(c.name).CountDocuments(ctx, c.filter)
		if err != nil {
			return nil, fmt.Errorf("store: counting %s: %w", c.name, err)
		}
		out[c.name] = n
	}
	return out, nil
}

// Drop deletes the whole database: for tests.
func (s *Store) Drop(ctx context.Context) error { return s.db.Drop(ctx) }

func (d *conversationDoc) conversation() *known.Conversation {
	c := &known.Conversation{ID: known.ConversationID(d.ID), ProjectID: known.ProjectID(d.ProjectID),
		UserID: (*known.UserID)(d.UserID), VisitorID: known.VisitorID(d.VisitorID),
		Status: known.ConversationStatus(d.Status), CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
	if l := d.Last; l != nil {
		c.Last = &known.Message{ID: known.MessageID(l.ID), ProjectID: c.ProjectID, ConversationID: c.ID, Body: l.Body,
			Author: known.Author(l.Author), Verified: l.Verified, CreatedAt: l.CreatedAt}
	}
	c.MessageCount = -1
	if d.Messages != nil {
		c.MessageCount = *d.Messages
	}
	return c
}

func (d *messageDoc) message() *known.Message {
	return &known.Message{ID: known.MessageID(d.ID), ProjectID: known.ProjectID(d.ProjectID),
		ConversationID: known.ConversationID(d.ConversationID), Body: d.Body, Author: known.Author(d.Author),
		Verified: d.Verified, CreatedAt: d.CreatedAt}
}

func (d *eventDoc) event() *known.Event {
	return &known.Event{ID: known.EventID(d.ID), ProjectID: known.ProjectID(d.ProjectID), UserID: (*known.UserID)(d.UserID),
		CompanyID: (*known.CompanyID)(d.CompanyID), Name: d.Name, Properties: nonNilMap(d.Properties),
		OccurredAt: d.OccurredAt, CreatedAt: d.CreatedAt}
}

// Conversation returns project p's conversation with this id, or NotFound.
func (s *Store) Conversation(ctx context.Context, p known.ProjectID, id known.ConversationID) (*known.Conversation, error) {
	var d conversationDoc
	if err := s.findInProject(ctx, s.conversations, p, string(id), &d, &d.ProjectID); err != nil {
		return nil, err
	}
	return d.conversation(), nil
}

// Message returns project p's message with this id, or NotFound.
func (s *Store) Message(ctx context.Context, p known.ProjectID, id known.MessageID) (*known.Message, error) {
	var d messageDoc
	if err := s.findInProject(ctx, s.messages, p, string(id), &d, &d.ProjectID); err != nil {
		return nil, err
	}
	return d.message(), nil
}

// Event returns project p's event with this id, or NotFound.
func (s *Store) Event(ctx context.Context, p known.ProjectID, id known.EventID) (*known.Event, error) {
	var d eventDoc
	if err := s.findInProject(ctx, s.events, p, string(id), &d, &d.ProjectID); err != nil {
		return nil, err
	}
	return d.event(), nil
}

// ConversationFilter selects conversations; every set condition must hold.
type ConversationFilter struct {
	UserID    *known.UserID
	VisitorID *known.VisitorID
	Status    *known.ConversationStatus
}

// Conversations returns a page of project p's conversations that f selects, newest first:
// a query of the collection, which the embedded store answers by reading all of it. The
// unfiltered list is ProjectConversations'.
func (s *Store) Conversations(ctx context.Context, p known.ProjectID, f ConversationFilter, page known.Page) ([]*known.Conversation, bool, error) {
	filter := bson.M{"projectId": string(p)}
	if f.UserID != nil {
		filter["userId"] = string(*f.UserID)
	}
	if f.VisitorID != nil {
		filter["visitorId"] = string(*f.VisitorID)
	}
	if f.Status != nil {
		filter["status"] = string(*f.Status)
	}
	var docs []conversationDoc
	more, err := s.page(ctx, s.conversations, filter, page, &docs)
	return mapDocs(docs, (*conversationDoc).conversation), more, err
}

// ProjectConversations returns a page of all of project p's conversations, newest first,
// from the project's list (lists.go): a few reads by _id and one read of the page's
// conversations, however many conversations the project or the store holds. after[i] is the
// page.After that continues after cs[i]; page.After is "" or such a value, anything else is
// BAD_USER_INPUT (field after). A conversation deleted since it was listed is skipped. The
// filtered lists (Conversations) query the collection instead: they are kept in no list.
func (s *Store) ProjectConversations(ctx context.Context, p known.ProjectID, page known.Page) (cs []*known.Conversation, after []string, more bool, err error) {
	return pageProjectList(ctx, s, p, s.conversations, page,
		func(d *conversationDoc) (string, string) { return d.ID, d.ProjectID }, (*conversationDoc).conversation)
}

// ConversationMessages returns a page of conversation c's messages, newest first, from its
// list (lists.go): a few reads by _id and one read of the page's messages, however many
// messages the conversation or the store holds. after[i] is the page.After that continues
// after ms[i]; page.After is "" or such a value, anything else is BAD_USER_INPUT (field
// after).
func (s *Store) ConversationMessages(ctx context.Context, c *known.Conversation, page known.Page) (ms []*known.Message, after []string, more bool, err error) {
	// The messages' shard key (README, Sharding) goes with their ids; the finds by _id that
	// byIDsWhere may send instead do not name it, so a message of another conversation is
	// skipped here (as one of another project).
	return pageDocs(ctx, s.messageList(c.ProjectID, c.ID), c.ProjectID, s.messages, bson.M{"conversationId": string(c.ID)}, page,
		func(d *messageDoc) (string, string) {
			if d.ConversationID != string(c.ID) {
				return d.ID, ""
			}
			return d.ID, d.ProjectID
		}, (*messageDoc).message)
}

// Messages returns a page of a conversation's messages, newest first by id: a query of the
// collection (ConversationMessages reads the conversation's list; this serves cursors by id,
// which the first page of one message and earlier versions gave).
func (s *Store) Messages(ctx context.Context, c known.ConversationID, page known.Page) ([]*known.Message, bool, error) {
	var docs []messageDoc
	more, err := s.page(ctx, s.messages, bson.M{"conversationId": string(c)}, page, &docs)
	return mapDocs(docs, (*messageDoc).message), more, err
}

// EventFilter selects events: of a user, of a company, or both.
type EventFilter struct {
	UserID    *known.UserID
	CompanyID *known.CompanyID
}

// Events returns a page of project p's events that f selects, newest first by id: a query of
// the collection, which the embedded store answers by reading all of it. A user's events
// alone are UserEvents'; this serves a company's, and cursors by id of earlier versions.
func (s *Store) Events(ctx context.Context, p known.ProjectID, f EventFilter, page known.Page) ([]*known.Event, bool, error) {
	filter := bson.M{"projectId": string(p)}
	if f.UserID != nil {
		filter["userId"] = string(*f.UserID)
	}
	if f.CompanyID != nil {
		filter["companyId"] = string(*f.CompanyID)
	}
	var docs []eventDoc
	more, err := s.page(ctx, s.events, filter, page, &docs)
	return mapDocs(docs, (*eventDoc).event), more, err
}

// UserEvents returns a page of user u's tracked events, newest first, from its list (lists.go):
// a few reads by _id and one read of the page's events, however many events the user or the
// store holds. An event listed for u that belongs to another user since (moved on a merge) or
// to another project is skipped: a page shows only u's. after[i] is the page.After that
// continues after es[i]; page.After is "" or such a value, anything else is BAD_USER_INPUT
// (field after).
func (s *Store) UserEvents(ctx context.Context, p known.ProjectID, u known.UserID, page known.Page) (es []*known.Event, after []string, more bool, err error) {
	// Events are sharded on _id: their ids alone target them, and the user is checked here.
	return pageDocs(ctx, s.eventList(p, u), p, s.events, nil, page,
		func(d *eventDoc) (string, string) {
			if d.UserID == nil || *d.UserID != string(u) {
				return d.ID, "" // no project's: skipped
			}
			return d.ID, d.ProjectID
		}, (*eventDoc).event)
}

// UserConversationIDs returns the ids of the conversations of each of project p's users, newest
// first (in the order they started or were moved to the user), from the users' lists of them
// (lists.go): the lists' heads, their buckets and the listed conversations, all read by _id,
// however many conversations the project or the store holds. A listed conversation that is
// gone, or no longer the user's, or the user's at another place of its list (moved away and
// back), is skipped. ConversationIDsOfUsers finds the same by a query, for merges and erasure.
func (s *Store) UserConversationIDs(ctx context.Context, p known.ProjectID, users []known.UserID) (map[known.UserID][]known.ConversationID, error) {
	out := make(map[known.UserID][]known.ConversationID, len(users))
	users = slices.Compact(slices.Sorted(slices.Values(users)))
	if len(users) == 0 {
		return out, nil
	}
	heads := make([]string, len(users))
	for i, u := range users {
		heads[i] = s.userConversationList(p, u).headID()
	}
	var have []listHead
	if err := s.byIDs(ctx, s.lists(), heads, &have); err != nil {
		return nil, err
	}
	n := make(map[string]int64, len(have))
	for _, h := range have {
		n[h.ID] = h.N
	}
	entries := make([][]listEntry, len(users))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(perIDConcurrency)
	for i, u := range users {
		if n[heads[i]] == 0 {
			continue
		}
		g.Go(func() (err error) {
			r := &listReader{l: s.userConversationList(p, u), next: n[heads[i]]}
			entries[i], err = r.read(gctx, int(n[heads[i]]))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var ids []string
	for _, es := range entries {
		for _, e := range es {
			ids = append(ids, e.id)
		}
	}
	var docs []conversationDoc
	if err := s.byIDs(ctx, s.conversations, ids, &docs); err != nil {
		return nil, err
	}
	found := make(map[string]*conversationDoc, len(docs))
	for i := range docs {
		found[docs[i].ID] = &docs[i]
	}
	for i, u := range users {
		for _, e := range entries[i] {
			d := found[e.id]
			if d == nil || d.ProjectID != string(p) || d.UserID == nil || *d.UserID != string(u) ||
				(d.UserListed != 0 && d.UserListed != e.pos) {
				continue
			}
			out[u] = append(out[u], known.ConversationID(d.ID))
		}
	}
	return out, nil
}

// ConversationIDsOfUsers returns the ids of each user's conversations, newest first by id: one
// query for all the users, which the embedded store answers by reading the whole collection.
// It finds every conversation that names the user, listed or not: for merges and erasure
// (UserConversationIDs reads the users' lists).
func (s *Store) ConversationIDsOfUsers(ctx context.Context, users []known.UserID) (map[known.UserID][]known.ConversationID, error) {
	out := make(map[known.UserID][]known.ConversationID, len(users))
	if len(users) == 0 {
		return out, nil
	}
	cur, err := s.conversations.Find(ctx, bson.M{"userId": bson.M{"$in": strs(users)}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetProjection(bson.M{"_id": 1, "userId": 1}).SetBatchSize(bigBatch))
	if err != nil {
		return nil, fmt.Errorf("store: listing conversation ids: %w", err)
	}
	var docs []struct {
		ID     string `bson:"_id"`
		UserID string `bson:"userId"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("store: listing conversation ids: %w", err)
	}
	for _, d := range docs {
		u := known.UserID(d.UserID)
		out[u] = append(out[u], known.ConversationID(d.ID))
	}
	return out, nil
}
