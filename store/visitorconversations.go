package store

import (
	"context"

	"github.com/knownhq/known"
)

// VisitorConversations returns a page of visitor v's conversations, newest first (in the order
// they started), from v's list of them (visitorConversationList): a few reads by _id and one
// read of the page's conversations, however many conversations the visitor or the store holds.
// A listed conversation that is gone, of another project, or of another visitor is skipped.
// after[i] is the page.After that continues after cs[i]; page.After is "" or such a value,
// anything else is BAD_USER_INPUT (field after). Conversations (the query by visitor) serves
// cursors by id of earlier versions.
func (s *Store) VisitorConversations(ctx context.Context, p known.ProjectID, v known.VisitorID, page known.Page) (cs []*known.Conversation, after []string, more bool, err error) {
	return pageDocs(ctx, s.visitorConversationList(p, v), p, s.conversations, nil, page,
		func(d *conversationDoc) (string, string) {
			if d.VisitorID != string(v) {
				return d.ID, "" // no project's: skipped
			}
			return d.ID, d.ProjectID
		}, (*conversationDoc).conversation)
}
