package resolvers

import (
	"encoding/base64"
	"strings"

	"github.com/knownhq/known"
	"github.com/knownhq/known/graph/model"
)

const cursorPrefix = "c1:"

// encodeCursor makes the opaque cursor of a list item from its document id.
func encodeCursor(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + id))
}

// pageArgs turns a connection's arguments into a page. A cursor that Known did not make is
// BAD_USER_INPUT; the range of first is the service's rule.
func pageArgs(first *int, after *string) (known.Page, error) {
	p := known.Page{First: 20}
	if first != nil {
		p.First = *first
	}
	if after != nil && *after != "" {
		raw, err := base64.RawURLEncoding.DecodeString(*after)
		id, ok := strings.CutPrefix(string(raw), cursorPrefix)
		if err != nil || !ok || id == "" {
			return p, &known.Error{Code: known.BadUserInput, Message: "after is not a cursor of this list", Field: []string{"after"}}
		}
		p.After = id
	}
	return p, nil
}

// connect builds the edges and page info of one page of nodes.
func connect[N any, E any](nodes []N, more bool, id func(N) string, edge func(cursor string, n N) E) ([]E, *model.PageInfo) {
	edges := make([]E, len(nodes))
	info := &model.PageInfo{HasNextPage: more}
	for i, n := range nodes {
		c := encodeCursor(id(n))
		edges[i] = edge(c, n)
		if i == 0 {
			info.StartCursor = &c
		}
		info.EndCursor = &c
	}
	return edges, info
}

func userConnection(users []*known.User, more bool) *model.UserConnection {
	edges, info := connect(users, more, func(u *known.User) string { return string(u.ID) },
		func(c string, u *known.User) *model.UserEdge { return &model.UserEdge{Cursor: c, Node: u} })
	return &model.UserConnection{Edges: edges, Nodes: users, PageInfo: info}
}

// userErrors splits a service error for a mutation payload: the user errors to report in it,
// or the error that fails the whole operation.
func userErrors(err error) ([]*model.UserError, error) {
	es, err := known.UserErrors(err)
	if err != nil {
		return nil, err
	}
	out := make([]*model.UserError, len(es))
	for i, e := range es {
		out[i] = &model.UserError{Field: e.Field, Code: model.UserErrorCode(e.Code), Message: e.Message}
	}
	return out, nil
}

// parseID returns the raw id inside a global id of kind k. A string that is no global id, or
// the id of another kind of object, is BAD_USER_INPUT naming field.
func parseID(field []string, k known.Kind, id string) (string, error) {
	kind, raw, ok := known.ParseGlobalID(id)
	if !ok {
		return "", &known.Error{Code: known.BadUserInput, Message: "not a Known id", Field: field}
	}
	if kind != k {
		return "", &known.Error{Code: known.BadUserInput, Message: "the id of a " + string(kind) + ", not of a " + string(k), Field: field}
	}
	return raw, nil
}

// inputID is parseID for a mutation's input, where a bad id is a user error (INVALID).
func inputID(field []string, k known.Kind, id string) (string, error) {
	raw, err := parseID(field, k, id)
	if e, ok := err.(*known.Error); ok {
		e.Code = known.Invalid
	}
	return raw, err
}

// notYet is the answer of an operation whose issue has not landed yet.
func notYet(what string) error {
	return known.Errorf(known.NotImplemented, "%s is not available in this version of Known yet", what)
}

func ptr[T any](v T) *T { return &v }

func conversationIDs(ids []known.ConversationID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = known.GlobalID(known.KindConversation, string(id))
	}
	return out
}
