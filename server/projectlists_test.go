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
)

// connectionPage is one page of a connection, whatever its field's name.
type connectionPage struct {
	Edges []struct {
		Cursor string
		Node   struct{ ID string }
	}
	PageInfo struct {
		HasNextPage bool
		EndCursor   *string
	}
}

// TestProjectListCursors: the project's unfiltered users, companies and organizations page
// from its lists with cursors that name their list; following endCursor reads each item once,
// newest first (an anonymous record, whose id is derived, in the order it was made); a cursor
// of one list given to another, or to a filtered list, is BAD_USER_INPUT on after; a cursor by
// id from before the lists still continues.
func TestProjectListCursors(t *testing.T) {
	k := startInProcess(t, nil)
	appID, key := createProject(t, k.URL, "Project lists")
	p := known.ProjectID(appID)
	ctx := context.Background()
	want := map[string][]string{} // global ids, newest first
	for i := range 9 {
		var id string
		if i == 4 {
			now := time.Now().UTC()
			u := &known.User{ID: store.AnonymousUserID(p, "visitor"), ProjectID: p, VisitorIDs: []known.VisitorID{"visitor"},
				Metadata: map[string]any{}, CreatedAt: now, UpdatedAt: now}
			if err := k.store.InsertUser(ctx, u); err != nil {
				t.Fatal(err)
			}
			id = known.GlobalID(known.KindUser, string(u.ID))
		} else {
			id = createUser(t, k.URL, key, map[string]any{"email": fmt.Sprintf("list%d@example.com", i)}).ID
		}
		want["users"] = append([]string{id}, want["users"]...)
		c, err := k.store.UpsertCompany(ctx, p, fmt.Sprint("co", i), store.CompanyUpdate{}, time.Now().UTC())
		if err != nil {
			t.Fatal(err)
		}
		want["companies"] = append([]string{known.GlobalID(known.KindCompany, string(c.ID))}, want["companies"]...)
		o, err := k.store.UpsertOrganization(ctx, p, fmt.Sprint("org", i), "org", nil, time.Now().UTC())
		if err != nil {
			t.Fatal(err)
		}
		want["organizations"] = append([]string{known.GlobalID(known.KindOrganization, string(o.ID))}, want["organizations"]...)
	}
	page := func(field string, vars map[string]any) connectionPage {
		t.Helper()
		var data map[string]connectionPage
		gql(t, k.URL, key, `query($n: Int, $after: String) { `+field+`(first: $n, after: $after) {
			edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }`, vars).decode(t, &data)
		return data[field]
	}
	kind := func(cursor string) string {
		raw, _ := base64.RawURLEncoding.DecodeString(cursor)
		return string(raw[:strings.LastIndex(string(raw), ":")])
	}
	fields := []string{"users", "companies", "organizations"}
	ends := map[string]string{}
	for _, field := range fields {
		t.Run("Chained/"+field, func(t *testing.T) {
			var got []string
			vars := map[string]any{"n": 4}
			for range 10 {
				pg := page(field, vars)
				for _, e := range pg.Edges {
					if kind(e.Cursor) != "c3:"+field {
						t.Errorf("cursor %q is not a place in the list of %s", e.Cursor, field)
					}
					got = append(got, e.Node.ID)
				}
				if !pg.PageInfo.HasNextPage {
					break
				}
				vars["after"] = *pg.PageInfo.EndCursor
				ends[field] = *pg.PageInfo.EndCursor
			}
			if !slices.Equal(got, want[field]) {
				t.Errorf("read %v, want %v", got, want[field])
			}
		})
	}
	t.Run("CursorOfAnotherList", func(t *testing.T) {
		conv := base64.RawURLEncoding.EncodeToString([]byte("c2:3"))
		for _, field := range fields {
			for _, other := range append(slices.DeleteFunc(slices.Clone(fields), func(f string) bool { return f == field }), "conversations") {
				after := ends[other]
				if other == "conversations" {
					after = conv
				}
				r := gql(t, k.URL, key, `query($after: String) { `+field+`(first: 3, after: $after) { nodes { id } } }`, map[string]any{"after": after})
				r.requireCode(t, "BAD_USER_INPUT")
				if !slices.Equal(r.Errors[0].Extensions.Field, []string{"after"}) {
					t.Errorf("%s after a cursor of %s: field %v, want [after]", field, other, r.Errors[0].Extensions.Field)
				}
			}
		}
		gql(t, k.URL, key, `query($after: String) { conversations(first: 3, after: $after) { nodes { id } } }`,
			map[string]any{"after": ends["users"]}).requireCode(t, "BAD_USER_INPUT")
	})
	t.Run("PositionCursorOnFilteredUsers", func(t *testing.T) {
		r := gql(t, k.URL, key, `query($after: String) { users(first: 3, after: $after, filter: {verified: false}) { nodes { id } } }`,
			map[string]any{"after": ends["users"]})
		r.requireCode(t, "BAD_USER_INPUT")
	})
	t.Run("NotACursor", func(t *testing.T) {
		for _, raw := range []string{"c3:users", "c3:users:", "c3:users:x", "c3::4", "c3:nope:4"} {
			r := gql(t, k.URL, key, `query($after: String) { users(first: 3, after: $after) { nodes { id } } }`,
				map[string]any{"after": base64.RawURLEncoding.EncodeToString([]byte(raw))})
			r.requireCode(t, "BAD_USER_INPUT")
		}
	})
	t.Run("IDCursorOfBeforeTheLists", func(t *testing.T) {
		for _, c := range []struct {
			field string
			kind  known.Kind
		}{{"companies", known.KindCompany}, {"organizations", known.KindOrganization}} {
			raw, err := known.ParseID(nil, c.kind, want[c.field][4])
			if err != nil {
				t.Fatal(err)
			}
			pg := page(c.field, map[string]any{"n": 100, "after": base64.RawURLEncoding.EncodeToString([]byte("c1:" + raw))})
			var got []string
			for _, e := range pg.Edges {
				got = append(got, e.Node.ID)
			}
			if !slices.Equal(got, want[c.field][5:]) || pg.PageInfo.HasNextPage {
				t.Errorf("%s after an id cursor: %v (hasNext %v), want %v", c.field, got, pg.PageInfo.HasNextPage, want[c.field][5:])
			}
		}
	})
}

