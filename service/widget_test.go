package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/ratelimit"
	"github.com/knownhq/known/service"
	"github.com/knownhq/known/store"
)

// Helpers for widget calls: a widget context is what the HTTP middleware makes of a browser's
// request (no secret key; the session token in X-Widget-Session).

const widgetIP = "203.0.113.7"

// widgetCtx is a widget request carrying token ("" before the first identify).
func widgetCtx(token string) context.Context {
	return clientCtx(known.Client{IP: widgetIP, WidgetToken: token})
}

func clientCtx(c known.Client) context.Context {
	return known.NewContextWithClient(context.Background(), c)
}

func (e *env) appID() string { return string(e.project.Project.ID) }

// identifyErr calls Identify with token, filling in the project's appId when in has none.
func identifyErr(e *env, token string, in service.IdentifyInput) (*known.Session, error) {
	if in.AppID == "" {
		in.AppID = e.appID()
	}
	return e.svc.Identify(widgetCtx(token), in)
}

func identify(t *testing.T, e *env, token string, in service.IdentifyInput) *known.Session {
	t.Helper()
	ss, err := identifyErr(e, token, in)
	if err != nil {
		t.Fatalf("Identify: %v", err)
	}
	return ss
}

func setUserErr(e *env, token string, in service.SetUserInput) (*known.Session, error) {
	if in.AppID == "" {
		in.AppID = e.appID()
	}
	return e.svc.SetUser(widgetCtx(token), in)
}

func setUser(t *testing.T, e *env, token string, in service.SetUserInput) *known.Session {
	t.Helper()
	ss, err := setUserErr(e, token, in)
	if err != nil {
		t.Fatalf("SetUser: %v", err)
	}
	return ss
}

// anonymous starts a fresh anonymous widget session (no user record yet).
func anonymous(t *testing.T, e *env) *known.Session {
	t.Helper()
	return identify(t, e, "", service.IdentifyInput{})
}

// claimed starts a widget session claimed as the user with externalId ext.
func claimed(t *testing.T, e *env, ext string, in service.IdentifyInput) *known.Session {
	t.Helper()
	in.UserID = &ext
	return identify(t, e, "", in)
}

// sessionOf reads a token's live session, as the widget's session query does.
func sessionOf(t *testing.T, e *env, token string) *known.Session {
	t.Helper()
	ss, err := e.svc.Session(widgetCtx(token))
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	return ss
}

// readUser reads a user through the dashboard.
func readUser(t *testing.T, e *env, id known.UserID) *known.User {
	t.Helper()
	u, err := e.svc.User(e.ctx, id)
	if err != nil {
		t.Fatalf("User %s: %v", id, err)
	}
	return u
}

// userByExt reads the one user with externalId ext through the dashboard (nil when none).
func userByExt(t *testing.T, e *env, ext string) *known.User {
	t.Helper()
	us, _, err := e.svc.Users(e.ctx, service.UserFilter{ExternalID: &ext}, known.Page{First: 10})
	if err != nil {
		t.Fatal(err)
	}
	switch len(us) {
	case 0:
		return nil
	case 1:
		return us[0]
	}
	t.Fatalf("%d users with externalId %q", len(us), ext)
	return nil
}

