package service

import (
	"context"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/knownhq/known"
	"github.com/knownhq/known/identity"
	"github.com/knownhq/known/store"
)

// SetProperties merges properties into the session user's metadata (seed 002): a null value
// removes its key. The metadata may hold at most MaxJSONKeys keys afterwards
// (LIMIT_EXCEEDED). An anonymous visitor gets a record that moves to its user on identify.
func (s *Service) SetProperties(ctx context.Context, appID *string, properties map[string]any) (*known.Session, error) {
	wc, err := s.widget(ctx, appID, true)
	if err != nil {
		return nil, err
	}
	var v validator
	set, unset := v.jsonPatch(path("input", "properties"), properties)
	if err := v.err(); err != nil {
		return nil, err
	}
	if _, err := s.writeSessionUser(ctx, wc, path("input", "properties"), set, unset,
		store.UserUpdate{UpdatedAt: wc.now, LastSeenAt: &wc.now}); err != nil {
		return nil, err
	}
	return wc.session, nil
}

// TrackInput is track's input (seed 002).
type TrackInput struct {
	AppID      *string
	Event      string
	Properties map[string]any
	CompanyID  *string
	OccurredAt *time.Time
}

// maxFuture is how far in the future an event's occurredAt may be (clock skew).
const maxFuture = 24 * time.Hour

