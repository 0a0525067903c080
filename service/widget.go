package service

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/identity"
	"github.com/knownhq/known/secret"
	"github.com/knownhq/known/session"
	"github.com/knownhq/known/store"
	"golang.org/x/sync/errgroup"
)

// SessionTTL is how long a widget session lives after its last identify.
const SessionTTL = 30 * 24 * time.Hour

// widgetCall is a widget operation's caller: its project and, after the first call, its
// session.
type widgetCall struct {
	project *known.Project
	session *known.Session // nil before the first identify
	now     time.Time
	// secrets and jwtKeys are the project's live verification material, read with it.
	secrets []string
	jwtKeys []known.JwtKey
}

// widget authenticates a widget operation. appID is the input's appId (nil when left out);
// the session comes from the X-Widget-Session token, which is refused (UNAUTHENTICATED) when
// forged, expired or ended by resetSession. Calls are rate-limited per app id and client IP
// (RATE_LIMITED) and, when the project lists allowedOrigins, refused from other origins
// (FORBIDDEN).
func (s *Service) widget(ctx context.Context, appID *string, needSession bool) (*widgetCall, error) {
	// A request is authenticated once, however many of its fields need the caller; each of
	// its operations (aliased mutations) is counted against the rate limit.
	client := known.ClientFromContext(ctx)
	if client.Memo != nil {
		if m, ok := client.Memo.Load(memoKey).(*widgetMemo); ok && (appID == nil || (m.err == nil && string(m.wc.project.ID) == *appID)) {
			if m.err != nil {
				return nil, m.err
			}
			if err := s.charge(ctx, client, string(m.wc.project.ID), false); err != nil {
				return nil, err
			}
			if needSession && m.wc.session == nil {
				return nil, errNoSession
			}
			wc := *m.wc
			return &wc, nil
		}
	}
	wc, err := s.authenticateWidget(ctx, client, appID)
	if client.Memo != nil {
		client.Memo.Store(memoKey, &widgetMemo{wc: wc, err: err})
	}
	if err != nil {
		return nil, err
	}
	if needSession && wc.session == nil {
		return nil, errNoSession
	}
	c := *wc
	return &c, nil
}

type widgetMemo struct {
	wc  *widgetCall
	err error
}

const memoKey = "widget"

// remember makes ss the session of the rest of the request: fields of a payload that read
// what the session may see (its conversations' messages) act for the session just issued.
func remember(ctx context.Context, wc *widgetCall, ss *known.Session) {
	if m := known.ClientFromContext(ctx).Memo; m != nil {
		next := *wc
		next.session = ss
		m.Store(memoKey, &widgetMemo{wc: &next})
	}
}

var errNoSession = known.Errorf(known.Unauthenticated, "this widget operation needs the X-Widget-Session token from identify or setUser")

