package store

import (
	"context"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// LeaveConversationGap takes the next position of project p's conversation list and
// sets nothing there, as a process that stops between the two writes of an append would.
func (s *Store) LeaveConversationGap(ctx context.Context, p known.ProjectID) error {
	l := s.conversationList(p)
	defer s.serial.lock(s.lists(), l.headID())()
	return upsertByID(ctx, s.lists(), l.headID(), bson.M{"$inc": bson.M{"n": int64(1)}}, nil)
}

// ListDocuments counts the documents of project p's lists.
func (s *Store) ListDocuments(ctx context.Context, p known.ProjectID) (int64, error) {
	return s.lists().CountDocuments(ctx, bson.M{"_id": bson.M{"$regex": "^" + string(p) + `\|`}})
}
