package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
)

// wsClient is a graphql-transport-ws client, as the graphql-ws library speaks it.
type wsClient struct {
	tb   testing.TB
	conn *websocket.Conn
	next int
}

type wsMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// dialEvents opens a subscription socket with init as the connection_init payload; it returns
// the connection_ack error (a close) as err.
func dialEvents(tb testing.TB, baseURL string, init map[string]any, origin string) (*wsClient, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}}
	if origin != "" {
		opts.HTTPHeader = map[string][]string{"Origin": {origin}}
	}
	conn, _, err := websocket.Dial(ctx, strings.Replace(baseURL, "http://", "ws://", 1)+"/graphql", opts)
	if err != nil {
		tb.Fatalf("dialing /graphql: %v", err)
	}
	tb.Cleanup(func() { _ = conn.CloseNow() })
	payload, _ := json.Marshal(init)
	if err := wsjson.Write(ctx, conn, wsMessage{Type: "connection_init", Payload: payload}); err != nil {
		tb.Fatal(err)
	}
	c := &wsClient{tb: tb, conn: conn}
	for {
		var m wsMessage
		if err := wsjson.Read(ctx, conn, &m); err != nil {
			return nil, err
		}
		if m.Type == "connection_ack" {
			return c, nil
		}
	}
}

func mustDialEvents(tb testing.TB, baseURL string, init map[string]any) *wsClient {
	tb.Helper()
	c, err := dialEvents(tb, baseURL, init, "")
	if err != nil {
		tb.Fatalf("connection_init refused: %v", err)
	}
	return c
}

// subscribe starts a subscription and returns its id.
func (c *wsClient) subscribe(query string, vars map[string]any) string {
	c.tb.Helper()
	c.next++
	id := fmt.Sprint(c.next)
	payload, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := wsjson.Write(ctx, c.conn, wsMessage{ID: id, Type: "subscribe", Payload: payload}); err != nil {
		c.tb.Fatal(err)
	}
	return id
}

// receivedEvent is an InboxEvent as a subscriber reads it.
type receivedEvent struct {
	ID             string  `json:"id"`
	Type           string  `json:"type"`
	Name           string  `json:"name"`
	UserID         *string `json:"userId"`
	ConversationID *string `json:"conversationId"`
	Message        *struct{ Body, Author string }
	Changes        map[string]any `json:"changes"`
	Data           map[string]any `json:"data"`
	Received       time.Time      `json:"-"`
}

const eventFields = `id type name userId conversationId message { body author } changes data`

// event reads the next event of any subscription on the socket (and its subscription id);
// it fails the test after timeout.
func (c *wsClient) event(timeout time.Duration) (string, receivedEvent) {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		var m wsMessage
		if err := wsjson.Read(ctx, c.conn, &m); err != nil {
			c.tb.Fatalf("reading an event: %v", err)
		}
		switch m.Type {
		case "ping":
			_ = wsjson.Write(ctx, c.conn, wsMessage{Type: "pong"})
		case "next":
			var p struct {
				Data   map[string]receivedEvent
				Errors []gqlError
			}
			if err := json.Unmarshal(m.Payload, &p); err != nil || len(p.Errors) > 0 {
				c.tb.Fatalf("subscription %s: %s", m.ID, m.Payload)
			}
			for _, e := range p.Data {
				e.Received = time.Now()
				return m.ID, e
			}
		case "error", "complete":
			c.tb.Fatalf("subscription %s ended: %s %s", m.ID, m.Type, m.Payload)
		}
	}
}

