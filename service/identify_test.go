package service_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/knownhq/known"
	"github.com/knownhq/known/service"
)

// TestIdentifyMatching shows the matching order of API.md §3: externalId first, then email
// (only of a user without externalId, or a verified one), then phone; never a guess between
// two users (IDENTITY_CONFLICT, and nothing changes).
func TestIdentifyMatching(t *testing.T) {
	e := newEnv(t)
	// A: claimed through the widget, with externalId, email and phone.
	sa := claimed(t, e, "a", service.IdentifyInput{Email: str("a@example.com"), PhoneNumber: str("+14155550001")})
	a := *sa.UserID
	// B: no externalId. C: externalId and email.
	b, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("b@example.com"), PhoneNumber: str("+14155550002")})
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("c@example.com"), ExternalID: str("c"), PhoneNumber: str("+14155550003")})
	if err != nil {
		t.Fatal(err)
	}
	// An anonymous visitor with a record of its own, to show that a rejected claim leaves it be.
	anon := anonymous(t, e)
	if _, err := e.svc.SetProperties(widgetCtx(anon.Token), nil, map[string]any{"seen": true}); err != nil {
		t.Fatal(err)
	}

	matches := []struct {
		name string
		in   service.IdentifyInput
		want known.UserID
	}{
		{"ExternalIDMatchesFirst", service.IdentifyInput{UserID: str("a")}, a},
		{"ExternalIDWithItsOwnEmail", service.IdentifyInput{UserID: str("a"), Email: str("A@Example.COM")}, a},
		{"ExternalIDOfUserWithEmailMatches", service.IdentifyInput{UserID: str("c")}, c.ID},
		{"EmailMatchesUserWithoutExternalID", service.IdentifyInput{Email: str("B@example.com")}, b.ID},
		{"PhoneMatchesUserWithoutExternalID", service.IdentifyInput{PhoneNumber: str("+14155550002")}, b.ID},
	}
	for _, tc := range matches {
		t.Run(tc.name, func(t *testing.T) {
			ss := identify(t, e, "", tc.in)
			if ss.UserID == nil || *ss.UserID != tc.want {
				t.Fatalf("session user = %v, want %s", ss.UserID, tc.want)
			}
			if u := readUser(t, e, tc.want); !slices.Contains(u.VisitorIDs, ss.VisitorID) {
				t.Fatalf("user %s visitor ids %v lack the session's %s", tc.want, u.VisitorIDs, ss.VisitorID)
			}
		})
	}
	t.Run("NumberAndStringAreOneExternalID", func(t *testing.T) {
		// The GraphQL layer turns the number 123 into "123"; the service sees the string.
		one := identify(t, e, "", service.IdentifyInput{UserID: str("123")})
		two := identify(t, e, "", service.IdentifyInput{UserID: str(" 123 ")})
		three := setUser(t, e, "", service.SetUserInput{ID: str("123")})
		if *one.UserID != *two.UserID || *one.UserID != *three.UserID {
			t.Fatalf("users %s, %s, %s; want one", *one.UserID, *two.UserID, *three.UserID)
		}
		if u := userByExt(t, e, "123"); u == nil || u.ID != *one.UserID || len(u.VisitorIDs) != 3 {
			t.Fatalf("user with externalId 123 = %+v", u)
		}
	})

	conflict := func(token string, in service.IdentifyInput) func() error {
		return func() error { _, err := identifyErr(e, token, in); return err }
	}
	runRejected(t, e, []rejected{
		{"UserIDOfAWithEmailOfB", conflict("", service.IdentifyInput{UserID: str("a"), Email: str("b@example.com")}),
			known.IdentityConflict, []string{"input", "email"}},
		{"UserIDOfAWithEmailOfC", conflict("", service.IdentifyInput{UserID: str("a"), Email: str("c@example.com")}),
			known.IdentityConflict, []string{"input", "email"}},
		{"EmailOfUserWithAnotherExternalID", conflict("", service.IdentifyInput{UserID: str("new"), Email: str("a@example.com")}),
			known.IdentityConflict, []string{"input", "email"}},
		{"EmailOfUserWithExternalIDWithoutUserID", conflict("", service.IdentifyInput{Email: str("c@example.com")}),
			known.IdentityConflict, []string{"input", "email"}},
		{"PhoneOfAnotherUser", conflict("", service.IdentifyInput{UserID: str("a"), PhoneNumber: str("+14155550002")}),
			known.IdentityConflict, []string{"input", "phoneNumber"}},
		{"PhoneOfAnotherUserWithNewExternalID", conflict("", service.IdentifyInput{UserID: str("new"), PhoneNumber: str("+14155550002")}),
			known.IdentityConflict, []string{"input", "phoneNumber"}},
		{"PhoneOfUserWithExternalIDAlone", conflict("", service.IdentifyInput{PhoneNumber: str("+14155550001")}),
			known.IdentityConflict, []string{"input", "phoneNumber"}},
		{"EmailOfBWithPhoneOfA", conflict("", service.IdentifyInput{Email: str("b@example.com"), PhoneNumber: str("+14155550001")}),
			known.IdentityConflict, []string{"input", "phoneNumber"}},
		{"ConflictFromAnonymousVisitorKeepsItsRecord", conflict(anon.Token, service.IdentifyInput{UserID: str("a"), Email: str("b@example.com"), Name: str("X Y")}),
			known.IdentityConflict, []string{"input", "email"}},
		{"ConflictFromClaimedSession", conflict(sa.Token, service.IdentifyInput{UserID: str("a"), Email: str("b@example.com")}),
			known.IdentityConflict, []string{"input", "email"}},
		{"SetUserIDOfAWithEmailOfB", func() error {
			_, err := setUserErr(e, "", service.SetUserInput{ID: str("a"), Email: str("b@example.com")})
			return err
		}, known.IdentityConflict, []string{"input", "email"}},
	})
	t.Run("ExternalIDMatchedOverEmailOfNoOne", func(t *testing.T) {
		// userId of C with a free email: C, whose email changes to the new one.
		ss := identify(t, e, "", service.IdentifyInput{UserID: str("c"), Email: str("c2@example.com")})
		if *ss.UserID != c.ID {
			t.Fatalf("matched %s, want C %s", *ss.UserID, c.ID)
		}
		if got := readUser(t, e, c.ID); got.Email == nil || *got.Email != "c2@example.com" {
			t.Fatalf("C's email = %v", got.Email)
		}
	})
	t.Run("RejectedClaimKeepsSession", func(t *testing.T) {
		if got := sessionOf(t, e, anon.Token); !got.Anonymous() || got.VisitorID != anon.VisitorID {
			t.Fatalf("anonymous session became %+v", got)
		}
		if got := sessionOf(t, e, sa.Token); got.UserID == nil || *got.UserID != a {
			t.Fatalf("A's session became %+v", got)
		}
	})
}

