package main

import (
	"fmt"
	"github.com/knownhq/known/clocktest"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/knownhq/known/ratelimit"
	"github.com/knownhq/known/service"
)

// TestWidgetRateLimitCountsOperations: the widget rate limit counts each operation (root
// field), not each HTTP request: one request of 50 aliased identify mutations runs only the
// burst's worth of them, the rest are RATE_LIMITED, and the request is answered 429 with
// Retry-After while its body keeps the GraphQL errors (issue 9, point 3; API.md §11). The
// limiter runs on a clock the test moves, so nothing refills behind its back.
func TestWidgetRateLimitCountsOperations(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	const perSecond, burst = 10, 20
	k := startInProcess(t, func(o *service.Options) { o.WidgetLimiter = ratelimit.NewWithClock(perSecond, clock.Now) })
	appID, _ := createProject(t, k.URL, "Limited")

	var q strings.Builder
	q.WriteString("mutation($a: ID!) {")
	for i := range 50 {
		fmt.Fprintf(&q, ` i%d: identify(input: {appId: $a, email: "probe-%d@example.com"}) { session { token } userErrors { code } }`, i, i)
	}
	q.WriteString(" }")
	r, h := widgetCall(t, k.URL, "", "", q.String(), map[string]any{"a": appID})

	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429", r.Status)
	}
	if got := h.Get("Retry-After"); got != "1" {
		t.Fatalf("Retry-After = %q, want 1 (the next call is allowed in 1/%d s, rounded up)", got, perSecond)
	}
	limited := 0
	for _, e := range r.Errors {
		if e.Extensions.Code != "RATE_LIMITED" {
			t.Fatalf("an error with code %q: %s", e.Extensions.Code, r.Body)
		}
		limited++
	}
	if limited != 50-burst {
		t.Fatalf("%d operations were RATE_LIMITED, want %d: the burst is %d", limited, 50-burst, burst)
	}
	// identify's payload is non-null, so a refused one nulls the whole data (GraphQL's null
	// propagation): what ran is counted in the store.
	if n := k.counts(t, appID)["users"]; n != burst {
		t.Fatalf("%d users made, want %d: only the burst's operations may run", n, burst)
	}

	t.Run("NextRequestIsLimitedUntilTheBucketRefills", func(t *testing.T) {
		r, h := widgetCall(t, k.URL, "", "", identifyMutation, map[string]any{"input": map[string]any{"appId": appID}})
		if r.Status != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
			t.Fatalf("status %d, Retry-After %q; want 429 with Retry-After", r.Status, h.Get("Retry-After"))
		}
		r.requireCode(t, "RATE_LIMITED")
		clock.Advance(time.Second / perSecond)
		r, h = widgetCall(t, k.URL, "", "", identifyMutation, map[string]any{"input": map[string]any{"appId": appID}})
		if r.Status != http.StatusOK || h.Get("Retry-After") != "" || len(r.Errors) > 0 {
			t.Fatalf("after the wait: status %d, Retry-After %q, body %s", r.Status, h.Get("Retry-After"), r.Body)
		}
	})
	t.Run("FieldsOfOneOperationCostOneCall", func(t *testing.T) {
		clock.Advance(time.Hour) // a full bucket
		s := mustIdentify(t, k.URL, "", map[string]any{"appId": appID, "userId": "reader"})
		for range 3 {
			widgetGQL(t, k.URL, s.Token, `mutation { startConversation(input: {body: "hi"}) { conversation { id } } }`, nil).
				decode(t, &struct{}{})
		}
		// 4 calls so far; one operation reading 3 conversations' messages is the 5th.
		r := widgetGQL(t, k.URL, s.Token, `{ session { conversations { nodes { messages { nodes { body } } } } } }`, nil)
		var d struct {
			Session struct{ Conversations struct{ Nodes []any } }
		}
		r.decode(t, &d)
		if len(d.Session.Conversations.Nodes) != 3 {
			t.Fatalf("read %d conversations, want 3", len(d.Session.Conversations.Nodes))
		}
		allowed := 0
		for range burst {
			if widgetGQL(t, k.URL, s.Token, `{ session { token } }`, nil).Status == http.StatusOK {
				allowed++
			}
		}
		if allowed != burst-5 {
			t.Fatalf("%d calls allowed after 5, want %d: the messages of one operation were charged apart", allowed, burst-5)
		}
	})
}
