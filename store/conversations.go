package store

import (
	"context"
	"fmt"
	"time"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
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
	// Events recorded with a change and not yet published (outbox.go).
	Pending      map[string]changeDoc `bson:"pendingEvents,omitempty"`
	PendingCount int                  `bson:"pendingCount"`
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
// (published after the insert, outbox.go).
func (s *Store) CreateConversation(ctx context.Context, c *known.Conversation) error {
	none := 0
	evs := []changeDoc{conversationChange(known.ConversationCreated, c, map[string]any{"conversation": conversationSnapshot(c)}, c.CreatedAt)}
	_, err := s.conversations.InsertOne(ctx, conversationDoc{
		ID: string(c.ID), ProjectID: string(c.ProjectID), UserID: (*string)(c.UserID),
		VisitorID: string(c.VisitorID), Status: string(c.Status), Messages: &none, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
		Pending: pendingMap(evs), PendingCount: len(evs),
	})
	if err != nil {
		return fmt.Errorf("store: creating conversation: %w", err)
	}
	s.publish(ctx, s.conversations, string(c.ID), evs)
	// Listed after the insert, so that the list never names a conversation that is not
	// there. Should this fail, the conversation exists but is missing from the project's
	// unfiltered list (ProjectConversations); the error says the call did not complete.
	if _, err := s.conversationList(c.ProjectID).append(ctx, string(c.ID)); err != nil {
		return err
	}
	return nil
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
// conversation.moved event, in one write; a conversation no longer of from stays.
func (s *Store) moveConversation(ctx context.Context, id known.ConversationID, from, into known.UserID) error {
	var d conversationDoc
	if err := s.conversations.FindOne(ctx, bson.M{"_id": string(id)}).Decode(&d); err != nil {
		if isNoDocuments(err) {
			return nil
		}
		return fmt.Errorf("store: moving conversation: %w", err)
	}
	c := d.conversation()
	c.UserID = &into
	evs := []changeDoc{conversationChange(known.ConversationMoved, c, map[string]any{"conversation": conversationSnapshot(c),
		"fromUserId": known.GlobalID(known.KindUser, string(from))}, time.Now())}
	update := bson.M{"$set": bson.M{"userId": string(into)}}
	pending(update, evs)
	err := func() error {
		defer s.serial.lock(s.conversations, string(id))()
		return s.conversations.FindOneAndUpdate(ctx, bson.M{"_id": string(id), "userId": string(from)}, update).Err()
	}()
	if isNoDocuments(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: moving conversation: %w", err)
	}
	s.publish(ctx, s.conversations, string(id), evs)
	return nil
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
	// (ConversationMessages); the error says the call did not complete.
	if _, err := s.messageList(c.ProjectID, c.ID).append(ctx, d.ID); err != nil {
		s.publish(ctx, s.messages, d.ID, evs)
		return err
	}
	d.Pending, d.PendingCount = nil, 0
	defer s.publish(ctx, s.messages, d.ID, evs)
	defer s.serial.lock(s.conversations, d.ConversationID)()
	newer := bson.M{"$set": bson.M{"last": lastOf(&d), "updatedAt": m.CreatedAt}, "$inc": bson.M{"messages": 1}}
	countOnly := bson.M{"$inc": bson.M{"messages": 1}} // a newer message is the last one already
	var err error
	if s.serial.on {
		// FerretDB reads and decodes the whole collection for any filter but {_id}; every
		// write of a conversation in this process (the one FerretDB serves) holds its turn,
		// so the check is made here, between a read and a write by _id.
		var cur struct {
			Last *struct {
				ID string `bson:"_id"`
			} `bson:"last"`
		}
		err = s.conversations.FindOne(ctx, bson.M{"_id": d.ConversationID}, options.FindOne().SetProjection(bson.M{"last._id": 1})).Decode(&cur)
		if err == nil {
			update := newer
			if cur.Last != nil && cur.Last.ID >= d.ID {
				update = countOnly
			}
			err = s.conversations.FindOneAndUpdate(ctx, bson.M{"_id": d.ConversationID}, update).Err()
		}
	} else {
		err = s.conversations.FindOneAndUpdate(ctx,
			bson.M{"_id": d.ConversationID, "$or": bson.A{bson.M{"last": nil}, bson.M{"last._id": bson.M{"$lt": d.ID}}}}, newer).Err()
		if isNoDocuments(err) {
			err = s.conversations.FindOneAndUpdate(ctx, bson.M{"_id": d.ConversationID}, countOnly).Err()
		}
	}
	if err != nil && !isNoDocuments(err) {
		return fmt.Errorf("store: updating last message: %w", err)
	}
	return nil
}

// AddEvent stores a tracked event.
func (s *Store) AddEvent(ctx context.Context, e *known.Event) error {
	props := e.Properties
	if props == nil {
		props = map[string]any{}
	}
	_, err := s.events.InsertOne(ctx, eventDoc{
		ID: string(e.ID), ProjectID: string(e.ProjectID), UserID: (*string)(e.UserID), CompanyID: (*string)(e.CompanyID),
		Name: e.Name, Properties: props, OccurredAt: e.OccurredAt, CreatedAt: e.CreatedAt,
	})
	if err != nil {
		return fmt.Errorf("store: adding event: %w", err)
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
	// The messages' shard key (README, Sharding) goes with their ids.
	return pageDocs(ctx, s.messageList(c.ProjectID, c.ID), c.ProjectID, s.messages, bson.M{"conversationId": string(c.ID)}, page,
		func(d *messageDoc) (string, string) { return d.ID, d.ProjectID }, (*messageDoc).message)
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

// Events returns a page of project p's events, newest first.
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

// ConversationIDsOfUsers returns the ids of each user's conversations, newest first: one query
// for all the users.
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
