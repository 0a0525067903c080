package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knownhq/known/session"
)

// TestWidgetAccess shows what a widget caller may do with its session token (API.md §1, §3):
// only its own session's data, never dashboard data, never with a forged, tampered or expired
// token, only from the project's allowed origins, at a limited rate, and only with valid input.
func TestWidgetAccess(t *testing.T) {
	k := startRun(t, widgetEnv(t)) // the widget rate limit is off here; RateLimit starts its own Known
	appID, key := createProject(t, k.URL, "Access")

	// Visitor A: identified, with a conversation, a company (active) and an organization.
	alice := mustIdentify(t, k.URL, "", map[string]any{
		"appId": appID, "userId": "alice", "email": "alice@example.com", "name": "Alice",
		"company": map[string]any{"id": "acme", "name": "Acme Inc", "metadata": map[string]any{"crm_owner": "Sam Secret"}},
	})
	alice = requireSession(t, "setUser with organizations", trySetUser(t, k.URL, alice.Token, map[string]any{
		"appId": appID, "id": "alice", "organizations": []any{map[string]any{"id": "org-1", "name": "Org One"}},
	}))
	if alice.UserID == nil {
		t.Fatalf("alice's session has no userId: %+v", alice)
	}
	convA := startConversation(t, k.URL, alice.Token, "Alice's private question")
	var deal struct {
		SetDeal struct{ UserErrors []userError }
	}
	widgetGQL(t, k.URL, alice.Token, `mutation { setDeal(input: {amount: 98765, currency: "EUR", name: "Acme renewal"}) {
		userErrors { field code message } } }`, nil).decode(t, &deal)
	if len(deal.SetDeal.UserErrors) != 0 {
		t.Fatalf("A's setDeal: %+v", deal.SetDeal.UserErrors)
	}
	// Visitor B: another browser, anonymous.
	bob := mustIdentify(t, k.URL, "", map[string]any{"appId": appID})

	// Ids the dashboard knows, to ask for them with a widget token.
	var ids struct {
		Companies     struct{ Nodes []struct{ ID string } }
		Organizations struct{ Nodes []struct{ ID string } }
	}
	gql(t, k.URL, key, `{ companies { nodes { id } } organizations { nodes { id } } }`, nil).decode(t, &ids)
	if len(ids.Companies.Nodes) != 1 || len(ids.Organizations.Nodes) != 1 {
		t.Fatalf("want one company and one organization, got %+v", ids)
	}
	companyID, orgID := ids.Companies.Nodes[0].ID, ids.Organizations.Nodes[0].ID

	// convAMessages counts the messages of A's conversation, read with the secret key.
	convAMessages := func(t *testing.T) int {
		t.Helper()
		var data struct {
			Conversation struct {
				Messages struct{ Nodes []widgetMessage }
			}
		}
		gql(t, k.URL, key, `query($id: ID!) { conversation(id: $id) { messages(first: 100) { nodes { body author verified } } } }`,
			map[string]any{"id": convA}).decode(t, &data)
		return len(data.Conversation.Messages.Nodes)
	}

	t.Run("OtherVisitorCannotReadOrWriteAConversation", func(t *testing.T) {
		before := convAMessages(t)
		m, ues := trySendMessage(t, k.URL, bob.Token, convA, "Bob writes into Alice's conversation")
		if m != nil {
			t.Errorf("B's sendMessage to A's conversation returned message %+v", m)
		}
		requireOneUserError(t, "B's sendMessage to A's conversation", ues, []string{"input", "conversationId"}, "NOT_FOUND")
		if after := convAMessages(t); after != before {
			t.Errorf("A's conversation went from %d to %d messages", before, after)
		}
		s := readSession(t, k.URL, bob.Token)
		if len(s.Conversations.Nodes) != 0 {
			t.Errorf("B's session lists %+v, want none of A's", s.Conversations.Nodes)
		}
		if ids := readSession(t, k.URL, alice.Token).conversationIDs(); !slices.Equal(ids, []string{convA}) {
			t.Errorf("A's session lists %v, want [%s]", ids, convA)
		}
	})

	t.Run("VisitorIDWithoutItsTokenIsNotAdopted", func(t *testing.T) {
		for _, token := range []string{"", bob.Token} {
			s := mustIdentify(t, k.URL, token, map[string]any{"appId": appID, "visitorId": alice.VisitorID})
			if s.VisitorID == alice.VisitorID || s.UserID != nil {
				t.Fatalf("identify {visitorId: A's} with token %q adopted A's visitor: %+v", token, s)
			}
			if v := readSession(t, k.URL, s.Token); len(v.Conversations.Nodes) != 0 {
				t.Errorf("a session claiming A's visitor id lists %+v", v.Conversations.Nodes)
			}
			_, ues := trySendMessage(t, k.URL, s.Token, convA, "pretending to be A")
			requireOneUserError(t, "sendMessage with A's visitor id but not A's token", ues, []string{"input", "conversationId"}, "NOT_FOUND")
		}
	})

	// Every dashboard read, asked with A's own widget token and no secret key: even A's own
	// user record is dashboard data.
	dashboard := []struct{ name, query string }{
		{"users", `{ users { nodes { id email } } }`},
		{"user", fmt.Sprintf(`{ user(id: %q) { id email } }`, *alice.UserID)},
		{"searchUsers", `{ searchUsers(externalId: "alice") { user { id email } conversationIds } }`},
		{"conversations", `{ conversations { nodes { id } } }`},
		{"conversation", fmt.Sprintf(`{ conversation(id: %q) { id messages { nodes { body } } } }`, convA)},
		{"companies", `{ companies { nodes { id name } } }`},
		{"company", fmt.Sprintf(`{ company(id: %q) { id name } }`, companyID)},
		{"organizations", `{ organizations { nodes { id name } } }`},
		{"organization", fmt.Sprintf(`{ organization(id: %q) { id name } }`, orgID)},
		{"project", `{ project { id appId name } }`},
		{"nodeUser", fmt.Sprintf(`{ node(id: %q) { id ... on User { email } } }`, *alice.UserID)},
	}
	for _, q := range dashboard {
		t.Run("DashboardQueryIsUnauthenticated/"+q.name, func(t *testing.T) {
			r := widgetGQL(t, k.URL, alice.Token, q.query, nil)
			r.requireCode(t, "UNAUTHENTICATED")
			for _, secret := range []string{"alice@example.com", "Alice's private question", "Acme Inc", "Org One"} {
				if strings.Contains(r.Body, secret) {
					t.Errorf("the refused %s query leaked %q: %s", q.name, secret, r.Body)
				}
			}
		})
	}

	t.Run("StartConversationPayloadUserIsUnauthenticated", func(t *testing.T) {
		r := widgetGQL(t, k.URL, alice.Token, `mutation { startConversation(input: {body: "who am I?"}) {
			conversation { id user { id email } } userErrors { code } } }`, nil)
		r.requireCode(t, "UNAUTHENTICATED")
		if len(r.Errors) != 1 || len(r.Errors[0].Path) == 0 || r.Errors[0].Path[len(r.Errors[0].Path)-1] != "user" {
			t.Errorf("errors = %s, want one UNAUTHENTICATED error whose path ends in \"user\"", r.Body)
		}
		if strings.Contains(r.Body, "alice@example.com") {
			t.Errorf("the payload leaked the user's email: %s", r.Body)
		}

		var data struct {
			StartConversation struct {
				Conversation *widgetConversation
				UserErrors   []userError
			}
		}
		widgetGQL(t, k.URL, alice.Token, `mutation { startConversation(input: {body: "second question"}) {
			conversation { id messages { nodes { body author verified } } } userErrors { code } } }`, nil).decode(t, &data)
		c := data.StartConversation.Conversation
		if c == nil || c.ID == "" || len(c.Messages.Nodes) != 1 || c.Messages.Nodes[0] != (widgetMessage{Body: "second question", Author: "VISITOR"}) {
			t.Errorf("startConversation { conversation { id messages } } = %s", mustJSON(c))
		}
	})

	t.Run("TrackPayloadUserAndCompanyAreUnauthenticated", func(t *testing.T) {
		r := widgetGQL(t, k.URL, alice.Token, `mutation { track(input: {event: "opened-pricing"}) {
			event { name user { id email } company { id name } } userErrors { code } } }`, nil)
		r.requireCode(t, "UNAUTHENTICATED")
		var ends []string
		for _, e := range r.Errors {
			if e.Extensions.Code != "UNAUTHENTICATED" || len(e.Path) == 0 {
				t.Errorf("error %+v, want UNAUTHENTICATED on a path", e)
				continue
			}
			ends = append(ends, fmt.Sprint(e.Path[len(e.Path)-1]))
		}
		slices.Sort(ends)
		if !slices.Equal(ends, []string{"company", "user"}) {
			t.Errorf("errors on paths ending in %v, want [company user]; body %s", ends, r.Body)
		}
		for _, secret := range []string{"alice@example.com", "Acme Inc"} {
			if strings.Contains(r.Body, secret) {
				t.Errorf("the track payload leaked %q: %s", secret, r.Body)
			}
		}
	})

	// API.md §1: a widget never reads "a company or organization record beyond what it sent".
	// Any visitor can link itself to a company by its customer id (identify companyIds); the
	// payload of its setStage must not then show it what others wrote to that company.
	t.Run("CompanyPayloadShowsNothingTheWidgetDidNotSend", func(t *testing.T) {
		carol := mustIdentify(t, k.URL, "", map[string]any{"appId": appID, "companyIds": []string{"acme"}})
		r := widgetGQL(t, k.URL, carol.Token, `mutation { setStage(input: {stage: "Lead", companyId: "acme", stageMode: IF_EMPTY}) {
			company { externalId stage name metadata deal { name amount currency } } userErrors { field code message } } }`, nil)
		for _, secret := range []string{"Acme Inc", "Sam Secret", "98765", "EUR", "Acme renewal"} {
			if strings.Contains(r.Body, secret) {
				t.Errorf("setStage's payload shows another visitor %q, which A sent to company acme: %s", secret, r.Body)
			}
		}
	})

	t.Run("BadTokensAreRefused", func(t *testing.T) {
		payload, sig := splitToken(t, alice.Token)
		bobPayload, _ := splitToken(t, bob.Token)
		claims := tokenClaims(t, alice.Token)
		ours := session.NewSigner([]byte(testSecret)) // KNOWN_SECRET of this Known
		theirs := session.NewSigner([]byte("another-secret-that-is-at-least-32-bytes!"))

		// Control: the test's signer is the server's, so the refusals below are for the reason
		// each case names.
		live := claims
		live.ExpiresAt = time.Now().Add(time.Hour).Unix()
		if s := readSession(t, k.URL, ours.Sign(live)); s.VisitorID != alice.VisitorID {
			t.Fatalf("a token re-signed with KNOWN_SECRET reads visitor %s, want %s", s.VisitorID, alice.VisitorID)
		}

		expired := claims
		expired.ExpiresAt = time.Now().Add(-time.Minute).Unix()
		// Pushing exp into the payload without the key breaks the signature, which is refused
		// too; the "Expired" case is a true expiry, signed with the server's own KNOWN_SECRET.
		tamperedExp := claims
		tamperedExp.ExpiresAt = time.Now().Add(-time.Minute).Unix()
		rawExp, _ := json.Marshal(tamperedExp)

		flipped := []byte(sig)
		if flipped[0] == 'A' {
			flipped[0] = 'B'
		} else {
			flipped[0] = 'A'
		}
		cases := []struct{ name, token string }{
			{"TamperedSignature", "ks1." + payload + "." + string(flipped)},
			{"TamperedPayload", "ks1." + bobPayload + "." + sig}, // B's claims under A's signature
			{"SignedWithAnotherSecret", theirs.Sign(claims)},
			{"TamperedExpiry", "ks1." + base64.RawURLEncoding.EncodeToString(rawExp) + "." + sig},
			{"Expired", ours.Sign(expired)},
			{"Garbage", "garbage"},
			{"EmptyClaims", "ks1.e30.AAAA"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				widgetGQL(t, k.URL, c.token, sessionQuery, nil).requireCode(t, "UNAUTHENTICATED")
				widgetGQL(t, k.URL, c.token, identifyMutation,
					map[string]any{"input": map[string]any{"appId": appID}}).requireCode(t, "UNAUTHENTICATED")
				widgetGQL(t, k.URL, c.token, `mutation($input: SendMessageInput!) { sendMessage(input: $input) { message { body } userErrors { code } } }`,
					map[string]any{"input": map[string]any{"conversationId": convA, "body": "forged"}}).requireCode(t, "UNAUTHENTICATED")
			})
		}
	})

	t.Run("AllowedOrigins", func(t *testing.T) {
		app, key := createProject(t, k.URL, "Origins")
		var up struct {
			UpdateProject struct {
				Project *struct {
					AllowedOrigins []string `json:"allowedOrigins"`
				}
				UserErrors []userError
			}
		}
		gql(t, k.URL, key, `mutation { updateProject(input: {allowedOrigins: ["https://shop.example"]}) {
			project { allowedOrigins } userErrors { field code message } } }`, nil).decode(t, &up)
		if p := up.UpdateProject.Project; len(up.UpdateProject.UserErrors) != 0 || p == nil || !slices.Equal(p.AllowedOrigins, []string{"https://shop.example"}) {
			t.Fatalf("updateProject(allowedOrigins) = %s", mustJSON(up))
		}
		in := map[string]any{"input": map[string]any{"appId": app}}

		r, _ := widgetCall(t, k.URL, "", "https://evil.example", identifyMutation, in)
		r.requireCode(t, "FORBIDDEN")

		r, h := widgetCall(t, k.URL, "", "https://shop.example", identifyMutation, in)
		var data struct{ Identify sessionPayload }
		r.decode(t, &data)
		s := requireSession(t, "identify from https://shop.example", data.Identify)
		if got := h.Get("Access-Control-Allow-Origin"); got != "https://shop.example" {
			t.Errorf("Access-Control-Allow-Origin = %q, want https://shop.example", got)
		}

		// The token does not carry the call past the origin check.
		r, _ = widgetCall(t, k.URL, s.Token, "https://evil.example", sessionQuery, nil)
		r.requireCode(t, "FORBIDDEN")
		r, _ = widgetCall(t, k.URL, s.Token, "https://shop.example", sessionQuery, nil)
		var sd struct{ Session *sessionView }
		r.decode(t, &sd)
		if sd.Session == nil || sd.Session.VisitorID != s.VisitorID {
			t.Errorf("session from https://shop.example = %s", r.Body)
		}
	})

	t.Run("BadInputIsAUserError", func(t *testing.T) {
		metadata := map[string]any{}
		for i := range 51 {
			metadata[fmt.Sprintf("k%d", i)] = i
		}
		cases := []struct {
			name  string
			input map[string]any
			field []string
			code  string
		}{
			{"InvalidEmail", map[string]any{"appId": appID, "userId": "bad-email", "email": "nope"}, []string{"input", "email"}, "INVALID"},
			{"HTTPAvatar", map[string]any{"appId": appID, "userId": "bad-avatar", "avatarUrl": "http://x"}, []string{"input", "avatarUrl"}, "INVALID"},
			{"MetadataOf51Keys", map[string]any{"appId": appID, "userId": "bad-metadata", "metadata": metadata}, []string{"input", "metadata"}, "LIMIT_EXCEEDED"},
			{"UnknownAppID", map[string]any{"appId": "app_doesnotexist", "userId": "bad-app"}, []string{"input", "appId"}, "NOT_FOUND"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				p := tryIdentify(t, k.URL, "", c.input)
				if p.Session != nil {
					t.Errorf("identify with bad input returned session %+v, want null", *p.Session)
				}
				requireOneUserError(t, "identify", p.UserErrors, c.field, c.code)
				// A rejected input changes nothing: its userId was not claimed.
				var found struct{ SearchUsers []any }
				gql(t, k.URL, key, `query($e: ID) { searchUsers(externalId: $e) { user { id } } }`,
					map[string]any{"e": c.input["userId"]}).decode(t, &found)
				if len(found.SearchUsers) != 0 {
					t.Errorf("the rejected identify made user %v", found.SearchUsers)
				}
			})
		}
	})

	// API.md §7: a user's metadata holds at most 50 keys, however many calls wrote them
	// (setProperties checks the total; identify and setUser must too).
	t.Run("MetadataOver50KeysInTotalIsLimitExceeded", func(t *testing.T) {
		fifty := map[string]any{}
		for i := range 50 {
			fifty[fmt.Sprintf("k%d", i)] = i
		}
		s := mustIdentify(t, k.URL, "", map[string]any{"appId": appID, "userId": "fifty-keys", "metadata": fifty})
		p := tryIdentify(t, k.URL, s.Token, map[string]any{"appId": appID, "userId": "fifty-keys", "metadata": map[string]any{"one-more": true}})
		u := readUser(t, k.URL, key, *s.UserID)
		if len(u.Metadata) > 50 {
			t.Errorf("after identify added a 51st key: userErrors %+v, the user's metadata has %d keys; want LIMIT_EXCEEDED and 50",
				p.UserErrors, len(u.Metadata))
		}
		if p.Session != nil {
			t.Errorf("identify adding a 51st metadata key returned a session")
		}
		requireOneUserError(t, "identify adding a 51st metadata key", p.UserErrors, []string{"input", "metadata"}, "LIMIT_EXCEEDED")
	})

	t.Run("RateLimitOffLetsManyCallsThrough", func(t *testing.T) {
		for i := range 40 {
			if p := tryIdentify(t, k.URL, "", map[string]any{"appId": appID}); p.Session == nil {
				t.Fatalf("identify %d with KNOWN_WIDGET_RATE_LIMIT=0: %+v", i, p)
			}
		}
	})

	t.Run("RateLimit", func(t *testing.T) {
		env := testEnv(t)
		env["KNOWN_WIDGET_RATE_LIMIT"] = "1" // 1 per second, bursts of 2, per app id and client IP
		limited := startRun(t, env)
		app, _ := createProject(t, limited.URL, "Limited")
		other, _ := createProject(t, limited.URL, "LimitedOther")
		in := map[string]any{"input": map[string]any{"appId": app}}
		for i := range 2 {
			var data struct{ Identify sessionPayload }
			widgetGQL(t, limited.URL, "", identifyMutation, in).decode(t, &data)
			requireSession(t, fmt.Sprintf("identify %d of the burst", i+1), data.Identify)
		}
		widgetGQL(t, limited.URL, "", identifyMutation, in).requireCode(t, "RATE_LIMITED")
		// The limit is per app id: another app from the same address is not held back.
		requireSession(t, "identify for another app", tryIdentify(t, limited.URL, "", map[string]any{"appId": other}))

		// One request is one widget call, however many fields it reads (API.md §6: "widget
		// calls per second"). Each Conversation.messages of a widget caller must not count as
		// another call.
		third, _ := createProject(t, limited.URL, "LimitedThird")
		s := mustIdentify(t, limited.URL, "", map[string]any{"appId": third}) // bucket 2 → 1
		r := widgetGQL(t, limited.URL, s.Token, startConversationMutation,    // one call: 1 → 0
			map[string]any{"input": map[string]any{"body": "first"}})
		if len(r.Errors) != 0 {
			t.Errorf("startConversation, the 2nd call of a burst of 2, was refused (in part): %s", r.Body)
		}
		time.Sleep(2100 * time.Millisecond) // → 2, full
		widgetGQL(t, limited.URL, s.Token, `mutation { startConversation(input: {body: "second"}) { conversation { id } } }`,
			nil).decode(t, &struct{}{}) // 2 → 1
		time.Sleep(2100 * time.Millisecond) // → 2, full
		r = widgetGQL(t, limited.URL, s.Token, sessionQuery, nil)
		if len(r.Errors) != 0 {
			t.Errorf("one session query (2 conversations with their messages) on a full bucket of 2 calls was refused (in part): %s", r.Body)
		} else if v := readSessionFrom(t, r); len(v.Conversations.Nodes) != 2 {
			t.Errorf("session lists %d conversations, want 2", len(v.Conversations.Nodes))
		}
		// The burst is 2 calls: the second call right after is still within it.
		if r := widgetGQL(t, limited.URL, s.Token, `{ session { visitorId } }`, nil); len(r.Errors) != 0 {
			t.Errorf("the second call of a burst of 2 was refused: %s", r.Body)
		}
	})
}

