package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// TestRESTMiddleware: the REST routes go through /graphql's middleware (API.md §10): the widget
// routes answer browsers of any origin (the project's allowedOrigins being the service's
// rule), the secret-key routes do not; each request writes one log line naming its route as
// the operation, with its project, status and error codes, and no secret; the metrics count
// routes and error codes; an internal error is answered without detail and logged once with
// the request id.
func TestRESTMiddleware(t *testing.T) {
	k := startREST(t)
	c := k.client
	appID, key := createProject(t, k.URL, "Middleware")
	const origin = "https://shop.example"

	t.Run("WidgetRoutesAllowOtherOrigins", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodOptions, k.URL+"/api/widget/identify", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type,x-widget-session")
		res, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != origin {
			t.Fatalf("preflight = %d, Access-Control-Allow-Origin %q", res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"))
		}
		plain, _ := http.NewRequest(http.MethodOptions, k.URL+"/api/widget/identify", nil)
		res, err = httpClient.Do(plain)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNoContent || res.Header.Get("Allow") != "POST, OPTIONS" {
			t.Errorf("OPTIONS without a preflight = %d, Allow %q; want 204 and POST, OPTIONS", res.StatusCode, res.Header.Get("Allow"))
		}
		post := c.do(t, restCall{method: http.MethodPost, path: "/api/widget/identify",
			header: map[string]string{"Origin": origin}, body: map[string]any{"app_id": appID}})
		if post.Status != http.StatusOK || post.Header.Get("Access-Control-Allow-Origin") != origin {
			t.Fatalf("POST from %s = %d, Access-Control-Allow-Origin %q", origin, post.Status, post.Header.Get("Access-Control-Allow-Origin"))
		}
	})
	t.Run("SecretKeyRoutesDoNotAllowOtherOrigins", func(t *testing.T) {
		res := c.do(t, restCall{method: http.MethodGet, path: "/external/users/search?email=a@example.com",
			header: map[string]string{"Origin": origin, "Agent-Secret-Key": key}})
		if got := res.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("Access-Control-Allow-Origin = %q on a secret-key route", got)
		}
	})

	t.Run("RequestLogNamesTheRoute", func(t *testing.T) {
		before := len(routeLines(t, k))
		ok := c.do(t, restCall{method: http.MethodPost, path: "/api/widget/identify", body: map[string]any{"app_id": appID, "email": "log@example.com"}})
		bad := c.do(t, restCall{method: http.MethodPost, path: "/external/users", header: secretKeyHeader(key), body: map[string]any{"email": "nope"}})
		lines := routeLines(t, k)[before:]
		if len(lines) != 2 {
			t.Fatalf("%d log lines for 2 requests: %v", len(lines), lines)
		}
		for i, want := range []struct {
			op     string
			status int
			codes  string
			id     string
		}{
			{"POST /api/widget/identify", 200, "", ok.Header.Get("X-Request-Id")},
			{"POST /external/users", 400, "INVALID", bad.Header.Get("X-Request-Id")},
		} {
			l := lines[i]
			codes, _ := l["error_codes"].([]any)
			var got []string
			for _, c := range codes {
				got = append(got, c.(string))
			}
			if l["operation"] != want.op || l["status"] != float64(want.status) || l["project"] != appID ||
				strings.Join(got, ",") != want.codes || l["request_id"] != want.id || want.id == "" {
				t.Errorf("log line %v; want operation %q, status %d, project %s, error codes %q, request id %q",
					l, want.op, want.status, appID, want.codes, want.id)
			}
		}
		if strings.Contains(k.Log.String(), key) {
			t.Error("the log holds the secret key")
		}
	})

	t.Run("MetricsCountRoutesAndCodes", func(t *testing.T) {
		_, _, text := httpGet(t, k.URL, "/metrics")
		for _, want := range []string{
			`known_rest_requests_total{route="POST /api/widget/identify",status="200"}`,
			`known_rest_requests_total{route="POST /external/users",status="400"}`,
			`known_rest_request_duration_seconds_count{route="POST /external/users"}`,
			`known_rest_errors_total{code="INVALID"} 1`,
		} {
			if !strings.Contains(text, want) {
				t.Errorf("/metrics has no %s", want)
			}
		}
	})

	t.Run("InternalErrorIsLoggedOnceWithTheRequestID", func(t *testing.T) {
		if err := k.store.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		// The database is gone: 503 with Retry-After, as the GraphQL endpoint answers.
		res := c.do(t, restCall{method: http.MethodPost, path: "/api/widget/identify", body: map[string]any{"app_id": appID}})
		e := res.requireError(t, 503, "INTERNAL_SERVER_ERROR", "")
		if e.Message != "the database is not reachable; try again" || res.Header.Get("Retry-After") == "" {
			t.Errorf("message %q (Retry-After %q) gives detail or no retry", e.Message, res.Header.Get("Retry-After"))
		}
		id := res.Header.Get("X-Request-Id")
		var logged int
		for _, l := range k.Log.logLines(t) {
			if l["request_id"] == id && l["error"] != nil && l["level"] == "error" {
				logged++
			}
		}
		if id == "" || logged != 1 {
			t.Errorf("request %q logged %d times as an internal error; want once", id, logged)
		}
		// The secret-key routes fail in the middleware, in the routes' error format.
		c.do(t, restCall{method: http.MethodGet, path: "/external/users/search?fkId=1", header: secretKeyHeader(key)}).
			requireError(t, 503, "INTERNAL_SERVER_ERROR", "")
	})
}

// routeLines returns the request log lines of REST routes, in order.
func routeLines(tb testing.TB, k *restServer) []map[string]any {
	tb.Helper()
	var out []map[string]any
	for _, l := range k.Log.logLines(tb) {
		if l["message"] == "request" && l["path"] != "/graphql" && l["path"] != "/openapi.json" {
			out = append(out, l)
		}
	}
	return out
}
