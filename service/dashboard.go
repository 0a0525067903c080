package service

import (
	"context"

	"github.com/knownhq/known"
	"github.com/knownhq/known/identity"
	"github.com/knownhq/known/store"
)

// The dashboard's reads: each needs the project's secret key (UNAUTHENTICATED otherwise) and
// sees only that project's objects (NOT_FOUND for any other's). Lists take a page (first
// 1–100, BAD_USER_INPUT otherwise) and are newest first.

// listing checks the caller and the page of a dashboard list.
func listing(ctx context.Context, page known.Page) (known.ProjectID, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return "", err
	}
	return p, checkPage(page)
}

// Conversation returns one of the project's conversations.
func (s *Service) Conversation(ctx context.Context, id known.ConversationID) (*known.Conversation, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, err
	}
	return s.store.Conversation(ctx, p, id)
}

// Message returns one of the project's messages (NOT_FOUND for another project's).
func (s *Service) Message(ctx context.Context, id known.MessageID) (*known.Message, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, err
	}
	return s.store.Message(ctx, p, id)
}

// Event returns one of the project's tracked events (NOT_FOUND for another project's).
func (s *Service) Event(ctx context.Context, id known.EventID) (*known.Event, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, err
	}
	return s.store.Event(ctx, p, id)
}

// ConversationFilter selects conversations in Conversations.
type ConversationFilter struct {
	UserID *known.UserID
	Status *known.ConversationStatus
}

// Conversations lists the project's conversations that f selects (ProjectConversations lists
// all of them at a constant cost per page).
func (s *Service) Conversations(ctx context.Context, f ConversationFilter, page known.Page) ([]*known.Conversation, bool, error) {
	p, err := listing(ctx, page)
	if err != nil {
		return nil, false, err
	}
	return s.store.Conversations(ctx, p, store.ConversationFilter{UserID: f.UserID, Status: f.Status}, page)
}

// ProjectConversations lists all of the project's conversations (no filter) from the
// project's list, each with the page.After that continues after it: a page costs what its
// conversations cost, however many the project holds. A page.After that is not such a value
// is BAD_USER_INPUT (field after).
func (s *Service) ProjectConversations(ctx context.Context, page known.Page) (cs []*known.Conversation, after []string, more bool, err error) {
	p, err := listing(ctx, page)
	if err != nil {
		return nil, nil, false, err
	}
	return s.store.ProjectConversations(ctx, p, page)
}

// ListedUserConversations lists user u's conversations from its list of them, each with the
// page.After that continues after it: a page costs what its conversations cost, however many
// the user or the project holds. A page.After that is not such a value is BAD_USER_INPUT
// (field after); a cursor by id of an earlier version continues by Conversations filtered by
// the user.
func (s *Service) ListedUserConversations(ctx context.Context, u known.UserID, page known.Page) (cs []*known.Conversation, after []string, more bool, err error) {
	p, err := listing(ctx, page)
	if err != nil {
		return nil, nil, false, err
	}
	return s.store.UserConversations(ctx, p, u, page)
}

// Messages lists a conversation's messages, for the dashboard or for a widget session that
// may read the conversation (UNAUTHENTICATED for any other caller), by a query of the
// collection: for cursors by id (ConversationMessages reads the conversation's list).
func (s *Service) Messages(ctx context.Context, c *known.Conversation, page known.Page) ([]*known.Message, bool, error) {
	if err := s.mayReadMessages(ctx, c, page); err != nil {
		return nil, false, err
	}
	if ms, more, ok := firstOfOne(c, page); ok {
		return ms, more, nil
	}
	return s.store.Messages(ctx, c.ID, page)
}

// ConversationMessages is Messages from the conversation's list of its messages, each with
// the page.After that continues after it: a page costs what its messages cost, however many
// the conversation holds. after is nil when the page came from the conversation itself (the
// first page of one, as an inbox row shows it): its items continue by id (Messages). A
// page.After that is not such a value is BAD_USER_INPUT (field after).
func (s *Service) ConversationMessages(ctx context.Context, c *known.Conversation, page known.Page) (ms []*known.Message, after []string, more bool, err error) {
	if err := s.mayReadMessages(ctx, c, page); err != nil {
		return nil, nil, false, err
	}
	if ms, more, ok := firstOfOne(c, page); ok {
		return ms, nil, more, nil
	}
	return s.store.ConversationMessages(ctx, c, page)
}

// mayReadMessages checks page, and that the caller may read conversation c's messages: the
// dashboard of its project, or a widget session that may read it.
func (s *Service) mayReadMessages(ctx context.Context, c *known.Conversation, page known.Page) error {
	if err := checkPage(page); err != nil {
		return err
	}
	if p, err := known.ProjectFromContext(ctx); err != nil || p != c.ProjectID {
		wc, werr := s.widget(ctx, nil, true)
		if werr != nil {
			return werr
		}
		if !identity.MayRead(wc.session, c) {
			return known.Errorf(known.NotFound, "conversation not found")
		}
		ok, err := s.readsThroughUser(ctx, wc.session, c)
		if err != nil {
			return err
		}
		if !ok {
			return known.Errorf(known.NotFound, "conversation not found")
		}
		if err := s.mayActFor(ctx, wc.session); err != nil {
			return err
		}
	}
	return nil
}

