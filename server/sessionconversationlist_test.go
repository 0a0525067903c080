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
	"github.com/knownhq/known/store/storetest"
)

// TestSessionConversationCursors: session { conversations } pages an anonymous visitor's
// conversations from its visitor's list, and a verified session's from its user's (both of the
// user's browsers), with cursors that name the list; following endCursor reads each
// conversation once, newest first, and another visitor's never; a page reads no whole
// collection; a cursor of another list, the other of the two included, is BAD_USER_INPUT on
// after; a cursor by id from before the lists still continues.
func TestSessionConversationCursors(t *testing.T) {
	var audit storetest.Auditor
	k := startMonitored(t, audit.Monitor(), nil)
	appID, _, secret := createProjectWithIdentitySecret(t, k.URL, "Session conversation lists")
	a := mustIdentify(t, k.URL, "", map[string]any{"appId": appID})
	b := mustIdentify(t, k.URL, "", map[string]any{"appId": appID})
	proof := map[string]any{"appId": appID, "userId": "two-browsers", "userHash": userHashOf(secret, "two-browsers")}
	d1, d2 := mustIdentify(t, k.URL, "", proof), mustIdentify(t, k.URL, "", proof)
	var as, both []string // newest first
	for i := range 5 {
		as = append([]string{widgetStart(t, k.URL, a.Token, fmt.Sprint("a ", i))}, as...)
		both = append([]string{widgetStart(t, k.URL, []string{d1.Token, d2.Token}[i%2], fmt.Sprint("d ", i))}, both...)
	}
	widgetStart(t, k.URL, b.Token, "b")

	page := func(t *testing.T, token string, vars map[string]any) (connectionPage, response) {
		t.Helper()
		var data struct {
			Session struct{ Conversations connectionPage }
		}
		r := widgetGQL(t, k.URL, token, `query($n: Int, $after: String) { session { conversations(first: $n, after: $after) {
			edges { cursor node { id } } pageInfo { hasNextPage endCursor } } } }`, vars)
		if len(r.Errors) == 0 {
			r.decode(t, &data)
		}
		return data.Session.Conversations, r
	}
	kind := func(cursor string) string {
		raw, _ := base64.RawURLEncoding.DecodeString(cursor)
		return string(raw[:max(strings.LastIndex(string(raw), ":"), 0)])
	}
	read := func(t *testing.T, token, list string) (ids, cursors []string) {
		t.Helper()
		vars := map[string]any{"n": 2}
		for range 10 {
			pg, r := page(t, token, vars)
			if len(r.Errors) > 0 {
				t.Fatalf("%.300s", r.Body)
			}
			for _, e := range pg.Edges {
				if kind(e.Cursor) != "c3:"+list {
					t.Errorf("cursor %q is not a place in the %s list", e.Cursor, list)
				}
				ids, cursors = append(ids, e.Node.ID), append(cursors, e.Cursor)
			}
			if !pg.PageInfo.HasNextPage {
				break
			}
			vars["after"] = *pg.PageInfo.EndCursor
		}
		return ids, cursors
	}
	got, aCursors := read(t, a.Token, "visitorConversations")
	if !slices.Equal(got, as) {
		t.Errorf("visitor a pages %v, want %v", got, as)
	}
	for _, s := range []widgetSession{d1, d2} {
		if got, _ := read(t, s.Token, "userConversations"); !slices.Equal(got, both) {
			t.Errorf("a browser of the verified user pages %v, want both browsers' %v", got, both)
		}
	}
	_, dCursors := read(t, d1.Token, "userConversations")

	t.Run("ReadsNoWholeCollection", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := k.svc.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		k.store.WaitPublished()
		for _, c := range []struct{ token, after string }{{a.Token, aCursors[1]}, {d1.Token, dCursors[1]}} {
			audit.Reset()
			if pg, r := page(t, c.token, map[string]any{"n": 2, "after": c.after}); len(pg.Edges) != 2 {
				t.Fatalf("%d conversations, want 2: %.300s", len(pg.Edges), r.Body)
			}
			cmds := audit.Commands()
			if !slices.ContainsFunc(cmds, func(c storetest.Command) bool { return c.Collection == "conversations" }) {
				t.Fatalf("no read of the conversations recorded:\n%s", storetest.Summary(cmds))
			}
			// As in TestUserConversationCursors: the page's conversations by their ids, one find
			// by _id $in from a store opened by URI, which the auditor counts as a scan.
			scans := slices.DeleteFunc(audit.Scans(), func(c storetest.Command) bool { return c.String() == "find conversations {_id}" })
			if len(scans) > 0 {
				t.Errorf("sends commands that read the whole collection on the embedded store:\n%s\nall commands:\n%s",
					storetest.Summary(scans), storetest.Summary(cmds))
			}
		}
	})

	t.Run("CursorOfAnotherList", func(t *testing.T) {
		enc := func(raw string) string { return base64.RawURLEncoding.EncodeToString([]byte(raw)) }
		for _, c := range []struct{ token, after string }{
			{a.Token, dCursors[0]}, {d1.Token, aCursors[0]}, {a.Token, enc("c2:3")}, {a.Token, enc("c3:messages:3")},
			{d1.Token, enc("c3:events:3")}, {a.Token, enc("c3:visitorConversations:")}, {a.Token, "not a cursor"},
		} {
			_, r := page(t, c.token, map[string]any{"n": 2, "after": c.after})
			r.requireCode(t, "BAD_USER_INPUT")
			if !slices.Equal(r.Errors[0].Extensions.Field, []string{"after"}) {
				t.Errorf("after %q: field %v, want [after]", c.after, r.Errors[0].Extensions.Field)
			}
		}
	})

	t.Run("IDCursorOfBeforeTheLists", func(t *testing.T) {
		for _, c := range []struct {
			token string
			want  []string
		}{{a.Token, as}, {d1.Token, both}} {
			raw, err := known.ParseID(nil, known.KindConversation, c.want[1])
			if err != nil {
				t.Fatal(err)
			}
			pg, r := page(t, c.token, map[string]any{"n": 100, "after": base64.RawURLEncoding.EncodeToString([]byte("c1:" + raw))})
			var rest []string
			for _, e := range pg.Edges {
				rest = append(rest, e.Node.ID)
				if kind(e.Cursor) != "c1" {
					t.Errorf("after an id cursor: cursor %q is not by id", e.Cursor)
				}
			}
			// The query by id orders by id, which is the order they started here.
			if !slices.Equal(rest, c.want[2:]) || pg.PageInfo.HasNextPage {
				t.Errorf("after an id cursor: %v (hasNext %v), want %v: %.300s", rest, pg.PageInfo.HasNextPage, c.want[2:], r.Body)
			}
		}
	})
}
