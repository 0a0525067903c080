package service_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/service"
	"github.com/knownhq/known/store"
)

func TestCreateUser(t *testing.T) {
	e := newEnv(t)
	if _, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{
		Email: str("Taken@Example.com"), PhoneNumber: str("+14155550100"), ExternalID: str("123"),
	}); err != nil {
		t.Fatal(err)
	}
	// Six levels of objects: one more than the limit of 5.
	deep := map[string]any{"a": map[string]any{"b": map[string]any{"c": map[string]any{"d": map[string]any{"e": map[string]any{"f": 1}}}}}}
	many := map[string]any{}
	for i := range 51 {
		many[fmt.Sprint("k", i)] = i
	}
	// Short strings under 50 keys stay below 16 KiB; a long array does not.
	var list []any
	for range 70 {
		list = append(list, strings.Repeat("x", 250))
	}
	big := map[string]any{"k": list}
	long := strings.Repeat("é", 256)

	// Each case is rejected with exactly this code on this field, and creates nothing.
	rejects := []struct {
		name  string
		in    service.CreateUserInput
		code  known.Code
		field []string
	}{
		{"EmailOrPhoneRequired", service.CreateUserInput{FirstName: str("Ann")}, known.Invalid, []string{"input"}},
		{"BlankEmailAndPhoneAreNotGiven", service.CreateUserInput{Email: str("  "), PhoneNumber: str("")}, known.Invalid, []string{"input"}},
		{"EmailSyntaxChecked", service.CreateUserInput{Email: str("ann@")}, known.Invalid, []string{"input", "email"}},
		{"EmailWithDisplayNameRefused", service.CreateUserInput{Email: str("Ann <ann@example.com>")}, known.Invalid, []string{"input", "email"}},
		{"EmailNeedsDomainWithDot", service.CreateUserInput{Email: str("ann@localhost")}, known.Invalid, []string{"input", "email"}},
		{"PhoneMustBeE164", service.CreateUserInput{PhoneNumber: str("415-555-0100")}, known.Invalid, []string{"input", "phoneNumber"}},
		{"PhoneNoLeadingZeroCountryCode", service.CreateUserInput{PhoneNumber: str("+0123456789")}, known.Invalid, []string{"input", "phoneNumber"}},
		{"PhoneTooLong", service.CreateUserInput{PhoneNumber: str("+1234567890123456")}, known.Invalid, []string{"input", "phoneNumber"}},
		{"EmailAlreadyExistsCaseInsensitive", service.CreateUserInput{Email: str("taken@EXAMPLE.com")}, known.AlreadyExists, []string{"input", "email"}},
		{"PhoneAlreadyExists", service.CreateUserInput{PhoneNumber: str("+14155550100")}, known.AlreadyExists, []string{"input", "phoneNumber"}},
		{"ExternalIDAlreadyExists", service.CreateUserInput{Email: str("new@example.com"), ExternalID: str("123")}, known.AlreadyExists, []string{"input", "externalId"}},
		{"StringLimit", service.CreateUserInput{Email: str("a@example.com"), FirstName: &long}, known.LimitExceeded, []string{"input", "firstName"}},
		{"MetadataKeyLimit", service.CreateUserInput{Email: str("a@example.com"), Metadata: many}, known.LimitExceeded, []string{"input", "metadata"}},
		{"MetadataDepthLimit", service.CreateUserInput{Email: str("a@example.com"), Metadata: deep}, known.Invalid, []string{"input", "metadata"}},
		{"MetadataSizeLimit", service.CreateUserInput{Email: str("a@example.com"), Metadata: big}, known.LimitExceeded, []string{"input", "metadata"}},
		{"MetadataStringLimit", service.CreateUserInput{Email: str("a@example.com"), Metadata: map[string]any{"k": long}}, known.Invalid, []string{"input", "metadata"}},
		{"MetadataKeyWithDotRefused", service.CreateUserInput{Email: str("a@example.com"), Metadata: map[string]any{"a.b": 1}}, known.Invalid, []string{"input", "metadata"}},
		{"MetadataKeyWithDollarRefused", service.CreateUserInput{Email: str("a@example.com"), Metadata: map[string]any{"$set": 1}}, known.Invalid, []string{"input", "metadata"}},
	}
	before := e.counts(t, e.project.Project.ID)
	for _, tc := range rejects {
		t.Run(tc.name, func(t *testing.T) {
			u, err := e.svc.CreateUser(e.ctx, tc.in)
			if u != nil {
				t.Fatalf("user created: %+v", u)
			}
			wantCode(t, err, tc.code, tc.field...)
		})
	}
	t.Run("RejectedInputChangesNothing", func(t *testing.T) {
		after := e.counts(t, e.project.Project.ID)
		if fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("documents changed: before %v, after %v", before, after)
		}
	})
	t.Run("AllBadFieldsReportedTogether", func(t *testing.T) {
		_, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("bad"), PhoneNumber: str("bad")})
		es, uerr := known.UserErrors(err)
		if uerr != nil || len(es) != 2 {
			t.Fatalf("want 2 user errors, got %v / %v", es, uerr)
		}
	})
	t.Run("AlreadyExistsNamesTheExistingUser", func(t *testing.T) {
		first, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("named@example.com")})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("NAMED@example.com")})
		wantCode(t, err, known.AlreadyExists, "input", "email")
		if !strings.Contains(err.Error(), first.GlobalID()) {
			t.Fatalf("error %q does not name %s", err, first.GlobalID())
		}
	})
	t.Run("StoresEveryField", func(t *testing.T) {
		u, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{
			Email: str(" Jane@Example.com "), PhoneNumber: str("+442071838750"), FirstName: str("Jane"), LastName: str("Doe"),
			Context: str("Support"), Source: str("webchat"), ExternalID: str("u-9"), FkUserID: str("fk-9"),
			Metadata: map[string]any{"plan": "pro", "seats": int64(3), "nested": map[string]any{"ok": true}},
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.svc.User(e.ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		checks := map[string][2]any{
			"email":     {*got.Email, "Jane@Example.com"},
			"phone":     {*got.PhoneNumber, "+442071838750"},
			"name":      {*got.Name, "Jane Doe"},
			"context":   {*got.Context, "Support"},
			"source":    {*got.Source, "webchat"},
			"external":  {string(*got.ExternalID), "u-9"},
			"fk":        {*got.FkUserID, "fk-9"},
			"plan":      {got.Metadata["plan"], "pro"},
			"seats":     {fmt.Sprint(got.Metadata["seats"]), "3"},
			"nested":    {jsonText(t, got.Metadata["nested"]), `{"ok":true}`},
			"anonymous": {got.Anonymous(), false},
			"verified":  {got.Verified, false},
		}
		for name, c := range checks {
			if c[0] != c[1] {
				t.Errorf("%s = %v, want %v", name, c[0], c[1])
			}
		}
	})
}

func jsonText(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCreateUserConcurrentOneEmail(t *testing.T) {
	e := newEnv(t)
	const n = 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	var created []*known.User
	codes := map[known.Code]int{}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("race@example.com"), FirstName: str(fmt.Sprint("r", i))})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				created = append(created, u)
			}
			codes[known.ErrorCode(err)]++
		}()
	}
	wg.Wait()
	if len(created) != 1 || codes[known.AlreadyExists] != n-1 {
		t.Fatalf("created %d users, codes %v; want 1 user and %d ALREADY_EXISTS", len(created), codes, n-1)
	}
	c := e.counts(t, e.project.Project.ID)
	if c["users"] != 1 || c["identity_keys"] != 1 {
		t.Fatalf("store holds %v, want 1 user and 1 identity key", c)
	}
}

