package service_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"github.com/knownhq/known/clocktest"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/service"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/storetest"
	"github.com/knownhq/known/webhook"
	"github.com/rs/zerolog"
)

// receiver is a customer's webhook endpoint on loopback: it answers with the next of codes
// (the last one from then on) and keeps every request.
type receiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	codes []int
	got   []receivedDelivery
}

type receivedDelivery struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, codes ...int) *receiver {
	r := &receiver{codes: codes}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, receivedDelivery{header: req.Header.Clone(), body: body})
		code := r.codes[0]
		if len(r.codes) > 1 {
			r.codes = r.codes[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) deliveries() []receivedDelivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receivedDelivery(nil), r.got...)
}

// verify checks a delivery the way a customer's receiver does: the signature over
// "<t>.<body>" with the signing secret, and a timestamp within five minutes of now.
func verifySignature(d receivedDelivery, signingSecret string, now time.Time) bool {
	var ts, sig string
	for _, part := range strings.Split(d.header.Get("Known-Signature"), ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	mac := hmac.New(sha256.New, []byte(signingSecret))
	mac.Write([]byte(ts + "." + string(d.body)))
	want := hex.EncodeToString(mac.Sum(nil))
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || now.Sub(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return false
	}
	return hmac.Equal([]byte(sig), []byte(want))
}

// webhookEnv is a service on a fresh database with a test clock and a worker allowed to reach
// loopback (KNOWN_ALLOW_PRIVATE_NETWORKS=true).
type webhookEnv struct {
	*env
	clock  *testClock
	worker *service.WebhookWorker
}

func newWebhookEnv(t *testing.T, st *store.Store, allowPrivate bool) *webhookEnv {
	t.Helper()
	clk := clocktest.New(time.Time{})
	clk.Set(time.Now().UTC().Truncate(time.Second))
	if st == nil {
		st = storetest.Open(t, nil)
	}
	e := &env{svc: service.New(st, service.Options{Secret: testSecret, AdminToken: adminToken, Now: clk.Now}), store: st}
	e.project = e.newProject(t, "Hooks")
	e.ctx = e.as(t, e.project.SecretKey)
	return &webhookEnv{env: e, clock: clk, worker: newWorker(t, e, allowPrivate)}
}

func newWorker(t *testing.T, e *env, allowPrivate bool) *service.WebhookWorker {
	t.Helper()
	w, err := e.svc.NewWebhookWorker(context.Background(), service.WebhookOptions{AllowPrivate: allowPrivate,
		Jitter: func() float64 { return 0.5 }, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (e *webhookEnv) step(t *testing.T) {
	t.Helper()
	e.store.WaitPublished()
	if err := e.worker.Step(context.Background()); err != nil {
		t.Fatalf("Step: %v", err)
	}
}

func (e *webhookEnv) delivery(t *testing.T, w *known.Webhook) *known.WebhookDelivery {
	t.Helper()
	ds, _, err := e.svc.WebhookDeliveries(e.ctx, w, known.Page{First: 10})
	if err != nil || len(ds) == 0 {
		t.Fatalf("deliveries = %v, %v", ds, err)
	}
	return ds[0]
}

// TestWebhookRetriedUntilDeliveredWithTheSameEventID: a receiver answering 500 twice and then
// 200 gets the same event three times, with the same Known-Event-Id, each signed so that the
// customer's check passes; the retries wait the backoff.
func TestWebhookRetriedUntilDeliveredWithTheSameEventID(t *testing.T) {
	e := newWebhookEnv(t, nil, true)
	rcv := newReceiver(t, 500, 500, 200)
	w, signing, err := e.svc.AddWebhook(e.ctx, rcv.srv.URL+"/known", []known.EventType{known.UserCreated})
	if err != nil || !strings.HasPrefix(signing, "whsec_") {
		t.Fatalf("AddWebhook = %v, %q, %v", w, signing, err)
	}
	u, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("hook@example.com")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.UpdateWebhook(e.ctx, w.ID, nil, nil, nil); err != nil { // a user.updated is not sent
		t.Fatal(err)
	}

	attemptAt := []time.Time{e.clock.Now()}
	e.step(t) // attempt 1: 500
	e.step(t) // not due yet
	if n := len(rcv.deliveries()); n != 1 {
		t.Fatalf("%d requests after the first step, want 1 (the retry waits its backoff)", n)
	}
	d := e.delivery(t, w)
	if d.Status != known.DeliveryPending || d.Attempts != 1 || *d.LastResponseCode != 500 || d.NextAttemptAt == nil {
		t.Fatalf("after one failure: %+v", d)
	}
	if wait := d.NextAttemptAt.Sub(e.clock.Now()); wait != webhook.Backoff(1, 0.5) {
		t.Fatalf("next attempt in %v, want %v", wait, webhook.Backoff(1, 0.5))
	}
	e.clock.Advance(webhook.Backoff(1, 0.5))
	attemptAt = append(attemptAt, e.clock.Now())
	e.step(t) // attempt 2: 500
	e.clock.Advance(webhook.Backoff(2, 0.5))
	attemptAt = append(attemptAt, e.clock.Now())
	e.step(t) // attempt 3: 200
	e.clock.Advance(24 * time.Hour)
	e.step(t) // nothing more

	got := rcv.deliveries()
	if len(got) != 3 {
		t.Fatalf("the receiver got %d requests, want 3", len(got))
	}
	id := got[0].header.Get("Known-Event-Id")
	for i, g := range got {
		if g.header.Get("Known-Event-Id") != id || id == "" {
			t.Fatalf("request %d has event id %q, want %q", i, g.header.Get("Known-Event-Id"), id)
		}
		if !verifySignature(g, signing, attemptAt[i]) {
			t.Fatalf("request %d: signature %q does not verify at %v", i, g.header.Get("Known-Signature"), attemptAt[i])
		}
		var body struct {
			ID, Type, CreatedAt string
			Data                map[string]any
		}
		if err := json.Unmarshal(g.body, &body); err != nil || body.ID != id || body.Type != "user.created" ||
			body.Data["user"].(map[string]any)["id"] != u.GlobalID() {
			t.Fatalf("request %d body = %s", i, g.body)
		}
		if g.header.Get("Content-Type") != "application/json" {
			t.Fatalf("Content-Type = %q", g.header.Get("Content-Type"))
		}
	}
	d = e.delivery(t, w)
	if d.Status != known.DeliveryDelivered || d.Attempts != 3 || *d.LastResponseCode != 200 || d.NextAttemptAt != nil {
		t.Fatalf("delivery = %+v, want delivered after 3 attempts", d)
	}
}

// TestWebhookSignatureVerifiesAsACustomerChecksIt: the signature verifies with the signing
// secret over "<t>.<body>", and fails with another secret or another body.
func TestWebhookSignatureVerifiesAsACustomerChecksIt(t *testing.T) {
	e := newWebhookEnv(t, nil, true)
	rcv := newReceiver(t, 204)
	_, signing, err := e.svc.AddWebhook(e.ctx, rcv.srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("sig@example.com")}); err != nil {
		t.Fatal(err)
	}
	e.step(t)
	got := rcv.deliveries()
	if len(got) != 1 {
		t.Fatalf("%d requests, want 1", len(got))
	}
	if !verifySignature(got[0], signing, e.clock.Now()) {
		t.Fatalf("the signature %q does not verify", got[0].header.Get("Known-Signature"))
	}
	if verifySignature(got[0], signing+"x", e.clock.Now()) {
		t.Fatal("verifies with another secret")
	}
	tampered := got[0]
	tampered.body = append([]byte(nil), got[0].body...)
	tampered.body[len(tampered.body)-2] ^= 1
	if verifySignature(tampered, signing, e.clock.Now()) {
		t.Fatal("verifies another body")
	}
	if verifySignature(got[0], signing, e.clock.Now().Add(time.Hour)) {
		t.Fatal("an hour-old signature is accepted by the 5-minute check")
	}
}

// TestWebhookDeliveriesInOrderPerUser: while a user's earlier event is not delivered, its
// later ones wait; another user's go out.
func TestWebhookDeliveriesInOrderPerUser(t *testing.T) {
	e := newWebhookEnv(t, nil, true)
	var mu sync.Mutex
	var order []string
	failFirst := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var b struct {
			Type string
			Data map[string]any
		}
		_ = json.Unmarshal(body, &b)
		mu.Lock()
		defer mu.Unlock()
		email, _ := b.Data["user"].(map[string]any)["email"].(string)
		order = append(order, b.Type+" "+email)
		if failFirst && email == "a@example.com" {
			failFirst = false
			w.WriteHeader(503)
		}
	}))
	defer srv.Close()
	if _, _, err := e.svc.AddWebhook(e.ctx, srv.URL, []known.EventType{known.UserCreated, known.UserUpdated}); err != nil {
		t.Fatal(err)
	}
	a := claimed(t, e.env, "a", service.IdentifyInput{Email: str("a@example.com")})
	claimed(t, e.env, "b", service.IdentifyInput{Email: str("b@example.com")})
	if _, err := e.svc.SetProperties(widgetCtx(a.Token), nil, map[string]any{"plan": "pro"}); err != nil {
		t.Fatal(err)
	}
	e.step(t)
	e.clock.Advance(time.Hour)
	e.step(t)
	e.step(t)
	mu.Lock()
	defer mu.Unlock()
	want := []string{"user.created a@example.com", "user.created b@example.com", "user.created a@example.com", "user.updated a@example.com"}
	if strings.Join(order, "|") != strings.Join(want, "|") {
		t.Fatalf("order = %v, want %v", order, want)
	}
}

