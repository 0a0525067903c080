package main

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// This file plays impersonation over HTTP (API.md §3, §5): a user verified with a userHash
// talks to support; fresh sessions that only claim the user's id or email are refused and see
// nothing; the dashboard shows the user and their conversations unchanged. It also checks the
// verification mutations of §5 over the wire: rotateIdentitySecret and addJwtPublicKey.

// createProjectWithIdentitySecret makes a project with the admin token and returns its app id,
// secret key and identity secret (shown only by createProject).
func createProjectWithIdentitySecret(tb testing.TB, baseURL, name string) (appID, secretKey, identitySecret string) {
	tb.Helper()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+testAdminToken)
	r := gqlHeaders(tb, baseURL, h, `mutation($input: CreateProjectInput!) {
		createProject(input: $input) { project { appId } secretKey identitySecret userErrors { field code message } }
	}`, map[string]any{"input": map[string]any{"name": name}})
	var data struct {
		CreateProject struct {
			Project                   *struct{ AppID string }
			SecretKey, IdentitySecret *string
			UserErrors                []userError
		}
	}
	r.decode(tb, &data)
	p := data.CreateProject
	if len(p.UserErrors) > 0 || p.Project == nil || p.SecretKey == nil || p.IdentitySecret == nil || *p.IdentitySecret == "" {
		tb.Fatalf("createProject failed: %s", r.Body)
	}
	return p.Project.AppID, *p.SecretKey, *p.IdentitySecret
}

// userHashOf is lowercase hex HMAC-SHA256(secret, value), as the customer's backend makes it.
func userHashOf(secret, value string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil))
}

// startVerifiedConversation starts a conversation from a verified session and returns its id.
func startVerifiedConversation(tb testing.TB, baseURL, token, body string) string {
	tb.Helper()
	var data struct {
		StartConversation struct {
			Conversation *widgetConversation
			UserErrors   []userError
		}
	}
	widgetGQL(tb, baseURL, token, startConversationMutation, map[string]any{"input": map[string]any{"body": body}}).decode(tb, &data)
	p := data.StartConversation
	if len(p.UserErrors) > 0 || p.Conversation == nil {
		tb.Fatalf("startConversation(%q): %+v, userErrors %+v", body, p.Conversation, p.UserErrors)
	}
	if want := []widgetMessage{{Body: body, Author: "VISITOR", Verified: true}}; !reflect.DeepEqual(p.Conversation.Messages.Nodes, want) {
		tb.Fatalf("startConversation(%q) messages = %+v, want %+v", body, p.Conversation.Messages.Nodes, want)
	}
	return p.Conversation.ID
}

// dashboardMessages reads a conversation's messages with the secret key.
func dashboardMessages(tb testing.TB, baseURL, key, id string) []widgetMessage {
	tb.Helper()
	var data struct {
		Conversation *widgetConversation
	}
	gql(tb, baseURL, key, `query($id: ID!) { conversation(id: $id) { id messages(first: 100) { nodes { body author verified } } } }`,
		map[string]any{"id": id}).decode(tb, &data)
	if data.Conversation == nil {
		tb.Fatalf("conversation(%s) is null", id)
	}
	return data.Conversation.Messages.Nodes
}

// requireRefused fails unless a session payload has no session and exactly one userError.
func requireRefused(tb testing.TB, what string, p sessionPayload, field []string, code string) {
	tb.Helper()
	if p.Session != nil {
		tb.Fatalf("%s: got session %+v, want null", what, *p.Session)
	}
	requireOneUserError(tb, what, p.UserErrors, field, code)
}

