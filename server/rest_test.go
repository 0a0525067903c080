package main

import (
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/knownhq/known"
)

// The seeds' own REST APIs (API.md §10): each seed's example payloads, checked through GraphQL
// with the secret key; every error status; and the OpenAPI document, against which every
// request and response here is validated (restClient).

// restSession is the session a widget route answers.
type restSession struct {
	Session struct {
		Token     string  `json:"token"`
		VisitorID string  `json:"visitor_id"`
		UserID    *string `json:"user_id"`
		Anonymous bool    `json:"anonymous"`
		Verified  bool    `json:"verified"`
		ExpiresAt string  `json:"expires_at"`
	} `json:"session"`
}

// restUser is a user as /external/users answers it.
type restUser struct {
	ID              string         `json:"id"`
	FirstName       *string        `json:"firstName"`
	LastName        *string        `json:"lastName"`
	Context         *string        `json:"context"`
	Source          *string        `json:"source"`
	FkID            *string        `json:"fkId"`
	FkUserID        *string        `json:"fkUserId"`
	Email           *string        `json:"email"`
	PhoneNumber     *string        `json:"phoneNumber"`
	Metadata        map[string]any `json:"metadata"`
	ConversationIDs []string       `json:"conversationIds"`
}

func secretKeyHeader(key string) map[string]string { return map[string]string{"Agent-Secret-Key": key} }

func sessionHeader(token string) map[string]string {
	return map[string]string{"X-Widget-Session": token}
}

// widgetPost POSTs body to a widget route and fails the test unless it answers 200.
func widgetPost(tb testing.TB, c *restClient, path, token string, body any, out any) {
	tb.Helper()
	var h map[string]string
	if token != "" {
		h = sessionHeader(token)
	}
	res := c.do(tb, restCall{method: http.MethodPost, path: path, header: h, body: body})
	if res.Status != http.StatusOK {
		tb.Fatalf("POST %s %v = %d %s", path, body, res.Status, res.Body)
	}
	res.decode(tb, out)
}

// gqlUserByID reads the fields of a user through GraphQL with the secret key.
func gqlUserByID(tb testing.TB, baseURL, key, id, fields string, out any) {
	tb.Helper()
	gql(tb, baseURL, key, `query($id: ID!) { user(id: $id) { `+fields+` } }`, map[string]any{"id": id}).decode(tb, out)
}

