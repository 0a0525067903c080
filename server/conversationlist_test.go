package main

import (
	"context"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/store"
)

// conversationsPage is the answer of conversationsQuery.
type conversationsPage struct {
	Conversations struct {
		Edges []struct {
			Cursor string
			Node   struct{ ID string }
		}
		PageInfo struct {
			HasNextPage bool
			EndCursor   *string
		}
	}
}

const conversationsQuery = `query($n: Int, $after: String, $filter: ConversationFilter) {
	conversations(first: $n, after: $after, filter: $filter) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } }
}`

// TestConversationCursors: the project's unfiltered conversations page from its list with
// cursors of their own kind, following endCursor reads each once, newest first; such a cursor
// given to a filtered list or another connection is BAD_USER_INPUT on after; a cursor by id
// from before the list still continues the unfiltered list.
func TestConversationCursors(t *testing.T) {
	k := startInProcess(t, nil)
	appID, key := createProject(t, k.URL, "Lists")
	ctx := context.Background()
	var want []string // global ids, newest first
	for range 11 {
		now := time.Now().UTC()
		c := &known.Conversation{ID: known.ConversationID(store.NewID()), ProjectID: known.ProjectID(appID), VisitorID: "v",
			Status: known.ConversationStatus("OPEN"), CreatedAt: now, UpdatedAt: now}
		if err := k.store.CreateConversation(ctx, c); err != nil {
			t.Fatal(err)
		}
		want = append([]string{known.GlobalID(known.KindConversation, string(c.ID))}, want...)
	}
	page := func(vars map[string]any) conversationsPage {
		t.Helper()
		var p conversationsPage
		gql(t, k.URL, key, conversationsQuery, vars).decode(t, &p)
		return p
	}
	kind := func(cursor string) string {
		raw, _ := base64.RawURLEncoding.DecodeString(cursor)
		prefix, _, _ := strings.Cut(string(raw), ":")
		return prefix
	}

	t.Run("Chained", func(t *testing.T) {
		var got []string
		vars := map[string]any{"n": 4}
		for range 10 {
			p := page(vars)
			for _, e := range p.Conversations.Edges {
				if kind(e.Cursor) != "c2" {
					t.Errorf("cursor %q is not a list position", e.Cursor)
				}
				got = append(got, e.Node.ID)
			}
			if !p.Conversations.PageInfo.HasNextPage {
				break
			}
			vars["after"] = *p.Conversations.PageInfo.EndCursor
		}
		if !slices.Equal(got, want) {
			t.Errorf("read %v, want %v", got, want)
		}
	})
	first := page(map[string]any{"n": 3}).Conversations.PageInfo.EndCursor
	t.Run("PositionCursorOnFilteredList", func(t *testing.T) {
		r := gql(t, k.URL, key, conversationsQuery, map[string]any{"n": 3, "after": *first, "filter": map[string]any{"status": "OPEN"}})
		r.requireCode(t, "BAD_USER_INPUT")
		if !slices.Equal(r.Errors[0].Extensions.Field, []string{"after"}) {
			t.Errorf("field %v, want [after]", r.Errors[0].Extensions.Field)
		}
	})
	t.Run("PositionCursorOnUsers", func(t *testing.T) {
		gql(t, k.URL, key, `query($a: String) { users(first: 3, after: $a) { nodes { id } } }`, map[string]any{"a": *first}).
			requireCode(t, "BAD_USER_INPUT")
	})
	t.Run("NotACursor", func(t *testing.T) {
		for _, after := range []string{"nope", base64.RawURLEncoding.EncodeToString([]byte("c2:x")), base64.RawURLEncoding.EncodeToString([]byte("c2:"))} {
			r := gql(t, k.URL, key, conversationsQuery, map[string]any{"n": 3, "after": after})
			r.requireCode(t, "BAD_USER_INPUT")
		}
	})
	t.Run("IDCursorOfBeforeTheList", func(t *testing.T) {
		raw, err := known.ParseID(nil, known.KindConversation, want[4])
		if err != nil {
			t.Fatal(err)
		}
		old := base64.RawURLEncoding.EncodeToString([]byte("c1:" + raw))
		p := page(map[string]any{"n": 100, "after": old})
		var got []string
		for _, e := range p.Conversations.Edges {
			got = append(got, e.Node.ID)
		}
		if !slices.Equal(got, want[5:]) || p.Conversations.PageInfo.HasNextPage {
			t.Errorf("after an id cursor: %v (hasNext %v), want %v", got, p.Conversations.PageInfo.HasNextPage, want[5:])
		}
	})
}
