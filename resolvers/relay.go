package resolvers

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	"github.com/knownhq/known"
	"github.com/knownhq/known/graph/model"
)

// A cursor is base64url of a prefix and what it names: "c1:" an item's document id (lists the
// store queries in _id order); "c2:" an item's place in the project's list of conversations
// (store/lists.go); "c3:" the name of another list the store keeps, ":", and an item's place
// in it (the project's users, companies and organizations, a conversation's messages, a user's
// events and conversations). A place names its list, so that a cursor of one list given to
// another is refused rather than read as a place in it.
// (Conversations' cursors came first, without the list's name, and are kept as they are.)
const (
	cursorPrefix   = "c1:"
	positionPrefix = "c2:"
	listPrefix     = "c3:"
)

// keptList names a list the store keeps, in the cursors of its items.
type keptList string

// The lists the store keeps of each project.
const (
	conversationList keptList = "conversations"
	userList         keptList = "users"
	companyList      keptList = "companies"
	organizationList keptList = "organizations"
	messageList      keptList = "messages"
	eventList        keptList = "events"
	// userConversationList is a user's list of its conversations, which both User.conversations
	// and the conversations filtered by user alone page.
	userConversationList keptList = "userConversations"
	// visitorConversationList is a visitor's list of its conversations, which a widget
	// session's conversations page (or its user's list, userConversationList, once verified).
	visitorConversationList keptList = "visitorConversations"
)

// encodeCursor makes the opaque cursor of a list item from its document id.
func encodeCursor(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + id))
}

// encodePosition makes the opaque cursor of an item of kept list l from the page.After the
// store gave for it.
func encodePosition(l keptList, after string) string {
	if l == conversationList {
		return base64.RawURLEncoding.EncodeToString([]byte(positionPrefix + after))
	}
	return base64.RawURLEncoding.EncodeToString([]byte(listPrefix + string(l) + ":" + after))
}

// badCursor is the error for an after that is not a cursor of the list it is given to.
func badCursor() error {
	return &known.Error{Code: known.BadUserInput, Message: "after is not a cursor of this list", Field: []string{"after"}}
}

// decodeCursor splits cursor after into its prefix and what it names; ok is false for a
// string Known did not make.
func decodeCursor(after string) (prefix, value string, ok bool) {
	raw, err := base64.RawURLEncoding.DecodeString(after)
	if err != nil {
		return "", "", false
	}
	for _, p := range []string{cursorPrefix, positionPrefix, listPrefix} {
		if v, found := strings.CutPrefix(string(raw), p); found && v != "" {
			return p, v, true
		}
	}
	return "", "", false
}

// pageArgs turns a connection's arguments into a page. A cursor that Known did not make, or
// not by document id, is BAD_USER_INPUT; the range of first is the service's rule.
func pageArgs(first *int, after *string) (known.Page, error) {
	p := known.Page{First: 20}
	if first != nil {
		p.First = *first
	}
	if after != nil && *after != "" {
		prefix, id, ok := decodeCursor(*after)
		if !ok || prefix != cursorPrefix {
			return p, badCursor()
		}
		p.After = id
	}
	return p, nil
}

// positionPageArgs is pageArgs for list l, which the store keeps: byPosition is false when
// after is a cursor by document id (made before the store kept the list), which the caller may
// serve by the query it replaced. A place in another list is BAD_USER_INPUT.
func positionPageArgs(l keptList, first *int, after *string) (page known.Page, byPosition bool, err error) {
	page, of, err := keptPageArgs(first, after, l)
	return page, err == nil && (page.After == "" || of != ""), err
}

// keptPageArgs is positionPageArgs for a field that pages one of lists ls, whichever its
// service picks: of is the list after is a place in, "" when after is empty or a cursor by
// document id (page.After tells which). A place in a list not of ls is BAD_USER_INPUT.
func keptPageArgs(first *int, after *string, ls ...keptList) (page known.Page, of keptList, err error) {
	page, _ = pageArgs(first, nil) // without a cursor it cannot fail
	if after == nil || *after == "" {
		return page, "", nil
	}
	prefix, v, ok := decodeCursor(*after)
	switch {
	case !ok:
		return page, "", badCursor()
	case prefix == cursorPrefix:
		page.After = v
		return page, "", nil
	case prefix == positionPrefix && slices.Contains(ls, conversationList):
		page.After = v
		return page, conversationList, nil
	case prefix == listPrefix:
		name, pos, found := strings.Cut(v, ":")
		if l := keptList(name); found && pos != "" && l != conversationList && slices.Contains(ls, l) {
			page.After = pos
			return page, l, nil
		}
	}
	return page, "", badCursor()
}

// idPage is the page info of a page of nodes listed by document id; it encodes a cursor only
// when a query asks for one.
func idPage[N any](nodes []N, more bool, id func(N) string) *model.PageInfo {
	return model.NewPageInfo(len(nodes), more, func(i int) string { return encodeCursor(id(nodes[i])) })
}

// positionPage is the page info of a page of n items of kept list l: after[i] is the store's
// page.After for its i-th item.
func positionPage(l keptList, n int, after []string, more bool) *model.PageInfo {
	return model.NewPageInfo(n, more, func(i int) string { return encodePosition(l, after[i]) })
}

