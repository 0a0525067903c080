package resolvers

import (
	"context"

	"github.com/knownhq/known"
	"github.com/knownhq/known/graph/model"
	"github.com/knownhq/known/service"
)

// sessionLists are the kept lists a widget session's conversations page, by the service's
// name for them. The user's list is the one User.conversations pages, at the same places, so
// its cursors name it alike; the visitor's list has a name of its own, so that a place in one
// is never read as a place in the other when the session's user gains or loses its proof
// between two pages.
var sessionLists = map[service.SessionList]keptList{
	service.SessionVisitorList: visitorConversationList,
	service.SessionUserList:    userConversationList,
}

// sessionConversations pages a widget session's conversations, for WidgetSession.conversations:
// from the list the service picks, unless after is a cursor by id of an earlier version, which
// the query it came from still serves.
func (r *Resolver) sessionConversations(ctx context.Context, ss *known.Session, first *int, after *string) (*model.ConversationConnection, error) {
	page, of, err := keptPageArgs(first, after, visitorConversationList, userConversationList)
	if err != nil {
		return nil, err
	}
	from := service.SessionByID
	for sl, l := range sessionLists {
		if l == of {
			from = sl
		}
	}
	cs, next, list, more, err := r.Service.SessionConversations(ctx, ss, page, from)
	if err != nil {
		return nil, err
	}
	if list == service.SessionByID {
		return conversationConnection(cs, more), nil
	}
	return &model.ConversationConnection{Nodes: cs, PageInfo: positionPage(sessionLists[list], len(cs), next, more)}, nil
}