// closeCode waits for the server to close the socket and returns the close code.
func closeCode(err error) websocket.StatusCode {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

func widgetIdentify(tb testing.TB, baseURL, appID, token string, input map[string]any) widgetSession {
	tb.Helper()
	input["appId"] = appID
	r := widgetGQL(tb, baseURL, token, `mutation($input: IdentifyInput!) { identify(input: $input) { session { `+widgetSessionFields+` } userErrors { field code message } } }`,
		map[string]any{"input": input})
	var data struct{ Identify sessionPayload }
	r.decode(tb, &data)
	if data.Identify.Session == nil {
		tb.Fatalf("identify: %s", r.Body)
	}
	return *data.Identify.Session
}

func widgetStart(tb testing.TB, baseURL, token, body string) string {
	tb.Helper()
	r := widgetGQL(tb, baseURL, token, `mutation($b: String!) { startConversation(input: {body: $b}) { conversation { id } userErrors { code message } } }`,
		map[string]any{"b": body})
	var data struct {
		StartConversation struct{ Conversation *struct{ ID string } }
	}
	r.decode(tb, &data)
	if data.StartConversation.Conversation == nil {
		tb.Fatalf("startConversation: %s", r.Body)
	}
	return data.StartConversation.Conversation.ID
}

func agentReply(tb testing.TB, baseURL, key, conv, body string) {
	tb.Helper()
	r := gql(tb, baseURL, key, `mutation($c: ID!, $b: String!) { replyToConversation(input: {conversationId: $c, body: $b}) { message { id } userErrors { code message } } }`,
		map[string]any{"c": conv, "b": body})
	if !strings.Contains(r.Body, `"message":{"id"`) {
		tb.Fatalf("replyToConversation: %s", r.Body)
	}
}

const waitEvent = 10 * time.Second

// TestInboxEventsReachTheirProjectsSubscribersOnly: a secret key's subscriber gets its
// project's events, filtered by type when it asks, and nothing of another project.
func TestInboxEventsReachTheirProjectsSubscribersOnly(t *testing.T) {
	t.Parallel()
	k := startKnown(t)
	_, keyA := createProject(t, k.URL, "A")
	_, keyB := createProject(t, k.URL, "B")
	a := mustDialEvents(t, k.URL, map[string]any{"Agent-Secret-Key": keyA})
	all := a.subscribe(`subscription { inboxEvents { `+eventFields+` } }`, nil)
	deleted := a.subscribe(`subscription($t: [EventType!]) { inboxEvents(types: $t) { `+eventFields+` } }`, map[string]any{"t": []string{"USER_DELETED"}})
	b := mustDialEvents(t, k.URL, map[string]any{"Authorization": "Bearer " + keyB})
	b.subscribe(`subscription { inboxEvents { `+eventFields+` } }`, nil)
	time.Sleep(100 * time.Millisecond) // the subscribe messages are read by the server

	u := createUser(t, k.URL, keyA, map[string]any{"email": "ann@example.com"})
	id, e := a.event(waitEvent)
	if id != all || e.Type != "USER_CREATED" || e.Name != "user.created" || e.UserID == nil || *e.UserID != u.ID ||
		e.Data["user"].(map[string]any)["email"] != "ann@example.com" {
		t.Fatalf("A's subscriber got %s %+v, want user.created of %s", id, e, u.ID)
	}
	gql(t, k.URL, keyA, `mutation($id: ID!) { deleteUser(input: {id: $id}) { userErrors { code } } }`, map[string]any{"id": u.ID})
	// Both subscriptions get it, in no particular order between them.
	got := map[string]string{}
	for range 2 {
		id, e := a.event(waitEvent)
		got[id] = e.Type
	}
	if got[all] != "USER_DELETED" || got[deleted] != "USER_DELETED" {
		t.Fatalf("got %v, want USER_DELETED on both subscriptions (%s, %s)", got, all, deleted)
	}

	// B's subscriber: its first event is B's own, though A's came earlier.
	createUser(t, k.URL, keyB, map[string]any{"email": "bea@example.com"})
	if _, e := b.event(waitEvent); e.Data["user"].(map[string]any)["email"] != "bea@example.com" {
		t.Fatalf("B's subscriber got %+v, want only B's user.created", e)
	}
}

// TestSessionEventsReachTheirSessionOnly: a widget session's subscriber gets the agent's reply
// at once, and nothing of another visitor's conversation; it sees no user data.
func TestSessionEventsReachTheirSessionOnly(t *testing.T) {
	t.Parallel()
	k := startKnown(t)
	app, key := createProject(t, k.URL, "Shop")
	v1 := widgetIdentify(t, k.URL, app, "", map[string]any{})
	v2 := widgetIdentify(t, k.URL, app, "", map[string]any{})
	s1 := mustDialEvents(t, k.URL, map[string]any{"X-Widget-Session": v1.Token})
	s1.subscribe(`subscription { sessionEvents { `+eventFields+` } }`, nil)
	s2 := mustDialEvents(t, k.URL, map[string]any{"X-Widget-Session": v2.Token})
	s2.subscribe(`subscription { sessionEvents { `+eventFields+` } }`, nil)
	time.Sleep(100 * time.Millisecond)

	c1 := widgetStart(t, k.URL, v1.Token, "where is my parcel?")
	for _, want := range []string{"CONVERSATION_CREATED", "MESSAGE_CREATED"} {
		if _, e := s1.event(waitEvent); e.Type != want || e.ConversationID == nil || *e.ConversationID != c1 {
			t.Fatalf("v1 got %+v, want %s of %s", e, want, c1)
		}
	}
	agentReply(t, k.URL, key, c1, "on its way")
	_, e := s1.event(waitEvent)
	if e.Type != "MESSAGE_CREATED" || e.Message == nil || e.Message.Body != "on its way" || e.Message.Author != "AGENT" {
		t.Fatalf("v1 got %+v, want the agent's reply", e)
	}
	if e.UserID != nil || e.Data["conversation"].(map[string]any)["userId"] != nil {
		t.Fatalf("a widget subscriber read user ids: %+v", e)
	}

	// v2's subscriber: its first event is of its own conversation, none of v1's before it.
	c2 := widgetStart(t, k.URL, v2.Token, "hello")
	if _, e := s2.event(waitEvent); e.ConversationID == nil || *e.ConversationID != c2 {
		t.Fatalf("v2 got %+v, want only its own conversation %s", e, c2)
	}
}

// TestWrongSubscriptionCredentialClosesWith4403: a wrong or missing credential in
// connection_init closes the socket with 4403, and a widget session from an origin its
// project does not allow is refused too.
func TestWrongSubscriptionCredentialClosesWith4403(t *testing.T) {
	t.Parallel()
	k := startKnown(t)
	app, key := createProject(t, k.URL, "Locked")
	ss := widgetIdentify(t, k.URL, app, "", map[string]any{})
	r := gql(t, k.URL, key, `mutation { updateProject(input: {allowedOrigins: ["https://shop.example"]}) { userErrors { code message } } }`, nil)
	if strings.Contains(r.Body, `"code"`) {
		t.Fatalf("updateProject: %s", r.Body)
	}
	for name, tc := range map[string]struct {
		init   map[string]any
		origin string
	}{
		"NoCredential":       {map[string]any{}, ""},
		"WrongSecretKey":     {map[string]any{"Agent-Secret-Key": "sk_wrong"}, ""},
		"WrongWidgetSession": {map[string]any{"X-Widget-Session": "ks1.forged"}, ""},
		"OriginNotAllowed":   {map[string]any{"X-Widget-Session": ss.Token}, "https://evil.example"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := dialEvents(t, k.URL, tc.init, tc.origin)
			if code := closeCode(err); code != 4403 {
				t.Fatalf("closed with %d (%v), want 4403", code, err)
			}
		})
	}
	t.Run("AllowedOriginAccepted", func(t *testing.T) {
		if _, err := dialEvents(t, k.URL, map[string]any{"X-Widget-Session": ss.Token}, "https://shop.example"); err != nil {
			t.Fatalf("refused: %v", err)
		}
	})
}

