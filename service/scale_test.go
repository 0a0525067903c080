package service_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/knownhq/known"
	"github.com/knownhq/known/service"
	"github.com/knownhq/known/store/storetest"
)

// TestIdentifyPathsReadNoWholeCollection runs the identify paths a widget takes every day on
// the embedded store with the command auditor (storetest.Auditor): none of their commands may
// be one that FerretDB serves by reading and decoding the whole collection, since such a
// command costs in proportion to the project's users (issue 10). It runs on an embedded store
// of its own, whatever KNOWN_TEST_MONGODB_URI says: MongoDB serves every filter from an index.
func TestIdentifyPathsReadNoWholeCollection(t *testing.T) {
	e := newScaleEnv(t, 50)
	var returningToken, anonToken string
	paths := []struct {
		name string
		run  func(t *testing.T) error
		// allowed are the scanning commands the path may still send, each with why.
		allowed []string
	}{
		{"NewUserWithNewCompany", func(t *testing.T) error {
			_, err := e.svc.Identify(widgetCtx(""), service.IdentifyInput{AppID: e.appID(), UserID: str("fresh1"),
				Email: str("fresh1@example.com"), Name: str("Fresh One"),
				Company: &service.CompanyInput{ID: "freshco1", Name: str("Fresh Co")}})
			return err
		}, nil},
		{"NewUserWithNewCompanyAndMetadata", func(t *testing.T) error {
			_, err := e.svc.Identify(widgetCtx(""), service.IdentifyInput{AppID: e.appID(), UserID: str("fresh2"),
				Email: str("fresh2@example.com"), Metadata: map[string]any{"plan": "pro"},
				Company: &service.CompanyInput{ID: "freshco2", Name: str("Fresh Co 2"), Metadata: map[string]any{"seats": 5}}})
			return err
		}, nil},
		{"NewUserWithCompanyStageIfEmpty", func(t *testing.T) error {
			_, err := e.svc.Identify(widgetCtx(""), service.IdentifyInput{AppID: e.appID(), UserID: str("fresh3"),
				Company: &service.CompanyInput{ID: "c3", Stage: str("trial")}, StageMode: ptr(known.StageIfEmpty)})
			return err
		}, nil},
		{"ReturningUserFromANewBrowser", func(t *testing.T) error {
			ss, err := e.svc.Identify(widgetCtx(""), service.IdentifyInput{AppID: e.appID(), UserID: str("u7")})
			if err == nil {
				returningToken = ss.Token
			}
			return err
		}, nil},
		{"ReturningUserWithItsSession", func(t *testing.T) error {
			_, err := e.svc.Identify(widgetCtx(returningToken), service.IdentifyInput{AppID: e.appID(), UserID: str("u7"),
				Name: str("Seven Renamed"), Metadata: map[string]any{"plan": "team"}})
			return err
		}, nil},
		{"ReturningUserWithItsCompany", func(t *testing.T) error {
			_, err := e.svc.Identify(widgetCtx(""), service.IdentifyInput{AppID: e.appID(), UserID: str("u8"),
				Company: &service.CompanyInput{ID: "c8", Name: str("Company 8")}})
			return err
		}, nil},
		{"ReturningUserWithANewEmail", func(t *testing.T) error {
			// The new email's key moves from the call's candidate to the user; the old one is
			// released.
			_, err := e.svc.Identify(widgetCtx(""), service.IdentifyInput{AppID: e.appID(), UserID: str("u9"),
				Email: str("u9.new@example.com")})
			return err
		}, nil},
		{"AnonymousVisitorWithAConversationLogsIn", func(t *testing.T) error {
			anonToken = anonymous(t, e.env).Token
			startConversation(t, e.env, anonToken, "before logging in")
			e.store.WaitPublished()
			e.audit.Reset()
			_, err := e.svc.Identify(widgetCtx(anonToken), service.IdentifyInput{AppID: e.appID(), UserID: str("u10")})
			return err
		}, []string{
			// The visitor's record merges into the user: its conversations and tracked events
			// are found by their userId, which no _id names (a merge is rare, and must find
			// every one, listed or not). Each conversation then moves by _id (updateIf).
			"find conversations {userId,sort}",
			"update events {userId}",
		}},
	}
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			e.store.WaitPublished()
			e.audit.Reset()
			if err := p.run(t); err != nil {
				t.Fatalf("identify: %v", err)
			}
			cmds := e.audit.Commands()
			var scans []storetest.Command
			for _, c := range cmds {
				if !c.Constant && !slices.Contains(p.allowed, c.String()) {
					scans = append(scans, c)
				}
			}
			if len(scans) > 0 {
				t.Fatalf("commands that read the whole collection on the embedded store:\n%s\nall commands:\n%s",
					storetest.Summary(scans), storetest.Summary(cmds))
			}
			if len(cmds) == 0 {
				t.Fatal("no commands recorded: the auditor is not watching this store")
			}
			for _, a := range p.allowed {
				if !slices.ContainsFunc(cmds, func(c storetest.Command) bool { return c.String() == a }) {
					t.Errorf("allowed %q was not sent: the path no longer takes the turn it was allowed for\n%s", a, storetest.Summary(cmds))
				}
			}
			t.Logf("%d commands:\n%s", len(cmds), storetest.Summary(cmds))
		})
	}
}

