package store

import (
	"context"

	"github.com/knownhq/known"
)

// listedConversation is a conversation read from its user's list, with the place in that list
// its document names (conversationDoc.UserListed): pageList skips it at any other place.
type listedConversation struct {
	c  *known.Conversation
	at int64
}

func (l listedConversation) listedAt() int64 { return l.at }

// UserConversations returns a page of user u's conversations, newest first (in the order they
// started or were moved to u), from u's list of them (lists.go): a few reads by _id and one
// read of the page's conversations, however many conversations the user or the store holds.
// A listed conversation that is gone, of another project, no longer u's (moved on a merge), or
// u's at another place of the list (moved away and back) is skipped, as UserConversationIDs
// skips it: a page shows each of u's conversations once. after[i] is the page.After that
// continues after cs[i]; page.After is "" or such a value, anything else is BAD_USER_INPUT
// (field after). Conversations (the query by user) serves cursors by id of earlier versions.
func (s *Store) UserConversations(ctx context.Context, p known.ProjectID, u known.UserID, page known.Page) (cs []*known.Conversation, after []string, more bool, err error) {
	ls, after, more, err := pageDocs(ctx, s.userConversationList(p, u), p, s.conversations, nil, page,
		func(d *conversationDoc) (string, string) {
			if d.UserID == nil || *d.UserID != string(u) {
				return d.ID, "" // no project's: skipped
			}
			return d.ID, d.ProjectID
		},
		func(d *conversationDoc) listedConversation {
			return listedConversation{c: d.conversation(), at: d.UserListed}
		})
	cs = make([]*known.Conversation, len(ls))
	for i, l := range ls {
		cs[i] = l.c
	}
	return cs, after, more, err
}
