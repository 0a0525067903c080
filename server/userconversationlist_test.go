package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/storetest"
)

// TestUserConversationCursors: a user's conversations, as User.conversations and as the
// conversations filtered by userId alone, page from the user's list with cursors that name
// it; following endCursor reads each conversation once, newest first, those the browser's
// anonymous visitor started before it logged in on top, and another user's never; a page reads
// no whole collection; a cursor of another list is BAD_USER_INPUT on after, and such a cursor
// is refused by the other lists; a cursor by id from before the list still continues; with a
// status in the filter the query by id still serves the list.
func TestUserConversationCursors(t *testing.T) {
	var audit storetest.Auditor
	k := startMonitored(t, audit.Monitor(), nil)
	appID, key := createProject(t, k.URL, "User conversation lists")
	s := mustIdentify(t, k.URL, "", map[string]any{"appId": appID, "userId": "talker"})
	other := mustIdentify(t, k.URL, "", map[string]any{"appId": appID, "userId": "someone-else"})
	var want []string // newest first
	for i := range 3 {
		want = append([]string{widgetStart(t, k.URL, s.Token, fmt.Sprint("own ", i))}, want...)
		widgetStart(t, k.URL, other.Token, fmt.Sprint("other ", i))
	}
	// Another browser starts conversations as an anonymous visitor, then logs in as the same
	// user: they move to the user (a merge) and show on top.
	anon := mustIdentify(t, k.URL, "", map[string]any{"appId": appID})
	anonID := known.GlobalID(known.KindUser, string(store.AnonymousUserID(known.ProjectID(appID), known.VisitorID(anon.VisitorID))))
	var anons []string
	for i := range 2 {
		anons = append([]string{widgetStart(t, k.URL, anon.Token, fmt.Sprint("anonymous ", i))}, anons...)
	}
	want = append(slices.Clone(anons), want...)

	type field struct {
		name string
		page func(t *testing.T, vars map[string]any) (connectionPage, response)
	}
	fields := []field{
		{"User.conversations", func(t *testing.T, vars map[string]any) (connectionPage, response) {
			t.Helper()
			var data struct {
				User struct{ Conversations connectionPage }
			}
			r := gql(t, k.URL, key, `query($id: ID!, $n: Int, $after: String) { user(id: $id) { conversations(first: $n, after: $after) {
				edges { cursor node { id } } pageInfo { hasNextPage endCursor } } } }`, vars)
			if len(r.Errors) == 0 {
				r.decode(t, &data)
			}
			return data.User.Conversations, r
		}},
		{"Query.conversations", func(t *testing.T, vars map[string]any) (connectionPage, response) {
			t.Helper()
			var data struct{ Conversations connectionPage }
			filter := map[string]any{"userId": vars["id"]}
			if st, ok := vars["status"]; ok {
				filter["status"] = st
			}
			r := gql(t, k.URL, key, conversationsQuery, map[string]any{"n": vars["n"], "after": vars["after"], "filter": filter})
			if len(r.Errors) == 0 {
				r.decode(t, &data)
			}
			return data.Conversations, r
		}},
	}
	kind := func(cursor string) string {
		raw, _ := base64.RawURLEncoding.DecodeString(cursor)
		return string(raw[:max(strings.LastIndex(string(raw), ":"), 0)])
	}
	read := func(t *testing.T, f field, user string, n int) (ids, cursors []string) {
		t.Helper()
		vars := map[string]any{"id": user, "n": n}
		for range 10 {
			pg, _ := f.page(t, vars)
			for _, e := range pg.Edges {
				if kind(e.Cursor) != "c3:userConversations" {
					t.Errorf("%s: cursor %q is not a place in the user's list of conversations", f.name, e.Cursor)
				}
				ids = append(ids, e.Node.ID)
				cursors = append(cursors, e.Cursor)
			}
			if !pg.PageInfo.HasNextPage {
				break
			}
			vars["after"] = *pg.PageInfo.EndCursor
		}
		return ids, cursors
	}
	for _, f := range fields {
		if got, _ := read(t, f, anonID, 1); !slices.Equal(got, anons) {
			t.Errorf("%s of the anonymous visitor: %v, want %v", f.name, got, anons)
		}
	}
	if in := mustIdentify(t, k.URL, anon.Token, map[string]any{"appId": appID, "userId": "talker"}); deref(in.UserID) != deref(s.UserID) {
		t.Fatalf("the login is user %s, want %s", deref(in.UserID), deref(s.UserID))
	}
	var cursors []string
	for _, f := range fields {
		t.Run("Chained/"+f.name, func(t *testing.T) {
			got, cs := read(t, f, deref(s.UserID), 2)
			if !slices.Equal(got, want) {
				t.Errorf("pages of 2 read %v, want %v", got, want)
			}
			cursors = cs
		})
	}
	if len(cursors) != len(want) {
		t.Fatalf("read %d cursors, want %d", len(cursors), len(want))
	}
	// The merged visitor's record is gone (User.conversations cannot ask for it), and so are
	// its conversations.
	if pg, r := fields[1].page(t, map[string]any{"id": anonID, "n": 5}); len(r.Errors) > 0 || len(pg.Edges) != 0 {
		t.Errorf("the merged visitor's conversations after the login: %.300s, want none", r.Body)
	}

	t.Run("ReadsNoWholeCollection", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := k.svc.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		k.store.WaitPublished()
		for _, f := range fields {
			audit.Reset()
			if pg, _ := f.page(t, map[string]any{"id": deref(s.UserID), "n": 2, "after": cursors[1]}); len(pg.Edges) != 2 {
				t.Fatalf("%s: %d conversations, want 2", f.name, len(pg.Edges))
			}
			cmds := audit.Commands()
			if !slices.ContainsFunc(cmds, func(c storetest.Command) bool { return c.Collection == "conversations" }) {
				t.Fatalf("%s: no read of the conversations recorded:\n%s", f.name, storetest.Summary(cmds))
			}
			// The page's conversations are read by their ids (byIDs): one find by _id $in from a
			// store opened by URI, as here, which the auditor counts as a scan; the embedded store
			// sends a find by _id per id instead once the collection is large (store's
			// TestUserConversationPageCommands).
			scans := slices.DeleteFunc(audit.Scans(), func(c storetest.Command) bool { return c.String() == "find conversations {_id}" })
			if len(scans) > 0 {
				t.Errorf("%s sends commands that read the whole collection on the embedded store:\n%s\nall commands:\n%s",
					f.name, storetest.Summary(scans), storetest.Summary(cmds))
			}
		}
	})

	t.Run("CursorOfAnotherList", func(t *testing.T) {
		var users struct{ Users connectionPage }
		gql(t, k.URL, key, `{ users(first: 1) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }`, nil).decode(t, &users)
		enc := func(raw string) string { return base64.RawURLEncoding.EncodeToString([]byte(raw)) }
		for _, f := range fields {
			for _, after := range []string{*users.Users.PageInfo.EndCursor, enc("c2:3"), enc("c3:events:3"),
				enc("c3:messages:3"), enc("c3:userConversations:"), "not a cursor"} {
				_, r := f.page(t, map[string]any{"id": deref(s.UserID), "n": 2, "after": after})
				r.requireCode(t, "BAD_USER_INPUT")
				if !slices.Equal(r.Errors[0].Extensions.Field, []string{"after"}) {
					t.Errorf("%s after %q: field %v, want [after]", f.name, after, r.Errors[0].Extensions.Field)
				}
			}
		}
		// And a place in the user's list given to the other lists.
		for _, q := range []string{
			`query($a: String) { conversations(first: 2, after: $a) { nodes { id } } }`,
			`query($a: String) { conversations(first: 2, after: $a, filter: {status: OPEN}) { nodes { id } } }`,
			`query($a: String) { users(first: 2, after: $a) { nodes { id } } }`,
			`query($a: String, $id: ID!) { user(id: $id) { events(first: 2, after: $a) { nodes { id } } } }`,
		} {
			r := gql(t, k.URL, key, q, map[string]any{"a": cursors[0], "id": deref(s.UserID)})
			r.requireCode(t, "BAD_USER_INPUT")
			if !slices.Equal(r.Errors[0].Extensions.Field, []string{"after"}) {
				t.Errorf("%s: field %v, want [after]", q, r.Errors[0].Extensions.Field)
			}
		}
	})
	t.Run("IDCursorOfBeforeTheList", func(t *testing.T) {
		raw, err := known.ParseID(nil, known.KindConversation, want[1])
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fields {
			pg, _ := f.page(t, map[string]any{"id": deref(s.UserID), "n": 100, "after": base64.RawURLEncoding.EncodeToString([]byte("c1:" + raw))})
			var rest []string
			for _, e := range pg.Edges {
				rest = append(rest, e.Node.ID)
				if kind(e.Cursor) != "c1" {
					t.Errorf("%s after an id cursor: cursor %q is not by id", f.name, e.Cursor)
				}
			}
			// The query by id orders by id, which is the order they started here.
			if !slices.Equal(rest, want[2:]) || pg.PageInfo.HasNextPage {
				t.Errorf("%s after an id cursor: %v (hasNext %v), want %v", f.name, rest, pg.PageInfo.HasNextPage, want[2:])
			}
		}
	})
	t.Run("StatusKeepsTheQuery", func(t *testing.T) {
		pg, r := fields[1].page(t, map[string]any{"id": deref(s.UserID), "n": 100, "status": "OPEN"})
		var got []string
		for _, e := range pg.Edges {
			got = append(got, e.Node.ID)
			if kind(e.Cursor) != "c1" {
				t.Errorf("filtered by status: cursor %q is not by id", e.Cursor)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("filtered by status: %v, want %v (%.300s)", got, want, r.Body)
		}
	})
}
