package resolvers

import (
	"time"

	"github.com/knownhq/known"
)

// eventMessage is the message of a message.created event, from the event's own copy: what
// was created, readable by whoever may read the event, without a database read.
func eventMessage(e *known.InboxEvent) *known.Message {
	m, ok := e.Data["message"].(map[string]any)
	if e.Type != known.MessageCreated || !ok {
		return nil
	}
	str := func(k string) string { v, _ := m[k].(string); return v }
	_, id, _ := known.ParseGlobalID(str("id"))
	_, conv, _ := known.ParseGlobalID(str("conversationId"))
	at, _ := time.Parse(time.RFC3339Nano, str("createdAt"))
	verified, _ := m["verified"].(bool)
	return &known.Message{ID: known.MessageID(id), ProjectID: e.ProjectID, ConversationID: known.ConversationID(conv),
		Body: str("body"), Author: known.Author(str("author")), Verified: verified, CreatedAt: at}
}
