package main

import (
	"testing"
)

// TestIdentifyPayloadActsForTheSessionItIssued: the fields of an identify payload act for the
// session identify just issued, not for the token the request carried. A claimed second device
// that proves its identity reads, in the same response, the conversation the user started on
// their first device.
func TestIdentifyPayloadActsForTheSessionItIssued(t *testing.T) {
	env := testEnv(t)
	env["KNOWN_WIDGET_RATE_LIMIT"] = "0"
	k := startRun(t, env)
	appID, _, secret := createProjectWithIdentitySecret(t, k.URL, "Memo")
	hash := userHashOf(secret, "memo-1")

	var first struct {
		Identify struct{ Session *struct{ Token string } }
	}
	widgetGQL(t, k.URL, "", `mutation($in: IdentifyInput!) { identify(input: $in) { session { token } } }`,
		map[string]any{"in": map[string]any{"appId": appID, "userId": "memo-1", "userHash": hash}}).decode(t, &first)
	if first.Identify.Session == nil {
		t.Fatal("the first device was not identified")
	}
	startVerifiedConversation(t, k.URL, first.Identify.Session.Token, "from the laptop")

	// The second device was last used by someone else (claimed, no proof); proving memo-1
	// there gives a new visitor and session, which the rest of the response must act for.
	var claimed struct {
		Identify struct{ Session *struct{ Token string } }
	}
	widgetGQL(t, k.URL, "", `mutation($in: IdentifyInput!) { identify(input: $in) { session { token } } }`,
		map[string]any{"in": map[string]any{"appId": appID, "userId": "someone-else"}}).decode(t, &claimed)
	var proved struct {
		Identify struct {
			Session *struct {
				Verified      bool
				Conversations struct {
					Nodes []struct {
						Messages struct{ Nodes []struct{ Body string } }
					}
				}
			}
		}
	}
	widgetGQL(t, k.URL, claimed.Identify.Session.Token, `mutation($in: IdentifyInput!) { identify(input: $in) {
		session { verified conversations { nodes { messages { nodes { body } } } } } } }`,
		map[string]any{"in": map[string]any{"appId": appID, "userId": "memo-1", "userHash": hash}}).decode(t, &proved)
	s := proved.Identify.Session
	if s == nil || !s.Verified || len(s.Conversations.Nodes) != 1 || len(s.Conversations.Nodes[0].Messages.Nodes) != 1 ||
		s.Conversations.Nodes[0].Messages.Nodes[0].Body != "from the laptop" {
		t.Fatalf("the proved session's payload does not read the laptop's conversation: %+v", s)
	}
}
