package main

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
)

// shardKeys are the shard keys of the README's Production section ("Sharding"): a query on one
// of these collections reaches one shard only when its filter names the key (equality or $in).
var shardKeys = map[string]string{
	"users": "_id", "identity_keys": "_id", "organizations": "_id", "companies": "_id",
	"conversations": "_id", "messages": "conversationId", "events": "_id", "widget_sessions": "_id",
	"jwt_ids": "_id", "identification_tokens": "_id", "profiles": "_id", "lists": "_id", "webhook_pending": "_id",
}

// scattered are the queries the README lists as sent to every shard, by collection and the
// fields their filter names: the dashboard's lists, a user's conversations and events, merges
// and erasure. Anything else that is not targeted fails the test.
var scattered = map[string][][]string{
	"users":           {{"projectId"}, {"companyIds", "projectId"}, {"organizationIds", "projectId"}, {"emailKey", "projectId"}, {"externalId", "projectId"}, {"phoneNumber", "projectId"}},
	"conversations":   {{"projectId"}, {"projectId", "userId"}, {"projectId", "visitorId"}, {"userId"}},
	"events":          {{"projectId", "userId"}, {"companyId", "projectId"}, {"userId"}},
	"companies":       {{"projectId"}},
	"organizations":   {{"projectId"}},
	"widget_sessions": {{"revokedAt", "userId"}},
}

// shardLog records each command's collection and how it selects documents.
type shardLog struct {
	on  atomic.Bool
	mu  sync.Mutex
	bad []string
	n   int
}

func (l *shardLog) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if !l.on.Load() {
			return
		}
		coll := collectionOf(e)
		key, sharded := shardKeys[coll]
		if !sharded {
			return
		}
		var filters []bson.Raw
		switch e.CommandName {
		case "find", "count", "delete", "update", "findAndModify":
			filters = selectors(e)
		case "insert":
			docs, _ := e.Command.Lookup("documents").Array().Values()
			for _, d := range docs {
				if _, err := d.Document().LookupErr(key); err != nil {
					l.fail(fmt.Sprintf("insert into %s of a document without its shard key %s", coll, key))
				}
			}
			l.count()
			return
		default:
			return
		}
		for _, f := range filters {
			l.count()
			if targets(f, key) {
				continue
			}
			fields := topFields(f)
			if slices.ContainsFunc(scattered[coll], func(allowed []string) bool { return slices.Equal(allowed, fields) }) {
				continue
			}
			l.fail(fmt.Sprintf("%s on %s selects by %v, not by its shard key %s: %s", e.CommandName, coll, fields, key, f))
		}
	}}
}

func (l *shardLog) count() { l.mu.Lock(); l.n++; l.mu.Unlock() }

func (l *shardLog) fail(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !slices.Contains(l.bad, s) {
		l.bad = append(l.bad, s)
	}
}

// selectors returns the filters of a command: find's filter, count's and findAndModify's
// query, the q of each update or delete statement.
func selectors(e *event.CommandStartedEvent) []bson.Raw {
	c := e.Command
	switch e.CommandName {
	case "find":
		if v, err := c.LookupErr("filter"); err == nil {
			return []bson.Raw{v.Document()}
		}
		return []bson.Raw{bson.Raw{5, 0, 0, 0, 0}}
	case "count", "findAndModify":
		if v, err := c.LookupErr("query"); err == nil {
			return []bson.Raw{v.Document()}
		}
		return []bson.Raw{bson.Raw{5, 0, 0, 0, 0}}
	}
	field := map[string]string{"update": "updates", "delete": "deletes"}[e.CommandName]
	var out []bson.Raw
	if v, err := c.LookupErr(field); err == nil {
		stmts, _ := v.Array().Values()
		for _, s := range stmts {
			out = append(out, s.Document().Lookup("q").Document())
		}
	}
	return out
}

