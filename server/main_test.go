package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/knownhq/known/store/storetest"
)

// TestMain starts one database (embedded FerretDB, or KNOWN_TEST_MONGODB_URI) for the whole
// test binary; each test gets a fresh database on it.
func TestMain(m *testing.M) { storetest.Main(m) }

const (
	testSecret     = "test-secret-that-is-at-least-32-bytes-long!!"
	testAdminToken = "test-admin-token-0123456789"
)

var httpClient = &http.Client{Timeout: 120 * time.Second} // a guard against hangs; CI machines are shared and slow

// syncBuffer is a bytes.Buffer safe for run's logger and the test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logLines decodes the JSON log lines written so far.
func (b *syncBuffer) logLines(tb testing.TB) []map[string]any {
	tb.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			tb.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// linesWithMessagePrefix returns the log lines whose message starts with prefix.
func (b *syncBuffer) linesWithMessagePrefix(tb testing.TB, prefix string) []map[string]any {
	tb.Helper()
	var out []map[string]any
	for _, l := range b.logLines(tb) {
		if msg, _ := l["message"].(string); strings.HasPrefix(msg, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("finding a free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// testEnv is the environment of a Known on the test binary's database, in a fresh database.
func testEnv(tb testing.TB) map[string]string {
	return map[string]string{
		"KNOWN_MONGODB_URI": storetest.URI(),
		"KNOWN_DATABASE":    storetest.NewDatabaseName(tb),
		"KNOWN_SECRET":      testSecret,
		"KNOWN_ADMIN_TOKEN": testAdminToken,
		"KNOWN_ADDR":        freeAddr(tb),
		"KNOWN_LOG_LEVEL":   "info",
	}
}

// knownServer is a Known started by run() in a goroutine.
type knownServer struct {
	URL    string
	Addr   string
	Stdout *syncBuffer
	Stderr *syncBuffer

	cancel  context.CancelFunc
	serving bool // /healthz answered 200
	done    chan struct{}
	err     error // set before done is closed
	once    sync.Once
	stopE   error
}

// startRun runs Known with env in a goroutine and waits until /healthz answers 200. It fails the
// test if run returns first. The server is stopped when the test ends.
func startRun(tb testing.TB, env map[string]string) *knownServer {
	tb.Helper()
	k, err := tryStartRun(tb, env)
	if err != nil {
		tb.Fatalf("starting Known: %v\nstdout:\n%s\nstderr:\n%s", err, k.Stdout, k.Stderr)
	}
	return k
}

func tryStartRun(tb testing.TB, env map[string]string) (*knownServer, error) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	k := &knownServer{
		Addr:   env["KNOWN_ADDR"],
		URL:    "http://" + env["KNOWN_ADDR"],
		Stdout: &syncBuffer{},
		Stderr: &syncBuffer{},
		cancel: cancel,
		done:   make(chan struct{}),
	}
	getenv := func(name string) string { return env[name] }
	go func() {
		defer close(k.done)
		k.err = run(ctx, []string{"known"}, getenv, k.Stdout, k.Stderr)
	}()
	tb.Cleanup(func() {
		if err := k.Stop(); err != nil && k.serving {
			tb.Errorf("run returned %v at shutdown", err)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-k.done:
			return k, fmt.Errorf("run returned before serving: %v", k.err)
		default:
		}
		res, err := httpClient.Get(k.URL + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				k.serving = true
				return k, nil
			}
		}
		if time.Now().After(deadline) {
			return k, fmt.Errorf("/healthz did not answer 200 within 60 s (last error %v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startKnown starts Known on the test binary's database with a fresh database.
func startKnown(tb testing.TB) *knownServer {
	tb.Helper()
	return startRun(tb, testEnv(tb))
}

// Stop cancels run's context and returns what run returned (an error if it does not return
// within 30 s). It may be called more than once.
func (k *knownServer) Stop() error {
	k.once.Do(func() {
		k.cancel()
		select {
		case <-k.done:
			k.stopE = k.err
		case <-time.After(30 * time.Second):
			k.stopE = fmt.Errorf("run did not return within 30 s of cancelling its context")
		}
	})
	return k.stopE
}

// gqlError is one GraphQL error of a response.
type gqlError struct {
	Message    string `json:"message"`
	Path       []any  `json:"path"`
	Extensions struct {
		Code  string   `json:"code"`
		Field []string `json:"field"`
	} `json:"extensions"`
}

// response is a decoded GraphQL response with its HTTP status.
type response struct {
	Status int
	Header http.Header
	Data   json.RawMessage
	Errors []gqlError
	Body   string
}

// decode unmarshals the response's data into v, failing the test on GraphQL errors.
func (r response) decode(tb testing.TB, v any) {
	tb.Helper()
	if len(r.Errors) > 0 {
		tb.Fatalf("unexpected GraphQL errors: %s", r.Body)
	}
	if err := json.Unmarshal(r.Data, v); err != nil {
		tb.Fatalf("decoding data: %v; body %s", err, r.Body)
	}
}

// code returns errors[0].extensions.code, or "" when there is no error.
func (r response) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	return r.Errors[0].Extensions.Code
}

// requireCode fails the test unless the response's first error has code want.
func (r response) requireCode(tb testing.TB, want string) {
	tb.Helper()
	if got := r.code(); got != want {
		tb.Fatalf("errors[0].extensions.code = %q, want %q; body %.500s", got, want, r.Body)
	}
}

// gql POSTs a GraphQL operation with key as Agent-Secret-Key ("" for none).
func gql(tb testing.TB, baseURL, key, query string, vars map[string]any) response {
	tb.Helper()
	h := http.Header{}
	if key != "" {
		h.Set("Agent-Secret-Key", key)
	}
	return gqlHeaders(tb, baseURL, h, query, vars)
}

// gqlHeaders POSTs a GraphQL operation with the given headers.
func gqlHeaders(tb testing.TB, baseURL string, h http.Header, query string, vars map[string]any) response {
	tb.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		tb.Fatalf("encoding request: %v", err)
	}
	return postRaw(tb, baseURL, h, body)
}

// postRaw POSTs body to /graphql as JSON and decodes the answer.
func postRaw(tb testing.TB, baseURL string, h http.Header, body []byte) response {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, baseURL+"/graphql", bytes.NewReader(body))
	if err != nil {
		tb.Fatalf("making request: %v", err)
	}
	for name, vs := range h {
		req.Header[name] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	return doGraphQL(tb, req)
}

// getGraphQL sends a GraphQL operation as GET /graphql?query=…
func getGraphQL(tb testing.TB, baseURL, key, query string) response {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, baseURL+"/graphql?query="+url.QueryEscape(query), nil)
	if err != nil {
		tb.Fatalf("making request: %v", err)
	}
	if key != "" {
		req.Header.Set("Agent-Secret-Key", key)
	}
	return doGraphQL(tb, req)
}

func doGraphQL(tb testing.TB, req *http.Request) response {
	tb.Helper()
	res, err := httpClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatalf("reading response: %v", err)
	}
	r := response{Status: res.StatusCode, Header: res.Header, Body: string(raw)}
	var env struct {
		Data   json.RawMessage `json:"data"`
		Errors []gqlError      `json:"errors"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		tb.Fatalf("%s %s answered %d with a body that is not JSON: %q", req.Method, req.URL.Path, res.StatusCode, raw)
	}
	r.Data, r.Errors = env.Data, env.Errors
	return r
}

// httpGet GETs path and returns the status and body.
func httpGet(tb testing.TB, baseURL, path string) (int, http.Header, string) {
	tb.Helper()
	res, err := httpClient.Get(baseURL + path)
	if err != nil {
		tb.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatalf("reading GET %s: %v", path, err)
	}
	return res.StatusCode, res.Header, string(raw)
}

// createProject makes a project with the admin token and returns its app id and secret key.
func createProject(tb testing.TB, baseURL, name string) (appID, secretKey string) {
	tb.Helper()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+testAdminToken)
	r := gqlHeaders(tb, baseURL, h, `mutation($input: CreateProjectInput!) {
		createProject(input: $input) {
			project { id appId name }
			secretKey
			identitySecret
			userErrors { field code message }
		}
	}`, map[string]any{"input": map[string]any{"name": name}})
	var data struct {
		CreateProject struct {
			Project *struct {
				ID, AppID, Name string
			}
			SecretKey      *string
			IdentitySecret *string
			UserErrors     []userError
		}
	}
	r.decode(tb, &data)
	p := data.CreateProject
	if len(p.UserErrors) > 0 || p.Project == nil || p.SecretKey == nil || *p.SecretKey == "" {
		tb.Fatalf("createProject failed: %s", r.Body)
	}
	return p.Project.AppID, *p.SecretKey
}

// userError is a mutation payload's UserError.
type userError struct {
	Field   []string `json:"field"`
	Code    string   `json:"code"`
	Message string   `json:"message"`
}

// userFields are the User fields the tests read.
const userFields = `id email phoneNumber firstName lastName name context source externalId fkUserId
	metadata anonymous verified createdAt updatedAt`

// gqlUser is a User as the tests read it.
type gqlUser struct {
	ID          string         `json:"id"`
	Email       *string        `json:"email"`
	PhoneNumber *string        `json:"phoneNumber"`
	FirstName   *string        `json:"firstName"`
	LastName    *string        `json:"lastName"`
	Name        *string        `json:"name"`
	Context     *string        `json:"context"`
	Source      *string        `json:"source"`
	ExternalID  *string        `json:"externalId"`
	FkUserID    *string        `json:"fkUserId"`
	Metadata    map[string]any `json:"metadata"`
	Anonymous   bool           `json:"anonymous"`
	Verified    bool           `json:"verified"`
	CreatedAt   string         `json:"createdAt"`
	UpdatedAt   string         `json:"updatedAt"`
}

const createUserMutation = `mutation($input: CreateUserInput!) {
	createUser(input: $input) {
		user { ` + userFields + ` }
		userErrors { field code message }
	}
}`

// createUserPayload is createUser's answer.
type createUserPayload struct {
	User       *gqlUser    `json:"user"`
	UserErrors []userError `json:"userErrors"`
}

// tryCreateUser calls createUser with input and returns its payload.
func tryCreateUser(tb testing.TB, baseURL, key string, input map[string]any) createUserPayload {
	tb.Helper()
	r := gql(tb, baseURL, key, createUserMutation, map[string]any{"input": input})
	var data struct {
		CreateUser createUserPayload `json:"createUser"`
	}
	r.decode(tb, &data)
	return data.CreateUser
}

// createUser calls createUser and fails the test unless it made a user.
func createUser(tb testing.TB, baseURL, key string, input map[string]any) gqlUser {
	tb.Helper()
	p := tryCreateUser(tb, baseURL, key, input)
	if len(p.UserErrors) > 0 || p.User == nil {
		tb.Fatalf("createUser(%v) failed: user %v, userErrors %+v", input, p.User, p.UserErrors)
	}
	return *p.User
}

// allUserIDs lists every user id of the key's project, newest first, following the pages.
func allUserIDs(tb testing.TB, baseURL, key string) []string {
	tb.Helper()
	ids := []string{}
	var after any
	for range 100 {
		r := gql(tb, baseURL, key, `query($after: String) {
			users(first: 100, after: $after) { nodes { id } pageInfo { hasNextPage endCursor } }
		}`, map[string]any{"after": after})
		var data struct {
			Users struct {
				Nodes    []struct{ ID string }
				PageInfo struct {
					HasNextPage bool
					EndCursor   *string
				}
			}
		}
		r.decode(tb, &data)
		for _, n := range data.Users.Nodes {
			ids = append(ids, n.ID)
		}
		if !data.Users.PageInfo.HasNextPage {
			return ids
		}
		after = *data.Users.PageInfo.EndCursor
	}
	tb.Fatalf("users kept saying hasNextPage after 100 pages")
	return nil
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