// TestWebhookToAPrivateAddressRefused: without KNOWN_ALLOW_PRIVATE_NETWORKS a delivery never
// reaches a loopback address; the attempt fails and says why.
func TestWebhookToAPrivateAddressRefused(t *testing.T) {
	e := newWebhookEnv(t, nil, false)
	rcv := newReceiver(t, 200)
	w, _, err := e.svc.AddWebhook(e.ctx, rcv.srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("ssrf@example.com")}); err != nil {
		t.Fatal(err)
	}
	e.step(t)
	if n := len(rcv.deliveries()); n != 0 {
		t.Fatalf("the loopback receiver got %d requests", n)
	}
	d := e.delivery(t, w)
	if d.Status != known.DeliveryPending || d.Attempts != 1 || d.LastError == nil || d.LastResponseCode != nil {
		t.Fatalf("delivery = %+v, want a failed attempt with its error", d)
	}
}

// TestWebhookDisabledAfterADayOfFailures: a webhook whose deliveries fail for 24 hours is
// disabled and says so; enabling it again sends what waited.
func TestWebhookDisabledAfterADayOfFailures(t *testing.T) {
	e := newWebhookEnv(t, nil, true)
	rcv := newReceiver(t, 500)
	w, _, err := e.svc.AddWebhook(e.ctx, rcv.srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("down@example.com")}); err != nil {
		t.Fatal(err)
	}
	e.step(t)
	for n := 1; n < webhook.MaxAttempts; n++ {
		e.clock.Advance(webhook.Backoff(n, 0.5))
		e.step(t)
	}
	ws, err := e.svc.Webhooks(e.ctx)
	if err != nil || len(ws) != 1 {
		t.Fatal(ws, err)
	}
	if ws[0].Enabled || ws[0].DisabledAt == nil || ws[0].LastError == nil || !strings.Contains(*ws[0].LastError, "disabled") {
		t.Fatalf("webhook after a day of failures = %+v, want disabled with a reason", ws[0])
	}
	attempts := len(rcv.deliveries())
	if _, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("later@example.com")}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	e.step(t)
	if n := len(rcv.deliveries()); n != attempts {
		t.Fatalf("a disabled webhook got %d more requests", n-attempts)
	}
	rcv.mu.Lock()
	rcv.codes = []int{200}
	rcv.mu.Unlock()
	if _, err := e.svc.UpdateWebhook(e.ctx, w.ID, nil, nil, ptr(true)); err != nil {
		t.Fatal(err)
	}
	e.step(t)
	// The first event had attempts left; the later one had waited unattempted.
	if n := len(rcv.deliveries()) - attempts; n != 2 {
		t.Fatalf("after enabling it again: %d requests, want the 2 waiting", n)
	}
	if ws, _ := e.svc.Webhooks(e.ctx); !ws[0].Enabled || ws[0].LastError != nil || ws[0].FailingSince != nil {
		t.Fatalf("webhook after a delivery = %+v, want healthy", ws[0])
	}
}