// Track records a point-in-time event of the session's user (seed 002), at occurredAt
// (default now). With companyId it is also the event of that company, which the user must be
// linked to (COMPANY_REQUIRED); without it, of the user's active company if there is one.
func (s *Service) Track(ctx context.Context, in TrackInput) (*known.Event, error) {
	wc, err := s.widget(ctx, in.AppID, true)
	if err != nil {
		return nil, err
	}
	var v validator
	name := v.requiredString(path("input", "event"), in.Event)
	props := v.jsonObject(path("input", "properties"), in.Properties)
	companyExt := v.optString(path("input", "companyId"), in.CompanyID)
	occurred := wc.now
	if in.OccurredAt != nil {
		occurred = in.OccurredAt.UTC().Truncate(time.Millisecond)
		if occurred.After(wc.now.Add(maxFuture)) {
			v.add(path("input", "occurredAt"), known.Invalid, "occurredAt is more than a day in the future")
		}
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	u, err := s.sessionUser(ctx, wc, true)
	if err != nil {
		return nil, err
	}
	company, err := s.userCompany(ctx, wc, u, companyExt, companyExt != nil)
	if err != nil {
		return nil, err
	}
	e := &known.Event{ID: known.EventID(store.NewID()), ProjectID: wc.project.ID, UserID: &u.ID, Name: name,
		Properties: props, OccurredAt: occurred, CreatedAt: wc.now}
	if e.Properties == nil {
		e.Properties = map[string]any{}
	}
	if company != nil {
		e.CompanyID = &company.ID
	}
	if err := s.store.AddEvent(ctx, e); err != nil {
		return nil, err
	}
	return e, nil
}

// userCompany returns the company a company-scoped call acts on: the one named by its
// customer id ext, which the user must be linked to, or else the user's active company. With
// required set, no such company is COMPANY_REQUIRED.
func (s *Service) userCompany(ctx context.Context, wc *widgetCall, u *known.User, ext *string, required bool) (*known.Company, error) {
	var id known.CompanyID
	switch {
	case ext != nil:
		cid, err := s.store.CompanyIDByExternalID(ctx, wc.project.ID, *ext)
		if err != nil && known.ErrorCode(err) != known.NotFound {
			return nil, err
		}
		if err != nil || !containsID(u.CompanyIDs, cid) {
			return nil, known.FieldErrorf(path("input", "companyId"), known.CompanyRequired,
				"this user is not linked to company %q: link it with identify first", truncate(*ext))
		}
		id = cid
	case u.ActiveCompanyID != nil:
		id = *u.ActiveCompanyID
	case required:
		return nil, known.FieldErrorf(path("input", "companyId"), known.CompanyRequired,
			"this user has no active company: identify with company, or send companyId")
	default:
		return nil, nil
	}
	return s.store.Company(ctx, wc.project.ID, id)
}

func containsID[T comparable](ids []T, id T) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// SetStage sets the stage of the session user's company (seed 002): companyId or the active
// company, per stageMode (per call, or the project's default). COMPANY_REQUIRED without one.
func (s *Service) SetStage(ctx context.Context, appID *string, stage string, companyID *string, mode *known.StageMode) (*known.Company, error) {
	wc, err := s.widget(ctx, appID, true)
	if err != nil {
		return nil, err
	}
	var v validator
	st := v.requiredString(path("input", "stage"), stage)
	ext := v.optString(path("input", "companyId"), companyID)
	if err := v.err(); err != nil {
		return nil, err
	}
	m := wc.project.StageMode
	if mode != nil {
		m = *mode
	}
	return s.companyWrite(ctx, wc, ext, store.CompanyUpdate{Stage: &st, StageIfEmpty: m == known.StageIfEmpty})
}

// SetDealInput is setDeal's input (seed 002).
type SetDealInput struct {
	AppID     *string
	CompanyID *string
	Name      *string
	Amount    *float64
	Currency  *string
	Stage     *string
	Status    *known.DealStatus
}

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

// SetDeal updates the deal of the session user's company (seed 002): the fields given change,
// the others stay. COMPANY_REQUIRED without a company.
func (s *Service) SetDeal(ctx context.Context, in SetDealInput) (*known.Company, error) {
	wc, err := s.widget(ctx, in.AppID, true)
	if err != nil {
		return nil, err
	}
	var v validator
	ext := v.optString(path("input", "companyId"), in.CompanyID)
	d := &known.Deal{
		Name:   v.optString(path("input", "name"), in.Name),
		Stage:  v.optString(path("input", "stage"), in.Stage),
		Amount: in.Amount,
		Status: in.Status,
	}
	if in.Amount != nil && (*in.Amount < 0 || *in.Amount > 1e15) {
		v.add(path("input", "amount"), known.Invalid, "amount must be between 0 and 10^15")
	}
	if c := v.optString(path("input", "currency"), in.Currency); c != nil {
		upper := strings.ToUpper(*c)
		if !currencyCode.MatchString(upper) {
			v.add(path("input", "currency"), known.Invalid, "currency must be an ISO 4217 code like USD")
		}
		d.Currency = &upper
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	return s.companyWrite(ctx, wc, ext, store.CompanyUpdate{Deal: d})
}

// companyWrite applies up to the session user's company (ext, or the active one).
func (s *Service) companyWrite(ctx context.Context, wc *widgetCall, ext *string, up store.CompanyUpdate) (*known.Company, error) {
	u, err := s.sessionUser(ctx, wc, false)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, known.FieldErrorf(path("input", "companyId"), known.CompanyRequired, "this visitor has no company: identify with company first")
	}
	c, err := s.userCompany(ctx, wc, u, ext, true)
	if err != nil {
		return nil, err
	}
	if c, err = s.store.UpdateCompany(ctx, wc.project.ID, store.Keyed{ID: string(c.ID)}, c.ExternalID, up, wc.now); err != nil {
		return nil, err
	}
	return widgetCompany(c), nil
}

// widgetCompany is what a widget may see of a company it wrote to: its ids, never the record
// (its name, stage, metadata and deal may come from others: API.md §1).
func widgetCompany(c *known.Company) *known.Company {
	return &known.Company{ID: c.ID, ProjectID: c.ProjectID, ExternalID: c.ExternalID, Metadata: map[string]any{},
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

// body checks a message body: 1 to MaxBody characters.
func (v *validator) body(field []string, b string) string {
	if strings.TrimSpace(b) == "" {
		v.add(field, known.Invalid, "body must not be blank")
	} else if n := utf8.RuneCountInString(b); n > MaxBody {
		v.add(field, known.LimitExceeded, "body is %d characters long; the limit is %d", n, MaxBody)
	}
	return b
}

// StartConversation opens a conversation from the widget with its first message. An anonymous
// visitor's conversation moves to its user when it is identified.
func (s *Service) StartConversation(ctx context.Context, appID *string, body string) (*known.Conversation, error) {
	wc, err := s.widget(ctx, appID, true)
	if err != nil {
		return nil, err
	}
	var v validator
	body = v.body(path("input", "body"), body)
	if err := v.err(); err != nil {
		return nil, err
	}
	u, err := s.sessionUser(ctx, wc, true)
	if err != nil {
		return nil, err
	}
	c := &known.Conversation{ID: known.ConversationID(store.NewID()), ProjectID: wc.project.ID, UserID: &u.ID,
		VisitorID: wc.session.VisitorID, Status: known.ConversationOpen, CreatedAt: wc.now, UpdatedAt: wc.now}
	if err := s.store.CreateConversation(ctx, c); err != nil {
		return nil, err
	}
	m, err := s.addMessage(ctx, c, body, known.AuthorVisitor, wc.session.Verified(), wc.now)
	if err != nil {
		return nil, err
	}
	c.Last, c.MessageCount = m, 1
	return c, nil
}

// addMessage stores a new message of conversation c. verified records whether the visitor's
// session was verified when it was sent (the inbox's badge; false for agents).
func (s *Service) addMessage(ctx context.Context, c *known.Conversation, body string, author known.Author, verified bool, now time.Time) (*known.Message, error) {
	m := &known.Message{ID: known.MessageID(store.NewID()), ProjectID: c.ProjectID, ConversationID: c.ID, Body: body,
		Author: author, Verified: verified, CreatedAt: now}
	if err := s.store.AddMessage(ctx, c, m); err != nil {
		return nil, err
	}
	return m, nil
}

// SendMessage adds the visitor's message to a conversation its session may read (NOT_FOUND
// otherwise, exactly as for one that does not exist).
func (s *Service) SendMessage(ctx context.Context, appID *string, conversation known.ConversationID, body string) (*known.Message, error) {
	wc, err := s.widget(ctx, appID, true)
	if err != nil {
		return nil, err
	}
	var v validator
	body = v.body(path("input", "body"), body)
	if err := v.err(); err != nil {
		return nil, err
	}
	c, err := s.store.Conversation(ctx, wc.project.ID, conversation)
	if err == nil && !identity.MayRead(wc.session, c) {
		err = known.Errorf(known.NotFound, "conversation not found")
	}
	if err == nil {
		var ok bool
		if ok, err = s.readsThroughUser(ctx, wc.session, c); err == nil && !ok {
			err = known.Errorf(known.NotFound, "conversation not found")
		}
	}
	if known.ErrorCode(err) == known.NotFound {
		return nil, known.FieldErrorf(path("input", "conversationId"), known.NotFound, "no conversation with this id")
	}
	if err != nil {
		return nil, err
	}
	if _, err := s.sessionUser(ctx, wc, false); err != nil {
		return nil, err
	}
	return s.addMessage(ctx, c, body, known.AuthorVisitor, wc.session.Verified(), wc.now)
}

// SessionList names the list a page of a widget session's conversations comes from: the list
// its cursors are places in.
type SessionList int

const (
	// SessionByID is the query by visitor or by user in the order of ids, which serves the
	// cursors by id of earlier versions.
	SessionByID SessionList = iota
	// SessionVisitorList is the session's visitor's list of its conversations.
	SessionVisitorList
	// SessionUserList is the session's user's list of its conversations, which a verified
	// session reads while its user holds a proven identity.
	SessionUserList
)

// SessionConversations lists the conversations a widget session may read, newest first, each
// with the page.After that continues after it, from list: its visitor's list of them or, for a
// verified session while its user still holds a proven identity, its user's (any browser's), so
// that a page costs what its conversations cost however many the project holds. from is the
// list page.After is a place in (SessionByID for a cursor by id of an earlier version, which
// continues by the query it came from, and gives no after); a place in the other list (the
// user lost or gained its proof between pages) is BAD_USER_INPUT on after, since a place means
// nothing in another list. A session that is not verified reads nothing once its user is
// verified (VERIFICATION_REQUIRED): agents may have written to that user since.
func (s *Service) SessionConversations(ctx context.Context, ss *known.Session, page known.Page, from SessionList) (cs []*known.Conversation, after []string, list SessionList, more bool, err error) {
	if err := checkPage(page); err != nil {
		return nil, nil, 0, false, err
	}
	u, err := s.sessionUser(ctx, &widgetCall{session: ss}, false)
	if err != nil {
		return nil, nil, 0, false, err
	}
	// All of the user's only while the user still holds a proven identity.
	byUser := ss.Verified() && stillProven(ss, u)
	if page.After != "" && from == SessionByID {
		f := store.ConversationFilter{VisitorID: &ss.VisitorID}
		if byUser {
			f = store.ConversationFilter{UserID: ss.UserID}
		}
		cs, more, err := s.store.Conversations(ctx, ss.ProjectID, f, page)
		return cs, nil, SessionByID, more, err
	}
	list = SessionVisitorList
	if byUser {
		list = SessionUserList
	}
	if page.After != "" && from != list {
		return nil, nil, 0, false, known.FieldErrorf([]string{"after"}, known.BadUserInput, "after is not a cursor of this list")
	}
	if byUser {
		cs, after, more, err = s.store.UserConversations(ctx, ss.ProjectID, *ss.UserID, page)
	} else {
		cs, after, more, err = s.store.VisitorConversations(ctx, ss.ProjectID, ss.VisitorID, page)
	}
	return cs, after, list, more, err
}

// mayActFor refuses (VERIFICATION_REQUIRED) a session that is not verified whose visitor
// belongs to a verified user.
func (s *Service) mayActFor(ctx context.Context, ss *known.Session) error {
	if ss.Verified() {
		return nil
	}
	_, err := s.sessionUser(ctx, &widgetCall{session: ss}, false)
	return err
}
