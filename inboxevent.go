package known

import "time"

// EventType names a kind of change that Known pushes to subscribers and webhooks (API.md §9).
// These are Known's own change events, not the events a widget tracks (Event).
type EventType string

// Event types.
const (
	UserCreated         EventType = "user.created"
	UserUpdated         EventType = "user.updated"
	UserIdentified      EventType = "user.identified"
	UserVerified        EventType = "user.verified"
	UserMerged          EventType = "user.merged"
	UserDeleted         EventType = "user.deleted"
	ConversationCreated EventType = "conversation.created"
	ConversationMoved   EventType = "conversation.moved"
	MessageCreated      EventType = "message.created"
)

// EventTypes lists every event type, in the order of API.md §9.
var EventTypes = []EventType{UserCreated, UserUpdated, UserIdentified, UserVerified, UserMerged,
	UserDeleted, ConversationCreated, ConversationMoved, MessageCreated}

// InboxEventID is the id of a change event: the same wherever and however often it is
// delivered (a webhook's Known-Event-Id), so that a receiver can drop a repeat.
type InboxEventID string

// InboxEvent is one change, recorded with the change itself (an outbox) and then published in
// the order of its sequence number, which every instance reading the database sees alike.
type InboxEvent struct {
	ID        InboxEventID
	Seq       int64
	ProjectID ProjectID
	Type      EventType
	// UserID is the user the change concerns (for a conversation or message, the
	// conversation's user); nil for an anonymous visitor's conversation.
	UserID *UserID
	// VisitorID and ConversationID say which widget sessions may read a conversation or
	// message event.
	VisitorID      *VisitorID
	ConversationID *ConversationID
	// Data is the event's payload as a webhook receives it: global ids, the object as it
	// is after the change, and for user.updated its changes ({field: {from, to}}).
	Data      map[string]any
	CreatedAt time.Time
}
