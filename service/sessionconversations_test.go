package service_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/knownhq/known"
	"github.com/knownhq/known/service"
)

// sessionPages pages a widget session's conversations by pages of first, following each page's
// last after, and returns their ids in the order read and the list they came from.
func sessionPages(t *testing.T, e *env, token string, first int) ([]known.ConversationID, service.SessionList) {
	t.Helper()
	ss := sessionOf(t, e, token)
	var got []known.ConversationID
	page := known.Page{First: first}
	from := service.SessionByID
	for range 50 {
		cs, after, list, more, err := e.svc.SessionConversations(widgetCtx(token), ss, page, from)
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != len(cs) || list == service.SessionByID {
			t.Fatalf("%d conversations with %d afters from list %v", len(cs), len(after), list)
		}
		for _, c := range cs {
			got = append(got, c.ID)
		}
		if !more {
			return got, list
		}
		page.After, from = after[len(after)-1], list
	}
	t.Fatal("more than 50 pages")
	return nil, 0
}

// TestSessionConversationsFromLists: a widget session pages its conversations from its
// visitor's list, newest first, each once, and an anonymous visitor sees only its own; a
// verified session pages its user's list, which holds the conversations of the user's other
// browser too, until the user no longer holds a proven identity (the store write below stands
// in for a path that removes it), when it pages its visitor's list again; a place in the other
// list is BAD_USER_INPUT on after; a cursor by id of an earlier version continues by the query.
func TestSessionConversationsFromLists(t *testing.T) {
	e := newEnv(t)
	a, b := identify(t, e, "", service.IdentifyInput{}), identify(t, e, "", service.IdentifyInput{})
	var as, bs []known.ConversationID // newest first
	for range 5 {
		as = append([]known.ConversationID{startConversation(t, e, a.Token, "from a").ID}, as...)
	}
	bs = append(bs, startConversation(t, e, b.Token, "from b").ID)
	if got, list := sessionPages(t, e, a.Token, 2); !slices.Equal(got, as) || list != service.SessionVisitorList {
		t.Errorf("visitor a pages %v from list %v, want %v from its visitor's", got, list, as)
	}
	if got, _ := sessionPages(t, e, b.Token, 2); !slices.Equal(got, bs) {
		t.Errorf("visitor b pages %v, want %v", got, bs)
	}

	proof := service.IdentifyInput{UserID: str("two-browsers"), UserHash: str(hashOf(e.project.IdentitySecret, "two-browsers"))}
	d1, d2 := identify(t, e, "", proof), identify(t, e, "", proof)
	var both, own []known.ConversationID
	for i := range 3 {
		c1 := startConversation(t, e, d1.Token, "from browser 1").ID
		own = append([]known.ConversationID{c1}, own...)
		both = append([]known.ConversationID{c1}, both...)
		if i < 2 {
			both = append([]known.ConversationID{startConversation(t, e, d2.Token, "from browser 2").ID}, both...)
		}
	}
	if got, list := sessionPages(t, e, d1.Token, 2); !slices.Equal(got, both) || list != service.SessionUserList {
		t.Errorf("verified browser 1 pages %v from list %v, want both browsers' %v from its user's", got, list, both)
	}
	ctx := widgetCtx(d1.Token)
	ss := sessionOf(t, e, d1.Token)
	badAfter := func(what string, err error) {
		t.Helper()
		var ke *known.Error
		if !errors.As(err, &ke) || ke.Code != known.BadUserInput || !slices.Equal(ke.Field, []string{"after"}) {
			t.Errorf("%s: %v, want BAD_USER_INPUT on after", what, err)
		}
	}
	_, userAfter, _, _, err := e.svc.SessionConversations(ctx, ss, known.Page{First: 1}, service.SessionByID)
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, _, err = e.svc.SessionConversations(ctx, ss, known.Page{First: 1, After: userAfter[0]}, service.SessionVisitorList)
	badAfter("a place in the visitor's list while the user's is paged", err)

	cs, after, list, more, err := e.svc.SessionConversations(ctx, ss, known.Page{First: 2, After: string(both[1])}, service.SessionByID)
	if err != nil || after != nil || list != service.SessionByID || !more || !slices.Equal(mapIDs(cs), both[2:4]) {
		t.Errorf("after an id cursor: %v, afters %v, list %v, more %v, %v; want %v by the query", mapIDs(cs), after, list, more, err, both[2:4])
	}

	unprove(t, e, *d1.UserID)
	if got, list := sessionPages(t, e, d1.Token, 2); !slices.Equal(got, own) || list != service.SessionVisitorList {
		t.Errorf("browser 1 once the proof is gone pages %v from list %v, want its own %v from its visitor's", got, list, own)
	}
	_, _, _, _, err = e.svc.SessionConversations(ctx, ss, known.Page{First: 1, After: userAfter[0]}, service.SessionUserList)
	badAfter("a place in the user's list once the visitor's is paged", err)
}

func mapIDs(cs []*known.Conversation) []known.ConversationID {
	out := make([]known.ConversationID, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}