func TestProjectIsolation(t *testing.T) {
	e := newEnv(t)
	a, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("a@example.com"), PhoneNumber: str("+14155550101"), ExternalID: str("a1")})
	if err != nil {
		t.Fatal(err)
	}
	other := e.newProject(t, "Other")
	b := e.as(t, other.SecretKey)

	t.Run("UserIsNotFound", func(t *testing.T) {
		_, err := e.svc.User(b, a.ID)
		wantCode(t, err, known.NotFound)
	})
	t.Run("ListsShowNone", func(t *testing.T) {
		us, _, err := e.svc.Users(b, service.UserFilter{}, known.Page{First: 100})
		if err != nil || len(us) != 0 {
			t.Fatalf("users = %v, %v; want none", us, err)
		}
	})
	t.Run("SearchFindsNone", func(t *testing.T) {
		ms, err := e.svc.SearchUsers(b, str("a@example.com"), str("+14155550101"), str("a1"))
		if err != nil || len(ms) != 0 {
			t.Fatalf("matches = %v, %v; want none", ms, err)
		}
	})
	t.Run("DeleteIsNotFoundAndChangesNothing", func(t *testing.T) {
		wantCode(t, e.svc.DeleteUser(b, a.ID), known.NotFound, "input", "id")
		if _, err := e.svc.User(e.ctx, a.ID); err != nil {
			t.Fatalf("A's user is gone: %v", err)
		}
	})
	t.Run("SameEmailIsFreeInAnotherProject", func(t *testing.T) {
		if _, err := e.svc.CreateUser(b, service.CreateUserInput{Email: str("a@example.com")}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCredentials(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name       string
		credential string
		code       known.Code
	}{
		{"NoKeyIsUnauthenticated", "", known.Unauthenticated},
		{"WrongKeyIsUnauthenticated", "sk_not-a-key", known.Unauthenticated},
		{"AdminTokenIsNoProjectKey", adminToken, known.Unauthenticated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := e.as(t, tc.credential)
			_, err := e.svc.CreateUser(ctx, service.CreateUserInput{Email: str("x@example.com")})
			wantCode(t, err, tc.code)
			_, _, err = e.svc.Users(ctx, service.UserFilter{}, known.Page{First: 10})
			wantCode(t, err, tc.code)
			_, err = e.svc.Project(ctx)
			wantCode(t, err, tc.code)
		})
	}
	t.Run("CreateProjectNeedsAdminToken", func(t *testing.T) {
		_, err := e.svc.CreateProject(e.as(t, ""), "x")
		wantCode(t, err, known.Unauthenticated)
		_, err = e.svc.CreateProject(e.ctx, "x")
		wantCode(t, err, known.Forbidden)
		_, err = e.svc.CreateProject(e.as(t, adminToken), "  ")
		wantCode(t, err, known.Invalid, "input", "name")
	})
	t.Run("CreateProjectDisabledWithoutAdminToken", func(t *testing.T) {
		svc := service.New(e.store, service.Options{Secret: testSecret})
		_, err := svc.CreateProject(e.as(t, ""), "x")
		wantCode(t, err, known.Forbidden)
	})
	t.Run("SecretKeyShownOnceStoredAsHash", func(t *testing.T) {
		p, err := e.svc.Project(e.ctx)
		if err != nil || p.ID != e.project.Project.ID {
			t.Fatalf("project = %v, %v", p, err)
		}
		if !strings.HasPrefix(e.project.SecretKey, "sk_") || len(e.project.IdentitySecret) != 64 {
			t.Fatalf("secrets look wrong: %q %q", e.project.SecretKey, e.project.IdentitySecret)
		}
	})
}

func TestSearchUsers(t *testing.T) {
	e := newEnv(t)
	u, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("Search@Example.com"), PhoneNumber: str("+14155550102"), ExternalID: str("s-1")})
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("other@example.com")})
	if err != nil {
		t.Fatal(err)
	}
	conv := addConversation(t, e, u.ID)

	cases := []struct {
		name              string
		email, phone, ext *string
		want              []known.UserID
	}{
		{"ByEmailCaseInsensitive", str("SEARCH@example.COM"), nil, nil, []known.UserID{u.ID}},
		{"ByPhone", nil, str("+14155550102"), nil, []known.UserID{u.ID}},
		{"ByExternalID", nil, nil, str("s-1"), []known.UserID{u.ID}},
		{"AllCriteriaOfOneUserGiveItOnce", str("search@example.com"), str("+14155550102"), str("s-1"), []known.UserID{u.ID}},
		{"CriteriaOfTwoUsersGiveBoth", str("other@example.com"), nil, str("s-1"), []known.UserID{u.ID, v.ID}},
		{"NoMatch", str("nobody@example.com"), nil, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := e.svc.SearchUsers(e.ctx, tc.email, tc.phone, tc.ext)
			if err != nil {
				t.Fatal(err)
			}
			var got []known.UserID
			for _, m := range ms {
				got = append(got, m.User.ID)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("found %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("MatchCarriesConversationIDs", func(t *testing.T) {
		ms, err := e.svc.SearchUsers(e.ctx, str("search@example.com"), nil, nil)
		if err != nil || len(ms) != 1 || len(ms[0].ConversationIDs) != 1 || ms[0].ConversationIDs[0] != conv {
			t.Fatalf("matches = %+v, %v; want one with conversation %s", ms, err, conv)
		}
	})
	t.Run("NoCriterionIsBadUserInput", func(t *testing.T) {
		_, err := e.svc.SearchUsers(e.ctx, nil, nil, nil)
		wantCode(t, err, known.BadUserInput)
	})
	t.Run("BadEmailIsBadUserInput", func(t *testing.T) {
		_, err := e.svc.SearchUsers(e.ctx, str("nope"), nil, nil)
		wantCode(t, err, known.BadUserInput, "email")
	})
}

func TestUsersPages(t *testing.T) {
	e := newEnv(t)
	var ids []known.UserID
	for i := range 5 {
		u, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str(fmt.Sprintf("p%d@example.com", i)), ExternalID: str(fmt.Sprint(i))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	var got []known.UserID
	page := known.Page{First: 2}
	for pages := 0; ; pages++ {
		us, more, err := e.svc.Users(e.ctx, service.UserFilter{}, page)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range us {
			got = append(got, u.ID)
		}
		if !more {
			break
		}
		if pages > 5 {
			t.Fatal("pages do not end")
		}
		page.After = string(us[len(us)-1].ID)
	}
	want := []known.UserID{ids[4], ids[3], ids[2], ids[1], ids[0]}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pages gave %v, want newest first %v", got, want)
	}
	t.Run("FilterByEmailAndExternalID", func(t *testing.T) {
		us, _, err := e.svc.Users(e.ctx, service.UserFilter{Email: str("P3@example.com")}, known.Page{First: 10})
		if err != nil || len(us) != 1 || us[0].ID != ids[3] {
			t.Fatalf("by email: %v, %v", us, err)
		}
		us, _, err = e.svc.Users(e.ctx, service.UserFilter{ExternalID: str("1")}, known.Page{First: 10})
		if err != nil || len(us) != 1 || us[0].ID != ids[1] {
			t.Fatalf("by externalId: %v, %v", us, err)
		}
	})
	for _, first := range []int{0, -1, 101, 1000} {
		t.Run(fmt.Sprint("FirstOutOfRange", first), func(t *testing.T) {
			_, _, err := e.svc.Users(e.ctx, service.UserFilter{}, known.Page{First: first})
			wantCode(t, err, known.BadUserInput, "first")
		})
	}
}

func TestDeleteUser(t *testing.T) {
	e := newEnv(t)
	u, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("gone@example.com"), PhoneNumber: str("+14155550103"), ExternalID: str("g-1")})
	if err != nil {
		t.Fatal(err)
	}
	keep, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("keep@example.com")})
	if err != nil {
		t.Fatal(err)
	}
	addConversation(t, e, u.ID)
	addConversation(t, e, keep.ID)
	now := time.Now().UTC()
	uid := u.ID
	if err := e.store.AddEvent(e.ctx, &known.Event{ID: known.EventID(store.NewID()), ProjectID: e.project.Project.ID, UserID: &uid, Name: "signed-up", OccurredAt: now, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}

	if err := e.svc.DeleteUser(e.ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.User(e.ctx, u.ID); known.ErrorCode(err) != known.NotFound {
		t.Fatalf("deleted user still readable: %v", err)
	}
	c := e.counts(t, e.project.Project.ID)
	want := map[string]int64{"users": 1, "identity_keys": 1, "conversations": 1, "messages": 1, "events": 0}
	if fmt.Sprint(c) != fmt.Sprint(want) {
		t.Fatalf("after delete the store holds %v, want %v (only the other user's)", c, want)
	}
	t.Run("IdentitiesAreFreeAgain", func(t *testing.T) {
		if _, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("GONE@example.com"), PhoneNumber: str("+14155550103"), ExternalID: str("g-1")}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("SecondDeleteIsNotFound", func(t *testing.T) {
		wantCode(t, e.svc.DeleteUser(e.ctx, u.ID), known.NotFound, "input", "id")
	})
}

// addConversation gives a user a conversation with one message, as the widget will.
func addConversation(t *testing.T, e *env, u known.UserID) known.ConversationID {
	t.Helper()
	now := time.Now().UTC()
	c := &known.Conversation{ID: known.ConversationID(store.NewID()), ProjectID: e.project.Project.ID, UserID: &u,
		VisitorID: "v1", Status: known.ConversationOpen, CreatedAt: now, UpdatedAt: now}
	if err := e.store.CreateConversation(e.ctx, c); err != nil {
		t.Fatal(err)
	}
	m := &known.Message{ID: known.MessageID(store.NewID()), ProjectID: e.project.Project.ID, ConversationID: c.ID,
		Body: "hello", Author: known.AuthorVisitor, CreatedAt: now}
	if err := e.store.AddMessage(e.ctx, c, m); err != nil {
		t.Fatal(err)
	}
	return c.ID
}