// startPair starts two instances on one external FerretDB database (the second with
// KNOWN_FERRETDB_SHARED=unsafe; only the first writes).
func startPair(tb testing.TB) (writer, reader *knownServer) {
	tb.Helper()
	env := testEnv(tb)
	writer = startRun(tb, env)
	second := map[string]string{}
	for k, v := range env {
		second[k] = v
	}
	second["KNOWN_ADDR"] = freeAddr(tb)
	second["KNOWN_FERRETDB_SHARED"] = "unsafe"
	return writer, startRun(tb, second)
}

// TestEventsCrossInstances: a change made through one instance reaches a subscriber of
// another instance on the same database, in order, each event once.
func TestEventsCrossInstances(t *testing.T) {
	t.Parallel()
	w, r := startPair(t)
	_, key := createProject(t, w.URL, "Pair")
	sub := mustDialEvents(t, r.URL, map[string]any{"Agent-Secret-Key": key})
	sub.subscribe(`subscription { inboxEvents(types: [USER_CREATED]) { `+eventFields+` } }`, nil)
	time.Sleep(100 * time.Millisecond)
	var want []string
	for i := range 5 {
		want = append(want, createUser(t, w.URL, key, map[string]any{"email": fmt.Sprintf("x%d@example.com", i)}).ID)
	}
	for i, id := range want {
		if _, e := sub.event(waitEvent); e.UserID == nil || *e.UserID != id {
			t.Fatalf("event %d on the other instance: %+v, want user.created of %s", i, e, id)
		}
	}
}

