package resolvers

import (
	"context"

	"github.com/knownhq/known"
	"github.com/knownhq/known/graph/model"
	"github.com/knownhq/known/service"
)

// userConversations pages user u's conversations, for User.conversations and for the
// conversations filtered by user alone: from the user's list, unless after is a cursor by id of
// before the list, which the query by user still serves.
func (r *Resolver) userConversations(ctx context.Context, u known.UserID, first *int, after *string) (*model.ConversationConnection, error) {
	page, byPosition, err := positionPageArgs(userConversationList, first, after)
	if err != nil {
		return nil, err
	}
	if byPosition {
		cs, next, more, err := r.Service.ListedUserConversations(ctx, u, page)
		if err != nil {
			return nil, err
		}
		r.preloadConversations(ctx, cs)
		return positionUserConversationConnection(cs, next, more), nil
	}
	cs, more, err := r.Service.Conversations(ctx, service.ConversationFilter{UserID: &u}, page)
	if err != nil {
		return nil, err
	}
	r.preloadConversations(ctx, cs)
	return conversationConnection(cs, more), nil
}