func TestREST(t *testing.T) {
	k := startREST(t)
	c := k.client
	appID, key, identitySecret := createProjectWithIdentitySecret(t, k.URL, "REST")

	t.Run("Seed002MinimumPayloadClaimsTheEmailInANewVisitor", func(t *testing.T) {
		var s restSession
		widgetPost(t, c, "/api/widget/identify", "", map[string]any{
			"app_id": appID, "visitor_id": "user_456", "email": "alice@acme.com",
		}, &s)
		if s.Session.Token == "" || s.Session.Anonymous || s.Session.Verified || s.Session.UserID == nil {
			t.Fatalf("session %+v; want a token and a claimed, unverified user", s.Session)
		}
		if s.Session.VisitorID == "user_456" {
			t.Errorf("the visitor id sent without its token was adopted")
		}
		var data struct {
			User struct {
				Email      string
				Verified   bool
				VisitorIDs []string `json:"visitorIds"`
			}
		}
		gqlUserByID(t, k.URL, key, *s.Session.UserID, "email verified visitorIds", &data)
		if data.User.Email != "alice@acme.com" || data.User.Verified || !slices.Equal(data.User.VisitorIDs, []string{s.Session.VisitorID}) {
			t.Fatalf("GraphQL user = %+v; want alice@acme.com, unverified, visitor %s", data.User, s.Session.VisitorID)
		}
	})

	var alice restSession
	t.Run("Seed002RecommendedPayloadWritesUserAndCompany", func(t *testing.T) {
		widgetPost(t, c, "/api/widget/identify", "", map[string]any{
			"app_id":     appID,
			"visitor_id": "user_456",
			"user_id":    "user_456",
			"email":      "alice@acme.com",
			"name":       "Alice",
			"metadata":   map[string]any{"plan": "enterprise", "role": "admin"},
			"company": map[string]any{
				"id": "acme", "name": "Acme Inc", "stage": "Qualified",
				"metadata": map[string]any{"arr_band": "50k-100k", "crm_owner": "Sam"},
			},
		}, &alice)
		if alice.Session.UserID == nil || alice.Session.Anonymous {
			t.Fatalf("session %+v; want an identified user", alice.Session)
		}
		var data struct {
			User struct {
				ExternalID, Email, Name string
				Metadata                map[string]any
				ActiveCompany           struct {
					ExternalID, Name, Stage string
					Metadata                map[string]any
				}
			}
		}
		gqlUserByID(t, k.URL, key, *alice.Session.UserID,
			`externalId email name metadata activeCompany { externalId name stage metadata }`, &data)
		u := data.User
		if u.ExternalID != "user_456" || u.Email != "alice@acme.com" || u.Name != "Alice" ||
			!reflect.DeepEqual(u.Metadata, map[string]any{"plan": "enterprise", "role": "admin"}) {
			t.Errorf("GraphQL user = %+v", u)
		}
		if co := u.ActiveCompany; co.ExternalID != "acme" || co.Name != "Acme Inc" || co.Stage != "Qualified" ||
			!reflect.DeepEqual(co.Metadata, map[string]any{"arr_band": "50k-100k", "crm_owner": "Sam"}) {
			t.Errorf("GraphQL active company = %+v", co)
		}
	})
	if alice.Session.Token == "" {
		t.Fatal("no session to go on with")
	}

	t.Run("Seed002LaterCallsActThroughTheSession", func(t *testing.T) {
		token := alice.Session.Token
		var s restSession
		widgetPost(t, c, "/api/widget/set-properties", token, map[string]any{
			"properties": map[string]any{"seats": 12, "role": nil},
		}, &s)
		if s.Session.UserID == nil || *s.Session.UserID != *alice.Session.UserID {
			t.Errorf("set-properties answered session %+v", s.Session)
		}
		var ev struct {
			Event struct{ ID, Event, OccurredAt string } `json:"event"`
		}
		widgetPost(t, c, "/api/widget/track", token, map[string]any{
			"event": "trial-started", "properties": map[string]any{"plan": "pro"}, "company_id": "acme",
			"occurred_at": "2026-01-02T15:04:05Z",
		}, &ev)
		if ev.Event.Event != "trial-started" || ev.Event.ID == "" {
			t.Errorf("track answered %+v", ev)
		}
		var co struct {
			Company map[string]any `json:"company"`
		}
		widgetPost(t, c, "/api/widget/set-stage", token, map[string]any{"stage": "Customer", "stage_mode": "OVERWRITE"}, &co)
		if !reflect.DeepEqual(co.Company, map[string]any{"id": "acme"}) {
			t.Errorf("set-stage answered %v; want only the company id it wrote", co.Company)
		}
		widgetPost(t, c, "/api/widget/set-deal", token, map[string]any{
			"company_id": "acme", "name": "Expansion", "amount": 50000, "currency": "usd", "status": "WON",
		}, &co)

		var data struct {
			User struct {
				Metadata map[string]any
				Events   struct {
					Nodes []struct{ ID, Name, OccurredAt string }
				}
				ActiveCompany struct {
					Stage string
					Deal  struct {
						Name, Currency, Status string
						Amount                 float64
					}
				}
			}
		}
		gqlUserByID(t, k.URL, key, *alice.Session.UserID, `metadata events(first: 5) { nodes { id name occurredAt } }
			activeCompany { stage deal { name amount currency status } }`, &data)
		u := data.User
		if !reflect.DeepEqual(u.Metadata, map[string]any{"plan": "enterprise", "seats": float64(12)}) {
			t.Errorf("metadata after set-properties = %v; want seats added and role removed", u.Metadata)
		}
		if len(u.Events.Nodes) != 1 || u.Events.Nodes[0].ID != ev.Event.ID || u.Events.Nodes[0].Name != "trial-started" ||
			u.Events.Nodes[0].OccurredAt != "2026-01-02T15:04:05Z" {
			t.Errorf("events = %+v; want the tracked one", u.Events.Nodes)
		}
		d := u.ActiveCompany.Deal
		if u.ActiveCompany.Stage != "Customer" || d.Name != "Expansion" || d.Amount != 50000 || d.Currency != "USD" || d.Status != "WON" {
			t.Errorf("company = %+v; want stage Customer and the deal", u.ActiveCompany)
		}
	})

	var ann restUser
	t.Run("Seed001CreateAnswers201AndTheUser", func(t *testing.T) {
		res := c.do(t, restCall{method: http.MethodPost, path: "/external/users", header: secretKeyHeader(key), body: map[string]any{
			"email": "ann@example.com", "phoneNumber": "+14155550123", "firstName": "Ann", "lastName": "Lee",
			"context": "Support", "source": "webchat", "fkId": 123456, "fkUserId": "123456",
			"metadata": map[string]any{"customData": map[string]any{"key1": "value1", "key2": "value2"}},
		}})
		if res.Status != http.StatusCreated {
			t.Fatalf("POST /external/users = %d %s", res.Status, res.Body)
		}
		res.decode(t, &ann)
		if res.Header.Get("Location") != "/external/users/"+ann.ID {
			t.Errorf("Location = %q", res.Header.Get("Location"))
		}
		want := map[string]string{"firstName": "Ann", "lastName": "Lee", "context": "Support", "source": "webchat",
			"fkId": "123456", "fkUserId": "123456", "email": "ann@example.com", "phoneNumber": "+14155550123"}
		got := map[string]string{"firstName": deref(ann.FirstName), "lastName": deref(ann.LastName), "context": deref(ann.Context),
			"source": deref(ann.Source), "fkId": deref(ann.FkID), "fkUserId": deref(ann.FkUserID), "email": deref(ann.Email),
			"phoneNumber": deref(ann.PhoneNumber)}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("created user = %v, want %v", got, want)
		}
		var data struct{ User *gqlUser }
		gqlUserByID(t, k.URL, key, ann.ID, userFields, &data)
		if data.User == nil || deref(data.User.ExternalID) != "123456" || deref(data.User.Name) != "Ann Lee" ||
			!reflect.DeepEqual(data.User.Metadata, ann.Metadata) {
			t.Fatalf("GraphQL user(%s) = %+v", ann.ID, data.User)
		}
	})
	if ann.ID == "" {
		t.Fatal("no user to go on with")
	}

	t.Run("Seed001SearchAnswersTheUserWithItsConversationIDs", func(t *testing.T) {
		res := c.do(t, restCall{method: http.MethodGet, path: "/external/users/search?fkId=123456", header: secretKeyHeader(key)})
		if res.Status != http.StatusOK || !strings.Contains(string(res.Body), `"conversationIds":[]`) {
			t.Fatalf("search before any conversation = %d %s; want conversationIds []", res.Status, res.Body)
		}
		// The user talks to support from the widget, claiming its fkId.
		var s restSession
		widgetPost(t, c, "/api/widget/identify", "", map[string]any{"app_id": appID, "user_id": 123456}, &s)
		if s.Session.UserID == nil || *s.Session.UserID != ann.ID {
			t.Fatalf("identify with user_id 123456 = %+v; want Ann %s", s.Session, ann.ID)
		}
		startConversationAs(t, k.URL, s.Session.Token, "Hello")

		var want struct {
			SearchUsers []struct{ ConversationIDs []string }
		}
		gql(t, k.URL, key, `{ searchUsers(externalId: "123456") { conversationIds } }`, nil).decode(t, &want)
		if len(want.SearchUsers) != 1 || len(want.SearchUsers[0].ConversationIDs) != 1 {
			t.Fatalf("GraphQL searchUsers = %+v; want one conversation", want)
		}
		for _, query := range []string{"email=ANN%40example.com", "phoneNumber=%2B14155550123", "phoneNumber=+14155550123",
			"fkId=123456", "email=ann@example.com&fkId=123456"} {
			res := c.do(t, restCall{method: http.MethodGet, path: "/external/users/search?" + query, header: secretKeyHeader(key)})
			var u restUser
			res.decode(t, &u)
			if res.Status != http.StatusOK || u.ID != ann.ID || !slices.Equal(u.ConversationIDs, want.SearchUsers[0].ConversationIDs) {
				t.Errorf("search ?%s = %d %s; want Ann with conversations %v", query, res.Status, res.Body, want.SearchUsers[0].ConversationIDs)
			}
		}
	})

	t.Run("Seed001GetAnswersTheUser", func(t *testing.T) {
		res := c.do(t, restCall{method: http.MethodGet, path: "/external/users/" + ann.ID, header: secretKeyHeader(key)})
		var u restUser
		res.decode(t, &u)
		ann.ConversationIDs = nil
		if res.Status != http.StatusOK || !reflect.DeepEqual(u, ann) {
			t.Fatalf("GET = %d %s; want %+v", res.Status, res.Body, ann)
		}
	})

	t.Run("Seed004TokenVerifiesTheVisitorWithItsEmail", func(t *testing.T) {
		res := c.do(t, restCall{method: http.MethodPost, path: "/conversations/v3/visitor-identification/tokens/create",
			header: map[string]string{"Authorization": "Bearer " + key},
			body:   map[string]any{"email": "gob@bluth.com", "firstName": "Gob", "lastName": "Bluth"}})
		var tok struct{ Token, ExpiresAt string }
		res.decode(t, &tok)
		if res.Status != http.StatusOK || tok.Token == "" {
			t.Fatalf("token route = %d %s", res.Status, res.Body)
		}
		var s restSession
		widgetPost(t, c, "/api/widget/identify", "", map[string]any{
			"app_id": appID, "email": "Gob@Bluth.com", "identification_token": tok.Token,
		}, &s)
		if !s.Session.Verified || s.Session.UserID == nil {
			t.Fatalf("identify with the token = %+v; want verified", s.Session)
		}
		var data struct {
			User struct {
				Email, Name, VerificationMethod string
				Verified                        bool
			}
		}
		gqlUserByID(t, k.URL, key, *s.Session.UserID, "email name verified verificationMethod", &data)
		if u := data.User; u.Email != "Gob@Bluth.com" || u.Name != "Gob Bluth" || !u.Verified || u.VerificationMethod != "TOKEN" {
			t.Fatalf("GraphQL user = %+v; want Gob Bluth verified by TOKEN", u)
		}
	})

	t.Run("Seed001DeleteAnswers204AndErasesTheUser", func(t *testing.T) {
		path := "/external/users/" + ann.ID
		if res := c.do(t, restCall{method: http.MethodDelete, path: path, header: secretKeyHeader(key)}); res.Status != http.StatusNoContent || len(res.Body) != 0 {
			t.Fatalf("DELETE = %d %q; want 204 and no body", res.Status, res.Body)
		}
		gql(t, k.URL, key, `query($id: ID!) { user(id: $id) { id } }`, map[string]any{"id": ann.ID}).requireCode(t, "NOT_FOUND")
		c.do(t, restCall{method: http.MethodGet, path: path, header: secretKeyHeader(key)}).requireError(t, 404, "NOT_FOUND", "")
		c.do(t, restCall{method: http.MethodDelete, path: path, header: secretKeyHeader(key)}).requireError(t, 404, "NOT_FOUND", "id")
		c.do(t, restCall{method: http.MethodGet, path: "/external/users/search?fkId=123456", header: secretKeyHeader(key)}).
			requireError(t, 404, "NOT_FOUND", "")
	})

	t.Run("Errors", func(t *testing.T) {
		testRESTErrors(t, k, appID, key, identitySecret)
	})

	if missing := c.unexercised(); len(missing) > 0 {
		t.Errorf("operations of /openapi.json that no test sent a request to: %v", missing)
	}
}