// BenchmarkEventLatency measures the time from sending a change (createUser) to its event
// reaching a subscriber, on the instance that made the change and on another one on the same
// database; it reports p50 and p99 in milliseconds.
func BenchmarkEventLatency(b *testing.B) {
	w, r := startPair(b)
	_, key := createProject(b, w.URL, "Bench")
	for _, tc := range []struct {
		name string
		on   *knownServer
	}{{"SameInstance", w}, {"OtherInstance", r}} {
		b.Run(tc.name, func(b *testing.B) {
			sub := mustDialEvents(b, tc.on.URL, map[string]any{"Agent-Secret-Key": key})
			sub.subscribe(`subscription { inboxEvents(types: [USER_CREATED]) { id userId data } }`, nil)
			time.Sleep(100 * time.Millisecond)
			// From the change (the event's createdAt, taken as the write is made, on this
			// machine's clock) to the subscriber; and the whole round from sending the mutation.
			var lat, round, ack []time.Duration
			for i := 0; b.Loop(); i++ {
				start := time.Now()
				createUser(b, w.URL, key, map[string]any{"email": fmt.Sprintf("%s-%d-%d@example.com", strings.ToLower(tc.name), b.N, i)})
				acked := time.Now()
				_, e := sub.event(waitEvent)
				ack = append(ack, e.Received.Sub(acked))
				at, err := time.Parse(time.RFC3339Nano, e.Data["user"].(map[string]any)["createdAt"].(string))
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, e.Received.Sub(at))
				round = append(round, e.Received.Sub(start))
			}
			pct := func(ds []time.Duration, p float64) float64 {
				slices.Sort(ds)
				return float64(ds[min(len(ds)-1, int(p*float64(len(ds))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(lat, 0.5), "p50-ms")
			b.ReportMetric(pct(lat, 0.99), "p99-ms")
			b.ReportMetric(pct(round, 0.5), "round-p50-ms")
			b.ReportMetric(pct(ack, 0.5), "after-ack-p50-ms")
			b.ReportMetric(pct(ack, 0.99), "after-ack-p99-ms")
		})
	}
}

// TestWebhookThroughGraphQL: addWebhook shows the signing secret once; a change is POSTed to
// the receiver on loopback (KNOWN_ALLOW_PRIVATE_NETWORKS=true) with a valid signature, and
// Project.webhooks and Webhook.deliveries show it; another project's key cannot touch it.
func TestWebhookThroughGraphQL(t *testing.T) {
	t.Parallel()
	got := make(chan *http.Request, 10)
	bodies := make(chan []byte, 10)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r
		bodies <- b
	}))
	defer rcv.Close()
	env := testEnv(t)
	env["KNOWN_ALLOW_PRIVATE_NETWORKS"] = "true"
	k := startRun(t, env)
	_, key := createProject(t, k.URL, "Hooked")
	_, other := createProject(t, k.URL, "Other")

	r := gql(t, k.URL, key, `mutation { addWebhook(input: {url: "ftp://x"}) { webhook { id } userErrors { field code } } }`, nil)
	if !strings.Contains(r.Body, `"field":["input","url"],"code":"INVALID"`) {
		t.Fatalf("a bad URL: %s", r.Body)
	}
	r = gql(t, k.URL, key, `mutation($u: String!) { addWebhook(input: {url: $u, events: [USER_CREATED]}) { webhook { id url events enabled } signingSecret userErrors { code } } }`,
		map[string]any{"u": rcv.URL + "/hook"})
	var add struct {
		AddWebhook struct {
			Webhook       *struct{ ID string }
			SigningSecret string
		}
	}
	r.decode(t, &add)
	if add.AddWebhook.Webhook == nil || add.AddWebhook.SigningSecret == "" {
		t.Fatalf("addWebhook: %s", r.Body)
	}
	createUser(t, k.URL, key, map[string]any{"email": "hooked@example.com"})
	var req *http.Request
	select {
	case req = <-got:
	case <-time.After(waitEvent):
		t.Fatal("no delivery within 10 s")
	}
	body := <-bodies
	ts, sig, _ := strings.Cut(req.Header.Get("Known-Signature"), ",v1=")
	ts = strings.TrimPrefix(ts, "t=")
	mac := hmac.New(sha256.New, []byte(add.AddWebhook.SigningSecret))
	mac.Write([]byte(ts + "." + string(body)))
	if !hmac.Equal([]byte(sig), []byte(hex.EncodeToString(mac.Sum(nil)))) || req.Header.Get("Known-Event-Id") == "" {
		t.Fatalf("delivery headers %v do not verify", req.Header)
	}

	q := `{ project { webhooks { id url enabled deliveries(first: 5) { nodes { eventId eventType status attempts lastResponseCode } } } } }`
	deadline := time.Now().Add(waitEvent)
	for {
		r = gql(t, k.URL, key, q, nil)
		if strings.Contains(r.Body, `"status":"DELIVERED"`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(r.Body, `"eventId":"`+req.Header.Get("Known-Event-Id")+`","eventType":"USER_CREATED","status":"DELIVERED","attempts":1,"lastResponseCode":200`) {
		t.Fatalf("deliveries: %s", r.Body)
	}
	if r := gql(t, k.URL, other, `{ project { webhooks { id } } }`, nil); !strings.Contains(r.Body, `"webhooks":[]`) {
		t.Fatalf("another project sees: %s", r.Body)
	}
	r = gql(t, k.URL, other, `mutation($id: ID!) { removeWebhook(input: {id: $id}) { removedWebhookId userErrors { field code } } }`,
		map[string]any{"id": add.AddWebhook.Webhook.ID})
	if !strings.Contains(r.Body, `"code":"NOT_FOUND"`) {
		t.Fatalf("another project removing it: %s", r.Body)
	}
	r = gql(t, k.URL, key, `mutation($id: ID!) { removeWebhook(input: {id: $id}) { removedWebhookId userErrors { field code } } }`,
		map[string]any{"id": add.AddWebhook.Webhook.ID})
	if !strings.Contains(r.Body, `"removedWebhookId":"`+add.AddWebhook.Webhook.ID+`"`) {
		t.Fatalf("removeWebhook: %s", r.Body)
	}
}

// TestSessionEventsEndWithTheSession: a widget's live stream ends when its session does
// (resetSession is logout): the agent's next reply reaches no logged-out browser.
func TestSessionEventsEndWithTheSession(t *testing.T) {
	t.Parallel()
	k := startKnown(t)
	app, key := createProject(t, k.URL, "Logout")
	v := widgetIdentify(t, k.URL, app, "", map[string]any{})
	s := mustDialEvents(t, k.URL, map[string]any{"X-Widget-Session": v.Token})
	s.subscribe(`subscription { sessionEvents { `+eventFields+` } }`, nil)
	time.Sleep(100 * time.Millisecond)
	c := widgetStart(t, k.URL, v.Token, "my account")
	for range 2 { // CONVERSATION_CREATED, MESSAGE_CREATED
		s.event(waitEvent)
	}
	mustResetSession(t, k.URL, v.Token)
	agentReply(t, k.URL, key, c, "here are your account details")

	ctx, cancel := context.WithTimeout(context.Background(), waitEvent)
	defer cancel()
	for {
		var m wsMessage
		if err := wsjson.Read(ctx, s.conn, &m); err != nil {
			t.Fatalf("the subscription neither ended nor answered: %v", err)
		}
		switch m.Type {
		case "ping":
			_ = wsjson.Write(ctx, s.conn, wsMessage{Type: "pong"})
		case "next":
			t.Fatalf("a logged-out browser received %s", m.Payload)
		case "complete", "error":
			return // ended
		}
	}
}

// TestInboxEventsEndWithTheirKey: an agent's subscription made with a secret key ends once the
// key is rotated away (here with no grace: at once on the rotating instance, within CacheTTL on
// another), and delivers no event of the project after that.
func TestInboxEventsEndWithTheirKey(t *testing.T) {
	t.Parallel()
	k := startKnown(t)
	_, key := createProject(t, k.URL, "Rotating")
	a := mustDialEvents(t, k.URL, map[string]any{"Agent-Secret-Key": key})
	a.subscribe(`subscription { inboxEvents { `+eventFields+` } }`, nil)
	time.Sleep(100 * time.Millisecond) // the subscribe message is read by the server
	createUser(t, k.URL, key, map[string]any{"email": "before@example.com"})
	if _, e := a.event(waitEvent); e.Type != "USER_CREATED" {
		t.Fatalf("before the rotation: %+v, want USER_CREATED", e)
	}
	var rotated struct{ RotateSecretKey struct{ SecretKey string } }
	gql(t, k.URL, key, `mutation { rotateSecretKey(input: {graceMinutes: 0}) { secretKey } }`, nil).decode(t, &rotated)
	if rotated.RotateSecretKey.SecretKey == "" {
		t.Fatal("rotateSecretKey gave no key")
	}
	createUser(t, k.URL, rotated.RotateSecretKey.SecretKey, map[string]any{"email": "after@example.com"})

	ctx, cancel := context.WithTimeout(context.Background(), waitEvent)
	defer cancel()
	for {
		var m wsMessage
		if err := wsjson.Read(ctx, a.conn, &m); err != nil {
			t.Fatalf("the subscription of a rotated key neither ended nor answered: %v", err)
		}
		switch m.Type {
		case "ping":
			_ = wsjson.Write(ctx, a.conn, wsMessage{Type: "pong"})
		case "next":
			t.Fatalf("a rotated key's subscription received %s", m.Payload)
		case "complete", "error":
			return // ended
		}
	}
}