// verify makes a user verified, as a proof will (identity verification comes later).
func verify(t *testing.T, e *env, id known.UserID) {
	t.Helper()
	now, method := time.Now().UTC(), known.VerifiedByHMAC
	u, err := e.store.User(context.Background(), e.project.Project.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	ids := slices.Clone(u.Identities)
	for i := range ids {
		ids[i].Proven, ids[i].Method, ids[i].At = true, &method, now
	}
	if _, err := e.store.UpdateUser(context.Background(), id, store.UserUpdate{Identities: &ids, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
}

// sessionConversations lists the conversations a widget token's session may read.
func sessionConversations(t *testing.T, e *env, token string) []known.ConversationID {
	t.Helper()
	cs, _, _, _, err := e.svc.SessionConversations(widgetCtx(token), sessionOf(t, e, token), known.Page{First: 100}, service.SessionByID)
	if err != nil {
		t.Fatal(err)
	}
	var ids []known.ConversationID
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	return ids
}

func startConversation(t *testing.T, e *env, token, body string) *known.Conversation {
	t.Helper()
	c, err := e.svc.StartConversation(widgetCtx(token), nil, body)
	if err != nil {
		t.Fatalf("StartConversation: %v", err)
	}
	return c
}

// state is everything of the project a widget call could change, as text: document counts,
// and every user, company and organization as the dashboard reads them.
func state(t *testing.T, e *env) string {
	t.Helper()
	page := known.Page{First: 100}
	us, _, err := e.svc.Users(e.ctx, service.UserFilter{}, page)
	if err != nil {
		t.Fatal(err)
	}
	cs, _, err := e.svc.Companies(e.ctx, page)
	if err != nil {
		t.Fatal(err)
	}
	os, _, err := e.svc.Organizations(e.ctx, page)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]any{"counts": e.counts(t, e.project.Project.ID), "users": us, "companies": cs, "organizations": os})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rejected is a call that must fail with code on field and change nothing.
type rejected struct {
	name  string
	call  func() error
	code  known.Code
	field []string
}

// runRejected runs each case as a subtest named for its rule: the call fails with the code on
// the field, and the project's state (counts, users, companies, organizations) is unchanged.
func runRejected(t *testing.T, e *env, cases []rejected) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := state(t, e)
			err := tc.call()
			wantCode(t, err, tc.code, tc.field...)
			if after := state(t, e); after != before {
				t.Fatalf("a rejected input changed the store:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func TestWidgetTokens(t *testing.T) {
	e := newEnv(t)
	ss := claimed(t, e, "tok-1", service.IdentifyInput{})

	t.Run("TokenWorks", func(t *testing.T) {
		got := sessionOf(t, e, ss.Token)
		if got.ID != ss.ID || got.VisitorID != ss.VisitorID || got.Level != known.LevelClaimed {
			t.Fatalf("session = %+v, want %+v", got, ss)
		}
	})
	t.Run("ForgedTokenUnauthenticated", func(t *testing.T) {
		other := service.New(e.store, service.Options{Secret: []byte("another-secret-another-secret-0000")})
		forged, err := other.Identify(widgetCtx(""), service.IdentifyInput{AppID: e.appID()})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.Session(widgetCtx(forged.Token))
		wantCode(t, err, known.Unauthenticated)
		_, err = e.svc.SetProperties(widgetCtx(forged.Token), nil, map[string]any{"x": 1})
		wantCode(t, err, known.Unauthenticated)
	})
	t.Run("GarbageTokenUnauthenticated", func(t *testing.T) {
		_, err := e.svc.Session(widgetCtx("ks1.not-a-token"))
		wantCode(t, err, known.Unauthenticated)
		_, err = identifyErr(e, "garbage", service.IdentifyInput{})
		wantCode(t, err, known.Unauthenticated)
	})
	t.Run("ExpiredTokenUnauthenticated", func(t *testing.T) {
		later := service.New(e.store, service.Options{Secret: testSecret, Now: func() time.Time { return time.Now().Add(31 * 24 * time.Hour) }})
		_, err := later.Session(widgetCtx(ss.Token))
		wantCode(t, err, known.Unauthenticated)
		_, err = later.Identify(widgetCtx(ss.Token), service.IdentifyInput{AppID: e.appID()})
		wantCode(t, err, known.Unauthenticated)
	})
	t.Run("ResetSessionEndsOldToken", func(t *testing.T) {
		s := claimed(t, e, "tok-2", service.IdentifyInput{})
		fresh, err := e.svc.ResetSession(widgetCtx(s.Token))
		if err != nil {
			t.Fatal(err)
		}
		if !fresh.Anonymous() || fresh.UserID != nil || fresh.VisitorID == s.VisitorID || fresh.ID == s.ID {
			t.Fatalf("reset gave %+v, want a new anonymous visitor", fresh)
		}
		_, err = e.svc.Session(widgetCtx(s.Token))
		wantCode(t, err, known.Unauthenticated)
		_, err = e.svc.StartConversation(widgetCtx(s.Token), nil, "hi")
		wantCode(t, err, known.Unauthenticated)
		_, err = e.svc.ResetSession(widgetCtx(s.Token))
		wantCode(t, err, known.Unauthenticated)
		sessionOf(t, e, fresh.Token)
	})
	t.Run("OperationWithoutTokenUnauthenticated", func(t *testing.T) {
		_, err := e.svc.StartConversation(widgetCtx(""), str(e.appID()), "hi")
		wantCode(t, err, known.Unauthenticated)
		_, err = e.svc.Session(widgetCtx(""))
		wantCode(t, err, known.Unauthenticated)
	})
	t.Run("AppIDOfAnotherProjectForbidden", func(t *testing.T) {
		other := e.newProject(t, "Other")
		_, err := identifyErr(e, ss.Token, service.IdentifyInput{AppID: string(other.Project.ID)})
		wantCode(t, err, known.Forbidden, "input", "appId")
		_, err = e.svc.SetProperties(widgetCtx(ss.Token), str(string(other.Project.ID)), map[string]any{"x": 1})
		wantCode(t, err, known.Forbidden, "input", "appId")
	})
	t.Run("UnknownAppIDNotFound", func(t *testing.T) {
		_, err := identifyErr(e, "", service.IdentifyInput{AppID: "app_nope"})
		wantCode(t, err, known.NotFound, "input", "appId")
		_, err = setUserErr(e, "", service.SetUserInput{AppID: "app_nope", ID: str("1")})
		wantCode(t, err, known.NotFound, "input", "appId")
	})
	t.Run("VisitorIDWithoutTokenNotAdopted", func(t *testing.T) {
		got := identify(t, e, "", service.IdentifyInput{VisitorID: str(string(ss.VisitorID))})
		if got.VisitorID == ss.VisitorID {
			t.Fatalf("a visitor id sent without its token was adopted: %s", got.VisitorID)
		}
	})
}

func TestAllowedOrigins(t *testing.T) {
	e := newEnv(t)
	if _, err := e.svc.UpdateProject(e.ctx, service.UpdateProjectInput{AllowedOrigins: []string{"https://Shop.Example:443"}}); err != nil {
		t.Fatal(err)
	}
	call := func(origin string) error {
		_, err := e.svc.Identify(clientCtx(known.Client{IP: widgetIP, Origin: origin}), service.IdentifyInput{AppID: e.appID()})
		return err
	}
	t.Run("OtherOriginForbidden", func(t *testing.T) {
		wantCode(t, call("https://evil.example"), known.Forbidden)
		wantCode(t, call("https://shop.example.evil.example"), known.Forbidden)
		wantCode(t, call("http://shop.example"), known.Forbidden)
	})
	t.Run("ListedOriginWorks", func(t *testing.T) {
		if err := call("https://shop.example"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("NoOriginWorks", func(t *testing.T) {
		if err := call(""); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("LaterCallsCheckedToo", func(t *testing.T) {
		ss := anonymous(t, e)
		_, err := e.svc.SetProperties(clientCtx(known.Client{IP: widgetIP, Origin: "https://evil.example", WidgetToken: ss.Token}), nil, map[string]any{"a": 1})
		wantCode(t, err, known.Forbidden)
	})
	for _, c := range [][2]string{{"NoScheme", "shop.example"}, {"WithPath", "https://x/path"}, {"NotHTTP", "ftp://shop.example"}, {"WithUserInfo", "https://user@shop.example"}} {
		bad := c[1]
		t.Run("InvalidOrigin"+c[0], func(t *testing.T) {
			before, err := e.svc.Project(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.svc.UpdateProject(e.ctx, service.UpdateProjectInput{AllowedOrigins: []string{"https://ok.example", bad}})
			wantCode(t, err, known.Invalid, "input", "allowedOrigins", "1")
			after, err := e.svc.Project(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(after.AllowedOrigins) != fmt.Sprint(before.AllowedOrigins) {
				t.Fatalf("origins changed to %v", after.AllowedOrigins)
			}
		})
	}
	t.Run("TooManyOriginsLimitExceeded", func(t *testing.T) {
		var many []string
		for i := range service.MaxAllowedOrigins + 1 {
			many = append(many, fmt.Sprintf("https://s%d.example", i))
		}
		_, err := e.svc.UpdateProject(e.ctx, service.UpdateProjectInput{AllowedOrigins: many})
		wantCode(t, err, known.LimitExceeded, "input", "allowedOrigins")
		if p, err := e.svc.Project(e.ctx); err != nil || fmt.Sprint(p.AllowedOrigins) != "[https://shop.example]" {
			t.Fatalf("origins = %v, %v", p.AllowedOrigins, err)
		}
	})
	t.Run("BlankProjectNameInvalid", func(t *testing.T) {
		_, err := e.svc.UpdateProject(e.ctx, service.UpdateProjectInput{Name: str(" ")})
		wantCode(t, err, known.Invalid, "input", "name")
		if p, err := e.svc.Project(e.ctx); err != nil || p.Name != "Acme" {
			t.Fatalf("project = %+v, %v", p, err)
		}
	})
	t.Run("EmptyListAllowsAny", func(t *testing.T) {
		if _, err := e.svc.UpdateProject(e.ctx, service.UpdateProjectInput{AllowedOrigins: []string{}}); err != nil {
			t.Fatal(err)
		}
		if err := call("https://evil.example"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestWidgetRateLimit(t *testing.T) {
	e := newEnv(t)
	svc := service.New(e.store, service.Options{Secret: testSecret, WidgetLimiter: ratelimit.New(1)})
	call := func(ip string) error {
		_, err := svc.Identify(clientCtx(known.Client{IP: ip}), service.IdentifyInput{AppID: e.appID()})
		return err
	}
	t.Run("BurstOfTwoAllowed", func(t *testing.T) {
		for i := range 2 {
			if err := call("198.51.100.1"); err != nil {
				t.Fatalf("call %d: %v", i+1, err)
			}
		}
	})
	t.Run("ThirdCallRateLimited", func(t *testing.T) {
		wantCode(t, call("198.51.100.1"), known.RateLimited)
	})
	t.Run("AnotherIPIsFine", func(t *testing.T) {
		if err := call("198.51.100.2"); err != nil {
			t.Fatal(err)
		}
	})
}