// startConversationAs starts a conversation from a widget session through GraphQL.
func startConversationAs(tb testing.TB, baseURL, token, body string) {
	tb.Helper()
	var data struct {
		StartConversation struct {
			Conversation *struct{ ID string }
			UserErrors   []userError
		}
	}
	widgetGQL(tb, baseURL, token, `mutation($b: String!) { startConversation(input: {body: $b}) { conversation { id } userErrors { code } } }`,
		map[string]any{"b": body}).decode(tb, &data)
	if data.StartConversation.Conversation == nil {
		tb.Fatalf("startConversation: %+v", data.StartConversation.UserErrors)
	}
}

// testRESTErrors: every error status of API.md §10, with the seed's field names, and a
// refused input changes nothing.
func testRESTErrors(t *testing.T, k *restServer, appID, key, identitySecret string) {
	c := k.client
	var bob restSession
	widgetPost(t, c, "/api/widget/identify", "", map[string]any{"app_id": appID, "user_id": "bob", "email": "bob@example.com"}, &bob)
	token := bob.Session.Token
	users := allUserIDs(t, k.URL, key)
	identify := func(t *testing.T, h map[string]string, body any, offSpec bool) restResponse {
		t.Helper()
		return c.do(t, restCall{method: http.MethodPost, path: "/api/widget/identify", header: h, body: body, offSpec: offSpec})
	}

	t.Run("400", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			body    any
			offSpec bool
			code    string
			field   string
		}{
			{"AppIDRequired", map[string]any{"email": "x@example.com"}, true, "BAD_USER_INPUT", "app_id"},
			{"UnknownFieldIsRefusedNotIgnored", map[string]any{"app_id": appID, "user_id": "u1", "user_hahs": "00"}, true, "BAD_USER_INPUT", "user_hahs"},
			{"UserIDOfWrongType", map[string]any{"app_id": appID, "user_id": true}, true, "BAD_USER_INPUT", "user_id"},
			{"UserIDNotAnInteger", map[string]any{"app_id": appID, "user_id": 1.5}, true, "BAD_USER_INPUT", "user_id"},
			{"MetadataNotAnObject", map[string]any{"app_id": appID, "metadata": "plan=pro"}, true, "BAD_USER_INPUT", "metadata"},
			{"CompanyIDOfWrongType", map[string]any{"app_id": appID, "company": map[string]any{"id": 7}}, true, "BAD_USER_INPUT", "company.id"},
			{"StageModeNotAMode", map[string]any{"app_id": appID, "stage_mode": "sometimes"}, true, "BAD_USER_INPUT", "stage_mode"},
			{"EmailInvalid", map[string]any{"app_id": appID, "user_id": "u2", "email": "not-an-email"}, false, "INVALID", "email"},
			{"PhoneNumberInvalid", map[string]any{"app_id": appID, "phone_number": "12"}, false, "INVALID", "phone_number"},
			{"CompanyIDBlank", map[string]any{"app_id": appID, "company": map[string]any{"id": " "}}, false, "INVALID", "company.id"},
			{"CompanyIDsItemBlank", map[string]any{"app_id": appID, "company_ids": []string{"a", " "}}, false, "INVALID", "company_ids[1]"},
			{"UserIDTooLong", map[string]any{"app_id": appID, "user_id": strings.Repeat("x", 256)}, false, "LIMIT_EXCEEDED", "user_id"},
			{"BodyNotJSON", []byte(`{"app_id": `), true, "BAD_REQUEST", ""},
			{"BodyNotAnObject", []byte(`["app_id"]`), true, "BAD_USER_INPUT", ""},
		} {
			t.Run("Identify"+tc.name, func(t *testing.T) {
				identify(t, nil, tc.body, tc.offSpec).requireError(t, 400, tc.code, tc.field)
			})
		}
		for _, tc := range []struct {
			name, path string
			body       any
			offSpec    bool
			code       string
			field      string
		}{
			{"SetPropertiesNeedsProperties", "/api/widget/set-properties", map[string]any{}, true, "BAD_USER_INPUT", "properties"},
			{"SetPropertiesKeyNotAllowed", "/api/widget/set-properties", map[string]any{"properties": map[string]any{"$where": 1}}, false, "INVALID", "properties"},
			{"TrackNeedsEvent", "/api/widget/track", map[string]any{"properties": map[string]any{}}, true, "BAD_USER_INPUT", "event"},
			{"TrackOccurredAtNotATime", "/api/widget/track", map[string]any{"event": "e", "occurred_at": "yesterday"}, true, "BAD_USER_INPUT", "occurred_at"},
			{"SetStageNeedsStage", "/api/widget/set-stage", map[string]any{"company_id": "acme"}, true, "BAD_USER_INPUT", "stage"},
			{"SetDealStatusNotAStatus", "/api/widget/set-deal", map[string]any{"status": "maybe"}, true, "BAD_USER_INPUT", "status"},
			{"SetDealCurrencyInvalid", "/api/widget/set-deal", map[string]any{"currency": "dollars"}, false, "INVALID", "currency"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c.do(t, restCall{method: http.MethodPost, path: tc.path, header: sessionHeader(token), body: tc.body, offSpec: tc.offSpec}).
					requireError(t, 400, tc.code, tc.field)
			})
		}
		for _, tc := range []struct {
			name, method, path string
			body               any
			offSpec            bool
			code               string
			field              string
		}{
			{"CreateUserNeedsEmailOrPhone", http.MethodPost, "/external/users", map[string]any{"firstName": "Nobody", "fkId": "nobody"}, false, "INVALID", ""},
			{"CreateUserEmailInvalid", http.MethodPost, "/external/users", map[string]any{"email": "nobody"}, false, "INVALID", "email"},
			{"CreateUserFkIDTooLong", http.MethodPost, "/external/users", map[string]any{"email": "n@example.com", "fkId": strings.Repeat("1", 256)}, false, "LIMIT_EXCEEDED", "fkId"},
			{"CreateUserUnknownField", http.MethodPost, "/external/users", map[string]any{"email": "n@example.com", "externalId": "1"}, true, "BAD_USER_INPUT", "externalId"},
			{"SearchNeedsAParameter", http.MethodGet, "/external/users/search", nil, false, "BAD_USER_INPUT", ""},
			{"SearchUnknownParameter", http.MethodGet, "/external/users/search?externalId=1", nil, false, "BAD_USER_INPUT", "externalId"},
			{"SearchPhoneNumberInvalid", http.MethodGet, "/external/users/search?phoneNumber=12", nil, false, "BAD_USER_INPUT", "phoneNumber"},
			{"GetNotAUserID", http.MethodGet, "/external/users/" + known.GlobalID(known.KindCompany, "x"), nil, false, "BAD_USER_INPUT", "id"},
			{"DeleteNotAnID", http.MethodDelete, "/external/users/nope", nil, false, "BAD_USER_INPUT", "id"},
			{"TokenNeedsEmail", http.MethodPost, "/conversations/v3/visitor-identification/tokens/create", map[string]any{"firstName": "Gob"}, true, "BAD_USER_INPUT", "email"},
			{"TokenEmailInvalid", http.MethodPost, "/conversations/v3/visitor-identification/tokens/create", map[string]any{"email": "gob"}, false, "INVALID", "email"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c.do(t, restCall{method: tc.method, path: tc.path, header: secretKeyHeader(key), body: tc.body, offSpec: tc.offSpec}).
					requireError(t, 400, tc.code, tc.field)
			})
		}
		if after := allUserIDs(t, k.URL, key); !slices.Equal(after, users) {
			t.Errorf("refused requests changed the users: %v → %v", users, after)
		}
	})

	t.Run("401", func(t *testing.T) {
		for _, tc := range []struct {
			name, method, path string
			header             map[string]string
			body               any
		}{
			{"WidgetCallWithoutSession", http.MethodPost, "/api/widget/set-properties", nil, map[string]any{"properties": map[string]any{"a": 1}}},
			{"WidgetCallWithForgedSession", http.MethodPost, "/api/widget/track", sessionHeader(token + "x"), map[string]any{"event": "e"}},
			{"IdentifyWithForgedSession", http.MethodPost, "/api/widget/identify", sessionHeader("ks1.forged"), map[string]any{"app_id": appID}},
			{"UsersWithoutKey", http.MethodPost, "/external/users", nil, map[string]any{"email": "x@example.com"}},
			{"UsersWithWrongKey", http.MethodGet, "/external/users/search?fkId=bob", secretKeyHeader("sk_wrong"), nil},
			{"KeyBeforeInput", http.MethodPost, "/external/users", nil, map[string]any{"email": 5}},
			{"TokenWithWrongBearer", http.MethodPost, "/conversations/v3/visitor-identification/tokens/create", map[string]string{"Authorization": "Bearer sk_wrong"}, map[string]any{"email": "gob@bluth.com"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c.do(t, restCall{method: tc.method, path: tc.path, header: tc.header, body: tc.body, offSpec: true}).
					requireError(t, 401, "UNAUTHENTICATED", "")
			})
		}
	})

	t.Run("403", func(t *testing.T) {
		otherApp, _ := createProject(t, k.URL, "Other")
		identify(t, sessionHeader(token), map[string]any{"app_id": otherApp}, false).requireError(t, 403, "FORBIDDEN", "app_id")

		_, shopKey := createProject(t, k.URL, "Shop")
		var up struct {
			UpdateProject struct{ Project struct{ AppID string } }
		}
		gql(t, k.URL, shopKey, `mutation { updateProject(input: {allowedOrigins: ["https://shop.example"]}) { project { appId } } }`, nil).decode(t, &up)
		shop := up.UpdateProject.Project.AppID
		identify(t, map[string]string{"Origin": "https://evil.example"}, map[string]any{"app_id": shop}, false).requireError(t, 403, "FORBIDDEN", "")
		if res := identify(t, map[string]string{"Origin": "https://shop.example"}, map[string]any{"app_id": shop}, false); res.Status != 200 {
			t.Errorf("identify from an allowed origin = %d %s", res.Status, res.Body)
		}
	})

	t.Run("404", func(t *testing.T) {
		identify(t, nil, map[string]any{"app_id": "app_nope"}, false).requireError(t, 404, "NOT_FOUND", "app_id")
		c.do(t, restCall{method: http.MethodGet, path: "/external/users/" + known.GlobalID(known.KindUser, "nope"), header: secretKeyHeader(key)}).
			requireError(t, 404, "NOT_FOUND", "")
		c.do(t, restCall{method: http.MethodGet, path: "/external/users/search?email=nobody@example.com", header: secretKeyHeader(key)}).
			requireError(t, 404, "NOT_FOUND", "")
		// Another project's user does not exist for this key.
		_, otherKey := createProject(t, k.URL, "Elsewhere")
		c.do(t, restCall{method: http.MethodGet, path: "/external/users/" + *bob.Session.UserID, header: secretKeyHeader(otherKey)}).
			requireError(t, 404, "NOT_FOUND", "")
		c.do(t, restCall{method: http.MethodDelete, path: "/external/users/" + *bob.Session.UserID, header: secretKeyHeader(otherKey)}).
			requireError(t, 404, "NOT_FOUND", "id")
	})

	t.Run("409", func(t *testing.T) {
		post := func(body map[string]any) restResponse {
			return c.do(t, restCall{method: http.MethodPost, path: "/external/users", header: secretKeyHeader(key), body: body})
		}
		e := post(map[string]any{"email": "BOB@example.com"}).requireError(t, 409, "ALREADY_EXISTS", "email")
		if !strings.Contains(e.Message, *bob.Session.UserID) {
			t.Errorf("message %q does not name the user %s", e.Message, *bob.Session.UserID)
		}
		post(map[string]any{"email": "new@example.com", "fkId": "bob"}).requireError(t, 409, "ALREADY_EXISTS", "fkId")
		carol := post(map[string]any{"email": "carol@example.com"})
		if carol.Status != http.StatusCreated {
			t.Fatalf("creating carol = %d %s", carol.Status, carol.Body)
		}
		c.do(t, restCall{method: http.MethodGet, path: "/external/users/search?email=carol@example.com&fkId=bob", header: secretKeyHeader(key)}).
			requireError(t, 409, "IDENTITY_CONFLICT", "")
		identify(t, nil, map[string]any{"app_id": appID, "user_id": "someone-else", "email": "bob@example.com"}, false).
			requireError(t, 409, "IDENTITY_CONFLICT", "email")
	})

	t.Run("422", func(t *testing.T) {
		identify(t, nil, map[string]any{"app_id": appID, "user_id": "vera", "user_hash": strings.Repeat("0", 64)}, false).
			requireError(t, 422, "VERIFICATION_FAILED", "user_hash")
		var v restSession
		widgetPost(t, c, "/api/widget/identify", "", map[string]any{"app_id": appID, "user_id": "vera",
			"user_hash": userHashOf(identitySecret, "vera")}, &v)
		if !v.Session.Verified {
			t.Fatalf("identify with the right user_hash = %+v", v.Session)
		}
		identify(t, nil, map[string]any{"app_id": appID, "user_id": "vera"}, false).
			requireError(t, 422, "VERIFICATION_REQUIRED", "user_id")
		c.do(t, restCall{method: http.MethodPost, path: "/api/widget/set-stage", header: sessionHeader(token), body: map[string]any{"stage": "Lead"}}).
			requireError(t, 422, "COMPANY_REQUIRED", "company_id")
	})

	t.Run("429", func(t *testing.T) {
		k.limiter.refuse.Store(true)
		defer k.limiter.refuse.Store(false)
		for path, body := range map[string]map[string]any{
			"/api/widget/identify": {"app_id": appID}, "/api/widget/track": {"event": "e"},
		} {
			res := c.do(t, restCall{method: http.MethodPost, path: path, header: sessionHeader(token), body: body})
			res.requireError(t, 429, "RATE_LIMITED", "")
			if res.Header.Get("Retry-After") != "3" {
				t.Errorf("%s: Retry-After = %q, want 3 (the limiter's 2.5 s, rounded up)", path, res.Header.Get("Retry-After"))
			}
		}
	})

	t.Run("413", func(t *testing.T) {
		big := []byte(`{"app_id": "` + strings.Repeat("x", 1<<20) + `"}`)
		identify(t, nil, big, true).requireError(t, 413, "PAYLOAD_TOO_LARGE", "")
	})
}
