package main

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/knownhq/known"
)

// TestUserEventCursors: a user's events page from the user's list with cursors that name it;
// following endCursor reads each tracked event once, newest first, the events tracked by the
// browser's anonymous visitor before it logged in among them, and another user's never; a
// cursor of another list is BAD_USER_INPUT on after; a cursor by id from before the list still
// continues.
func TestUserEventCursors(t *testing.T) {
	k := startInProcess(t, nil)
	appID, key := createProject(t, k.URL, "Event lists")
	trackAs := func(token, name string) string {
		t.Helper()
		var tracked struct {
			Track struct{ Event struct{ ID string } }
		}
		widgetGQL(t, k.URL, token, `mutation($e: String!) { track(input: {event: $e}) { event { id } } }`,
			map[string]any{"e": name}).decode(t, &tracked)
		if tracked.Track.Event.ID == "" {
			t.Fatalf("track(%s) gave no event", name)
		}
		return tracked.Track.Event.ID
	}
	s := mustIdentify(t, k.URL, "", map[string]any{"appId": appID, "userId": "tracker"})
	other := mustIdentify(t, k.URL, "", map[string]any{"appId": appID, "userId": "someone-else"})
	var want []string // newest first
	for i := range 3 {
		want = append([]string{trackAs(s.Token, fmt.Sprint("own-", i))}, want...)
		trackAs(other.Token, fmt.Sprint("other-", i))
	}
	// Another browser tracks as an anonymous visitor, then logs in as the same user: its
	// events move to the user (a merge) and show on top.
	anon := mustIdentify(t, k.URL, "", map[string]any{"appId": appID})
	for i := range 2 {
		want = append([]string{trackAs(anon.Token, fmt.Sprint("anonymous-", i))}, want...)
	}
	if in := mustIdentify(t, k.URL, anon.Token, map[string]any{"appId": appID, "userId": "tracker"}); deref(in.UserID) != deref(s.UserID) {
		t.Fatalf("the login is user %s, want %s", deref(in.UserID), deref(s.UserID))
	}

	page := func(vars map[string]any) (connectionPage, response) {
		t.Helper()
		vars["id"] = deref(s.UserID)
		var data struct {
			User struct{ Events connectionPage }
		}
		r := gql(t, k.URL, key, `query($id: ID!, $n: Int, $after: String) { user(id: $id) { events(first: $n, after: $after) {
			edges { cursor node { id } } pageInfo { hasNextPage endCursor } } } }`, vars)
		if len(r.Errors) == 0 {
			r.decode(t, &data)
		}
		return data.User.Events, r
	}
	var got, cursors []string
	vars := map[string]any{"n": 2}
	for range 10 {
		pg, _ := page(vars)
		for _, e := range pg.Edges {
			raw, _ := base64.RawURLEncoding.DecodeString(e.Cursor)
			if !strings.HasPrefix(string(raw), "c3:events:") {
				t.Errorf("cursor %q is not a place in the user's list of events", raw)
			}
			got = append(got, e.Node.ID)
			cursors = append(cursors, e.Cursor)
		}
		if !pg.PageInfo.HasNextPage {
			break
		}
		vars["after"] = *pg.PageInfo.EndCursor
	}
	if !slices.Equal(got, want) {
		t.Errorf("pages of 2 read %v, want %v", got, want)
	}

	t.Run("CursorOfAnotherList", func(t *testing.T) {
		var users struct{ Users connectionPage }
		gql(t, k.URL, key, `{ users(first: 1) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }`, nil).decode(t, &users)
		for _, after := range []string{*users.Users.PageInfo.EndCursor, base64.RawURLEncoding.EncodeToString([]byte("c2:3")),
			base64.RawURLEncoding.EncodeToString([]byte("c3:messages:3")), "not a cursor"} {
			_, r := page(map[string]any{"n": 2, "after": after})
			r.requireCode(t, "BAD_USER_INPUT")
			if !slices.Equal(r.Errors[0].Extensions.Field, []string{"after"}) {
				t.Errorf("after %q: field %v, want [after]", after, r.Errors[0].Extensions.Field)
			}
		}
	})
	t.Run("IDCursorOfBeforeTheList", func(t *testing.T) {
		raw, err := known.ParseID(nil, known.KindEvent, want[1])
		if err != nil {
			t.Fatal(err)
		}
		pg, _ := page(map[string]any{"n": 100, "after": base64.RawURLEncoding.EncodeToString([]byte("c1:" + raw))})
		var rest []string
		for _, e := range pg.Edges {
			rest = append(rest, e.Node.ID)
		}
		// The query by id orders by id, which is the order tracked here.
		if !slices.Equal(rest, want[2:]) || pg.PageInfo.HasNextPage {
			t.Errorf("after an id cursor: %v (hasNext %v), want %v", rest, pg.PageInfo.HasNextPage, want[2:])
		}
	})
}