// authenticateWidget is widget without the memo.
func (s *Service) authenticateWidget(ctx context.Context, client known.Client, appID *string) (*widgetCall, error) {
	now := s.clock()
	wc := &widgetCall{now: now}
	var claims session.Claims
	if client.WidgetToken != "" {
		var err error
		if claims, err = s.signer.Verify(client.WidgetToken, now); err != nil {
			return nil, known.Errorf(known.Unauthenticated, "the widget session token is not valid or has expired: drop it and call identify again")
		}
	}
	project := claims.ProjectID
	if appID != nil {
		if project != "" && *appID != project {
			return nil, &known.Error{Code: known.Forbidden, Message: "appId is not the app of this widget session", Field: path("input", "appId")}
		}
		project = *appID
	}
	if project == "" {
		return nil, errNoSession
	}
	if err := s.charge(ctx, client, project, true); err != nil {
		return nil, err
	}
	// The project and the session are read at once: one round trip.
	var auth *store.ProjectAuth
	var ss *known.Session
	var g errgroup.Group
	g.Go(func() error {
		var err error
		auth, err = s.store.ProjectWithSecrets(ctx, known.ProjectID(project), now)
		if known.ErrorCode(err) == known.NotFound {
			return &known.Error{Code: known.NotFound, Message: "no app with this appId", Field: path("input", "appId")}
		}
		return err
	})
	if claims.SessionID != "" {
		g.Go(func() error {
			var err error
			ss, err = s.store.Session(ctx, claims.SessionID, now)
			if known.ErrorCode(err) == known.NotFound {
				return known.Errorf(known.Unauthenticated, "this widget session has ended: drop its token and call identify again")
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	p := auth.Project
	if origin, _ := canonicalOrigin(client.Origin); client.Origin != "" && len(p.AllowedOrigins) > 0 && !slices.Contains(p.AllowedOrigins, origin) {
		return nil, known.Errorf(known.Forbidden, "this app does not accept widget calls from origin %s", truncate(client.Origin))
	}
	wc.project, wc.secrets, wc.jwtKeys = p, auth.IdentitySecrets, auth.JwtKeys
	if client.OnProject != nil {
		client.OnProject(p.ID)
	}
	if ss != nil {
		if ss.ProjectID != p.ID {
			return nil, known.Errorf(known.Unauthenticated, "this widget session has ended: drop its token and call identify again")
		}
		ss.Token = client.WidgetToken
		wc.session = ss
	}
	return wc, nil
}

// newVisitor mints a visitor id: random, so that it cannot be guessed or chosen by a client.
func newVisitor() known.VisitorID { return known.VisitorID("v_" + secret.Random(16)) }

// renewAfter is how old a session's expiry may grow before a call renews it: renewing on
// every call would be a write per call for nothing.
const renewAfter = 24 * time.Hour

// renew saves the session a call ends with and signs its token: a new session (ss nil: a new
// anonymous visitor) is inserted; a changed one, or one renewed less than renewAfter ago, is
// updated; an unchanged one is not written at all. The rest of the request acts for it.
func (s *Service) renew(ctx context.Context, wc *widgetCall, ss *known.Session) (*known.Session, error) {
	if ss == nil {
		ss = &known.Session{ProjectID: wc.project.ID, VisitorID: newVisitor(), Level: known.LevelAnonymous}
	}
	if err := s.saveSession(ctx, wc, ss); err != nil {
		return nil, err
	}
	return s.signed(ctx, wc, ss), nil
}

// saveSession is renew's write: it inserts ss when it has no id yet (and gives it one), and
// updates it when it changed or is due for renewal.
func (s *Service) saveSession(ctx context.Context, wc *widgetCall, ss *known.Session) error {
	now := wc.now
	var err error
	switch old := wc.session; {
	case ss.ID == "":
		ss.ID, ss.CreatedAt, ss.ExpiresAt = secret.Random(18), now, now.Add(SessionTTL)
		err = s.store.InsertSession(ctx, ss)
	case old == nil || old.ID != ss.ID || !sameSession(old, ss) || ss.ExpiresAt.Sub(now) < SessionTTL-renewAfter:
		ss.ExpiresAt = now.Add(SessionTTL)
		err = s.store.UpdateSession(ctx, ss)
		if known.ErrorCode(err) == known.NotFound {
			err = known.Errorf(known.Unauthenticated, "this widget session has ended: drop its token and call identify again")
		}
	}
	return err
}

// signed signs the token of ss, which is saved, and makes it the one the rest of the request
// acts for.
func (s *Service) signed(ctx context.Context, wc *widgetCall, ss *known.Session) *known.Session {
	c := session.Claims{SessionID: ss.ID, ProjectID: string(ss.ProjectID), VisitorID: string(ss.VisitorID),
		Level: string(ss.Level), IssuedAt: wc.now.Unix(), ExpiresAt: ss.ExpiresAt.Unix()}
	if ss.UserID != nil {
		c.UserID = string(*ss.UserID)
	}
	if ss.Method != nil {
		c.Method = string(*ss.Method)
	}
	ss.Token = s.signer.Sign(c)
	remember(ctx, wc, ss)
	return ss
}

func sameSession(a, b *known.Session) bool {
	return a.Level == b.Level && ptrEq(a.Method, b.Method) && ptrEq(a.UserID, b.UserID)
}

func ptrEq[T comparable](a, b *T) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// sessionUser returns the user a widget session acts for (identity.Decide with a claim that
// names no identity), making an anonymous record for its visitor when it has none and create
// is set: a visitor's properties, events and conversations need a record to belong to. A
// session that is not verified may not act for a verified user (VERIFICATION_REQUIRED).
func (s *Service) sessionUser(ctx context.Context, wc *widgetCall, create bool) (*known.User, error) {
	ss := wc.session
	for range maxAttempts {
		u, err := s.currentUser(ctx, ss.ProjectID, ss)
		if err != nil {
			return nil, err
		}
		if u != nil || !create {
			return u, identity.MayActFor(ss, u)
		}
		if ss.UserID != nil {
			return nil, known.Errorf(known.Unauthenticated, "the user of this widget session was deleted: drop its token and call identify again")
		}
		u = &known.User{ID: store.AnonymousUserID(ss.ProjectID, ss.VisitorID), ProjectID: ss.ProjectID,
			VisitorIDs: []known.VisitorID{ss.VisitorID}, Metadata: map[string]any{}, CreatedAt: wc.now, UpdatedAt: wc.now, LastSeenAt: &wc.now}
		err = s.store.InsertUser(ctx, u)
		if known.ErrorCode(err) == known.AlreadyExists {
			continue // made by a concurrent call of the same visitor: read it
		}
		return u, err
	}
	return nil, known.Errorf(known.Internal, "visitor record kept changing")
}

// readsThroughUser reports whether session ss still may read conversation c, which
// identity.MayRead allowed. A conversation of the session's own visitor, yes; one it reads
// through its user (any of the user's conversations, which MayRead grants a verified session
// of that user), only while the user still holds a proven identity: the session's level was
// set when it was proven, and a claimant must never read a user's conversations through an
// identity that user has proven (API.md §3). No path removes a user's last proven identity
// today; this check keeps the rule should one ever do. The user is read once per request
// (requestUser), however many conversations the request reads.
func (s *Service) readsThroughUser(ctx context.Context, ss *known.Session, c *known.Conversation) (bool, error) {
	if c.VisitorID == ss.VisitorID {
		return true, nil
	}
	u, err := s.requestUser(ctx, ss)
	if err != nil {
		return false, err
	}
	return stillProven(ss, u), nil
}

// stillProven reports whether u, the user of session ss as just read, is still the session's
// user and holds a proven identity.
func stillProven(ss *known.Session, u *known.User) bool {
	return u != nil && ss.UserID != nil && u.ID == *ss.UserID && u.Verified
}

// requestUser is currentUser for session ss, read once per request and session: the
// request's fields share it (known.Memo).
func (s *Service) requestUser(ctx context.Context, ss *known.Session) (*known.User, error) {
	m := known.ClientFromContext(ctx).Memo
	if m == nil {
		return s.currentUser(ctx, ss.ProjectID, ss)
	}
	key := "sessionUser " + ss.ID
	if ss.UserID != nil {
		key += " " + string(*ss.UserID)
	}
	e := m.LoadOrStore(key, &memoUser{}).(*memoUser)
	e.once.Do(func() { e.u, e.err = s.currentUser(ctx, ss.ProjectID, ss) })
	return e.u, e.err
}

// memoUser is a session's user as requestUser read it.
type memoUser struct {
	once sync.Once
	u    *known.User
	err  error
}

// writeSessionUser applies a metadata change (and what else up carries) to the session's user,
// made when it has none: within the limit of identity.MaxMetadataKeys, checked against the
// user as written (a conditional write that starts over when another call changed the user
// in between), so that concurrent calls never leave more keys than the limit.
func (s *Service) writeSessionUser(ctx context.Context, wc *widgetCall, field []string, set map[string]any, unset []string, up store.UserUpdate) (*known.User, error) {
	u, err := s.sessionUser(ctx, wc, true)
	if err != nil {
		return nil, err
	}
	up.Metadata, up.MetadataUnset = set, unset
	return s.store.UpdateUserChecked(ctx, u.ProjectID, u.ID, func(u *known.User) (store.UserUpdate, error) {
		_, err := identity.Decide(identity.Claim{MetaSet: set, MetaUnset: unset, MetaField: field},
			identity.Facts{Session: wc.session, Current: u}, wc.now)
		return up, err
	})
}

// ResetSession is logout (API.md §3): the session's token stops working, and the returned
// session is a new anonymous visitor that sees nothing of the old one.
func (s *Service) ResetSession(ctx context.Context) (*known.Session, error) {
	wc, err := s.widget(ctx, nil, true)
	if err != nil {
		return nil, err
	}
	if err := s.store.RevokeSession(ctx, wc.session.ID, wc.now); err != nil {
		return nil, err
	}
	return s.renew(ctx, wc, nil)
}

// Session returns the caller's widget session (UNAUTHENTICATED without a live token).
func (s *Service) Session(ctx context.Context) (*known.Session, error) {
	wc, err := s.widget(ctx, nil, true)
	if err != nil {
		return nil, err
	}
	return wc.session, nil
}

// SweepExpired deletes what expired before now: widget sessions, jti records and
// identification tokens.
func (s *Service) SweepExpired(ctx context.Context) (int64, error) {
	return s.store.DeleteExpired(ctx, s.clock())
}

// splitName derives first and last names from a display name: "Jane van Doe" is Jane and
// "van Doe".
func splitName(name string) (first, last *string) {
	f, l, ok := strings.Cut(strings.TrimSpace(name), " ")
	first = &f
	if ok {
		l = strings.TrimSpace(l)
		last = &l
	}
	return first, last
}
