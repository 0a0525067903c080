package store

import (
	"context"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// MoveConversation moves conversation c of user from to user into, as a merge does, and stops
// there: from's list still names c, as a merge interrupted before it deleted that list leaves
// it.
func (s *Store) MoveConversation(ctx context.Context, c known.ConversationID, from, into known.UserID) error {
	return s.moveConversation(ctx, c, from, into)
}

// DeleteConversationDocument deletes conversation c's document alone, leaving the lists that
// name it: as a user's list reads when a merge interrupted before deleting it had moved c to a
// user erased since.
func (s *Store) DeleteConversationDocument(ctx context.Context, c known.ConversationID) error {
	_, err := s.conversations.DeleteOne(ctx, bson.M{"_id": string(c)})
	return err
}
