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
