package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"testing"
)

// This file plays real widget journeys over HTTP (API.md §3): the widget calls with its appId
// and then its X-Widget-Session token, and the dashboard checks the outcome with the secret key.
// The helpers here are shared with widget_access_test.go and identify_bench_test.go.

// widgetEnv is testEnv with the widget rate limit off, so that a journey of many calls from
// 127.0.0.1 is never refused. KNOWN_WIDGET_RATE_LIMIT defaults to 10 per second when unset.
func widgetEnv(tb testing.TB) map[string]string {
	env := testEnv(tb)
	env["KNOWN_WIDGET_RATE_LIMIT"] = "0"
	return env
}

// widgetCall POSTs a widget operation with token in X-Widget-Session and origin in Origin
// (each left out when ""), and returns the decoded response with the response's headers.
func widgetCall(tb testing.TB, baseURL, token, origin, query string, vars map[string]any) (response, http.Header) {
	tb.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		tb.Fatalf("encoding request: %v", err)
	}
	req, err := http.NewRequest(http.MethodPost, baseURL+"/graphql", bytes.NewReader(body))
	if err != nil {
		tb.Fatalf("making request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("X-Widget-Session", token)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	res, err := httpClient.Do(req)
	if err != nil {
		tb.Fatalf("POST /graphql: %v", err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatalf("reading response: %v", err)
	}
	r := response{Status: res.StatusCode, Body: string(raw)}
	var env struct {
		Data   json.RawMessage `json:"data"`
		Errors []gqlError      `json:"errors"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		tb.Fatalf("POST /graphql answered %d with a body that is not JSON: %q", res.StatusCode, raw)
	}
	r.Data, r.Errors = env.Data, env.Errors
	return r, res.Header
}

// widgetGQL POSTs a widget operation with token in X-Widget-Session ("" for none) and no
// secret key.
func widgetGQL(tb testing.TB, baseURL, token, query string, vars map[string]any) response {
	tb.Helper()
	r, _ := widgetCall(tb, baseURL, token, "", query, vars)
	return r
}

// widgetSession is a WidgetSession as the widget reads it.
type widgetSession struct {
	Token     string  `json:"token"`
	VisitorID string  `json:"visitorId"`
	UserID    *string `json:"userId"`
	Anonymous bool    `json:"anonymous"`
	Verified  bool    `json:"verified"`
	ExpiresAt string  `json:"expiresAt"`
}

const widgetSessionFields = `token visitorId userId anonymous verified expiresAt`

// sessionPayload is the payload of identify, setUser and resetSession.
type sessionPayload struct {
	Session    *widgetSession `json:"session"`
	UserErrors []userError    `json:"userErrors"`
}

const (
	identifyMutation = `mutation($input: IdentifyInput!) {
		identify(input: $input) { session { ` + widgetSessionFields + ` } userErrors { field code message } }
	}`
	setUserMutation = `mutation($input: SetUserInput!) {
		setUser(input: $input) { session { ` + widgetSessionFields + ` } userErrors { field code message } }
	}`
	resetSessionMutation = `mutation { resetSession { session { ` + widgetSessionFields + ` } userErrors { field code message } } }`
)

// tryIdentify calls identify with token ("" for none) and returns its payload; GraphQL errors
// fail the test.
func tryIdentify(tb testing.TB, baseURL, token string, input map[string]any) sessionPayload {
	tb.Helper()
	var data struct{ Identify sessionPayload }
	widgetGQL(tb, baseURL, token, identifyMutation, map[string]any{"input": input}).decode(tb, &data)
	return data.Identify
}

// requireSession fails the test unless a session payload has a session and no userErrors.
func requireSession(tb testing.TB, what string, p sessionPayload) widgetSession {
	tb.Helper()
	if len(p.UserErrors) > 0 || p.Session == nil {
		tb.Fatalf("%s: session %+v, userErrors %+v; want a session", what, p.Session, p.UserErrors)
	}
	if p.Session.Token == "" || p.Session.VisitorID == "" || p.Session.ExpiresAt == "" {
		tb.Fatalf("%s: session %+v lacks token, visitorId or expiresAt", what, *p.Session)
	}
	if p.Session.Anonymous != (p.Session.UserID == nil) {
		tb.Fatalf("%s: session anonymous %v but userId %v", what, p.Session.Anonymous, deref(p.Session.UserID))
	}
	return *p.Session
}

// mustIdentify calls identify and fails the test unless it returned a session.
func mustIdentify(tb testing.TB, baseURL, token string, input map[string]any) widgetSession {
	tb.Helper()
	return requireSession(tb, "identify", tryIdentify(tb, baseURL, token, input))
}

// trySetUser calls setUser with token ("" for none) and returns its payload.
func trySetUser(tb testing.TB, baseURL, token string, input map[string]any) sessionPayload {
	tb.Helper()
	var data struct{ SetUser sessionPayload }
	widgetGQL(tb, baseURL, token, setUserMutation, map[string]any{"input": input}).decode(tb, &data)
	return data.SetUser
}

// mustResetSession calls resetSession with token and fails the test unless it returned a session.
func mustResetSession(tb testing.TB, baseURL, token string) widgetSession {
	tb.Helper()
	var data struct{ ResetSession sessionPayload }
	widgetGQL(tb, baseURL, token, resetSessionMutation, nil).decode(tb, &data)
	return requireSession(tb, "resetSession", data.ResetSession)
}

// widgetMessage is a Message as the widget and the dashboard read it.
type widgetMessage struct {
	Body     string `json:"body"`
	Author   string `json:"author"`
	Verified bool   `json:"verified"`
}

// widgetConversation is a Conversation with its messages.
type widgetConversation struct {
	ID       string `json:"id"`
	Messages struct {
		Nodes []widgetMessage `json:"nodes"`
	} `json:"messages"`
}

const startConversationMutation = `mutation($input: StartConversationInput!) {
	startConversation(input: $input) {
		conversation { id messages { nodes { body author verified } } }
		userErrors { field code message }
	}
}`

// startConversation starts a conversation with the session token and returns its id.
func startConversation(tb testing.TB, baseURL, token, body string) string {
	tb.Helper()
	var data struct {
		StartConversation struct {
			Conversation *widgetConversation
			UserErrors   []userError
		}
	}
	widgetGQL(tb, baseURL, token, startConversationMutation, map[string]any{"input": map[string]any{"body": body}}).decode(tb, &data)
	p := data.StartConversation
	if len(p.UserErrors) > 0 || p.Conversation == nil || p.Conversation.ID == "" {
		tb.Fatalf("startConversation(%q): conversation %+v, userErrors %+v", body, p.Conversation, p.UserErrors)
	}
	want := []widgetMessage{{Body: body, Author: "VISITOR"}}
	if !reflect.DeepEqual(p.Conversation.Messages.Nodes, want) {
		tb.Fatalf("startConversation(%q) messages = %+v, want %+v", body, p.Conversation.Messages.Nodes, want)
	}
	return p.Conversation.ID
}

// trySendMessage sends a message with the session token and returns the message's body
// (nil when none) and the userErrors.
func trySendMessage(tb testing.TB, baseURL, token, conversationID, body string) (*widgetMessage, []userError) {
	tb.Helper()
	var data struct {
		SendMessage struct {
			Message    *widgetMessage
			UserErrors []userError
		}
	}
	widgetGQL(tb, baseURL, token, `mutation($input: SendMessageInput!) {
		sendMessage(input: $input) { message { body author verified } userErrors { field code message } }
	}`, map[string]any{"input": map[string]any{"conversationId": conversationID, "body": body}}).decode(tb, &data)
	return data.SendMessage.Message, data.SendMessage.UserErrors
}

// sessionView is what the `session` query shows a widget.
type sessionView struct {
	VisitorID     string  `json:"visitorId"`
	UserID        *string `json:"userId"`
	Conversations struct {
		Nodes []widgetConversation `json:"nodes"`
	} `json:"conversations"`
}

const sessionQuery = `{ session { visitorId userId conversations { nodes { id messages { nodes { body author verified } } } } } }`

// readSession runs the `session` query with token and fails the test on errors.
func readSession(tb testing.TB, baseURL, token string) sessionView {
	tb.Helper()
	var data struct{ Session *sessionView }
	widgetGQL(tb, baseURL, token, sessionQuery, nil).decode(tb, &data)
	if data.Session == nil {
		tb.Fatalf("session is null for a live token")
	}
	return *data.Session
}

// conversationIDs lists the ids of a session's conversations, sorted.
func (s sessionView) conversationIDs() []string {
	ids := []string{}
	for _, c := range s.Conversations.Nodes {
		ids = append(ids, c.ID)
	}
	sort.Strings(ids)
	return ids
}

// dashboardUser is a User as the journeys read it with the secret key.
type dashboardUser struct {
	ID            string         `json:"id"`
	ExternalID    *string        `json:"externalId"`
	Email         *string        `json:"email"`
	Name          *string        `json:"name"`
	AvatarURL     *string        `json:"avatarUrl"`
	VisitorIDs    []string       `json:"visitorIds"`
	Anonymous     bool           `json:"anonymous"`
	Verified      bool           `json:"verified"`
	Metadata      map[string]any `json:"metadata"`
	Conversations struct {
		Nodes []struct {
			ID string `json:"id"`
		} `json:"nodes"`
	} `json:"conversations"`
	Organizations struct {
		Nodes []struct {
			ExternalID string         `json:"externalId"`
			Name       string         `json:"name"`
			Attrs      map[string]any `json:"attrs"`
		} `json:"nodes"`
	} `json:"organizations"`
}

const dashboardUserQuery = `query($id: ID!) { user(id: $id) {
	id externalId email name avatarUrl visitorIds anonymous verified metadata
	conversations(first: 100) { nodes { id } }
	organizations { nodes { externalId name attrs } }
} }`

// readUser reads a user with the secret key and fails the test unless it exists.
func readUser(tb testing.TB, baseURL, key, id string) dashboardUser {
	tb.Helper()
	var data struct{ User *dashboardUser }
	gql(tb, baseURL, key, dashboardUserQuery, map[string]any{"id": id}).decode(tb, &data)
	if data.User == nil {
		tb.Fatalf("user(%s) is null", id)
	}
	return *data.User
}

// conversationIDs lists the ids of a user's conversations, sorted.
func (u dashboardUser) conversationIDs() []string {
	ids := []string{}
	for _, c := range u.Conversations.Nodes {
		ids = append(ids, c.ID)
	}
	sort.Strings(ids)
	return ids
}

// conversationUserID reads conversation(id){user{id}} with the secret key ("" for no user).
func conversationUserID(tb testing.TB, baseURL, key, id string) string {
	tb.Helper()
	var data struct {
		Conversation *struct {
			User *struct{ ID string }
		}
	}
	gql(tb, baseURL, key, `query($id: ID!) { conversation(id: $id) { user { id } } }`, map[string]any{"id": id}).decode(tb, &data)
	if data.Conversation == nil {
		tb.Fatalf("conversation(%s) is null", id)
	}
	if data.Conversation.User == nil {
		return ""
	}
	return data.Conversation.User.ID
}

// requireOneUserError fails the test unless errs is exactly one error with this field and code.
func requireOneUserError(tb testing.TB, what string, errs []userError, field []string, code string) {
	tb.Helper()
	if len(errs) != 1 || errs[0].Code != code || !slices.Equal(errs[0].Field, field) {
		tb.Fatalf("%s: userErrors = %+v, want exactly [{field: %q, code: %s}]", what, errs, field, code)
	}
	if errs[0].Message == "" {
		tb.Errorf("%s: the userError has no message", what)
	}
}

func sorted(s ...string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

// TestWidgetJourneys plays the widget's journeys over HTTP: an anonymous visitor who signs in,
// the same user on a second device, logout and another user on the same browser (API.md §3),
// seed 003's setUser with organizations and seed 002's companies.
func TestWidgetJourneys(t *testing.T) {
	k := startRun(t, widgetEnv(t))
	appID, key := createProject(t, k.URL, "Journeys")

	// State carried from journey a to b and c.
	var (
		device1  widgetSession // device 1, identified as user 42
		user42   string        // Known's id of user 42
		conv1    string        // the conversation device 1 started while anonymous
		device2  widgetSession // device 2, identified as user 42
		conv2    string        // the conversation device 2 started while anonymous
		visitor1 string
		visitor2 string
		meta42   = map[string]any{"plan": "enterprise", "seats": float64(12)}
	)

	// a. An anonymous visitor starts a conversation, then signs in: the conversation moves to
	// the user and the session still lists it.
	t.Run("AnonymousVisitorSignsInAndKeepsConversation", func(t *testing.T) {
		anon := mustIdentify(t, k.URL, "", map[string]any{"appId": appID})
		if !anon.Anonymous || anon.UserID != nil || anon.Verified {
			t.Fatalf("identify {appId} = %+v, want an anonymous, unverified session with userId null", anon)
		}
		conv1 = startConversation(t, k.URL, anon.Token, "Hello, is anyone there?")
		if ids := readSession(t, k.URL, anon.Token).conversationIDs(); !slices.Equal(ids, []string{conv1}) {
			t.Fatalf("the anonymous session lists conversations %v, want [%s]", ids, conv1)
		}

		device1 = mustIdentify(t, k.URL, anon.Token, map[string]any{
			"appId": appID, "userId": 42, // a JSON number: stored as the string "42"
			"email": "jane@example.com", "name": "Jane Doe", "metadata": meta42,
		})
		visitor1 = device1.VisitorID
		if device1.Anonymous || device1.UserID == nil || device1.Verified {
			t.Fatalf("identify {userId: 42} = %+v, want a claimed (not anonymous, not verified) session with a userId", device1)
		}
		if device1.VisitorID != anon.VisitorID {
			t.Errorf("identify with the anonymous token changed the visitor: %s → %s", anon.VisitorID, device1.VisitorID)
		}
		user42 = *device1.UserID

		u := readUser(t, k.URL, key, user42)
		if deref(u.ExternalID) != "42" || deref(u.Email) != "jane@example.com" || deref(u.Name) != "Jane Doe" || u.Anonymous || u.Verified {
			t.Errorf("user 42 = externalId %s email %s name %s anonymous %v verified %v; want 42, jane@example.com, Jane Doe, false, false",
				deref(u.ExternalID), deref(u.Email), deref(u.Name), u.Anonymous, u.Verified)
		}
		if !reflect.DeepEqual(u.Metadata, meta42) {
			t.Errorf("user 42 metadata = %v, want %v", u.Metadata, meta42)
		}
		if !slices.Equal(u.VisitorIDs, []string{visitor1}) {
			t.Errorf("user 42 visitorIds = %v, want [%s]", u.VisitorIDs, visitor1)
		}
		if ids := u.conversationIDs(); !slices.Equal(ids, []string{conv1}) {
			t.Errorf("user(42).conversations = %v, want [%s]: the anonymous conversation moves to the user", ids, conv1)
		}
		if got := conversationUserID(t, k.URL, key, conv1); got != user42 {
			t.Errorf("conversation(%s).user.id = %q, want %s", conv1, got, user42)
		}

		var found struct {
			SearchUsers []struct {
				User struct {
					ID         string
					ExternalID *string `json:"externalId"`
				}
				ConversationIDs []string `json:"conversationIds"`
			}
		}
		gql(t, k.URL, key, `{ searchUsers(externalId: "42") { user { id externalId } conversationIds } }`, nil).decode(t, &found)
		if len(found.SearchUsers) != 1 || found.SearchUsers[0].User.ID != user42 ||
			deref(found.SearchUsers[0].User.ExternalID) != "42" || !slices.Equal(found.SearchUsers[0].ConversationIDs, []string{conv1}) {
			t.Errorf("searchUsers(externalId: \"42\") = %+v, want user %s with conversationIds [%s]", found.SearchUsers, user42, conv1)
		}

		s := readSession(t, k.URL, device1.Token)
		if s.VisitorID != visitor1 || deref(s.UserID) != user42 {
			t.Errorf("session = visitor %s user %s, want %s and %s", s.VisitorID, deref(s.UserID), visitor1, user42)
		}
		if len(s.Conversations.Nodes) != 1 || s.Conversations.Nodes[0].ID != conv1 ||
			!reflect.DeepEqual(s.Conversations.Nodes[0].Messages.Nodes, []widgetMessage{{Body: "Hello, is anyone there?", Author: "VISITOR"}}) {
			t.Errorf("session.conversations = %+v, want [%s] with its one visitor message", s.Conversations.Nodes, conv1)
		}
		if m, ues := trySendMessage(t, k.URL, device1.Token, conv1, "I am Jane"); len(ues) != 0 || m == nil || m.Body != "I am Jane" || m.Author != "VISITOR" || m.Verified {
			t.Errorf("sendMessage to its own conversation = %+v, userErrors %+v; want an unverified VISITOR message", m, ues)
		}
	})

	// b. The same user on a second device: one user with both visitors, but an unverified
	// session sees only its own visitor's conversations.
	t.Run("SameUserOnSecondDevice", func(t *testing.T) {
		if user42 == "" {
			t.Fatal("needs the user of AnonymousVisitorSignsInAndKeepsConversation")
		}
		anon := mustIdentify(t, k.URL, "", map[string]any{"appId": appID})
		if !anon.Anonymous || anon.UserID != nil || anon.VisitorID == visitor1 {
			t.Fatalf("a fresh identify {appId} = %+v, want a new anonymous visitor (not %s)", anon, visitor1)
		}
		conv2 = startConversation(t, k.URL, anon.Token, "Writing from my phone")
		device2 = mustIdentify(t, k.URL, anon.Token, map[string]any{"appId": appID, "userId": 42})
		visitor2 = device2.VisitorID
		if deref(device2.UserID) != user42 || deref(device1.UserID) != user42 {
			t.Fatalf("userIds = device 1 %s, device 2 %s; want both %s", deref(device1.UserID), deref(device2.UserID), user42)
		}
		if device2.Anonymous || device2.Verified || visitor2 != anon.VisitorID {
			t.Errorf("device 2 session = %+v, want claimed, not verified, visitor %s", device2, anon.VisitorID)
		}

		u := readUser(t, k.URL, key, user42)
		if got, want := sorted(u.VisitorIDs...), sorted(visitor1, visitor2); !slices.Equal(got, want) {
			t.Errorf("user 42 visitorIds = %v, want %v", got, want)
		}
		if got, want := u.conversationIDs(), sorted(conv1, conv2); !slices.Equal(got, want) {
			t.Errorf("user 42 conversations = %v, want %v: device 2's anonymous conversation moves to the user", got, want)
		}
		if got := conversationUserID(t, k.URL, key, conv2); got != user42 {
			t.Errorf("conversation(%s).user.id = %q, want %s", conv2, got, user42)
		}
		if !reflect.DeepEqual(u.Metadata, meta42) {
			t.Errorf("user 42 metadata = %v, want %v (unchanged)", u.Metadata, meta42)
		}

		// A claimed (unverified) session reads only its own visitor's conversations.
		if ids := readSession(t, k.URL, device2.Token).conversationIDs(); !slices.Equal(ids, []string{conv2}) {
			t.Errorf("device 2 session lists %v, want only its own [%s], not device 1's %s", ids, conv2, conv1)
		}
		m, ues := trySendMessage(t, k.URL, device2.Token, conv1, "let me into device 1's conversation")
		if m != nil {
			t.Errorf("device 2 wrote into device 1's conversation: %+v", m)
		}
		requireOneUserError(t, "sendMessage to device 1's conversation from device 2", ues, []string{"input", "conversationId"}, "NOT_FOUND")
		if m, ues := trySendMessage(t, k.URL, device2.Token, conv2, "still me"); m == nil || len(ues) != 0 {
			t.Errorf("sendMessage to device 2's own conversation = %+v, userErrors %+v", m, ues)
		}
		// Device 1 still sees only its own, too.
		if ids := readSession(t, k.URL, device1.Token).conversationIDs(); !slices.Equal(ids, []string{conv1}) {
			t.Errorf("device 1 session lists %v, want [%s]", ids, conv1)
		}
	})

	// c. Logout, then another user on the same browser: the new user sees nothing of the old.
	t.Run("LogoutThenAnotherUserOnSameBrowser", func(t *testing.T) {
		if user42 == "" || device2.Token == "" {
			t.Fatal("needs the users of the journeys before")
		}
		fresh := mustResetSession(t, k.URL, device1.Token)
		if !fresh.Anonymous || fresh.UserID != nil || fresh.Verified {
			t.Fatalf("resetSession = %+v, want an anonymous session with userId null", fresh)
		}
		if fresh.VisitorID == visitor1 || fresh.VisitorID == visitor2 || fresh.Token == device1.Token {
			t.Fatalf("resetSession kept the visitor or token: %+v", fresh)
		}
		if s := readSession(t, k.URL, fresh.Token); s.UserID != nil || len(s.Conversations.Nodes) != 0 {
			t.Errorf("the session after logout = user %s, conversations %+v; want none", deref(s.UserID), s.Conversations.Nodes)
		}

		widgetGQL(t, k.URL, device1.Token, sessionQuery, nil).requireCode(t, "UNAUTHENTICATED")
		widgetGQL(t, k.URL, device1.Token, startConversationMutation,
			map[string]any{"input": map[string]any{"body": "after logout"}}).requireCode(t, "UNAUTHENTICATED")
		// Logging out on device 1 does not end device 2's session.
		if ids := readSession(t, k.URL, device2.Token).conversationIDs(); !slices.Equal(ids, []string{conv2}) {
			t.Errorf("device 2 after device 1's logout lists %v, want [%s]", ids, conv2)
		}

		other := mustIdentify(t, k.URL, fresh.Token, map[string]any{"appId": appID, "userId": 43, "email": "max@example.com"})
		if other.UserID == nil || *other.UserID == user42 {
			t.Fatalf("identify {userId: 43} = %+v, want a user other than %s", other, user42)
		}
		if s := readSession(t, k.URL, other.Token); len(s.Conversations.Nodes) != 0 {
			t.Errorf("user 43's session lists %+v, want none of user 42's conversations", s.Conversations.Nodes)
		}

		u43 := readUser(t, k.URL, key, *other.UserID)
		if deref(u43.ExternalID) != "43" || deref(u43.Email) != "max@example.com" || u43.Name != nil {
			t.Errorf("user 43 = externalId %s email %s name %s; want 43, max@example.com, no name",
				deref(u43.ExternalID), deref(u43.Email), deref(u43.Name))
		}
		if len(u43.Metadata) != 0 {
			t.Errorf("user 43 metadata = %v, want {}: none of user 42's", u43.Metadata)
		}
		if ids := u43.conversationIDs(); len(ids) != 0 {
			t.Errorf("user 43 conversations = %v, want none", ids)
		}
		if slices.Contains(u43.VisitorIDs, visitor1) || slices.Contains(u43.VisitorIDs, visitor2) || !slices.Equal(u43.VisitorIDs, []string{fresh.VisitorID}) {
			t.Errorf("user 43 visitorIds = %v, want only the post-logout visitor %s", u43.VisitorIDs, fresh.VisitorID)
		}

		u42 := readUser(t, k.URL, key, user42)
		if got, want := u42.conversationIDs(), sorted(conv1, conv2); !slices.Equal(got, want) {
			t.Errorf("user 42 conversations = %v, want %v: unchanged by the logout and by user 43", got, want)
		}
		if got, want := sorted(u42.VisitorIDs...), sorted(visitor1, visitor2); !slices.Equal(got, want) {
			t.Errorf("user 42 visitorIds = %v, want %v", got, want)
		}
		if !reflect.DeepEqual(u42.Metadata, meta42) || deref(u42.Email) != "jane@example.com" {
			t.Errorf("user 42 = metadata %v email %s, want %v and jane@example.com", u42.Metadata, deref(u42.Email), meta42)
		}
	})

	// d. Seed 003: setUser with attrs and organizations; organizations is the complete list;
	// id: null is an anonymous visitor.
	t.Run("Seed003SetUser", func(t *testing.T) {
		app, key := createProject(t, k.URL, "Seed003")
		s := requireSession(t, "setUser", trySetUser(t, k.URL, "", map[string]any{
			"appId":     app,
			"id":        "user-123",
			"email":     "jane@example.com",
			"name":      "Jane Doe",
			"avatarUrl": "https://example.com/avatar.jpg",
			"attrs":     map[string]any{"plan": "pro", "active": true},
			"organizations": []any{
				map[string]any{"id": "org-456", "name": "Acme Corp", "attrs": map[string]any{"industry": "SaaS"}},
			},
		}))
		if s.Anonymous || s.UserID == nil || s.Verified {
			t.Fatalf("setUser {id: user-123} = %+v, want a claimed session with a userId", s)
		}
		u := readUser(t, k.URL, key, *s.UserID)
		if deref(u.ExternalID) != "user-123" || deref(u.Email) != "jane@example.com" || deref(u.Name) != "Jane Doe" ||
			deref(u.AvatarURL) != "https://example.com/avatar.jpg" {
			t.Errorf("user = externalId %s email %s name %s avatarUrl %s", deref(u.ExternalID), deref(u.Email), deref(u.Name), deref(u.AvatarURL))
		}
		if want := map[string]any{"plan": "pro", "active": true}; !reflect.DeepEqual(u.Metadata, want) {
			t.Errorf("metadata = %v, want %v", u.Metadata, want)
		}
		orgs := u.Organizations.Nodes
		if len(orgs) != 1 || orgs[0].ExternalID != "org-456" || orgs[0].Name != "Acme Corp" ||
			!reflect.DeepEqual(orgs[0].Attrs, map[string]any{"industry": "SaaS"}) {
			t.Errorf("organizations = %+v, want [{org-456 Acme Corp {industry: SaaS}}]", orgs)
		}

		again := requireSession(t, "setUser with organizations: []", trySetUser(t, k.URL, s.Token, map[string]any{
			"appId": app, "id": "user-123", "organizations": []any{},
		}))
		if deref(again.UserID) != *s.UserID {
			t.Fatalf("the second setUser is user %s, want %s", deref(again.UserID), *s.UserID)
		}
		u = readUser(t, k.URL, key, *s.UserID)
		if len(u.Organizations.Nodes) != 0 {
			t.Errorf("organizations after setUser with [] = %+v, want none", u.Organizations.Nodes)
		}
		if want := map[string]any{"plan": "pro", "active": true}; !reflect.DeepEqual(u.Metadata, want) {
			t.Errorf("metadata after the second setUser = %v, want %v (unchanged)", u.Metadata, want)
		}
		var orgData struct {
			Organizations struct {
				Nodes []struct {
					ExternalID string `json:"externalId"`
					Users      struct{ Nodes []struct{ ID string } }
				}
			}
		}
		gql(t, k.URL, key, `{ organizations { nodes { externalId users { nodes { id } } } } }`, nil).decode(t, &orgData)
		for _, o := range orgData.Organizations.Nodes {
			if len(o.Users.Nodes) != 0 {
				t.Errorf("organization %s still lists users %+v after they were unlinked", o.ExternalID, o.Users.Nodes)
			}
		}

		anon := requireSession(t, "setUser {id: null}", trySetUser(t, k.URL, again.Token, map[string]any{"appId": app, "id": nil}))
		if !anon.Anonymous || anon.UserID != nil || anon.VisitorID == s.VisitorID {
			t.Errorf("setUser {id: null} = %+v, want a new anonymous visitor (not %s)", anon, s.VisitorID)
		}
		if r := readSession(t, k.URL, anon.Token); r.UserID != nil || r.VisitorID != anon.VisitorID {
			t.Errorf("the anonymous session reads as user %s visitor %s", deref(r.UserID), r.VisitorID)
		}
		widgetGQL(t, k.URL, again.Token, sessionQuery, nil).requireCode(t, "UNAUTHENTICATED")
		if u := readUser(t, k.URL, key, *s.UserID); deref(u.ExternalID) != "user-123" || slices.Contains(u.VisitorIDs, anon.VisitorID) {
			t.Errorf("after setUser {id: null}, user-123 = externalId %s visitorIds %v; want it unchanged", deref(u.ExternalID), u.VisitorIDs)
		}
	})

	// e. Seed 002: identify with a company (made active) and companyIds (linked only), then
	// company-scoped track, setStage and setDeal.
	t.Run("Seed002Companies", func(t *testing.T) {
		app, key := createProject(t, k.URL, "Seed002")
		s := mustIdentify(t, k.URL, "", map[string]any{
			"appId":     app,
			"visitorId": "user_456",
			"userId":    "user_456",
			"email":     "alice@acme.com",
			"name":      "Alice",
			"metadata":  map[string]any{"plan": "enterprise", "role": "admin"},
			"company": map[string]any{
				"id": "acme", "name": "Acme Inc", "stage": "Qualified",
				"metadata": map[string]any{"arr_band": "50k-100k", "crm_owner": "Sam"},
			},
			"companyIds": []string{"globex"},
		})
		if s.UserID == nil {
			t.Fatalf("identify with userId = %+v, want a userId", s)
		}

		var tracked struct {
			Track struct {
				Event *struct {
					Name       string
					Properties map[string]any
				}
				UserErrors []userError
			}
		}
		trackMutation := `mutation($input: TrackInput!) { track(input: $input) { event { name properties } userErrors { field code message } } }`
		widgetGQL(t, k.URL, s.Token, trackMutation, map[string]any{"input": map[string]any{
			"event": "trial-started", "properties": map[string]any{"seats": 5},
		}}).decode(t, &tracked)
		if ev := tracked.Track.Event; len(tracked.Track.UserErrors) != 0 || ev == nil || ev.Name != "trial-started" ||
			!reflect.DeepEqual(ev.Properties, map[string]any{"seats": float64(5)}) {
			t.Fatalf("track(trial-started) = %+v, userErrors %+v", ev, tracked.Track.UserErrors)
		}

		// A widget sees only the ids of the company it writes to (API.md §1: no company
		// record beyond what it sent); the result is checked through the dashboard.
		var staged struct {
			SetStage struct {
				Company *struct {
					ExternalID string `json:"externalId"`
				}
				UserErrors []userError
			}
		}
		widgetGQL(t, k.URL, s.Token, `mutation($input: SetStageInput!) {
			setStage(input: $input) { company { externalId } userErrors { field code message } }
		}`, map[string]any{"input": map[string]any{"stage": "Won", "stageMode": "IF_EMPTY"}}).decode(t, &staged)
		if c := staged.SetStage.Company; len(staged.SetStage.UserErrors) != 0 || c == nil || c.ExternalID != "acme" {
			t.Errorf("setStage(Won, IF_EMPTY) = %+v, userErrors %+v; want acme", c, staged.SetStage.UserErrors)
		}
		var dealt struct {
			SetDeal struct {
				Company *struct {
					ExternalID string `json:"externalId"`
				}
				UserErrors []userError
			}
		}
		widgetGQL(t, k.URL, s.Token, `mutation($input: SetDealInput!) {
			setDeal(input: $input) { company { externalId } userErrors { field code message } }
		}`, map[string]any{"input": map[string]any{"companyId": "globex", "amount": 4200.5, "currency": "usd", "status": "OPEN"}}).decode(t, &dealt)
		if c := dealt.SetDeal.Company; len(dealt.SetDeal.UserErrors) != 0 || c == nil || c.ExternalID != "globex" {
			t.Errorf("setDeal(globex) = %s, userErrors %+v; want globex", mustJSON(c), dealt.SetDeal.UserErrors)
		}
		var companies struct {
			Companies struct {
				Nodes []struct {
					ExternalID string `json:"externalId"`
					Stage      *string
					Deal       *struct {
						Amount   *float64
						Currency *string
						Status   *string
					}
				}
			}
		}
		gql(t, k.URL, key, `{ companies(first: 10) { nodes { externalId stage deal { amount currency status } } } }`, nil).decode(t, &companies)
		for _, c := range companies.Companies.Nodes {
			switch c.ExternalID {
			case "acme":
				if deref(c.Stage) != "Qualified" {
					t.Errorf("acme stage = %q after setStage(Won, IF_EMPTY); want Qualified kept", deref(c.Stage))
				}
			case "globex":
				if c.Deal == nil || c.Deal.Amount == nil || *c.Deal.Amount != 4200.5 || deref(c.Deal.Currency) != "USD" || deref(c.Deal.Status) != "OPEN" {
					t.Errorf("globex deal = %s; want 4200.5 USD OPEN", mustJSON(c.Deal))
				}
			}
		}

		tracked.Track.Event, tracked.Track.UserErrors = nil, nil
		widgetGQL(t, k.URL, s.Token, trackMutation, map[string]any{"input": map[string]any{
			"event": "plan-upgraded", "companyId": "nope",
		}}).decode(t, &tracked)
		if tracked.Track.Event != nil {
			t.Errorf("track against an unlinked company recorded %+v", tracked.Track.Event)
		}
		requireOneUserError(t, "track(companyId: nope)", tracked.Track.UserErrors, []string{"input", "companyId"}, "COMPANY_REQUIRED")

		type company struct {
			ID         string         `json:"id"`
			ExternalID string         `json:"externalId"`
			Name       *string        `json:"name"`
			Stage      *string        `json:"stage"`
			Metadata   map[string]any `json:"metadata"`
		}
		var du struct {
			User *struct {
				Metadata      map[string]any `json:"metadata"`
				ActiveCompany *company       `json:"activeCompany"`
				Companies     struct{ Nodes []company }
				Events        struct {
					Nodes []struct {
						Name    string
						Company *struct {
							ExternalID string `json:"externalId"`
						}
					}
				}
			}
		}
		gql(t, k.URL, key, `query($id: ID!) { user(id: $id) {
			metadata
			activeCompany { id externalId name stage metadata }
			companies { nodes { id externalId name stage metadata } }
			events { nodes { name company { externalId } } }
		} }`, map[string]any{"id": *s.UserID}).decode(t, &du)
		if du.User == nil {
			t.Fatalf("user(%s) is null", *s.UserID)
		}
		if want := map[string]any{"plan": "enterprise", "role": "admin"}; !reflect.DeepEqual(du.User.Metadata, want) {
			t.Errorf("user metadata = %v, want %v", du.User.Metadata, want)
		}
		ac := du.User.ActiveCompany
		if ac == nil || ac.ExternalID != "acme" || deref(ac.Name) != "Acme Inc" || deref(ac.Stage) != "Qualified" ||
			!reflect.DeepEqual(ac.Metadata, map[string]any{"arr_band": "50k-100k", "crm_owner": "Sam"}) {
			t.Errorf("activeCompany = %s, want acme, Acme Inc, Qualified, with its metadata", mustJSON(ac))
		}
		byExt := map[string]company{}
		for _, c := range du.User.Companies.Nodes {
			byExt[c.ExternalID] = c
		}
		if len(du.User.Companies.Nodes) != 2 || byExt["acme"].ID == "" || byExt["globex"].ID == "" {
			t.Fatalf("user companies = %s, want acme and globex", mustJSON(du.User.Companies.Nodes))
		}
		if evs := du.User.Events.Nodes; len(evs) != 1 || evs[0].Name != "trial-started" || evs[0].Company == nil || evs[0].Company.ExternalID != "acme" {
			t.Errorf("user events = %s, want only trial-started against acme (the active company)", mustJSON(evs))
		}

		var dc struct {
			Company *struct {
				ExternalID string `json:"externalId"`
				Events     struct{ Nodes []struct{ Name string } }
				Users      struct{ Nodes []struct{ ID string } }
			}
		}
		gql(t, k.URL, key, `query($id: ID!) { company(id: $id) { externalId events { nodes { name } } users { nodes { id } } } }`,
			map[string]any{"id": byExt["acme"].ID}).decode(t, &dc)
		if c := dc.Company; c == nil || c.ExternalID != "acme" || len(c.Events.Nodes) != 1 || c.Events.Nodes[0].Name != "trial-started" ||
			len(c.Users.Nodes) != 1 || c.Users.Nodes[0].ID != *s.UserID {
			t.Errorf("company(acme) = %s, want events [trial-started] and users [%s]", mustJSON(c), *s.UserID)
		}

		var list struct {
			Companies struct{ Nodes []company }
		}
		gql(t, k.URL, key, `{ companies(first: 10) { nodes { id externalId name stage metadata } } }`, nil).decode(t, &list)
		var exts []string
		for _, c := range list.Companies.Nodes {
			exts = append(exts, c.ExternalID)
		}
		if got := sorted(exts...); !slices.Equal(got, []string{"acme", "globex"}) {
			t.Errorf("companies(first: 10) = %v, want [acme globex]", got)
		}
	})
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