// readSessionFrom decodes a `session` query's answer.
func readSessionFrom(tb testing.TB, r response) sessionView {
	tb.Helper()
	var data struct{ Session *sessionView }
	r.decode(tb, &data)
	if data.Session == nil {
		tb.Fatalf("session is null: %s", r.Body)
	}
	return *data.Session
}

// splitToken returns a widget session token's base64url payload and signature.
func splitToken(tb testing.TB, token string) (payload, sig string) {
	tb.Helper()
	rest, ok := strings.CutPrefix(token, "ks1.")
	if !ok {
		tb.Fatalf("token %q does not start with ks1.", token)
	}
	payload, sig, ok = strings.Cut(rest, ".")
	if !ok || payload == "" || sig == "" {
		tb.Fatalf("token %q is not ks1.<payload>.<signature>", token)
	}
	return payload, sig
}

// tokenClaims decodes a token's claims (without checking its signature).
func tokenClaims(tb testing.TB, token string) session.Claims {
	tb.Helper()
	payload, _ := splitToken(tb, token)
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		tb.Fatalf("token payload is not base64url: %v", err)
	}
	var c session.Claims
	if err := json.Unmarshal(raw, &c); err != nil {
		tb.Fatalf("token payload is not the claims: %v", err)
	}
	if c.SessionID == "" || c.ExpiresAt == 0 {
		tb.Fatalf("token claims %+v lack sid or exp", c)
	}
	return c
}
