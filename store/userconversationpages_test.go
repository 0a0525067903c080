package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/knownhq/known"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/storetest"
)

func conversationID(c *known.Conversation) string { return string(c.ID) }

// userConversations pages user u's list of conversations as a pager does a project's.
func userConversations(st *store.Store, u known.UserID) pager[*known.Conversation] {
	return func(ctx context.Context, p known.ProjectID, page known.Page) ([]*known.Conversation, []string, bool, error) {
		return st.UserConversations(ctx, p, u, page)
	}
}

// TestUserConversationPages: a user's list pages its conversations newest first across
// buckets, each once whatever the page size; another user's conversations, another project's
// and those without a user are not in it; a bad cursor is BAD_USER_INPUT on after.
func TestUserConversationPages(t *testing.T) {
	st := storetest.Open(t, nil)
	ctx := context.Background()
	u := newUser(t, st, "p", "pager@example.com", "")
	other := newUser(t, st, "p", "", "visitor")
	elsewhere := newUser(t, st, "q", "pager@example.com", "")
	var ids, others []string
	for i := range 230 { // three buckets
		ids = append(ids, string(startConversation(t, st, ctx, "p", u)))
		if i%40 == 0 {
			others = append(others, string(startConversation(t, st, ctx, "p", other)))
			startConversation(t, st, ctx, "q", elsewhere)
			startConversation(t, st, ctx, "p", "")
		}
	}
	for _, first := range []int{100, 7, 1, 230} {
		if got := readList(t, userConversations(st, u), conversationID, "p", first); !slices.Equal(got, reversed(ids)) {
			t.Errorf("pages of %d: %s, want newest first %s", first, brief(got), brief(reversed(ids)))
		}
	}
	if got := readList(t, userConversations(st, other), conversationID, "p", 2); !slices.Equal(got, reversed(others)) {
		t.Errorf("the other user's list: %v, want %v", got, reversed(others))
	}
	if got := readList(t, userConversations(st, u), conversationID, "q", 100); len(got) != 0 {
		t.Errorf("user %s's list read as project q's: %s, want nothing", u, brief(got))
	}
	if got := readList(t, userConversations(st, elsewhere), conversationID, "p", 100); len(got) != 0 {
		t.Errorf("project q's user read as project p's: %s, want nothing", brief(got))
	}
	for _, after := range []string{"x", "0", "-3"} {
		_, _, _, err := st.UserConversations(ctx, "p", u, known.Page{First: 5, After: after})
		var e *known.Error
		if !errors.As(err, &e) || e.Code != known.BadUserInput || !slices.Equal(e.Field, []string{"after"}) {
			t.Errorf("after %q: %v, want BAD_USER_INPUT on after", after, err)
		}
	}
}

// TestUserConversationPagesFollowMerges: a merged user's conversations page under the user it
// merged into, newest on top, and not under the merged user, also when the merge stopped
// before deleting the merged user's list (which still names them, also at the place the
// conversation took in the list it joined); a conversation moved away and back shows once, at
// its last place.
func TestUserConversationPagesFollowMerges(t *testing.T) {
	st := storetest.Open(t, nil)
	ctx := context.Background()
	into := newUser(t, st, "p", "into@example.com", "")
	anon := newUser(t, st, "p", "", "browser")
	own := strs(startConversations(t, st, "p", into, 3))
	moved := strs(startConversations(t, st, "p", anon, 4))
	read := func(u known.UserID) []string { return readList(t, userConversations(st, u), conversationID, "p", 2) }

	if err := st.MoveUserData(ctx, anon, into); err != nil {
		t.Fatal(err)
	}
	want := append(reversed(moved), reversed(own)...)
	if got := read(into); !slices.Equal(got, want) {
		t.Errorf("merged: into pages %v, want %v", got, want)
	}
	if got := read(anon); len(got) != 0 {
		t.Errorf("merged: the merged user pages %v, want nothing", got)
	}

	// Another visitor's conversations move one by one, oldest first as a merge moves them, and
	// the merge stops there: its list still names them all.
	other := newUser(t, st, "p", "", "other browser")
	stopped := strs(startConversations(t, st, "p", other, 3))
	for _, c := range stopped {
		if err := st.MoveConversation(ctx, known.ConversationID(c), other, into); err != nil {
			t.Fatal(err)
		}
	}
	want = append(reversed(stopped), want...)
	if got := read(into); !slices.Equal(got, want) {
		t.Errorf("merge stopped after the moves: into pages %v, want %v", got, want)
	}
	if got := read(other); len(got) != 0 {
		t.Errorf("merge stopped after the moves: the merged user pages %v, want nothing", got)
	}

	// One of into's own conversations goes to other and back: into's list names it at its old
	// place and at a new one on top.
	back := own[1]
	if err := st.MoveConversation(ctx, known.ConversationID(back), into, other); err != nil {
		t.Fatal(err)
	}
	if err := st.MoveConversation(ctx, known.ConversationID(back), other, into); err != nil {
		t.Fatal(err)
	}
	want = append([]string{back}, slices.DeleteFunc(want, func(id string) bool { return id == back })...)
	if got := read(into); !slices.Equal(got, want) {
		t.Errorf("moved away and back: into pages %v, want %v", got, want)
	}
	if got := read(other); len(got) != 0 {
		t.Errorf("moved away and back: the user it visited pages %v, want nothing", got)
	}

	// Moved to an empty list, by a merge that stops there: the conversation takes the same
	// place in the list it joins as in the one that still names it, where only its user tells.
	from := newUser(t, st, "p", "", "third browser")
	to := newUser(t, st, "p", "fresh@example.com", "")
	c := startConversation(t, st, ctx, "p", from)
	if err := st.MoveConversation(ctx, c, from, to); err != nil {
		t.Fatal(err)
	}
	if got := read(to); !slices.Equal(got, []string{string(c)}) {
		t.Errorf("moved to an empty list: it pages %v, want [%s]", got, c)
	}
	if got := read(from); len(got) != 0 {
		t.Errorf("moved to an empty list: the user it left pages %v, want nothing", got)
	}
}