// TestIdentifyLevels shows the levels of a widget session: anonymous, then claimed.
func TestIdentifyLevels(t *testing.T) {
	e := newEnv(t)
	anon := anonymous(t, e)
	t.Run("AnonymousIdentify", func(t *testing.T) {
		if anon.Level != known.LevelAnonymous || anon.UserID != nil || anon.Verified() || !anon.Anonymous() {
			t.Fatalf("session = %+v, want anonymous with no user", anon)
		}
		if anon.Token == "" || anon.VisitorID == "" || !anon.ExpiresAt.After(anon.CreatedAt) {
			t.Fatalf("session = %+v, want a token, a visitor and an expiry", anon)
		}
		if n := e.counts(t, e.project.Project.ID)["users"]; n != 0 {
			t.Fatalf("an anonymous identify made %d users", n)
		}
	})
	t.Run("AnonymousIdentifyAgainStaysAnonymous", func(t *testing.T) {
		ss := identify(t, e, anon.Token, service.IdentifyInput{})
		if ss.Level != known.LevelAnonymous || ss.VisitorID != anon.VisitorID || ss.UserID != nil {
			t.Fatalf("session = %+v", ss)
		}
	})
	t.Run("ClaimedAfterUserID", func(t *testing.T) {
		ss := identify(t, e, anon.Token, service.IdentifyInput{UserID: str("lv-1")})
		if ss.Level != known.LevelClaimed || ss.UserID == nil || ss.Verified() || ss.Anonymous() {
			t.Fatalf("session = %+v, want claimed with a user", ss)
		}
		if ss.VisitorID != anon.VisitorID {
			t.Fatalf("visitor changed from %s to %s", anon.VisitorID, ss.VisitorID)
		}
		u := readUser(t, e, *ss.UserID)
		if u.Anonymous() || u.Verified || u.ExternalID == nil || *u.ExternalID != "lv-1" {
			t.Fatalf("user = %+v", u)
		}
		if got := sessionOf(t, e, ss.Token); got.Level != known.LevelClaimed || *got.UserID != u.ID {
			t.Fatalf("session query = %+v", got)
		}
	})
	t.Run("ClaimedAfterEmail", func(t *testing.T) {
		ss := identify(t, e, "", service.IdentifyInput{Email: str("lv@example.com")})
		if ss.Level != known.LevelClaimed || ss.UserID == nil || ss.Verified() {
			t.Fatalf("session = %+v, want claimed", ss)
		}
	})
	t.Run("ClaimedAfterSetUser", func(t *testing.T) {
		ss := setUser(t, e, "", service.SetUserInput{ID: str("lv-2")})
		if ss.Level != known.LevelClaimed || ss.UserID == nil || ss.Verified() {
			t.Fatalf("session = %+v, want claimed", ss)
		}
	})
}