// TestWidgetOperationsReadNoWholeCollection: the widget's other calls of an identified user
// with its session (seed 002: setProperties, track, setStage, setDeal; a conversation started
// and answered) send no command that reads a whole collection on the embedded store, whose
// cost would grow with the project's data.
func TestWidgetOperationsReadNoWholeCollection(t *testing.T) {
	e := newScaleEnv(t, 50)
	ss, err := e.svc.Identify(widgetCtx(""), service.IdentifyInput{AppID: e.appID(), UserID: str("u3"),
		Company: &service.CompanyInput{ID: "c3", Name: str("Company 3")}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := widgetCtx(ss.Token)
	// And a verified session, whose conversations come from its user's list. The seeded u4 only
	// claimed its id, so the proof makes a user of its own, which starts one conversation.
	proven, err := e.svc.Identify(widgetCtx(""), service.IdentifyInput{AppID: e.appID(), UserID: str("u4"),
		UserHash: str(hashOf(e.project.IdentitySecret, "u4"))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.StartConversation(widgetCtx(proven.Token), nil, "from the verified session"); err != nil {
		t.Fatal(err)
	}
	var conversation known.ConversationID
	ops := []struct {
		name string
		run  func() error
	}{
		{"SetProperties", func() error {
			_, err := e.svc.SetProperties(ctx, nil, map[string]any{"plan": "pro"})
			return err
		}},
		{"Track", func() error {
			_, err := e.svc.Track(ctx, service.TrackInput{Event: "opened-settings", Properties: map[string]any{"tab": "billing"}})
			return err
		}},
		{"SetStage", func() error {
			_, err := e.svc.SetStage(ctx, nil, "trial", nil, nil)
			return err
		}},
		{"SetDeal", func() error {
			_, err := e.svc.SetDeal(ctx, service.SetDealInput{Name: str("Upgrade"), Amount: ptr(120.0), Currency: str("EUR")})
			return err
		}},
		{"StartConversation", func() error {
			c, err := e.svc.StartConversation(ctx, nil, "hello")
			if err == nil {
				conversation = c.ID
			}
			return err
		}},
		{"SendMessage", func() error {
			_, err := e.svc.SendMessage(ctx, nil, conversation, "are you there?")
			return err
		}},
		// session { conversations }, as the widget asks each time a visitor opens it.
		{"SessionConversations", func() error {
			cs, _, _, _, err := e.svc.SessionConversations(ctx, ss, known.Page{First: 20}, service.SessionByID)
			if err == nil && (len(cs) != 1 || cs[0].ID != conversation) {
				err = fmt.Errorf("the session's conversations are %d, want the one it started", len(cs))
			}
			return err
		}},
		{"SessionConversationsVerified", func() error {
			cs, _, list, _, err := e.svc.SessionConversations(widgetCtx(proven.Token), proven, known.Page{First: 20}, service.SessionByID)
			if err == nil && (len(cs) != 1 || list != service.SessionUserList) {
				err = fmt.Errorf("the verified session's conversations are %d from list %v, want the one it started from its user's list", len(cs), list)
			}
			return err
		}},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			e.store.WaitPublished()
			e.audit.Reset()
			if err := op.run(); err != nil {
				t.Fatal(err)
			}
			cmds := e.audit.Commands()
			if len(cmds) == 0 {
				t.Fatal("no commands recorded: the auditor is not watching this store")
			}
			if scans := e.audit.Scans(); len(scans) > 0 {
				t.Fatalf("commands that read the whole collection on the embedded store:\n%s\nall commands:\n%s",
					storetest.Summary(scans), storetest.Summary(cmds))
			}
		})
	}
}