// TestMessageCursors: a conversation's messages page from its list with cursors that name it;
// following endCursor reads each message once, newest first; the first page of one (as an
// inbox row asks) comes from the conversation with a cursor by id, which continues by the
// query by id; a message's cursor given to users is BAD_USER_INPUT on after.
func TestMessageCursors(t *testing.T) {
	k := startInProcess(t, nil)
	appID, key := createProject(t, k.URL, "Message lists")
	p := known.ProjectID(appID)
	ctx := context.Background()
	now := time.Now().UTC()
	c := &known.Conversation{ID: known.ConversationID(store.NewID()), ProjectID: p, VisitorID: "v", Status: "OPEN", CreatedAt: now, UpdatedAt: now}
	if err := k.store.CreateConversation(ctx, c); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 9 {
		m := &known.Message{ID: known.MessageID(store.NewID()), ProjectID: p, ConversationID: c.ID, Body: fmt.Sprint(i),
			Author: known.AuthorVisitor, CreatedAt: time.Now().UTC()}
		if err := k.store.AddMessage(ctx, c, m); err != nil {
			t.Fatal(err)
		}
		want = append([]string{m.GlobalID()}, want...)
	}
	page := func(vars map[string]any) connectionPage {
		t.Helper()
		vars["id"] = known.GlobalID(known.KindConversation, string(c.ID))
		var data struct {
			Conversation struct{ Messages connectionPage }
		}
		gql(t, k.URL, key, `query($id: ID!, $n: Int, $after: String) { conversation(id: $id) { messages(first: $n, after: $after) {
			edges { cursor node { id } } pageInfo { hasNextPage endCursor } } } }`, vars).decode(t, &data)
		return data.Conversation.Messages
	}
	read := func(n int, after string) []string {
		t.Helper()
		var got []string
		vars := map[string]any{"n": n}
		if after != "" {
			vars["after"] = after
		}
		for range 20 {
			pg := page(vars)
			for _, e := range pg.Edges {
				got = append(got, e.Node.ID)
			}
			if !pg.PageInfo.HasNextPage {
				return got
			}
			vars["n"], vars["after"] = 4, *pg.PageInfo.EndCursor
		}
		t.Fatal("hasNextPage after 20 pages")
		return nil
	}
	t.Run("Chained", func(t *testing.T) {
		pg := page(map[string]any{"n": 4})
		raw, _ := base64.RawURLEncoding.DecodeString(*pg.PageInfo.EndCursor)
		if !strings.HasPrefix(string(raw), "c3:messages:") {
			t.Errorf("cursor %q is not a place in the list of messages", raw)
		}
		if got := read(4, ""); !slices.Equal(got, want) {
			t.Errorf("read %v, want %v", got, want)
		}
	})
	t.Run("FirstOfOne", func(t *testing.T) {
		pg := page(map[string]any{"n": 1})
		raw, _ := base64.RawURLEncoding.DecodeString(*pg.PageInfo.EndCursor)
		if !strings.HasPrefix(string(raw), "c1:") || len(pg.Edges) != 1 || pg.Edges[0].Node.ID != want[0] || !pg.PageInfo.HasNextPage {
			t.Errorf("first page of one: %q %+v, want the newest by id, with more", raw, pg)
		}
		if got := read(1, ""); !slices.Equal(got, want) {
			t.Errorf("read on from the first page of one %v, want %v", got, want)
		}
	})
	t.Run("CursorOnUsers", func(t *testing.T) {
		pg := page(map[string]any{"n": 3})
		gql(t, k.URL, key, `query($a: String) { users(first: 3, after: $a) { nodes { id } } }`, map[string]any{"a": *pg.PageInfo.EndCursor}).
			requireCode(t, "BAD_USER_INPUT")
	})
}