func ptr[T any](v T) *T { return &v }

// TestWebhookDeliveriesSurviveARestart: events published while no worker ran, and a delivery
// whose attempt failed before the process stopped, are delivered after the next start.
func TestWebhookDeliveriesSurviveARestart(t *testing.T) {
	ctx := context.Background()
	db := storetest.NewDatabaseName(t)
	open := func() *store.Store {
		st, err := store.Open(ctx, store.Config{URI: storetest.URI(), Database: db, Log: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := open()
	e := newWebhookEnv(t, st, true)
	rcv := newReceiver(t, 500, 200)
	if _, _, err := e.svc.AddWebhook(e.ctx, rcv.srv.URL, []known.EventType{known.UserCreated}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("first@example.com")}); err != nil {
		t.Fatal(err)
	}
	e.step(t) // attempt 1 of the first: 500
	if _, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("second@example.com")}); err != nil {
		t.Fatal(err)
	}
	// The process stops before its worker saw the second event.
	_ = st.Close(ctx)

	st = open()
	defer func() { _ = st.Drop(ctx); _ = st.Close(ctx) }()
	svc := service.New(st, service.Options{Secret: testSecret, AdminToken: adminToken, Now: e.clock.Now})
	e2 := &webhookEnv{env: &env{svc: svc, store: st, project: e.project}, clock: e.clock}
	e2.ctx = e2.as(t, e.project.SecretKey)
	e2.worker = newWorker(t, e2.env, true)
	e2.clock.Advance(time.Hour)
	e2.step(t)
	e2.step(t)
	var emails []string
	for _, g := range rcv.deliveries() {
		var b struct{ Data map[string]any }
		_ = json.Unmarshal(g.body, &b)
		emails = append(emails, b.Data["user"].(map[string]any)["email"].(string))
	}
	if strings.Join(emails, " ") != "first@example.com first@example.com second@example.com" {
		t.Fatalf("the receiver got %v, want first (500), first again, then second", emails)
	}
}
