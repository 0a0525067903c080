package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/knownhq/known/store/embedded"
	"github.com/rs/zerolog"
)

// writeResult is one createUser call of a load.
type writeResult struct {
	start, end time.Time
	status     int    // 0: no HTTP answer
	code       string // errors[0].extensions.code
	retryAfter string
	userID     string // set when the write was acknowledged: answered with a user and no error
}

// load runs clients that create users through Known's HTTP API until stopped, and keeps every
// result.
type load struct {
	baseURL, key string
	client       *http.Client
	stop         chan struct{}
	wg           sync.WaitGroup

	mu      sync.Mutex
	results []writeResult
}

func startLoad(tb testing.TB, baseURL, key string, clients int) *load {
	l := &load{baseURL: baseURL, key: key, stop: make(chan struct{}),
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}}
	run := fmt.Sprintf("%d", time.Now().UnixNano())
	for c := range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for n := 0; ; n++ {
				select {
				case <-l.stop:
					return
				default:
				}
				r := l.createUser(fmt.Sprintf("load-%s-%d-%d@example.com", run, c, n))
				l.mu.Lock()
				l.results = append(l.results, r)
				l.mu.Unlock()
				if r.status == 0 {
					time.Sleep(20 * time.Millisecond) // no server: do not spin
				}
			}
		}()
	}
	tb.Cleanup(l.Stop)
	return l
}

func (l *load) createUser(email string) writeResult {
	r := writeResult{start: time.Now()}
	defer func() { r.end = time.Now() }()
	body, _ := json.Marshal(map[string]any{"query": `mutation($input: CreateUserInput!) {
		createUser(input: $input) { user { id } userErrors { code } } }`,
		"variables": map[string]any{"input": map[string]any{"email": email}}})
	req, _ := http.NewRequest(http.MethodPost, l.baseURL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Agent-Secret-Key", l.key)
	res, err := l.client.Do(req)
	if err != nil {
		r.end = time.Now()
		return r
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	r.end = time.Now()
	if err != nil {
		return r
	}
	r.status, r.retryAfter = res.StatusCode, res.Header.Get("Retry-After")
	var out struct {
		Data *struct {
			CreateUser *struct {
				User       *struct{ ID string }
				UserErrors []userError
			}
		}
		Errors []gqlError
	}
	if json.Unmarshal(raw, &out) != nil {
		r.code = "NOT_JSON"
		return r
	}
	if len(out.Errors) > 0 {
		r.code = out.Errors[0].Extensions.Code
		return r
	}
	if out.Data != nil && out.Data.CreateUser != nil && out.Data.CreateUser.User != nil && len(out.Data.CreateUser.UserErrors) == 0 {
		r.userID = out.Data.CreateUser.User.ID
	}
	return r
}

// Stop stops the clients and waits for their last calls.
func (l *load) Stop() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// Results returns the results so far.
func (l *load) Results() []writeResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]writeResult(nil), l.results...)
}

// acked returns the ids of the acknowledged writes.
func acked(rs []writeResult) []string {
	var ids []string
	for _, r := range rs {
		if r.userID != "" {
			ids = append(ids, r.userID)
		}
	}
	return ids
}

// requireAllPresent fails unless every acknowledged user exists in the key's project.
func requireAllPresent(tb testing.TB, baseURL, key string, ids []string) {
	tb.Helper()
	present := map[string]bool{}
	for _, id := range allUserIDs(tb, baseURL, key) {
		present[id] = true
	}
	lost := 0
	for _, id := range ids {
		if !present[id] {
			lost++
		}
	}
	if lost > 0 {
		tb.Fatalf("%d of %d acknowledged writes are missing", lost, len(ids))
	}
}