// targets reports whether filter f names shard key key with an equality or an $in.
func targets(f bson.Raw, key string) bool {
	v, err := f.LookupErr(key)
	if err != nil {
		return false
	}
	if d, ok := v.DocumentOK(); ok {
		_, in := d.LookupErr("$in")
		return in == nil
	}
	return true
}

func topFields(f bson.Raw) []string {
	els, _ := f.Elements()
	var out []string
	for _, e := range els {
		out = append(out, e.Key())
	}
	sort.Strings(out)
	return out
}

// TestShardKeysTargetHotPaths runs Known's main journeys (the widget's calls with and without
// proofs, the seeds' REST routes, the dashboard's reads, an agent's reply, erasure) against a
// store whose commands are watched, and fails when a query on a sharded collection neither
// names its shard key nor is one of the scattered queries the README lists.
func TestShardKeysTargetHotPaths(t *testing.T) {
	l := &shardLog{}
	url := inProcessKnown(t, l.monitor()).URL
	appID, key, secret := createProjectWithIdentitySecret(t, url, "Shards")
	l.on.Store(true)

	anon := mustIdentify(t, url, "", map[string]any{"appId": appID})
	widgetGQL(t, url, anon.Token, `mutation { setProperties(input: {properties: {plan: "free"}}) { userErrors { code } } }`, nil)
	conv := startConversation(t, url, anon.Token, "hello")
	jane := mustIdentify(t, url, anon.Token, map[string]any{"appId": appID, "userId": "shard-1", "email": "jane@example.com",
		"userHash": userHashOf(secret, "shard-1"), "company": map[string]any{"id": "acme", "name": "Acme", "metadata": map[string]any{"tier": 1}}})
	mustIdentify(t, url, jane.Token, map[string]any{"appId": appID, "userId": "shard-1", "userHash": userHashOf(secret, "shard-1")})
	widgetGQL(t, url, jane.Token, `mutation { track(input: {event: "opened"}) { userErrors { code } } }`, nil)
	widgetGQL(t, url, jane.Token, `mutation { setStage(input: {stage: "lead"}) { userErrors { code } } }`, nil)
	widgetGQL(t, url, jane.Token, `mutation { setDeal(input: {name: "renewal", amount: 10}) { userErrors { code } } }`, nil)
	if _, ues := trySendMessage(t, url, jane.Token, conv, "more"); len(ues) > 0 {
		t.Fatalf("sendMessage: %+v", ues)
	}
	widgetGQL(t, url, jane.Token, `{ session { conversations(first: 5) { nodes { id messages(first: 5) { nodes { body } } } } } }`, nil)
	mustIdentify(t, url, "", map[string]any{"appId": appID, "userId": "shard-2", "email": "bob@example.com"})
	gql(t, url, key, `mutation($id: ID!) { replyToConversation(input: {conversationId: $id, body: "hi"}) { userErrors { code } } }`,
		map[string]any{"id": conv})
	gql(t, url, key, `{ conversations(first: 10) { nodes { id user { name companies { nodes { name } } organizations { nodes { name } } }
		messages(first: 1) { nodes { body } } } } users(first: 10) { nodes { id identities { kind } } }
		searchUsers(email: "jane@example.com") { user { id } conversationIds } }`, nil)
	gql(t, url, key, `{ conversation(id: "`+conv+`") { messages(first: 10) { nodes { body } } } }`, nil)
	u := createUser(t, url, key, map[string]any{"email": "api@example.com"})
	gql(t, url, key, `mutation($id: ID!) { deleteUser(input: {id: $id}) { userErrors { code } } }`, map[string]any{"id": u.ID})
	l.on.Store(false)

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n < 30 {
		t.Fatalf("only %d commands watched: the journeys did not run", l.n)
	}
	if len(l.bad) > 0 {
		t.Fatalf("%d of %d commands on sharded collections would go to every shard:\n%s", len(l.bad), l.n, strings.Join(l.bad, "\n"))
	}
	t.Logf("%d commands on sharded collections, each targeted or one of the README's scattered lists", l.n)
}