// TestRequireVerification: a project that requires verification refuses every claim without
// a proof (VERIFICATION_REQUIRED, nothing changes); anonymous sessions still work.
func TestRequireVerification(t *testing.T) {
	e := newEnv(t)
	existing := claimed(t, e, "rv-1", service.IdentifyInput{Name: str("Old Name")})
	anon := anonymous(t, e)
	if _, err := e.svc.SetProperties(widgetCtx(anon.Token), nil, map[string]any{"k": 1}); err != nil {
		t.Fatal(err)
	}
	yes := true
	if _, err := e.svc.UpdateProject(e.ctx, service.UpdateProjectInput{RequireVerification: &yes}); err != nil {
		t.Fatal(err)
	}
	id := func(token string, in service.IdentifyInput) func() error {
		return func() error { _, err := identifyErr(e, token, in); return err }
	}
	runRejected(t, e, []rejected{
		{"NewUserIDClaim", id("", service.IdentifyInput{UserID: str("rv-2")}), known.VerificationRequired, []string{"input"}},
		{"ExistingUserIDClaim", id("", service.IdentifyInput{UserID: str("rv-1"), Name: str("New Name")}), known.VerificationRequired, []string{"input"}},
		{"EmailClaim", id("", service.IdentifyInput{Email: str("rv@example.com")}), known.VerificationRequired, []string{"input"}},
		{"PhoneClaim", id("", service.IdentifyInput{PhoneNumber: str("+14155550009")}), known.VerificationRequired, []string{"input"}},
		{"ClaimFromAnonymousVisitor", id(anon.Token, service.IdentifyInput{UserID: str("rv-3"), Metadata: map[string]any{"x": 1}}), known.VerificationRequired, []string{"input"}},
		{"ClaimFromClaimedSession", id(existing.Token, service.IdentifyInput{UserID: str("rv-1"), Name: str("New Name")}), known.VerificationRequired, []string{"input"}},
		{"SetUserClaim", func() error {
			_, err := setUserErr(e, "", service.SetUserInput{ID: str("rv-4")})
			return err
		}, known.VerificationRequired, []string{"input"}},
	})
	t.Run("AnonymousSessionsStillWork", func(t *testing.T) {
		fresh := anonymous(t, e)
		if fresh.Level != known.LevelAnonymous {
			t.Fatalf("session = %+v", fresh)
		}
		if _, err := identifyErr(e, anon.Token, service.IdentifyInput{Metadata: map[string]any{"plan": "trial"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.SetProperties(widgetCtx(fresh.Token), nil, map[string]any{"a": 1}); err != nil {
			t.Fatal(err)
		}
		startConversation(t, e, fresh.Token, "hello")
		if _, err := setUserErr(e, anon.Token, service.SetUserInput{Attrs: map[string]any{"b": 2}}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestVerifiedUserProtected: a claimed (unproven) session never attaches to, changes or reads
// a verified user (VERIFICATION_REQUIRED, the user unchanged).
func TestVerifiedUserProtected(t *testing.T) {
	e := newEnv(t)
	// V was claimed on their own device, talked to support, then proved who they are.
	sv := claimed(t, e, "v", service.IdentifyInput{Email: str("v@example.com"), Name: str("Vera Vee"), Metadata: map[string]any{"plan": "pro"}})
	v := *sv.UserID
	conv := startConversation(t, e, sv.Token, "my invoice")
	verify(t, e, v)

	anon := anonymous(t, e)
	anonConv := startConversation(t, e, anon.Token, "anonymous question")
	other := claimed(t, e, "o", service.IdentifyInput{})

	call := func(f func() error) func() error { return f }
	id := func(token string, in service.IdentifyInput) func() error {
		return func() error { _, err := identifyErr(e, token, in); return err }
	}
	runRejected(t, e, []rejected{
		{"ExternalIDOfVerifiedUser", id("", service.IdentifyInput{UserID: str("v")}), known.VerificationRequired, []string{"input", "userId"}},
		{"ExternalIDOfVerifiedUserWithChanges", id("", service.IdentifyInput{UserID: str("v"), Name: str("Mallory"), Metadata: map[string]any{"plan": "free"}}),
			known.VerificationRequired, []string{"input", "userId"}},
		{"EmailOfVerifiedUser", id("", service.IdentifyInput{Email: str("V@example.com"), Name: str("Mallory")}), known.VerificationRequired, nil},
		{"AnonymousVisitorClaimsVerifiedUser", id(anon.Token, service.IdentifyInput{UserID: str("v")}), known.VerificationRequired, []string{"input", "userId"}},
		{"ClaimedVisitorClaimsVerifiedUser", id(other.Token, service.IdentifyInput{UserID: str("v")}), known.VerificationRequired, []string{"input", "userId"}},
		{"SetUserIDOfVerifiedUser", call(func() error {
			_, err := setUserErr(e, "", service.SetUserInput{ID: str("v"), Attrs: map[string]any{"plan": "free"}})
			return err
		}), known.VerificationRequired, []string{"input", "id"}},
		// V's own earlier, unproven session may no longer act for V.
		{"OldClaimedSessionCannotIdentify", id(sv.Token, service.IdentifyInput{UserID: str("v"), Name: str("Mallory")}), known.VerificationRequired, nil},
		{"OldClaimedSessionCannotSetProperties", call(func() error {
			_, err := e.svc.SetProperties(widgetCtx(sv.Token), nil, map[string]any{"plan": "free"})
			return err
		}), known.VerificationRequired, nil},
		{"OldClaimedSessionCannotTrack", call(func() error {
			_, err := e.svc.Track(widgetCtx(sv.Token), service.TrackInput{Event: "x"})
			return err
		}), known.VerificationRequired, nil},
		{"OldClaimedSessionCannotStartConversation", call(func() error {
			_, err := e.svc.StartConversation(widgetCtx(sv.Token), nil, "hi")
			return err
		}), known.VerificationRequired, nil},
		{"OldClaimedSessionCannotSendMessage", call(func() error {
			_, err := e.svc.SendMessage(widgetCtx(sv.Token), nil, conv.ID, "hi")
			return err
		}), known.VerificationRequired, nil},
	})
	t.Run("VerifiedUserUnchanged", func(t *testing.T) {
		u := readUser(t, e, v)
		if !u.Verified || *u.Name != "Vera Vee" || u.Metadata["plan"] != "pro" || len(u.VisitorIDs) != 1 || u.VisitorIDs[0] != sv.VisitorID {
			t.Fatalf("verified user changed: %+v", u)
		}
	})
	t.Run("NoConversationOfTheirsReadable", func(t *testing.T) {
		// (a session of its own: the rejected claim above may have ended other's)
		reader := claimed(t, e, "o2", service.IdentifyInput{})
		for _, token := range []string{anon.Token, reader.Token} {
			if got := sessionConversations(t, e, token); slices.Contains(got, conv.ID) {
				t.Fatalf("a claimed session reads the verified user's conversation: %v", got)
			}
			_, err := e.svc.SendMessage(widgetCtx(token), nil, conv.ID, "let me in")
			wantCode(t, err, known.NotFound, "input", "conversationId")
			_, _, err = e.svc.Messages(widgetCtx(token), conv, known.Page{First: 10})
			wantCode(t, err, known.NotFound)
		}
		if got := sessionConversations(t, e, anon.Token); len(got) != 1 || got[0] != anonConv.ID {
			t.Fatalf("the anonymous session sees %v, want only its own %s", got, anonConv.ID)
		}
	})
	t.Run("RejectedClaimKeepsCallersSession", func(t *testing.T) {
		// The rejected claims above changed nothing: the callers' sessions are as they were.
		if got, err := e.svc.Session(widgetCtx(anon.Token)); err != nil || !got.Anonymous() {
			t.Fatalf("anonymous session after a rejected claim: %+v, %v", got, err)
		}
		if got, err := e.svc.Session(widgetCtx(other.Token)); err != nil || got.UserID == nil || *got.UserID != *other.UserID {
			t.Fatalf("claimed session after a rejected claim of a verified user: %+v, %v (want it still live, as user o)", got, err)
		}
	})
}

// TestNames keeps name and firstName/lastName consistent.
func TestNames(t *testing.T) {
	e := newEnv(t)
	ss := claimed(t, e, "n", service.IdentifyInput{})
	steps := []struct {
		name              string
		in                service.IdentifyInput
		full, first, last string // "" for none
	}{
		{"NameSplitsAtFirstSpace", service.IdentifyInput{Name: str("Jane van Doe")}, "Jane van Doe", "Jane", "van Doe"},
		{"FirstAndLastMakeName", service.IdentifyInput{FirstName: str("First"), LastName: str("Last")}, "First Last", "First", "Last"},
		{"LaterNameUpdatesBoth", service.IdentifyInput{Name: str("Mary Major")}, "Mary Major", "Mary", "Major"},
		{"FirstNameAloneKeepsLastName", service.IdentifyInput{FirstName: str("Ann")}, "Ann Major", "Ann", "Major"},
		{"SingleWordNameClearsLastName", service.IdentifyInput{Name: str("Cher")}, "Cher", "Cher", ""},
		{"NameTrimmed", service.IdentifyInput{Name: str("  Bo   Diddley ")}, "Bo   Diddley", "Bo", "Diddley"},
	}
	opt := func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			identify(t, e, ss.Token, st.in)
			u := readUser(t, e, *ss.UserID)
			if opt(u.Name) != st.full || opt(u.FirstName) != st.first || opt(u.LastName) != st.last {
				t.Fatalf("name %q, first %q, last %q; want %q, %q, %q", opt(u.Name), opt(u.FirstName), opt(u.LastName), st.full, st.first, st.last)
			}
		})
	}
	t.Run("SetUserNameSplits", func(t *testing.T) {
		s := setUser(t, e, "", service.SetUserInput{ID: str("n2"), Name: str("Sam de la Cruz")})
		u := readUser(t, e, *s.UserID)
		if opt(u.Name) != "Sam de la Cruz" || opt(u.FirstName) != "Sam" || opt(u.LastName) != "de la Cruz" {
			t.Fatalf("user = %q %q %q", opt(u.Name), opt(u.FirstName), opt(u.LastName))
		}
	})
}

// TestAvatarURL: avatarUrl must be an absolute https:// URL.
func TestAvatarURL(t *testing.T) {
	e := newEnv(t)
	ss := claimed(t, e, "av", service.IdentifyInput{AvatarURL: str("https://cdn.example/a.png")})
	if u := readUser(t, e, *ss.UserID); u.AvatarURL == nil || *u.AvatarURL != "https://cdn.example/a.png" {
		t.Fatalf("avatar = %v", u.AvatarURL)
	}
	var cases []rejected
	for _, c := range [][2]string{
		{"HTTP", "http://cdn.example/a.png"}, {"JavaScript", "javascript:alert(1)"}, {"Relative", "/a.png"},
		{"SchemeRelative", "//cdn.example/a.png"}, {"NoHost", "https://"}, {"Data", "data:image/png;base64,AAAA"},
		{"WithUserInfo", "https://user:pw@cdn.example/a.png"},
	} {
		name, bad := c[0], c[1]
		cases = append(cases,
			rejected{"Identify" + name, func() error {
				_, err := identifyErr(e, ss.Token, service.IdentifyInput{UserID: str("av"), AvatarURL: str(bad)})
				return err
			}, known.Invalid, []string{"input", "avatarUrl"}},
			rejected{"SetUser" + name, func() error {
				_, err := setUserErr(e, ss.Token, service.SetUserInput{ID: str("av"), AvatarURL: str(bad)})
				return err
			}, known.Invalid, []string{"input", "avatarUrl"}})
	}
	runRejected(t, e, cases)
}

// TestAnonymousToKnown: what an anonymous visitor did moves to the user it is identified as.
func TestAnonymousToKnown(t *testing.T) {
	e := newEnv(t)
	// Device 1 is the user's: claimed as u1, with their own plan and a conversation.
	d1 := claimed(t, e, "u1", service.IdentifyInput{Metadata: map[string]any{"plan": "pro"}})
	u1 := *d1.UserID
	conv1 := startConversation(t, e, d1.Token, "from device 1")

	// Device 2 is anonymous: properties, a conversation and an event, then identifies as u1.
	d2 := anonymous(t, e)
	if _, err := e.svc.SetProperties(widgetCtx(d2.Token), nil, map[string]any{"plan": "free", "color": "red"}); err != nil {
		t.Fatal(err)
	}
	conv2 := startConversation(t, e, d2.Token, "from device 2, anonymous")
	ev, err := e.svc.Track(widgetCtx(d2.Token), service.TrackInput{Event: "viewed-pricing"})
	if err != nil {
		t.Fatal(err)
	}
	anonRecord := *ev.UserID
	if anonRecord == u1 {
		t.Fatal("the anonymous visitor's event belongs to u1 already")
	}
	d2c := identify(t, e, d2.Token, service.IdentifyInput{UserID: str("u1")})

	t.Run("SessionKeepsVisitorAndBecomesClaimed", func(t *testing.T) {
		if d2c.VisitorID != d2.VisitorID || d2c.Level != known.LevelClaimed || *d2c.UserID != u1 {
			t.Fatalf("session = %+v, want visitor %s claimed as %s", d2c, d2.VisitorID, u1)
		}
	})
	t.Run("ConversationMoves", func(t *testing.T) {
		c, err := e.svc.Conversation(e.ctx, conv2.ID)
		if err != nil || c.UserID == nil || *c.UserID != u1 {
			t.Fatalf("conversation = %+v, %v; want it u1's", c, err)
		}
		ids, err := e.svc.ConversationIDs(e.ctx, u1)
		if err != nil || len(ids) != 2 {
			t.Fatalf("u1's conversations = %v, %v; want both", ids, err)
		}
	})
	t.Run("EventsMove", func(t *testing.T) {
		evs, _, err := e.svc.Events(e.ctx, &u1, nil, known.Page{First: 10})
		if err != nil || len(evs) != 1 || evs[0].ID != ev.ID {
			t.Fatalf("u1's events = %v, %v; want %s", evs, err, ev.ID)
		}
	})
	t.Run("PropertiesMoveUserValuesWin", func(t *testing.T) {
		u := readUser(t, e, u1)
		if u.Metadata["plan"] != "pro" || u.Metadata["color"] != "red" {
			t.Fatalf("metadata = %v, want plan pro (the user's own) and color red (the visitor's)", u.Metadata)
		}
	})
	t.Run("AnonymousRecordGone", func(t *testing.T) {
		_, err := e.svc.User(e.ctx, anonRecord)
		wantCode(t, err, known.NotFound)
		if n := e.counts(t, e.project.Project.ID)["users"]; n != 1 {
			t.Fatalf("%d users, want 1", n)
		}
	})
	t.Run("BothVisitorsJoinTheUser", func(t *testing.T) {
		u := readUser(t, e, u1)
		if !slices.Contains(u.VisitorIDs, d1.VisitorID) || !slices.Contains(u.VisitorIDs, d2.VisitorID) || len(u.VisitorIDs) != 2 {
			t.Fatalf("visitor ids = %v, want %s and %s", u.VisitorIDs, d1.VisitorID, d2.VisitorID)
		}
	})
	t.Run("ClaimedSessionSeesOnlyItsVisitorsConversations", func(t *testing.T) {
		if got := sessionConversations(t, e, d2c.Token); fmt.Sprint(got) != fmt.Sprint([]known.ConversationID{conv2.ID}) {
			t.Fatalf("device 2 sees %v, want only %s", got, conv2.ID)
		}
		if got := sessionConversations(t, e, d1.Token); fmt.Sprint(got) != fmt.Sprint([]known.ConversationID{conv1.ID}) {
			t.Fatalf("device 1 sees %v, want only %s", got, conv1.ID)
		}
		_, err := e.svc.SendMessage(widgetCtx(d2c.Token), nil, conv1.ID, "reading device 1?")
		wantCode(t, err, known.NotFound, "input", "conversationId")
	})
	t.Run("FreshSecondDeviceJoinsSameUser", func(t *testing.T) {
		d3 := anonymous(t, e)
		d3c := identify(t, e, d3.Token, service.IdentifyInput{UserID: str("u1")})
		if *d3c.UserID != u1 || d3c.VisitorID != d3.VisitorID {
			t.Fatalf("session = %+v", d3c)
		}
		u := readUser(t, e, u1)
		if len(u.VisitorIDs) != 3 || !slices.Contains(u.VisitorIDs, d3.VisitorID) {
			t.Fatalf("visitor ids = %v", u.VisitorIDs)
		}
		if got := sessionConversations(t, e, d3c.Token); len(got) != 0 {
			t.Fatalf("a fresh claimed device sees %v, want none", got)
		}
		if n := e.counts(t, e.project.Project.ID)["users"]; n != 1 {
			t.Fatalf("%d users, want 1", n)
		}
	})
	t.Run("AnonymousRecordBecomesNewUser", func(t *testing.T) {
		d4 := anonymous(t, e)
		if _, err := e.svc.SetProperties(widgetCtx(d4.Token), nil, map[string]any{"lang": "fr"}); err != nil {
			t.Fatal(err)
		}
		c := startConversation(t, e, d4.Token, "bonjour")
		d4c := identify(t, e, d4.Token, service.IdentifyInput{UserID: str("u4"), Metadata: map[string]any{"plan": "basic"}})
		u := readUser(t, e, *d4c.UserID)
		if u.ExternalID == nil || *u.ExternalID != "u4" || u.Metadata["lang"] != "fr" || u.Metadata["plan"] != "basic" || u.Anonymous() {
			t.Fatalf("user = %+v", u)
		}
		got, err := e.svc.Conversation(e.ctx, c.ID)
		if err != nil || *got.UserID != u.ID {
			t.Fatalf("conversation = %+v, %v", got, err)
		}
		if n := e.counts(t, e.project.Project.ID)["users"]; n != 2 {
			t.Fatalf("%d users, want 2", n)
		}
	})
}

// TestSwitchIdentity: a visitor already identified as A that identifies as B gets a new
// visitor and session; A is untouched and B gets nothing of A's.
func TestSwitchIdentity(t *testing.T) {
	e := newEnv(t)
	sa := claimed(t, e, "a", service.IdentifyInput{Company: &service.CompanyInput{ID: "acme-a"}})
	a := *sa.UserID
	if _, err := e.svc.SetProperties(widgetCtx(sa.Token), nil, map[string]any{"secret": "a's"}); err != nil {
		t.Fatal(err)
	}
	convA := startConversation(t, e, sa.Token, "A's question")
	if _, err := e.svc.Track(widgetCtx(sa.Token), service.TrackInput{Event: "a-event"}); err != nil {
		t.Fatal(err)
	}
	b, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("b@example.com"), ExternalID: str("b")})
	if err != nil {
		t.Fatal(err)
	}
	aBefore := readUser(t, e, a)

	checkA := func(t *testing.T) {
		t.Helper()
		u := readUser(t, e, a)
		if fmt.Sprint(u.VisitorIDs) != fmt.Sprint(aBefore.VisitorIDs) || u.Metadata["secret"] != "a's" || *u.ExternalID != "a" ||
			fmt.Sprint(u.CompanyIDs) != fmt.Sprint(aBefore.CompanyIDs) {
			t.Fatalf("A changed: %+v, was %+v", u, aBefore)
		}
		ids, err := e.svc.ConversationIDs(e.ctx, a)
		if err != nil || len(ids) != 1 || ids[0] != convA.ID {
			t.Fatalf("A's conversations = %v, %v", ids, err)
		}
	}
	checkNothingOfA := func(t *testing.T, ss *known.Session, id known.UserID) {
		t.Helper()
		if ss.VisitorID == sa.VisitorID || ss.ID == sa.ID {
			t.Fatalf("session %+v reuses A's visitor or session", ss)
		}
		u := readUser(t, e, id)
		if fmt.Sprint(u.VisitorIDs) != fmt.Sprint([]known.VisitorID{ss.VisitorID}) {
			t.Fatalf("visitor ids = %v, want only the new %s", u.VisitorIDs, ss.VisitorID)
		}
		if _, ok := u.Metadata["secret"]; ok || len(u.CompanyIDs) != 0 {
			t.Fatalf("user %+v received A's data", u)
		}
		evs, _, err := e.svc.Events(e.ctx, &id, nil, known.Page{First: 10})
		if err != nil || len(evs) != 0 {
			t.Fatalf("events = %v, %v; want none", evs, err)
		}
		if ids, err := e.svc.ConversationIDs(e.ctx, id); err != nil || len(ids) != 0 {
			t.Fatalf("conversations = %v, %v; want none", ids, err)
		}
		if got := sessionConversations(t, e, ss.Token); len(got) != 0 {
			t.Fatalf("the new session sees %v", got)
		}
		_, err = e.svc.SendMessage(widgetCtx(ss.Token), nil, convA.ID, "reading A?")
		wantCode(t, err, known.NotFound, "input", "conversationId")
	}

	t.Run("ExistingUserBGetsNewVisitorAndSession", func(t *testing.T) {
		sb := identify(t, e, sa.Token, service.IdentifyInput{UserID: str("b")})
		if sb.UserID == nil || *sb.UserID != b.ID || sb.Level != known.LevelClaimed {
			t.Fatalf("session = %+v, want claimed as B", sb)
		}
		checkNothingOfA(t, sb, b.ID)
		checkA(t)
	})
	t.Run("NewUserGetsNewVisitorAndSession", func(t *testing.T) {
		s := claimed(t, e, "a", service.IdentifyInput{}) // A on a second device
		aBefore = readUser(t, e, a)
		sc := identify(t, e, s.Token, service.IdentifyInput{UserID: str("c"), Email: str("c@example.com")})
		if sc.VisitorID == s.VisitorID {
			t.Fatal("the new identity kept A's visitor")
		}
		checkNothingOfA(t, sc, *sc.UserID)
		checkA(t)
	})
	t.Run("NoUserMerged", func(t *testing.T) {
		if n := e.counts(t, e.project.Project.ID)["users"]; n != 3 {
			t.Fatalf("%d users, want A, B and C", n)
		}
		for _, ext := range []string{"a", "b", "c"} {
			if userByExt(t, e, ext) == nil {
				t.Fatalf("user %s is gone", ext)
			}
		}
	})
}

// TestSetUser: seed 003's setUser, organizations as the complete list.
func TestSetUser(t *testing.T) {
	e := newEnv(t)
	org := func(id, name string) service.OrganizationInput { return service.OrganizationInput{ID: id, Name: name} }
	ss := setUser(t, e, "", service.SetUserInput{ID: str("s1"), Email: str("s1@example.com"), Attrs: map[string]any{"plan": "pro", "seats": 3},
		Organizations: []service.OrganizationInput{org("o1", "One"), org("o2", "Two")}})
	uid := *ss.UserID
	orgs := func(t *testing.T) string {
		t.Helper()
		os, err := e.svc.UserOrganizations(e.ctx, readUser(t, e, uid))
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, o := range os {
			ids = append(ids, o.ExternalID+":"+o.Name)
		}
		return fmt.Sprint(ids)
	}
	steps := []struct {
		name string
		in   service.SetUserInput
		want string
	}{
		{"OrganizationsLinked", service.SetUserInput{ID: str("s1")}, "[o1:One o2:Two]"},
		{"LaterListUnlinksLeftOut", service.SetUserInput{ID: str("s1"), Organizations: []service.OrganizationInput{org("o2", "Two"), org("o3", "Three")}}, "[o2:Two o3:Three]"},
		{"NilChangesNothing", service.SetUserInput{ID: str("s1"), Name: str("Sue")}, "[o2:Two o3:Three]"},
		{"DeduplicatedByID", service.SetUserInput{ID: str("s1"), Organizations: []service.OrganizationInput{org("o1", "First"), org("o4", "Four"), org("o1", "One Again")}}, "[o1:One Again o4:Four]"},
		{"EmptyListUnlinksAll", service.SetUserInput{ID: str("s1"), Organizations: []service.OrganizationInput{}}, "[]"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			setUser(t, e, ss.Token, st.in)
			if got := orgs(t); got != st.want {
				t.Fatalf("organizations = %s, want %s", got, st.want)
			}
		})
	}
	t.Run("ElevenDuplicatesOfTenAreFine", func(t *testing.T) {
		var list []service.OrganizationInput
		for i := range 10 {
			list = append(list, org(fmt.Sprint("d", i), "D"))
		}
		list = append(list, org("d0", "D"))
		setUser(t, e, ss.Token, service.SetUserInput{ID: str("s1"), Organizations: list})
		if n := len(readUser(t, e, uid).OrganizationIDs); n != 10 {
			t.Fatalf("%d organizations, want 10", n)
		}
	})
	t.Run("AttrsMergeIntoMetadata", func(t *testing.T) {
		setUser(t, e, ss.Token, service.SetUserInput{ID: str("s1"), Attrs: map[string]any{"seats": nil, "active": true}})
		u := readUser(t, e, uid)
		if _, ok := u.Metadata["seats"]; ok || u.Metadata["plan"] != "pro" || u.Metadata["active"] != true {
			t.Fatalf("metadata = %v", u.Metadata)
		}
	})

	var eleven []service.OrganizationInput
	for i := range 11 {
		eleven = append(eleven, org(fmt.Sprint("e", i), "E"))
	}
	manyKeys := map[string]any{}
	for i := range 51 {
		manyKeys[fmt.Sprint("k", i)] = i
	}
	su := func(in service.SetUserInput) func() error {
		return func() error { _, err := setUserErr(e, ss.Token, in); return err }
	}
	runRejected(t, e, []rejected{
		{"MoreThanTenOrganizations", su(service.SetUserInput{ID: str("s1"), Organizations: eleven}), known.LimitExceeded, []string{"input", "organizations"}},
		{"AttrsOver50Keys", su(service.SetUserInput{ID: str("s1"), Attrs: manyKeys}), known.LimitExceeded, []string{"input", "attrs"}},
		{"OrganizationAttrsOver50Keys", su(service.SetUserInput{ID: str("s1"), Organizations: []service.OrganizationInput{{ID: "x", Name: "X", Attrs: manyKeys}}}),
			known.LimitExceeded, []string{"input", "organizations", "0", "attrs"}},
		{"OrganizationWithoutID", su(service.SetUserInput{ID: str("s1"), Organizations: []service.OrganizationInput{org(" ", "X")}}), known.Invalid, []string{"input", "organizations", "0", "id"}},
		{"OrganizationWithoutName", su(service.SetUserInput{ID: str("s1"), Organizations: []service.OrganizationInput{org("x", "")}}), known.Invalid, []string{"input", "organizations", "0", "name"}},
		{"JWTWithoutIDVerificationFailed", su(service.SetUserInput{JWT: str("eyJhbGciOiJFZERTQSJ9.e30.sig")}), known.VerificationFailed, []string{"input", "jwt"}},
		{"AnonymousWithEmailInvalid", su(service.SetUserInput{Email: str("anon@example.com")}), known.Invalid, []string{"input", "id"}},
		{"EmailSyntax", su(service.SetUserInput{ID: str("s1"), Email: str("nope")}), known.Invalid, []string{"input", "email"}},
	})

	t.Run("NullIDStartsNewAnonymousVisitor", func(t *testing.T) {
		before := readUser(t, e, uid)
		anon := setUser(t, e, ss.Token, service.SetUserInput{ID: nil})
		if !anon.Anonymous() || anon.UserID != nil || anon.VisitorID == ss.VisitorID || anon.ID == ss.ID {
			t.Fatalf("session = %+v, want a new anonymous visitor", anon)
		}
		_, err := e.svc.Session(widgetCtx(ss.Token))
		wantCode(t, err, known.Unauthenticated)
		_, err = e.svc.SetProperties(widgetCtx(ss.Token), nil, map[string]any{"x": 1})
		wantCode(t, err, known.Unauthenticated)
		after := readUser(t, e, uid)
		if fmt.Sprint(after.VisitorIDs) != fmt.Sprint(before.VisitorIDs) || fmt.Sprint(after.Metadata) != fmt.Sprint(before.Metadata) {
			t.Fatalf("user changed on logout: %+v", after)
		}
		if got := sessionOf(t, e, anon.Token); !got.Anonymous() {
			t.Fatalf("new session = %+v", got)
		}
	})
	t.Run("NullIDOnAnonymousSessionKeepsVisitor", func(t *testing.T) {
		a := anonymous(t, e)
		again := setUser(t, e, a.Token, service.SetUserInput{Attrs: map[string]any{"x": 1}})
		if again.VisitorID != a.VisitorID || !again.Anonymous() {
			t.Fatalf("session = %+v", again)
		}
	})
}