// firstOfOne serves the first page of one message, as an inbox row shows it, from the
// conversation, which holds it already (ok false for any other page, or a conversation of an
// earlier version that has not counted its messages).
func firstOfOne(c *known.Conversation, page known.Page) (ms []*known.Message, more, ok bool) {
	if page.First != 1 || page.After != "" || c.MessageCount < 0 {
		return nil, false, false
	}
	if c.Last == nil {
		return []*known.Message{}, false, true
	}
	return []*known.Message{c.Last}, c.MessageCount > 1, true
}

// ReplyToConversation adds an agent's message. User error NOT_FOUND for a conversation of no
// or another project; INVALID or LIMIT_EXCEEDED for the body.
func (s *Service) ReplyToConversation(ctx context.Context, id known.ConversationID, body string) (*known.Message, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, err
	}
	var v validator
	body = v.body(path("input", "body"), body)
	if err := v.err(); err != nil {
		return nil, err
	}
	c, err := s.store.Conversation(ctx, p, id)
	if known.ErrorCode(err) == known.NotFound {
		return nil, known.FieldErrorf(path("input", "conversationId"), known.NotFound, "no conversation with this id")
	}
	if err != nil {
		return nil, err
	}
	return s.addMessage(ctx, c, body, known.AuthorAgent, false, s.clock())
}

// Organization returns one of the project's organizations.
func (s *Service) Organization(ctx context.Context, id known.OrganizationID) (*known.Organization, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, err
	}
	return s.store.Organization(ctx, p, id)
}

// Organizations lists the project's organizations by a query of the collection, newest first
// by id: for cursors by id made before the project kept its list (ProjectOrganizations).
func (s *Service) Organizations(ctx context.Context, page known.Page) ([]*known.Organization, bool, error) {
	p, err := listing(ctx, page)
	if err != nil {
		return nil, false, err
	}
	return s.store.Organizations(ctx, p, page)
}

// ProjectOrganizations lists all of the project's organizations from the project's list, as
// ProjectUsers lists its users.
func (s *Service) ProjectOrganizations(ctx context.Context, page known.Page) (os []*known.Organization, after []string, more bool, err error) {
	p, err := listing(ctx, page)
	if err != nil {
		return nil, nil, false, err
	}
	return s.store.ProjectOrganizations(ctx, p, page)
}

// Company returns one of the project's companies.
func (s *Service) Company(ctx context.Context, id known.CompanyID) (*known.Company, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, err
	}
	return s.store.Company(ctx, p, id)
}

// Companies lists the project's companies by a query of the collection, newest first by id:
// for cursors by id made before the project kept its list (ProjectCompanies).
func (s *Service) Companies(ctx context.Context, page known.Page) ([]*known.Company, bool, error) {
	p, err := listing(ctx, page)
	if err != nil {
		return nil, false, err
	}
	return s.store.Companies(ctx, p, page)
}

// ProjectCompanies lists all of the project's companies from the project's list, as
// ProjectUsers lists its users.
func (s *Service) ProjectCompanies(ctx context.Context, page known.Page) (cs []*known.Company, after []string, more bool, err error) {
	p, err := listing(ctx, page)
	if err != nil {
		return nil, nil, false, err
	}
	return s.store.ProjectCompanies(ctx, p, page)
}

// ActiveCompany returns a user's active company, or nil.
func (s *Service) ActiveCompany(ctx context.Context, u *known.User) (*known.Company, error) {
	if u.ActiveCompanyID == nil {
		return nil, nil
	}
	c, err := s.Company(ctx, *u.ActiveCompanyID)
	if known.ErrorCode(err) == known.NotFound {
		return nil, nil
	}
	return c, err
}

// LinkedUsers lists the users linked to a company or an organization (one of the two ids set).
func (s *Service) LinkedUsers(ctx context.Context, company *known.CompanyID, org *known.OrganizationID, page known.Page) ([]*known.User, bool, error) {
	p, err := listing(ctx, page)
	if err != nil {
		return nil, false, err
	}
	return s.store.Users(ctx, p, store.UserFilter{CompanyID: company, OrganizationID: org}, page)
}

// Events lists the events of a user or a company (one of the two ids set).
func (s *Service) Events(ctx context.Context, user *known.UserID, company *known.CompanyID, page known.Page) ([]*known.Event, bool, error) {
	p, err := listing(ctx, page)
	if err != nil {
		return nil, false, err
	}
	return s.store.Events(ctx, p, store.EventFilter{UserID: user, CompanyID: company}, page)
}

// UserEvents lists user u's tracked events from its list of them, each with the page.After
// that continues after it: a page costs what its events cost, however many the user or the
// project holds. A page.After that is not such a value is BAD_USER_INPUT (field after); a
// cursor by id of an earlier version continues by Events.
func (s *Service) UserEvents(ctx context.Context, u known.UserID, page known.Page) (es []*known.Event, after []string, more bool, err error) {
	p, err := listing(ctx, page)
	if err != nil {
		return nil, nil, false, err
	}
	return s.store.UserEvents(ctx, p, u, page)
}