// waitFor polls cond every 20 ms until it holds, failing the test after timeout.
func waitFor(tb testing.TB, what string, timeout time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s did not happen within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDatabaseOutageUnderLoad shows that with 20 clients writing through Known to an external
// MongoDB-compatible store (a FerretDB on a loopback port) that is stopped and started again:
// while it is down every request fails within 5 s with HTTP 503, Retry-After and a GraphQL
// error, and /readyz is 503; after it returns Known serves again without a restart, and every
// write that was acknowledged is there.
func TestDatabaseOutageUnderLoad(t *testing.T) {
	dbDir, dbAddr := t.TempDir(), freeAddr(t)
	ext, err := embedded.Start(dbDir, dbAddr, zerolog.Nop())
	if err != nil {
		t.Fatalf("starting the external FerretDB: %v", err)
	}
	running := true
	t.Cleanup(func() {
		if running {
			ext.Stop()
		}
	})
	env := testEnv(t)
	env["KNOWN_MONGODB_URI"] = ext.URI()
	env["KNOWN_LOG_LEVEL"] = "warn"
	k := startRun(t, env)
	appID, key := createProject(t, k.URL, "Outage")

	l := startLoad(t, k.URL, key, 20)
	waitFor(t, "50 acknowledged writes", 30*time.Second, func() bool { return len(acked(l.Results())) >= 50 })

	ext.Stop()
	running = false
	down := time.Now()
	if status, _, _ := httpGet(t, k.URL, "/readyz"); status != http.StatusServiceUnavailable {
		t.Errorf("/readyz while the store is down = %d, want 503", status)
	}
	// A widget call, which needs no credential, is answered alike.
	start := time.Now()
	r, h := widgetCall(t, k.URL, "", "", identifyMutation, map[string]any{"input": map[string]any{"appId": appID}})
	if d := time.Since(start); d > 5*time.Second || r.Status != http.StatusServiceUnavailable || r.code() != "INTERNAL_SERVER_ERROR" ||
		h.Get("Retry-After") == "" || !strings.Contains(r.Body, unavailableMessage) {
		t.Errorf("identify while the store is down answered %d after %v with Retry-After %q: %s; want 503 within 5 s",
			r.Status, d, h.Get("Retry-After"), r.Body)
	}
	var body struct {
		Errors []struct{ Extensions struct{ RequestID string } }
	}
	if err := json.Unmarshal([]byte(r.Body), &body); err != nil || len(body.Errors) == 0 || body.Errors[0].Extensions.RequestID == "" {
		t.Errorf("the 503 carries no requestId: %s", r.Body)
	} else {
		logged := 0
		for _, l := range k.Stdout.logLines(t) {
			if l["request_id"] == body.Errors[0].Extensions.RequestID && l["error"] != nil && l["level"] == "error" {
				logged++
			}
		}
		if logged != 1 {
			t.Errorf("%d error log lines with request id %s and the cause, want 1", logged, body.Errors[0].Extensions.RequestID)
		}
	}
	// The clients keep writing: wait until 40 of their requests were answered wholly during
	// the outage, rather than for a fixed time.
	waitFor(t, "40 requests answered while the store is down", 30*time.Second, func() bool {
		n := 0
		for _, r := range l.Results() {
			if r.start.After(down) && !r.end.IsZero() {
				n++
			}
		}
		return n >= 40
	})

	ext, err = embedded.Start(dbDir, dbAddr, zerolog.Nop())
	if err != nil {
		t.Fatalf("restarting the external FerretDB: %v", err)
	}
	running = true
	up := time.Now()
	waitReadyz(t, k.URL, http.StatusOK, 30*time.Second)
	ackedBefore := len(acked(l.Results()))
	waitFor(t, "20 writes acknowledged after the store returned", 30*time.Second, func() bool {
		return len(acked(l.Results())) >= ackedBefore+20
	})
	l.Stop()

	results := l.Results()
	during := 0
	for _, r := range results {
		if r.start.Before(down) || !r.start.Before(up) {
			continue
		}
		if d := r.end.Sub(r.start); d > 5*time.Second {
			t.Fatalf("a request that started while the store was down took %v, want at most 5 s", d)
		}
		if r.end.After(up) {
			continue // not wholly inside the outage
		}
		during++
		if r.userID != "" {
			t.Fatalf("a write was acknowledged while the store was down")
		}
		if r.status != http.StatusServiceUnavailable || r.code != "INTERNAL_SERVER_ERROR" || r.retryAfter == "" {
			t.Fatalf("a request while the store was down answered %d, code %q, Retry-After %q; want 503, INTERNAL_SERVER_ERROR and a Retry-After",
				r.status, r.code, r.retryAfter)
		}
	}
	if during < 20 {
		t.Fatalf("only %d requests ran wholly while the store was down, want at least 20", during)
	}
	ids := acked(results)
	t.Logf("%d requests, %d acknowledged, %d wholly during the outage", len(results), len(ids), during)
	requireAllPresent(t, k.URL, key, ids)
}
