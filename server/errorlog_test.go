package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/rs/zerolog"
)

// TestInternalErrorsAreLoggedOnce: every answer a client sees as INTERNAL_SERVER_ERROR and every
// 503 writes exactly one error line, with the request id the client got in X-Request-Id and
// the cause (issue 9, point 8).
func TestInternalErrorsAreLoggedOnce(t *testing.T) {
	// oneErrorLine returns the one error line of request id, failing unless there is exactly
	// one and its error field holds cause.
	oneErrorLine := func(t *testing.T, k *inProcess, id, cause string) map[string]any {
		t.Helper()
		if id == "" {
			t.Fatal("the response has no X-Request-Id")
		}
		var mine []map[string]any
		for _, l := range k.errorLines(t) {
			if l["request_id"] == id {
				mine = append(mine, l)
			}
		}
		if len(mine) != 1 {
			t.Fatalf("%d error lines for request %s, want 1: %v", len(mine), id, mine)
		}
		if e, _ := mine[0]["error"].(string); !strings.Contains(e, cause) {
			t.Fatalf("the error line's error is %q, want it to hold %q", e, cause)
		}
		return mine[0]
	}
	// closedStore is Known whose database connection has gone: every store call fails.
	closedStore := func(t *testing.T) (k *inProcess, appID, key string) {
		k = startInProcess(t, nil)
		appID, key = createProject(t, k.URL, "Faults")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := k.store.Close(ctx); err != nil {
			t.Fatal(err)
		}
		return k, appID, key
	}

	t.Run("StoreErrorInAnOperation", func(t *testing.T) {
		k, appID, _ := closedStore(t)
		r, h := widgetCall(t, k.URL, "", "", identifyMutation, map[string]any{"input": map[string]any{"appId": appID}})
		r.requireCode(t, "INTERNAL_SERVER_ERROR")
		if strings.Contains(r.Body, "disconnected") {
			t.Fatalf("the client sees the cause: %s", r.Body)
		}
		oneErrorLine(t, k, h.Get("X-Request-Id"), "disconnected")
	})
	t.Run("StoreErrorWhileAuthenticatingIs503", func(t *testing.T) {
		k, _, key := closedStore(t)
		r := gql(t, k.URL, key, `{ project { id } }`, nil)
		if r.Status != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503; body %s", r.Status, r.Body)
		}
		l := oneErrorLine(t, k, r.Header.Get("X-Request-Id"), "disconnected")
		if l["status"] != float64(503) {
			t.Fatalf("the error line %v is not the 503's", l)
		}
	})
	t.Run("ReadyzWithoutDatabaseIs503", func(t *testing.T) {
		k, _, _ := closedStore(t)
		status, h, _ := httpGet(t, k.URL, "/readyz")
		if status != http.StatusServiceUnavailable {
			t.Fatalf("/readyz answered %d, want 503", status)
		}
		oneErrorLine(t, k, h.Get("X-Request-Id"), "disconnected")
	})
	t.Run("KnownInternalErrorIsLoggedAndHidden", func(t *testing.T) {
		buf := &syncBuffer{}
		present := presentError(zerolog.New(buf), newMetrics())
		info := &requestInfo{id: "req-internal-1"}
		ctx := context.WithValue(context.Background(), infoKey{}, info)
		gerr := present(ctx, known.Errorf(known.Internal, "visitor record kept changing"))
		if gerr.Extensions["code"] != string(known.Internal) || gerr.Extensions["requestId"] != "req-internal-1" ||
			strings.Contains(gerr.Message, "visitor") {
			t.Fatalf("presented %q %v; want INTERNAL_SERVER_ERROR with the request id and no detail", gerr.Message, gerr.Extensions)
		}
		lines := buf.logLines(t)
		if len(lines) != 1 || lines[0]["level"] != "error" || lines[0]["request_id"] != "req-internal-1" ||
			!strings.Contains(lines[0]["error"].(string), "visitor record kept changing") {
			t.Fatalf("log = %v; want one error line with the request id and the cause", lines)
		}
	})
	t.Run("PanicIsLoggedOnceWithItsStack", func(t *testing.T) {
		buf := &syncBuffer{}
		present := presentError(zerolog.New(buf), newMetrics())
		info := &requestInfo{id: "req-panic-1"}
		ctx := context.WithValue(context.Background(), infoKey{}, info)
		gerr := present(ctx, &panicError{value: "boom", stack: []byte("goroutine 1")})
		lines := buf.logLines(t)
		if gerr.Extensions["code"] != string(known.Internal) || len(lines) != 1 || lines[0]["panic"] != "boom" ||
			lines[0]["request_id"] != "req-panic-1" {
			t.Fatalf("presented %v, log %v; want one error line with the panic", gerr.Extensions, lines)
		}
	})
}