func TestImpersonation(t *testing.T) {
	k := startRun(t, widgetEnv(t))
	appID, key, identitySecret := createProjectWithIdentitySecret(t, k.URL, "Impersonation")

	// The victim proves who they are with a userHash and talks to support.
	victim := requireSession(t, "victim's identify", tryIdentify(t, k.URL, "", map[string]any{
		"appId": appID, "userId": "victim-1", "email": "victim@example.com", "name": "Victoria Victim",
		"metadata": map[string]any{"plan": "enterprise"}, "userHash": userHashOf(identitySecret, "victim-1"),
	}))
	if !victim.Verified || victim.UserID == nil {
		t.Fatalf("victim's session = %+v, want verified with a user", victim)
	}
	conv := startVerifiedConversation(t, k.URL, victim.Token, "my invoice is wrong")
	for _, body := range []string{"order 1234", "please hurry"} {
		m, ues := trySendMessage(t, k.URL, victim.Token, conv, body)
		if len(ues) > 0 || m == nil || !m.Verified {
			t.Fatalf("sendMessage(%q) = %+v, userErrors %+v; want a verified message", body, m, ues)
		}
	}
	before := readUser(t, k.URL, key, *victim.UserID)
	if !before.Verified || deref(before.Name) != "Victoria Victim" || len(before.VisitorIDs) != 1 || !slices.Equal(before.conversationIDs(), []string{conv}) {
		t.Fatalf("victim as the dashboard reads them: %+v", before)
	}
	messagesBefore := dashboardMessages(t, k.URL, key, conv)
	if len(messagesBefore) != 3 {
		t.Fatalf("the victim's conversation has %d messages, want 3", len(messagesBefore))
	}

	// The attacker's browser: an anonymous session first, so that it has a session to query.
	attacker := mustIdentify(t, k.URL, "", map[string]any{"appId": appID})

	t.Run("ClaimOfUserIDVerificationRequired", func(t *testing.T) {
		p := tryIdentify(t, k.URL, "", map[string]any{"appId": appID, "userId": "victim-1", "name": "Mallory", "metadata": map[string]any{"plan": "free"}})
		requireRefused(t, "fresh identify with the victim's userId", p, []string{"input", "userId"}, "VERIFICATION_REQUIRED")
		p = tryIdentify(t, k.URL, attacker.Token, map[string]any{"appId": appID, "userId": "victim-1"})
		requireRefused(t, "the attacker's session identifying with the victim's userId", p, []string{"input", "userId"}, "VERIFICATION_REQUIRED")
		p = trySetUser(t, k.URL, "", map[string]any{"appId": appID, "id": "victim-1", "attrs": map[string]any{"plan": "free"}})
		requireRefused(t, "setUser with the victim's id", p, []string{"input", "id"}, "VERIFICATION_REQUIRED")
	})
	t.Run("ClaimOfEmailVerificationRequired", func(t *testing.T) {
		p := tryIdentify(t, k.URL, "", map[string]any{"appId": appID, "email": "victim@example.com", "name": "Mallory"})
		requireRefused(t, "fresh identify with the victim's email", p, []string{"input", "email"}, "VERIFICATION_REQUIRED")
		p = tryIdentify(t, k.URL, attacker.Token, map[string]any{"appId": appID, "email": "VICTIM@example.com"})
		requireRefused(t, "the attacker's session identifying with the victim's email", p, []string{"input", "email"}, "VERIFICATION_REQUIRED")
	})
	t.Run("WrongUserHashVerificationFailed", func(t *testing.T) {
		p := tryIdentify(t, k.URL, attacker.Token, map[string]any{"appId": appID, "userId": "victim-1", "userHash": userHashOf("guessed-secret", "victim-1")})
		requireRefused(t, "identify with a wrong userHash", p, []string{"input", "userHash"}, "VERIFICATION_FAILED")
		p = tryIdentify(t, k.URL, "", map[string]any{"appId": appID, "userId": "victim-1", "userHash": userHashOf(identitySecret, "victim-2")})
		requireRefused(t, "identify with another user's userHash", p, []string{"input", "userHash"}, "VERIFICATION_FAILED")
	})
	t.Run("AttackersSessionSeesNothing", func(t *testing.T) {
		s := readSession(t, k.URL, attacker.Token)
		if s.UserID != nil || s.VisitorID != attacker.VisitorID || len(s.Conversations.Nodes) != 0 {
			t.Fatalf("the attacker's session = %+v, want its own anonymous visitor and no conversations", s)
		}
		m, ues := trySendMessage(t, k.URL, attacker.Token, conv, "let me in")
		if m != nil {
			t.Fatalf("the attacker sent %+v into the victim's conversation", m)
		}
		requireOneUserError(t, "the attacker's sendMessage", ues, []string{"input", "conversationId"}, "NOT_FOUND")
	})
	t.Run("VictimUnchanged", func(t *testing.T) {
		after := readUser(t, k.URL, key, *victim.UserID)
		if !reflect.DeepEqual(after, before) {
			t.Fatalf("the victim changed:\nbefore %+v\nafter  %+v", before, after)
		}
		if got := dashboardMessages(t, k.URL, key, conv); !reflect.DeepEqual(got, messagesBefore) {
			t.Fatalf("the victim's conversation changed:\nbefore %+v\nafter  %+v", messagesBefore, got)
		}
		if s := readSession(t, k.URL, victim.Token); s.UserID == nil || *s.UserID != *victim.UserID || !slices.Equal(s.conversationIDs(), []string{conv}) {
			t.Fatalf("the victim's own session = %+v", s)
		}
	})

	t.Run("RotateIdentitySecret", func(t *testing.T) {
		r := gql(t, k.URL, key, `mutation { rotateIdentitySecret { identitySecret previousSecretExpiresAt userErrors { field code message } } }`, nil)
		var data struct {
			RotateIdentitySecret struct {
				IdentitySecret          *string
				PreviousSecretExpiresAt *time.Time
				UserErrors              []userError
			}
		}
		r.decode(t, &data)
		p := data.RotateIdentitySecret
		if len(p.UserErrors) > 0 || p.IdentitySecret == nil || *p.IdentitySecret == "" || *p.IdentitySecret == identitySecret || p.PreviousSecretExpiresAt == nil {
			t.Fatalf("rotateIdentitySecret = %s", r.Body)
		}
		if d := time.Until(*p.PreviousSecretExpiresAt) - 2*time.Hour; d < -time.Minute || d > time.Minute {
			t.Fatalf("previousSecretExpiresAt = %v, want about 2 hours from now", *p.PreviousSecretExpiresAt)
		}
		for _, secret := range []string{*p.IdentitySecret, identitySecret} {
			s := requireSession(t, "identify after rotation", tryIdentify(t, k.URL, "", map[string]any{"appId": appID, "userId": "after-rotation", "userHash": userHashOf(secret, "after-rotation")}))
			if !s.Verified {
				t.Fatalf("a userHash under the %s secret did not verify: %+v", map[bool]string{true: "new", false: "old"}[secret != identitySecret], s)
			}
		}
		requireRefused(t, "a userHash under the attacker's guess after rotation",
			tryIdentify(t, k.URL, "", map[string]any{"appId": appID, "userId": "after-rotation", "userHash": userHashOf("guessed-secret", "after-rotation")}),
			[]string{"input", "userHash"}, "VERIFICATION_FAILED")
	})

	t.Run("AddJwtPublicKey", func(t *testing.T) {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		spki := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		type jwtKey struct {
			ID        string     `json:"id"`
			Algorithm string     `json:"algorithm"`
			CreatedAt time.Time  `json:"createdAt"`
			ExpiresAt *time.Time `json:"expiresAt"`
		}
		r := gql(t, k.URL, key, `mutation($input: AddJwtPublicKeyInput!) {
			addJwtPublicKey(input: $input) { key { id algorithm createdAt expiresAt } userErrors { field code message } }
		}`, map[string]any{"input": map[string]any{"pem": spki}})
		var data struct {
			AddJwtPublicKey struct {
				Key        *jwtKey
				UserErrors []userError
			}
		}
		r.decode(t, &data)
		added := data.AddJwtPublicKey.Key
		if len(data.AddJwtPublicKey.UserErrors) > 0 || added == nil || added.ID == "" || added.Algorithm != "EDDSA" || added.ExpiresAt != nil ||
			time.Since(added.CreatedAt).Abs() > time.Minute {
			t.Fatalf("addJwtPublicKey = %s; want {id, algorithm EDDSA, createdAt now, expiresAt null}", r.Body)
		}
		var proj struct {
			Project struct{ JwtPublicKeys []jwtKey }
		}
		gql(t, k.URL, key, `{ project { jwtPublicKeys { id algorithm createdAt expiresAt } } }`, nil).decode(t, &proj)
		if got := proj.Project.JwtPublicKeys; len(got) != 1 || got[0].ID != added.ID || got[0].Algorithm != "EDDSA" || got[0].ExpiresAt != nil || !got[0].CreatedAt.Equal(added.CreatedAt) {
			t.Fatalf("project.jwtPublicKeys = %+v, want just %+v", got, *added)
		}
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"id": "jwt-user", "name": "Jay Double", "exp": time.Now().Add(5 * time.Minute).Unix()})
		tok.Header["kid"] = added.ID
		signed, err := tok.SignedString(priv)
		if err != nil {
			t.Fatal(err)
		}
		s := requireSession(t, "setUser with a JWT", trySetUser(t, k.URL, "", map[string]any{"appId": appID, "jwt": signed, "name": "Unsigned Name"}))
		if !s.Verified || s.UserID == nil {
			t.Fatalf("setUser with a JWT gave %+v, want a verified session", s)
		}
		if u := readUser(t, k.URL, key, *s.UserID); !u.Verified || deref(u.ExternalID) != "jwt-user" || deref(u.Name) != "Jay Double" {
			t.Fatalf("the JWT's user = %+v, want verified jwt-user named Jay Double", u)
		}
	})

	// Last, as it fails by changing the victim while the bug it shows is there: the attacker's
	// backend gives them an identification token for their own email; the browser sends it
	// with the victim's userId. The token proves the email only: the userId is a mere claim.
	t.Run("OwnTokenWithVictimsUserIDVerificationRequired", func(t *testing.T) {
		defer func() {
			if s := readSession(t, k.URL, victim.Token); !slices.Equal(s.conversationIDs(), []string{conv}) {
				t.Errorf("the victim's session now lists %v", s.conversationIDs())
			}
		}()
		r := gql(t, k.URL, key, `mutation($input: CreateIdentificationTokenInput!) {
			createIdentificationToken(input: $input) { token expiresAt userErrors { field code message } }
		}`, map[string]any{"input": map[string]any{"email": "mallory@example.com"}})
		var data struct {
			CreateIdentificationToken struct {
				Token      *string
				UserErrors []userError
			}
		}
		r.decode(t, &data)
		if data.CreateIdentificationToken.Token == nil {
			t.Fatalf("createIdentificationToken = %s", r.Body)
		}
		p := tryIdentify(t, k.URL, "", map[string]any{"appId": appID, "userId": "victim-1", "email": "mallory@example.com",
			"identificationToken": *data.CreateIdentificationToken.Token})
		if p.Session != nil {
			s := readSession(t, k.URL, p.Session.Token)
			u := readUser(t, k.URL, key, *victim.UserID)
			t.Fatalf("the attacker got a session (verified %v, user %s; the victim is %s) reading conversations %v (the victim's is %s); the victim's email is now %q",
				p.Session.Verified, deref(p.Session.UserID), *victim.UserID, s.conversationIDs(), conv, deref(u.Email))
		}
		requireRefused(t, "identify with the victim's userId and a token for the attacker's email", p, []string{"input", "userId"}, "VERIFICATION_REQUIRED")
	})
}
