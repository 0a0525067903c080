package main

import (
	"testing"
)

// TestNodeAnswersMessagesAndEvents: node(id) answers the caller's own Message and Event, which
// implement Node, and answers NOT_FOUND for another project's (issue 9, point 6).
func TestNodeAnswersMessagesAndEvents(t *testing.T) {
	k := startInProcess(t, nil)
	type ids struct{ message, event string }
	seed := func(name string) (key string, out ids) {
		appID, key := createProject(t, k.URL, name)
		s := mustIdentify(t, k.URL, "", map[string]any{"appId": appID, "userId": name + "-user"})
		var started struct {
			StartConversation struct {
				Conversation struct {
					Messages struct{ Nodes []struct{ ID string } }
				}
			}
		}
		widgetGQL(t, k.URL, s.Token, `mutation { startConversation(input: {body: "hello"}) {
			conversation { messages { nodes { id } } } } }`, nil).decode(t, &started)
		var tracked struct {
			Track struct{ Event struct{ ID string } }
		}
		widgetGQL(t, k.URL, s.Token, `mutation { track(input: {event: "signed-up", properties: {plan: "pro"}}) { event { id } } }`, nil).
			decode(t, &tracked)
		if len(started.StartConversation.Conversation.Messages.Nodes) != 1 || tracked.Track.Event.ID == "" {
			t.Fatalf("%s: no message or event to look up", name)
		}
		return key, ids{started.StartConversation.Conversation.Messages.Nodes[0].ID, tracked.Track.Event.ID}
	}
	key, own := seed("Mine")
	_, other := seed("Theirs")
	const query = `query($id: ID!) { node(id: $id) { id __typename
		... on Message { body author }
		... on Event { name properties } } }`

	t.Run("OwnMessage", func(t *testing.T) {
		var data struct {
			Node *struct{ ID, Typename, Body, Author string }
		}
		r := gql(t, k.URL, key, query, map[string]any{"id": own.message})
		r.decode(t, &data)
		if data.Node == nil || data.Node.ID != own.message || data.Node.Body != "hello" {
			t.Fatalf("node(own message) = %s", r.Body)
		}
	})
	t.Run("OwnEvent", func(t *testing.T) {
		var data struct {
			Node *struct {
				ID, Name   string
				Properties map[string]any
			}
		}
		r := gql(t, k.URL, key, query, map[string]any{"id": own.event})
		r.decode(t, &data)
		if data.Node == nil || data.Node.ID != own.event || data.Node.Name != "signed-up" || data.Node.Properties["plan"] != "pro" {
			t.Fatalf("node(own event) = %s", r.Body)
		}
	})
	t.Run("OtherProjectsMessageIsNotFound", func(t *testing.T) {
		gql(t, k.URL, key, query, map[string]any{"id": other.message}).requireCode(t, "NOT_FOUND")
	})
	t.Run("OtherProjectsEventIsNotFound", func(t *testing.T) {
		gql(t, k.URL, key, query, map[string]any{"id": other.event}).requireCode(t, "NOT_FOUND")
	})
	t.Run("WithoutSecretKeyIsUnauthenticated", func(t *testing.T) {
		gql(t, k.URL, "", query, map[string]any{"id": own.message}).requireCode(t, "UNAUTHENTICATED")
	})
}