// TestUserConversationPagesSkipDeleted: a listed conversation whose document is gone is
// skipped, and a page reads on past a run of them to stay full.
func TestUserConversationPagesSkipDeleted(t *testing.T) {
	st := storetest.Open(t, nil)
	ctx := context.Background()
	u := newUser(t, st, "p", "deleted@example.com", "")
	ids := strs(startConversations(t, st, "p", u, 30))
	var kept []string
	for i, id := range ids {
		if i >= 8 && i < 20 || i == 27 { // a run across pages, and one on the first page
			if err := st.DeleteConversationDocument(ctx, known.ConversationID(id)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		kept = append(kept, id)
	}
	for _, first := range []int{5, 1, 30} {
		if got := readList(t, userConversations(st, u), conversationID, "p", first); !slices.Equal(got, reversed(kept)) {
			t.Errorf("pages of %d: %v, want %v", first, got, reversed(kept))
		}
	}
	cs, _, more, err := st.UserConversations(ctx, "p", u, known.Page{First: 12})
	if err != nil || len(cs) != 12 || !more {
		t.Errorf("a page of 12 over the deleted run: %d conversations, hasNext %v, %v; want 12, true", len(cs), more, err)
	}
}

// TestUserConversationPageCommands: a page of a user's conversations reads only by _id on the
// embedded store (the list's head and buckets, then the page's conversations), where the query
// by user it replaces reads the whole collection.
func TestUserConversationPageCommands(t *testing.T) {
	var a storetest.Auditor
	st := storetest.OpenEmbedded(t, a.Monitor())
	ctx := context.Background()
	u := newUser(t, st, "p", "audited@example.com", "")
	other := newUser(t, st, "p", "", "v")
	var ids []string
	for range 150 {
		ids = append(ids, string(startConversation(t, st, ctx, "p", u)))
		startConversation(t, st, ctx, "p", other)
	}
	st.WaitPublished()
	a.Reset()
	old, _, err := st.Conversations(ctx, "p", store.ConversationFilter{UserID: &u}, known.Page{First: 10})
	if err != nil || len(old) != 10 {
		t.Fatalf("Conversations: %d, %v", len(old), err)
	}
	t.Logf("the query by user:\n%s", storetest.Summary(a.Commands()))
	if len(a.Scans()) == 0 {
		t.Errorf("the query by user did not scan: the audit would not see a scan")
	}
	a.Reset()
	cs, _, _, err := st.UserConversations(ctx, "p", u, known.Page{First: 10, After: "105"}) // 104…95: buckets 1 and 0
	if err != nil {
		t.Fatal(err)
	}
	if got := strs(mapIDs(cs)); !slices.Equal(got, reversed(ids[94:104])) {
		t.Errorf("the page after place 105: %v, want %v", got, reversed(ids[94:104]))
	}
	t.Logf("a page of the user's list:\n%s", storetest.Summary(a.Commands()))
	if scans := a.Scans(); len(scans) > 0 {
		t.Errorf("a page of a user's conversations sends commands that scan:\n%s", storetest.Summary(scans))
	}
	for _, c := range a.Commands() {
		if c.Collection != "lists" && c.Collection != "conversations" {
			t.Errorf("a page of a user's conversations reads %s", c)
		}
	}
}

func mapIDs(cs []*known.Conversation) []known.ConversationID {
	out := make([]known.ConversationID, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}
