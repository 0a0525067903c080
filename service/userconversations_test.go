package service_test

import (
	"slices"
	"testing"

	"github.com/knownhq/known"
	"github.com/knownhq/known/service"
)

// TestListedUserConversations: the project's key reads a user's conversations from the user's
// list, newest first; another project's key reads none of them; a widget session or no key is
// UNAUTHENTICATED, and first outside 1–100 is BAD_USER_INPUT on first.
func TestListedUserConversations(t *testing.T) {
	e := newEnv(t)
	ss := identify(t, e, "", service.IdentifyInput{UserID: str("talker")})
	var want []known.ConversationID // newest first
	for _, body := range []string{"one", "two", "three"} {
		want = append([]known.ConversationID{startConversation(t, e, ss.Token, body).ID}, want...)
	}
	u := *ss.UserID
	cs, after, more, err := e.svc.ListedUserConversations(e.ctx, u, known.Page{First: 2})
	if err != nil || !more || len(after) != len(cs) {
		t.Fatalf("first page: %d conversations, %d cursors, more %v, %v", len(cs), len(after), more, err)
	}
	rest, _, more, err := e.svc.ListedUserConversations(e.ctx, u, known.Page{First: 2, After: after[1]})
	if err != nil || more {
		t.Fatalf("second page: more %v, %v", more, err)
	}
	if got := conversationIDs(append(cs, rest...)); !slices.Equal(got, want) {
		t.Errorf("read %v, want %v", got, want)
	}

	other := e.as(t, e.newProject(t, "Other").SecretKey)
	if cs, _, _, err := e.svc.ListedUserConversations(other, u, known.Page{First: 10}); err != nil || len(cs) != 0 {
		t.Errorf("another project's key: %d conversations, %v; want none", len(cs), err)
	}
	_, _, _, err = e.svc.ListedUserConversations(widgetCtx(ss.Token), u, known.Page{First: 10})
	wantCode(t, err, known.Unauthenticated)
	_, _, _, err = e.svc.ListedUserConversations(clientCtx(known.Client{}), u, known.Page{First: 10})
	wantCode(t, err, known.Unauthenticated)
	for _, first := range []int{0, 101} {
		_, _, _, err = e.svc.ListedUserConversations(e.ctx, u, known.Page{First: first})
		wantCode(t, err, known.BadUserInput, "first")
	}
}

func conversationIDs(cs []*known.Conversation) []known.ConversationID {
	out := make([]known.ConversationID, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}
