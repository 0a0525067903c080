package store

import (
	"context"
	"fmt"
	"time"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
)

type conversationDoc struct {
	ID        string    `bson:"_id"`
	ProjectID string    `bson:"projectId"`
	UserID    *string   `bson:"userId,omitempty"`
	VisitorID string    `bson:"visitorId"`
	Status    string    `bson:"status"`
	CreatedAt time.Time `bson:"createdAt"`
	UpdatedAt time.Time `bson:"updatedAt"`
}

type messageDoc struct {
	ID             string    `bson:"_id"`
	ProjectID      string    `bson:"projectId"`
	ConversationID string    `bson:"conversationId"`
	Body           string    `bson:"body"`
	Author         string    `bson:"author"`
	Verified       bool      `bson:"verified"`
	CreatedAt      time.Time `bson:"createdAt"`
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

// CreateConversation stores a new conversation.
func (s *Store) CreateConversation(ctx context.Context, c *known.Conversation) error {
	_, err := s.conversations.InsertOne(ctx, conversationDoc{
		ID: string(c.ID), ProjectID: string(c.ProjectID), UserID: (*string)(c.UserID),
		VisitorID: string(c.VisitorID), Status: string(c.Status), CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	})
	if err != nil {
		return fmt.Errorf("store: creating conversation: %w", err)
	}
	return nil
}

// AddMessage stores a new message of a conversation.
func (s *Store) AddMessage(ctx context.Context, m *known.Message) error {
	_, err := s.messages.InsertOne(ctx, messageDoc{
		ID: string(m.ID), ProjectID: string(m.ProjectID), ConversationID: string(m.ConversationID),
		Body: m.Body, Author: string(m.Author), Verified: m.Verified, CreatedAt: m.CreatedAt,
	})
	if err != nil {
		return fmt.Errorf("store: adding message: %w", err)
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
