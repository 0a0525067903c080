package service

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/secret"
	"github.com/knownhq/known/session"
	"github.com/knownhq/known/store"
)

// SessionTTL is how long a widget session lives after its last identify.
const SessionTTL = 30 * 24 * time.Hour

// widgetCall is a widget operation's caller: its project and, after the first call, its
// session.
type widgetCall struct {
	project *known.Project
	session *known.Session // nil before the first identify
	now     time.Time
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
	p, err := s.store.Project(ctx, known.ProjectID(project))
	if known.ErrorCode(err) == known.NotFound {
		return nil, &known.Error{Code: known.NotFound, Message: "no app with this appId", Field: path("input", "appId")}
	}
	if err != nil {
		return nil, err
	}
	if origin, _ := canonicalOrigin(client.Origin); client.Origin != "" && len(p.AllowedOrigins) > 0 && !slices.Contains(p.AllowedOrigins, origin) {
		return nil, known.Errorf(known.Forbidden, "this app does not accept widget calls from origin %s", truncate(client.Origin))
	}
	wc.project = p
	if client.OnProject != nil {
		client.OnProject(p.ID)
	}
	if claims.SessionID != "" {
		ss, err := s.store.Session(ctx, claims.SessionID, now)
		if known.ErrorCode(err) == known.NotFound || (err == nil && ss.ProjectID != p.ID) {
			return nil, known.Errorf(known.Unauthenticated, "this widget session has ended: drop its token and call identify again")
		}
		if err != nil {
			return nil, err
		}
		ss.Token = client.WidgetToken
		wc.session = ss
	}
	return wc, nil
}

// newVisitor mints a visitor id: random, so that it cannot be guessed or chosen by a client.
func newVisitor() known.VisitorID { return known.VisitorID("v_" + secret.Random(16)) }

// issue saves the session (new, or renewed for another SessionTTL) and signs its token.
func (s *Service) issue(ctx context.Context, ss *known.Session, now time.Time) (*known.Session, error) {
	if ss.ID == "" {
		ss.ID = secret.Random(18)
		ss.CreatedAt = now
	}
	ss.ExpiresAt = now.Add(SessionTTL)
	if err := s.store.SaveSession(ctx, ss); err != nil {
		return nil, err
	}
	c := session.Claims{SessionID: ss.ID, ProjectID: string(ss.ProjectID), VisitorID: string(ss.VisitorID),
		Level: string(ss.Level), IssuedAt: now.Unix(), ExpiresAt: ss.ExpiresAt.Unix()}
	if ss.UserID != nil {
		c.UserID = string(*ss.UserID)
	}
	if ss.Method != nil {
		c.Method = string(*ss.Method)
	}
	ss.Token = s.signer.Sign(c)
	return ss, nil
}

// visitorUser returns the user record of a visitor, or nil when the visitor has none yet.
func (s *Service) visitorUser(ctx context.Context, p known.ProjectID, v known.VisitorID) (*known.User, error) {
	return s.visitorUserOr(ctx, p, v, nil)
}

// visitorUserOr is visitorUser that does not read the user again when it is known already.
func (s *Service) visitorUserOr(ctx context.Context, p known.ProjectID, v known.VisitorID, have *known.User) (*known.User, error) {
	owner, err := s.store.KeyOwner(ctx, p, store.IdentityKey{Kind: store.KeyVisitor, Value: string(v)})
	if known.ErrorCode(err) == known.NotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if have != nil && string(have.ID) == owner {
		return have, nil // a returning user's visitor: the match already read them
	}
	u, err := s.store.User(ctx, p, known.UserID(owner))
	if known.ErrorCode(err) == known.NotFound {
		return nil, nil // claimed just now by a user still being written, or left by a crash
	}
	return u, err
}

// sessionUser returns the user a widget session acts for, making an anonymous user record for
// its visitor when it has none and create is set (a visitor's properties, events and
// conversations need a record to belong to). A session that is not verified may not act for
// a verified user (VERIFICATION_REQUIRED).
func (s *Service) sessionUser(ctx context.Context, wc *widgetCall, create bool) (*known.User, error) {
	ss := wc.session
	for attempt := range maxAttempts {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return nil, err
			}
		}
		u, err := s.visitorUser(ctx, ss.ProjectID, ss.VisitorID)
		if err != nil {
			return nil, err
		}
		if u != nil {
			if u.Verified && !ss.Verified() {
				return nil, known.Errorf(known.VerificationRequired, "this user is verified: identify with a proof to act for them")
			}
			return u, nil
		}
		if !create {
			return nil, nil
		}
		u = &known.User{ID: known.UserID(store.NewID()), ProjectID: ss.ProjectID, VisitorIDs: []known.VisitorID{ss.VisitorID},
			Metadata: map[string]any{}, CreatedAt: wc.now, UpdatedAt: wc.now, LastSeenAt: &wc.now}
		err = s.store.CreateUser(ctx, u, []store.IdentityKey{{Kind: store.KeyVisitor, Value: string(ss.VisitorID)}})
		var taken *store.KeyTakenError
		if errors.As(err, &taken) {
			continue // made by a concurrent call of the same visitor: read it
		}
		return u, err
	}
	return nil, known.Errorf(known.Internal, "visitor record kept changing")
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
	ss, err := s.issue(ctx, &known.Session{ProjectID: wc.project.ID, VisitorID: newVisitor(), Level: known.LevelAnonymous}, wc.now)
	if err == nil {
		remember(ctx, wc, ss)
	}
	return ss, err
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
