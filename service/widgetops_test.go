package service_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/service"
)

// companyByExt reads the project's company with the customer's id ext through the dashboard.
func companyByExt(t *testing.T, e *env, ext string) *known.Company {
	t.Helper()
	cs, _, err := e.svc.Companies(e.ctx, known.Page{First: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.ExternalID == ext {
			return c
		}
	}
	t.Fatalf("no company %q", ext)
	return nil
}

// linked gives a user's linked companies (customer ids, in link order) and the active one.
func linked(t *testing.T, e *env, id known.UserID) (exts []string, active string) {
	t.Helper()
	u := readUser(t, e, id)
	cs, err := e.svc.UserCompanies(e.ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		exts = append(exts, c.ExternalID)
	}
	if a, err := e.svc.ActiveCompany(e.ctx, u); err != nil {
		t.Fatal(err)
	} else if a != nil {
		active = a.ExternalID
	}
	return exts, active
}

func opt(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func TestCompanies(t *testing.T) {
	e := newEnv(t)
	ss := claimed(t, e, "cu", service.IdentifyInput{Company: &service.CompanyInput{ID: "acme", Name: str("Acme"), Stage: str("lead"), Metadata: map[string]any{"a": 1}}})
	uid := *ss.UserID
	ctx := widgetCtx(ss.Token)
	ifEmpty, overwrite := known.StageIfEmpty, known.StageOverwrite
	stage := func(t *testing.T, ext, want string) {
		t.Helper()
		if got := opt(companyByExt(t, e, ext).Stage); got != want {
			t.Fatalf("%s stage = %s, want %s", ext, got, want)
		}
	}
	links := func(t *testing.T, wantLinked, wantActive string) {
		t.Helper()
		exts, active := linked(t, e, uid)
		if fmt.Sprint(exts) != wantLinked || active != wantActive {
			t.Fatalf("linked %v, active %q; want %s, %q", exts, active, wantLinked, wantActive)
		}
	}

	t.Run("CompanyIDLinksAndMakesActive", func(t *testing.T) {
		links(t, "[acme]", "acme")
		c := companyByExt(t, e, "acme")
		if opt(c.Name) != "Acme" || opt(c.Stage) != "lead" || fmt.Sprint(c.Metadata) != "map[a:1]" {
			t.Fatalf("company = %+v", c)
		}
	})
	t.Run("CompanyIDsLinkWithoutChangingActive", func(t *testing.T) {
		identify(t, e, ss.Token, service.IdentifyInput{CompanyIDs: []string{"beta", "gamma", "beta"}})
		links(t, "[acme beta gamma]", "acme")
	})
	t.Run("CompanyMetadataMerges", func(t *testing.T) {
		identify(t, e, ss.Token, service.IdentifyInput{Company: &service.CompanyInput{ID: "acme", Metadata: map[string]any{"b": 2}}})
		c := companyByExt(t, e, "acme")
		if fmt.Sprint(c.Metadata) != "map[a:1 b:2]" || opt(c.Name) != "Acme" {
			t.Fatalf("company = %+v, want metadata a and b, name kept", c)
		}
	})
	t.Run("StageOverwritesByDefault", func(t *testing.T) {
		identify(t, e, ss.Token, service.IdentifyInput{Company: &service.CompanyInput{ID: "acme", Stage: str("trial")}})
		stage(t, "acme", "trial")
	})
	t.Run("PerCallIfEmptyKeepsStage", func(t *testing.T) {
		identify(t, e, ss.Token, service.IdentifyInput{Company: &service.CompanyInput{ID: "acme", Stage: str("won")}, StageMode: &ifEmpty})
		stage(t, "acme", "trial")
	})
	t.Run("PerCallIfEmptySetsEmptyStage", func(t *testing.T) {
		if _, err := e.svc.SetStage(ctx, nil, "qualified", str("beta"), &ifEmpty); err != nil {
			t.Fatal(err)
		}
		stage(t, "beta", "qualified")
		links(t, "[acme beta gamma]", "acme")
	})
	t.Run("ProjectDefaultIfEmpty", func(t *testing.T) {
		if _, err := e.svc.UpdateProject(e.ctx, service.UpdateProjectInput{StageMode: &ifEmpty}); err != nil {
			t.Fatal(err)
		}
		identify(t, e, ss.Token, service.IdentifyInput{Company: &service.CompanyInput{ID: "acme", Stage: str("lost")}})
		stage(t, "acme", "trial")
		if _, err := e.svc.SetStage(ctx, nil, "lost", nil, nil); err != nil {
			t.Fatal(err)
		}
		stage(t, "acme", "trial")
		if _, err := e.svc.SetStage(ctx, nil, "negotiation", nil, &overwrite); err != nil {
			t.Fatal(err)
		}
		stage(t, "acme", "negotiation")
		if _, err := e.svc.UpdateProject(e.ctx, service.UpdateProjectInput{StageMode: &overwrite}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("SetStageActsOnActiveCompany", func(t *testing.T) {
		c, err := e.svc.SetStage(ctx, nil, "demo", nil, nil)
		if err != nil || c.ExternalID != "acme" || c.Stage != nil {
			t.Fatalf("SetStage = %+v, %v; want the company's ids only (a widget never reads the record)", c, err)
		}
		stage(t, "acme", "demo")
	})
	t.Run("SetStageActsOnCompanyID", func(t *testing.T) {
		if _, err := e.svc.SetStage(ctx, nil, "g-stage", str("gamma"), nil); err != nil {
			t.Fatal(err)
		}
		stage(t, "gamma", "g-stage")
		stage(t, "acme", "demo")
		links(t, "[acme beta gamma]", "acme")
	})
	t.Run("SetDealChangesOnlyGivenFields", func(t *testing.T) {
		amount := 1000.5
		if _, err := e.svc.SetDeal(ctx, service.SetDealInput{Name: str("Big"), Amount: &amount, Currency: str("usd")}); err != nil {
			t.Fatal(err)
		}
		won := known.DealWon
		c, err := e.svc.SetDeal(ctx, service.SetDealInput{Status: &won})
		if err != nil {
			t.Fatal(err)
		}
		d := companyByExt(t, e, "acme").Deal
		if d == nil || opt(d.Name) != "Big" || d.Amount == nil || *d.Amount != 1000.5 || opt(d.Currency) != "USD" || d.Status == nil || *d.Status != known.DealWon || d.Stage != nil {
			t.Fatalf("deal = %+v", d)
		}
		if c.ExternalID != "acme" {
			t.Fatalf("SetDeal acted on %s", c.ExternalID)
		}
	})
	t.Run("SetDealOnCompanyID", func(t *testing.T) {
		amount := 5.0
		if _, err := e.svc.SetDeal(ctx, service.SetDealInput{CompanyID: str("beta"), Amount: &amount, Stage: str("proposal")}); err != nil {
			t.Fatal(err)
		}
		d := companyByExt(t, e, "beta").Deal
		if d == nil || *d.Amount != 5 || opt(d.Stage) != "proposal" || d.Name != nil {
			t.Fatalf("beta deal = %+v", d)
		}
		if a := companyByExt(t, e, "acme").Deal; *a.Amount != 1000.5 {
			t.Fatalf("acme deal changed: %+v", a)
		}
	})
	t.Run("CompanyIDChangesActive", func(t *testing.T) {
		identify(t, e, ss.Token, service.IdentifyInput{Company: &service.CompanyInput{ID: "gamma"}})
		links(t, "[acme beta gamma]", "gamma")
		if c, err := e.svc.SetStage(ctx, nil, "g2", nil, nil); err != nil || c.ExternalID != "gamma" {
			t.Fatalf("SetStage = %+v, %v", c, err)
		}
	})

	// Another user's company, a user with no company, and an anonymous visitor.
	claimed(t, e, "other", service.IdentifyInput{Company: &service.CompanyInput{ID: "other-co"}})
	plain := claimed(t, e, "plain", service.IdentifyInput{})
	anon := anonymous(t, e)
	amount, negative := 1.0, -1.0
	runRejected(t, e, []rejected{
		{"SetStageUnlinkedCompanyID", func() error { _, err := e.svc.SetStage(ctx, nil, "x", str("other-co"), nil); return err },
			known.CompanyRequired, []string{"input", "companyId"}},
		{"SetStageUnknownCompanyID", func() error { _, err := e.svc.SetStage(ctx, nil, "x", str("nope"), nil); return err },
			known.CompanyRequired, []string{"input", "companyId"}},
		{"SetDealUnlinkedCompanyID", func() error {
			_, err := e.svc.SetDeal(ctx, service.SetDealInput{CompanyID: str("other-co"), Amount: &amount})
			return err
		}, known.CompanyRequired, []string{"input", "companyId"}},
		{"TrackUnlinkedCompanyID", func() error {
			_, err := e.svc.Track(ctx, service.TrackInput{Event: "x", CompanyID: str("other-co")})
			return err
		}, known.CompanyRequired, []string{"input", "companyId"}},
		{"SetStageUserWithoutCompany", func() error { _, err := e.svc.SetStage(widgetCtx(plain.Token), nil, "x", nil, nil); return err },
			known.CompanyRequired, []string{"input", "companyId"}},
		{"SetDealUserWithoutCompany", func() error {
			_, err := e.svc.SetDeal(widgetCtx(plain.Token), service.SetDealInput{Amount: &amount})
			return err
		}, known.CompanyRequired, []string{"input", "companyId"}},
		{"SetStageAnonymousVisitor", func() error { _, err := e.svc.SetStage(widgetCtx(anon.Token), nil, "x", nil, nil); return err },
			known.CompanyRequired, []string{"input", "companyId"}},
		{"CurrencyNotISO", func() error { _, err := e.svc.SetDeal(ctx, service.SetDealInput{Currency: str("US")}); return err },
			known.Invalid, []string{"input", "currency"}},
		{"CurrencyNotLetters", func() error { _, err := e.svc.SetDeal(ctx, service.SetDealInput{Currency: str("U5D")}); return err },
			known.Invalid, []string{"input", "currency"}},
		{"NegativeAmount", func() error { _, err := e.svc.SetDeal(ctx, service.SetDealInput{Amount: &negative}); return err },
			known.Invalid, []string{"input", "amount"}},
		{"BlankStage", func() error { _, err := e.svc.SetStage(ctx, nil, " ", nil, nil); return err },
			known.Invalid, []string{"input", "stage"}},
		{"BlankCompanyID", func() error {
			_, err := identifyErr(e, ss.Token, service.IdentifyInput{Company: &service.CompanyInput{ID: ""}})
			return err
		}, known.Invalid, []string{"input", "company", "id"}},
		{"BlankCompanyIDsEntry", func() error {
			_, err := identifyErr(e, ss.Token, service.IdentifyInput{CompanyIDs: []string{"acme", " "}})
			return err
		}, known.Invalid, []string{"input", "companyIds", "1"}},
	})
}

func TestSetProperties(t *testing.T) {
	e := newEnv(t)
	ss := claimed(t, e, "p", service.IdentifyInput{})
	uid := *ss.UserID
	ctx := widgetCtx(ss.Token)
	set := func(t *testing.T, props map[string]any) {
		t.Helper()
		if _, err := e.svc.SetProperties(ctx, nil, props); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("Merges", func(t *testing.T) {
		set(t, map[string]any{"a": 1, "b": "x"})
		set(t, map[string]any{"c": true})
		if got := jsonText(t, readUser(t, e, uid).Metadata); got != `{"a":1,"b":"x","c":true}` {
			t.Fatalf("metadata = %s", got)
		}
	})
	t.Run("NullRemovesKey", func(t *testing.T) {
		set(t, map[string]any{"a": nil, "d": map[string]any{"e": []any{1, "two"}}})
		if got := jsonText(t, readUser(t, e, uid).Metadata); got != `{"b":"x","c":true,"d":{"e":[1,"two"]}}` {
			t.Fatalf("metadata = %s", got)
		}
	})
	t.Run("FiftyKeysFine", func(t *testing.T) {
		more := map[string]any{}
		for i := range 46 {
			more[fmt.Sprint("k", i)] = i
		}
		set(t, more)
		if n := len(readUser(t, e, uid).Metadata); n != 49 {
			t.Fatalf("%d keys, want 49", n)
		}
		set(t, map[string]any{"k46": 46})
		set(t, map[string]any{"b": "y"})            // replacing a key at the limit
		set(t, map[string]any{"b": nil, "bb": "z"}) // removing one and adding one
		if n := len(readUser(t, e, uid).Metadata); n != 50 {
			t.Fatalf("%d keys, want 50", n)
		}
	})
	fiftyOne := map[string]any{}
	for i := range 51 {
		fiftyOne[fmt.Sprint("n", i)] = i
	}
	runRejected(t, e, []rejected{
		{"Over50ResultingKeys", func() error { _, err := e.svc.SetProperties(ctx, nil, map[string]any{"one-more": 1}); return err },
			known.LimitExceeded, []string{"input", "properties"}},
		{"Over50KeysSent", func() error { _, err := e.svc.SetProperties(ctx, nil, fiftyOne); return err },
			known.LimitExceeded, []string{"input", "properties"}},
	})
	t.Run("AnonymousVisitorGetsRecord", func(t *testing.T) {
		anon := anonymous(t, e)
		if _, err := e.svc.SetProperties(widgetCtx(anon.Token), nil, map[string]any{"lang": "de"}); err != nil {
			t.Fatal(err)
		}
		yes := true
		us, _, err := e.svc.Users(e.ctx, service.UserFilter{Anonymous: &yes}, known.Page{First: 10})
		if err != nil || len(us) != 1 || us[0].Metadata["lang"] != "de" || fmt.Sprint(us[0].VisitorIDs) != fmt.Sprint([]known.VisitorID{anon.VisitorID}) {
			t.Fatalf("anonymous users = %+v, %v", us, err)
		}
	})
}

func TestTrack(t *testing.T) {
	e := newEnv(t)
	ss := claimed(t, e, "tr", service.IdentifyInput{Company: &service.CompanyInput{ID: "tco"}, CompanyIDs: []string{"t2"}})
	uid := *ss.UserID
	ctx := widgetCtx(ss.Token)
	tco, t2 := companyByExt(t, e, "tco").ID, companyByExt(t, e, "t2").ID
	track := func(t *testing.T, in service.TrackInput) *known.Event {
		t.Helper()
		ev, err := e.svc.Track(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	events := func(t *testing.T, user *known.UserID, company *known.CompanyID) []known.EventID {
		t.Helper()
		evs, _, err := e.svc.Events(e.ctx, user, company, known.Page{First: 100})
		if err != nil {
			t.Fatal(err)
		}
		var ids []known.EventID
		for _, ev := range evs {
			ids = append(ids, ev.ID)
		}
		return ids
	}
	var now, past, companyEv, soon *known.Event
	t.Run("OccurredAtDefaultsToNow", func(t *testing.T) {
		before := time.Now().Add(-time.Second)
		now = track(t, service.TrackInput{Event: "signed-up"})
		if now.OccurredAt.Before(before) || now.OccurredAt.After(time.Now().Add(time.Second)) {
			t.Fatalf("occurredAt = %v, want now", now.OccurredAt)
		}
		if now.CompanyID == nil || *now.CompanyID != tco {
			t.Fatalf("company = %v, want the active company %s", now.CompanyID, tco)
		}
	})
	t.Run("GivenOccurredAtKept", func(t *testing.T) {
		at := time.Now().Add(-72 * time.Hour).UTC().Truncate(time.Millisecond)
		past = track(t, service.TrackInput{Event: "trial-started", OccurredAt: &at, Properties: map[string]any{"plan": "pro"}})
		evs, _, err := e.svc.Events(e.ctx, &uid, nil, known.Page{First: 1})
		if err != nil || len(evs) != 1 || evs[0].ID != past.ID || !evs[0].OccurredAt.Equal(at) || evs[0].Properties["plan"] != "pro" {
			t.Fatalf("stored event = %+v, %v; want occurredAt %v", evs, err, at)
		}
	})
	t.Run("CompanyIDNamesCompany", func(t *testing.T) {
		companyEv = track(t, service.TrackInput{Event: "seat-added", CompanyID: str("t2")})
		if companyEv.CompanyID == nil || *companyEv.CompanyID != t2 {
			t.Fatalf("company = %v, want %s", companyEv.CompanyID, t2)
		}
	})
	t.Run("LessThanADayAheadFine", func(t *testing.T) {
		at := time.Now().Add(23 * time.Hour)
		soon = track(t, service.TrackInput{Event: "renewal", OccurredAt: &at})
	})
	t.Run("VisibleThroughUserAndCompanyEvents", func(t *testing.T) {
		want := []known.EventID{soon.ID, companyEv.ID, past.ID, now.ID}
		if got := events(t, &uid, nil); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("user events = %v, want %v", got, want)
		}
		if got := events(t, nil, &tco); fmt.Sprint(got) != fmt.Sprint([]known.EventID{soon.ID, past.ID, now.ID}) {
			t.Fatalf("tco events = %v", got)
		}
		if got := events(t, nil, &t2); fmt.Sprint(got) != fmt.Sprint([]known.EventID{companyEv.ID}) {
			t.Fatalf("t2 events = %v", got)
		}
	})
	t.Run("AnonymousVisitorWithoutCompany", func(t *testing.T) {
		anon := anonymous(t, e)
		ev, err := e.svc.Track(widgetCtx(anon.Token), service.TrackInput{Event: "landed"})
		if err != nil || ev.UserID == nil || ev.CompanyID != nil {
			t.Fatalf("event = %+v, %v", ev, err)
		}
	})
	future := time.Now().Add(25 * time.Hour)
	runRejected(t, e, []rejected{
		{"OccurredAtMoreThanADayAhead", func() error {
			_, err := e.svc.Track(ctx, service.TrackInput{Event: "x", OccurredAt: &future})
			return err
		},
			known.Invalid, []string{"input", "occurredAt"}},
		{"BlankEvent", func() error { _, err := e.svc.Track(ctx, service.TrackInput{Event: "  "}); return err },
			known.Invalid, []string{"input", "event"}},
		{"UnknownCompanyID", func() error {
			_, err := e.svc.Track(ctx, service.TrackInput{Event: "x", CompanyID: str("nope")})
			return err
		},
			known.CompanyRequired, []string{"input", "companyId"}},
	})
}

// TestWidgetLimits: the limits of API.md §7 on widget input; each rejected input changes nothing.
func TestWidgetLimits(t *testing.T) {
	e := newEnv(t)
	ss := claimed(t, e, "lim", service.IdentifyInput{Company: &service.CompanyInput{ID: "lc"}})
	ctx := widgetCtx(ss.Token)
	conv := startConversation(t, e, ss.Token, "hello")

	ok255, long := strings.Repeat("é", 255), strings.Repeat("é", 256)
	keys := func(n int) map[string]any {
		m := map[string]any{}
		for i := range n {
			m[fmt.Sprint("k", i)] = i
		}
		return m
	}
	var list []any
	for range 70 {
		list = append(list, strings.Repeat("x", 250))
	}
	big := map[string]any{"k": list} // more than 16 KiB
	deep := map[string]any{"a": map[string]any{"b": map[string]any{"c": map[string]any{"d": map[string]any{"e": map[string]any{"f": 1}}}}}}
	var manyIDs []string
	for i := range 51 {
		manyIDs = append(manyIDs, fmt.Sprint("c", i))
	}

	t.Run("AtTheLimitsFine", func(t *testing.T) {
		identify(t, e, ss.Token, service.IdentifyInput{Name: &ok255, Metadata: keys(49)})
		if _, err := e.svc.SendMessage(ctx, nil, conv.ID, strings.Repeat("é", service.MaxBody)); err != nil {
			t.Fatal(err)
		}
		deep5 := map[string]any{"a": map[string]any{"b": map[string]any{"c": map[string]any{"d": map[string]any{"e": 1}}}}} // 5 levels
		if _, err := e.svc.SetProperties(ctx, nil, deep5); err != nil {
			t.Fatal(err)
		}
	})

	id := func(in service.IdentifyInput) func() error {
		return func() error { _, err := identifyErr(e, ss.Token, in); return err }
	}
	props := func(p map[string]any) func() error {
		return func() error { _, err := e.svc.SetProperties(ctx, nil, p); return err }
	}
	runRejected(t, e, []rejected{
		{"IdentifyNameOver255", id(service.IdentifyInput{Name: &long}), known.LimitExceeded, []string{"input", "name"}},
		{"IdentifyUserIDOver255", id(service.IdentifyInput{UserID: &long}), known.LimitExceeded, []string{"input", "userId"}},
		{"IdentifyFirstNameOver255", id(service.IdentifyInput{FirstName: &long}), known.LimitExceeded, []string{"input", "firstName"}},
		{"IdentifyEmailInvalid", id(service.IdentifyInput{Email: str("not-an-email")}), known.Invalid, []string{"input", "email"}},
		{"IdentifyPhoneInvalid", id(service.IdentifyInput{PhoneNumber: str("555-0100")}), known.Invalid, []string{"input", "phoneNumber"}},
		{"IdentifyMetadataOver50Keys", id(service.IdentifyInput{Metadata: keys(51)}), known.LimitExceeded, []string{"input", "metadata"}},
		{"IdentifyMetadataOver16KiB", id(service.IdentifyInput{Metadata: big}), known.LimitExceeded, []string{"input", "metadata"}},
		{"IdentifyMetadataDeeperThan5", id(service.IdentifyInput{Metadata: deep}), known.Invalid, []string{"input", "metadata"}},
		{"IdentifyMetadataStringOver255", id(service.IdentifyInput{Metadata: map[string]any{"s": long}}), known.Invalid, []string{"input", "metadata"}},
		{"IdentifyCompanyIDOver255", id(service.IdentifyInput{Company: &service.CompanyInput{ID: long}}), known.LimitExceeded, []string{"input", "company", "id"}},
		{"IdentifyCompanyMetadataOver50Keys", id(service.IdentifyInput{Company: &service.CompanyInput{ID: "lc", Metadata: keys(51)}}), known.LimitExceeded, []string{"input", "company", "metadata"}},
		{"IdentifyOver50CompanyIDs", id(service.IdentifyInput{CompanyIDs: manyIDs}), known.LimitExceeded, []string{"input", "companyIds"}},
		{"SetUserNameOver255", func() error {
			_, err := setUserErr(e, ss.Token, service.SetUserInput{ID: str("lim"), Name: &long})
			return err
		},
			known.LimitExceeded, []string{"input", "name"}},
		{"SetUserAttrsOver16KiB", func() error {
			_, err := setUserErr(e, ss.Token, service.SetUserInput{ID: str("lim"), Attrs: big})
			return err
		},
			known.LimitExceeded, []string{"input", "attrs"}},
		{"SetPropertiesOver50Keys", props(keys(51)), known.LimitExceeded, []string{"input", "properties"}},
		{"SetPropertiesOver16KiB", props(big), known.LimitExceeded, []string{"input", "properties"}},
		{"SetPropertiesDeeperThan5", props(deep), known.Invalid, []string{"input", "properties"}},
		{"TrackEventOver255", func() error { _, err := e.svc.Track(ctx, service.TrackInput{Event: long}); return err },
			known.LimitExceeded, []string{"input", "event"}},
		{"TrackPropertiesOver50Keys", func() error {
			_, err := e.svc.Track(ctx, service.TrackInput{Event: "x", Properties: keys(51)})
			return err
		},
			known.LimitExceeded, []string{"input", "properties"}},
		{"SetStageOver255", func() error { _, err := e.svc.SetStage(ctx, nil, long, nil, nil); return err },
			known.LimitExceeded, []string{"input", "stage"}},
		{"SetDealNameOver255", func() error { _, err := e.svc.SetDeal(ctx, service.SetDealInput{Name: &long}); return err },
			known.LimitExceeded, []string{"input", "name"}},
		{"StartConversationBodyOver10000", func() error {
			_, err := e.svc.StartConversation(ctx, nil, strings.Repeat("x", service.MaxBody+1))
			return err
		}, known.LimitExceeded, []string{"input", "body"}},
		{"StartConversationBlankBody", func() error { _, err := e.svc.StartConversation(ctx, nil, " \n\t "); return err },
			known.Invalid, []string{"input", "body"}},
		{"SendMessageBodyOver10000", func() error {
			_, err := e.svc.SendMessage(ctx, nil, conv.ID, strings.Repeat("x", service.MaxBody+1))
			return err
		}, known.LimitExceeded, []string{"input", "body"}},
		{"SendMessageBlankBody", func() error { _, err := e.svc.SendMessage(ctx, nil, conv.ID, ""); return err },
			known.Invalid, []string{"input", "body"}},
		{"ReplyBodyOver10000", func() error {
			_, err := e.svc.ReplyToConversation(e.ctx, conv.ID, strings.Repeat("x", service.MaxBody+1))
			return err
		}, known.LimitExceeded, []string{"input", "body"}},
		{"ReplyBlankBody", func() error { _, err := e.svc.ReplyToConversation(e.ctx, conv.ID, "  "); return err },
			known.Invalid, []string{"input", "body"}},
	})

	// The metadata limit holds for the user's metadata as merged, whichever call merges into
	// it (SetProperties checks this; identify and setUser must too).
	m := claimed(t, e, "lim-meta", service.IdentifyInput{Metadata: keys(30)})
	other := map[string]any{}
	for i := range 30 {
		other[fmt.Sprint("other", i)] = i
	}
	runRejected(t, e, []rejected{
		{"IdentifyMetadataMergedOver50Keys", func() error {
			_, err := identifyErr(e, m.Token, service.IdentifyInput{UserID: str("lim-meta"), Metadata: other})
			return err
		}, known.LimitExceeded, []string{"input", "metadata"}},
		{"SetUserAttrsMergedOver50Keys", func() error {
			_, err := setUserErr(e, m.Token, service.SetUserInput{ID: str("lim-meta"), Attrs: other})
			return err
		}, known.LimitExceeded, []string{"input", "attrs"}},
	})
}

func TestConversations(t *testing.T) {
	e := newEnv(t)
	ss := claimed(t, e, "cv", service.IdentifyInput{})
	ctx := widgetCtx(ss.Token)
	conv := startConversation(t, e, ss.Token, "first")
	if conv.UserID == nil || *conv.UserID != *ss.UserID || conv.VisitorID != ss.VisitorID || conv.Status != known.ConversationOpen {
		t.Fatalf("conversation = %+v", conv)
	}
	t.Run("WidgetSendsAgentReplies", func(t *testing.T) {
		m, err := e.svc.SendMessage(ctx, nil, conv.ID, "second")
		if err != nil || m.Author != known.AuthorVisitor || m.Verified {
			t.Fatalf("SendMessage = %+v, %v; want an unverified visitor message", m, err)
		}
		r, err := e.svc.ReplyToConversation(e.ctx, conv.ID, "agent here")
		if err != nil || r.Author != known.AuthorAgent || r.ConversationID != conv.ID {
			t.Fatalf("ReplyToConversation = %+v, %v", r, err)
		}
		for _, c := range []struct {
			name string
			ctx  context.Context
		}{{"dashboard", e.ctx}, {"widget", ctx}} {
			name := c.name
			ms, _, err := e.svc.Messages(c.ctx, conv, known.Page{First: 10})
			if err != nil {
				t.Fatalf("%s messages: %v", name, err)
			}
			var got []string
			for _, m := range ms {
				got = append(got, string(m.Author)+":"+m.Body)
			}
			if want := "[AGENT:agent here VISITOR:second VISITOR:first]"; fmt.Sprint(got) != want {
				t.Fatalf("%s messages = %v, want %s", name, got, want)
			}
		}
		if got := sessionConversations(t, e, ss.Token); !slices.Equal(got, []known.ConversationID{conv.ID}) {
			t.Fatalf("session conversations = %v", got)
		}
	})

	otherVisitor := anonymous(t, e)
	otherProject := e.newProject(t, "Other")
	otherKey := e.as(t, otherProject.SecretKey)
	otherWidget, err := e.svc.Identify(widgetCtx(""), service.IdentifyInput{AppID: string(otherProject.Project.ID)})
	if err != nil {
		t.Fatal(err)
	}
	runRejected(t, e, []rejected{
		{"SendMessageToAnotherVisitorsConversation", func() error {
			_, err := e.svc.SendMessage(widgetCtx(otherVisitor.Token), nil, conv.ID, "hi")
			return err
		}, known.NotFound, []string{"input", "conversationId"}},
		{"SendMessageToUnknownConversation", func() error { _, err := e.svc.SendMessage(ctx, nil, "nope", "hi"); return err },
			known.NotFound, []string{"input", "conversationId"}},
		{"SendMessageFromAnotherProjectsWidget", func() error {
			_, err := e.svc.SendMessage(widgetCtx(otherWidget.Token), nil, conv.ID, "hi")
			return err
		}, known.NotFound, []string{"input", "conversationId"}},
		{"ReplyToAnotherProjectsConversation", func() error { _, err := e.svc.ReplyToConversation(otherKey, conv.ID, "hi"); return err },
			known.NotFound, []string{"input", "conversationId"}},
		{"ReplyToUnknownConversation", func() error { _, err := e.svc.ReplyToConversation(e.ctx, "nope", "hi"); return err },
			known.NotFound, []string{"input", "conversationId"}},
		{"ReplyWithoutSecretKey", func() error { _, err := e.svc.ReplyToConversation(ctx, conv.ID, "hi"); return err },
			known.Unauthenticated, nil},
	})
	t.Run("AnotherVisitorCannotRead", func(t *testing.T) {
		_, _, err := e.svc.Messages(widgetCtx(otherVisitor.Token), conv, known.Page{First: 10})
		wantCode(t, err, known.NotFound)
		if got := sessionConversations(t, e, otherVisitor.Token); len(got) != 0 {
			t.Fatalf("another visitor sees %v", got)
		}
		_, err = e.svc.Conversation(otherKey, conv.ID)
		wantCode(t, err, known.NotFound)
	})
}