// UsersByIDs returns the caller's project's users with these ids, in order (nil where there is
// none): one query, for a per-request dataloader.
func (s *Service) UsersByIDs(ctx context.Context, ids []known.UserID) ([]*known.User, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, err
	}
	us, err := s.store.UsersByIDs(ctx, p, ids)
	return byKey(us, ids, func(u *known.User) known.UserID { return u.ID }), err
}

// CompaniesByIDs returns the caller's project's companies with these ids, in order (nil where
// there is none): one query.
func (s *Service) CompaniesByIDs(ctx context.Context, ids []known.CompanyID) ([]*known.Company, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, err
	}
	cs, err := s.store.CompaniesByIDs(ctx, p, ids)
	return byKey(cs, ids, func(c *known.Company) known.CompanyID { return c.ID }), err
}

// OrganizationsByIDs returns the caller's project's organizations with these ids, in order
// (nil where there is none): one query.
func (s *Service) OrganizationsByIDs(ctx context.Context, ids []known.OrganizationID) ([]*known.Organization, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, err
	}
	os, err := s.store.OrganizationsByIDs(ctx, p, ids)
	return byKey(os, ids, func(o *known.Organization) known.OrganizationID { return o.ID }), err
}

// ConversationIDsOfUsers returns each user's conversation ids, newest first, from the users'
// lists of them: reads by _id, whatever the project holds. The users must have been read
// through the caller's project already.
func (s *Service) ConversationIDsOfUsers(ctx context.Context, users []known.UserID) ([][]known.ConversationID, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, err
	}
	m, err := s.store.UserConversationIDs(ctx, p, users)
	if err != nil {
		return nil, err
	}
	out := make([][]known.ConversationID, len(users))
	for i, u := range users {
		out[i] = nonNilIDs(m[u])
	}
	return out, nil
}

func nonNilIDs(ids []known.ConversationID) []known.ConversationID {
	if ids == nil {
		return []known.ConversationID{}
	}
	return ids
}

// UserCompanies returns a user's companies, in link order.
func (s *Service) UserCompanies(ctx context.Context, u *known.User) ([]*known.Company, error) {
	cs, err := s.CompaniesByIDs(ctx, u.CompanyIDs)
	return present(cs), err
}

// UserOrganizations returns a user's organizations, in the order setUser sent them.
func (s *Service) UserOrganizations(ctx context.Context, u *known.User) ([]*known.Organization, error) {
	os, err := s.OrganizationsByIDs(ctx, u.OrganizationIDs)
	return present(os), err
}

// present drops the nils of objects that are gone.
func present[T any](items []*T) []*T {
	out := items[:0:0]
	for _, it := range items {
		if it != nil {
			out = append(out, it)
		}
	}
	return out
}

// byKey places items in the order of keys, nil where a key has no item.
func byKey[T any, K comparable](items []T, keys []K, key func(T) K) []T {
	m := make(map[K]T, len(items))
	for _, it := range items {
		m[key(it)] = it
	}
	out := make([]T, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}

// CompanyPage asks for the first page of a company's users.
type CompanyPage struct {
	Company known.CompanyID
	First   int
}

// UserPage is one page of users and whether more follow.
type UserPage struct {
	Users []*known.User
	More  bool
}

// CompanyUsersFirstPages returns the first page of users of each company, in order: one
// query for all of them, bounded by the pages asked for; only a company whose page that
// bound may have cut short is asked again on its own. For a per-request dataloader.
func (s *Service) CompanyUsersFirstPages(ctx context.Context, pages []CompanyPage) ([]UserPage, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, err
	}
	limit, ids := 0, make([]known.CompanyID, len(pages))
	for i, pg := range pages {
		if err := checkPage(known.Page{First: pg.First}); err != nil {
			return nil, err
		}
		limit += pg.First + 1
		ids[i] = pg.Company
	}
	users, cut, err := s.store.UsersOfCompanies(ctx, p, ids, limit)
	if err != nil {
		return nil, err
	}
	out := make([]UserPage, len(pages))
	for i, pg := range pages {
		var got []*known.User
		for _, u := range users {
			if containsID(u.CompanyIDs, pg.Company) {
				got = append(got, u)
			}
		}
		if len(got) <= pg.First && cut {
			// The shared bound may have hidden some of this company's users: ask exactly.
			us, more, err := s.store.Users(ctx, p, store.UserFilter{CompanyID: &pg.Company}, known.Page{First: pg.First})
			if err != nil {
				return nil, err
			}
			out[i] = UserPage{Users: us, More: more}
			continue
		}
		more := len(got) > pg.First
		if more {
			got = got[:pg.First]
		}
		out[i] = UserPage{Users: nonNilUsers(got), More: more}
	}
	return out, nil
}

func nonNilUsers(us []*known.User) []*known.User {
	if us == nil {
		return []*known.User{}
	}
	return us
}
