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

// WebhookID names a project's webhook.
type WebhookID string

// Webhook is where a project's change events are POSTed (API.md §9). Events lists the types
// it gets (empty: all). A webhook failing for a day is disabled: Enabled false, DisabledAt
// and LastError say why.
type Webhook struct {
	ID        WebhookID
	ProjectID ProjectID
	URL       string
	Events    []EventType
	Enabled   bool
	LastError *string
	// FailingSince is the first failed attempt since the last delivery (nil while healthy).
	FailingSince *time.Time
	DisabledAt   *time.Time
	// FromSeq is the first event number the webhook gets: events before it happened before
	// it existed.
	FromSeq   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Wants reports whether the webhook gets events of type t.
func (w *Webhook) Wants(t EventType) bool {
	if len(w.Events) == 0 {
		return true
	}
	for _, e := range w.Events {
		if e == t {
			return true
		}
	}
	return false
}

// DeliveryStatus is where a webhook delivery stands.
type DeliveryStatus string

// Delivery statuses.
const (
	DeliveryPending   DeliveryStatus = "PENDING"
	DeliveryDelivered DeliveryStatus = "DELIVERED"
	DeliveryFailed    DeliveryStatus = "FAILED"
)

// WebhookDelivery is one event on its way to one webhook. Body is fixed when the delivery is
// made, so that every attempt sends the same bytes; OrderKey groups the deliveries that go
// out in order (a webhook's, of one user).
type WebhookDelivery struct {
	ID               string
	WebhookID        WebhookID
	ProjectID        ProjectID
	EventID          InboxEventID
	EventSeq         int64
	EventType        EventType
	OrderKey         string
	UserID           *UserID // the user the event concerns
	Body             string
	Status           DeliveryStatus
	Attempts         int
	LastResponseCode *int
	LastError        *string
	NextAttemptAt    *time.Time
	DeliveredAt      *time.Time
	CreatedAt        time.Time
}