func userConnection(users []*known.User, more bool) *model.UserConnection {
	return &model.UserConnection{Nodes: users, PageInfo: idPage(users, more, func(u *known.User) string { return string(u.ID) })}
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

// inputID is known.ParseID for a mutation's input, where a bad id is a user error (INVALID).
func inputID(field []string, k known.Kind, id string) (string, error) {
	raw, err := known.ParseID(field, k, id)
	if e, ok := err.(*known.Error); ok {
		e.Code = known.Invalid
	}
	return raw, err
}

func ptr[T any](v T) *T { return &v }

// result splits a service call's outcome for a mutation payload: the value (zero when the
// input was rejected), the user errors, and an error that fails the whole operation.
func result[T any](v T, err error) (T, []*model.UserError, error) {
	ues, err := userErrors(err)
	var zero T
	if err != nil || len(ues) > 0 {
		return zero, ues, err
	}
	return v, ues, nil
}

func companyConnection(cs []*known.Company, more bool) *model.CompanyConnection {
	return &model.CompanyConnection{Nodes: cs, PageInfo: idPage(cs, more, func(c *known.Company) string { return string(c.ID) })}
}

func organizationConnection(os []*known.Organization, more bool) *model.OrganizationConnection {
	return &model.OrganizationConnection{Nodes: os, PageInfo: idPage(os, more, func(o *known.Organization) string { return string(o.ID) })}
}

func conversationConnection(cs []*known.Conversation, more bool) *model.ConversationConnection {
	return &model.ConversationConnection{Nodes: cs, PageInfo: idPage(cs, more, func(c *known.Conversation) string { return string(c.ID) })}
}

// positionConversationConnection is conversationConnection for a page of a list the store
// keeps: after[i] is the store's page.After for cs[i].
func positionConversationConnection(cs []*known.Conversation, after []string, more bool) *model.ConversationConnection {
	return &model.ConversationConnection{Nodes: cs, PageInfo: positionPage(conversationList, len(cs), after, more)}
}

// positionUserConnection is userConnection for a page of the project's list of users.
func positionUserConnection(us []*known.User, after []string, more bool) *model.UserConnection {
	return &model.UserConnection{Nodes: us, PageInfo: positionPage(userList, len(us), after, more)}
}

// positionCompanyConnection is companyConnection for a page of the project's list of
// companies.
func positionCompanyConnection(cs []*known.Company, after []string, more bool) *model.CompanyConnection {
	return &model.CompanyConnection{Nodes: cs, PageInfo: positionPage(companyList, len(cs), after, more)}
}

// positionOrganizationConnection is organizationConnection for a page of the project's list
// of organizations.
func positionOrganizationConnection(os []*known.Organization, after []string, more bool) *model.OrganizationConnection {
	return &model.OrganizationConnection{Nodes: os, PageInfo: positionPage(organizationList, len(os), after, more)}
}

// positionMessageConnection is messageConnection for a page of a conversation's list of
// messages.
func positionMessageConnection(ms []*known.Message, after []string, more bool) *model.MessageConnection {
	return &model.MessageConnection{Nodes: ms, PageInfo: positionPage(messageList, len(ms), after, more)}
}

// positionEventConnection is eventConnection for a page of a user's list of events.
func positionEventConnection(es []*known.Event, after []string, more bool) *model.EventConnection {
	return &model.EventConnection{Nodes: es, PageInfo: positionPage(eventList, len(es), after, more)}
}

// positionUserConversationConnection is conversationConnection for a page of a user's list of
// conversations.
func positionUserConversationConnection(cs []*known.Conversation, after []string, more bool) *model.ConversationConnection {
	return &model.ConversationConnection{Nodes: cs, PageInfo: positionPage(userConversationList, len(cs), after, more)}
}

func messageConnection(ms []*known.Message, more bool) *model.MessageConnection {
	return &model.MessageConnection{Nodes: ms, PageInfo: idPage(ms, more, func(m *known.Message) string { return string(m.ID) })}
}

func eventConnection(es []*known.Event, more bool) *model.EventConnection {
	return &model.EventConnection{Nodes: es, PageInfo: idPage(es, more, func(e *known.Event) string { return string(e.ID) })}
}

// slicePage pages a short list held in memory (a user's companies or organizations) the way
// the store pages a collection: after the item whose id is the cursor, first items.
func slicePage[T any](items []T, id func(T) string, page known.Page) ([]T, bool) {
	start := 0
	if page.After != "" {
		for i, it := range items {
			if id(it) == page.After {
				start = i + 1
				break
			}
		}
	}
	items = items[start:]
	if len(items) > page.First {
		return items[:page.First], true
	}
	return items, false
}

// listPage checks a page request against the service's rule for first, for lists the
// resolvers page themselves.
func listPage(first *int, after *string) (known.Page, error) {
	page, err := pageArgs(first, after)
	if err == nil && (page.First < 1 || page.First > 100) {
		err = &known.Error{Code: known.BadUserInput, Message: fmt.Sprintf("first must be between 1 and 100, not %d", page.First), Field: []string{"first"}}
	}
	return page, err
}

// algorithmName maps the schema's JwtAlgorithm to the JOSE name (EDDSA is "EdDSA").
func algorithmName(a model.JwtAlgorithm) string {
	if a == model.JwtAlgorithmEddsa {
		return "EdDSA"
	}
	return string(a)
}

func jwtKey(k known.JwtKey) *model.JwtPublicKey {
	alg := model.JwtAlgorithm(strings.ToUpper(k.Algorithm))
	return &model.JwtPublicKey{ID: k.ID, Algorithm: alg, CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt}
}

// present drops the nils a loader gives for ids whose objects are gone; items itself when
// there are none (nearly always: it runs for every user of a page).
func present[T any](items []*T) []*T {
	if !slices.Contains(items, nil) {
		return items
	}
	out := items[:0:0]
	for _, it := range items {
		if it != nil {
			out = append(out, it)
		}
	}
	return out
}
