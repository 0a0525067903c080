package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/knownhq/known/rest"
	"github.com/knownhq/known/service"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/storetest"
	"github.com/rs/zerolog"
)

// restServer is Known's whole HTTP surface (newServer) on a fresh database, with a widget
// limiter that the test switches, and a client for its REST routes.
type restServer struct {
	URL     string
	Log     *syncBuffer
	store   *store.Store
	limiter *switchLimiter
	client  *restClient
}

// switchLimiter allows every widget call until refuse is set.
type switchLimiter struct{ refuse atomic.Bool }

// Take refuses every call while refuse is set, for 2.5 s (Retry-After: 3).
func (l *switchLimiter) Take(string) (bool, time.Duration) {
	if l.refuse.Load() {
		return false, 2500 * time.Millisecond
	}
	return true, 0
}

func startREST(tb testing.TB) *restServer {
	tb.Helper()
	st := storetest.Open(tb, nil)
	lim := &switchLimiter{}
	svc := service.New(st, service.Options{Secret: []byte(testSecret), AdminToken: testAdminToken, WidgetLimiter: lim})
	logs := &syncBuffer{}
	srv := httptest.NewServer(newServer(zerolog.New(logs).Level(zerolog.InfoLevel), svc, st, newMetrics()))
	tb.Cleanup(func() {
		srv.Close()
		_ = svc.Wait(context.Background())
	})
	return &restServer{URL: srv.URL, Log: logs, store: st, limiter: lim, client: newRESTClient(tb, srv.URL)}
}

// restClient sends requests to the REST routes and checks them against the OpenAPI document
// that the server serves at /openapi.json: every request (unless a test sends one that breaks
// the document on purpose) and every response, whose status must be one the document lists.
type restClient struct {
	base   string
	doc    *openapi3.T
	router routers.Router

	mu  sync.Mutex
	ran map[string]bool // operation ids of the requests sent
}

// newRESTClient loads and validates the served document.
func newRESTClient(tb testing.TB, base string) *restClient {
	tb.Helper()
	status, header, body := httpGet(tb, base, "/openapi.json")
	if status != http.StatusOK || header.Get("Content-Type") != "application/json" {
		tb.Fatalf("GET /openapi.json: %d %s", status, header.Get("Content-Type"))
	}
	doc, err := openapi3.NewLoader().LoadFromData([]byte(body))
	if err != nil {
		tb.Fatalf("loading /openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		tb.Fatalf("/openapi.json is not a valid OpenAPI document: %v", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		tb.Fatalf("routing /openapi.json: %v", err)
	}
	return &restClient{base: base, doc: doc, router: router, ran: map[string]bool{}}
}

// restCall is one request to a REST route.
type restCall struct {
	method, path string
	header       map[string]string
	// body is sent as JSON; a []byte is sent as it is.
	body any
	// offSpec marks a request that breaks the document on purpose (a missing or mistyped
	// field): only its response is checked.
	offSpec bool
}

// restResponse is a REST route's answer.
type restResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// decode unmarshals the body into v.
func (r restResponse) decode(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		tb.Fatalf("decoding %s: %v", r.Body, err)
	}
}

// requireError fails the test unless the answer is the error status, code and field given
// (field "" for none).
func (r restResponse) requireError(tb testing.TB, status int, code, field string) rest.ErrorDetail {
	tb.Helper()
	var e rest.ErrorBody
	r.decode(tb, &e)
	got := ""
	if e.Error.Field != nil {
		got = *e.Error.Field
	}
	if r.Status != status || e.Error.Code != code || got != field || e.Error.Message == "" {
		tb.Fatalf("answer %d %s; want %d with code %s, field %q and a message", r.Status, r.Body, status, code, field)
	}
	return e.Error
}

// do sends c and checks the request and the response against the document.
func (c *restClient) do(tb testing.TB, call restCall) restResponse {
	tb.Helper()
	var body []byte
	switch b := call.body.(type) {
	case nil:
	case []byte:
		body = b
	default:
		var err error
		if body, err = json.Marshal(b); err != nil {
			tb.Fatalf("encoding %v: %v", b, err)
		}
	}
	newRequest := func() *http.Request {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequest(call.method, c.base+call.path, rd)
		if err != nil {
			tb.Fatalf("making request: %v", err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		for name, v := range call.header {
			req.Header.Set(name, v)
		}
		return req
	}

	check := newRequest()
	route, params, err := c.router.FindRoute(check)
	if err != nil {
		tb.Fatalf("%s %s is not in /openapi.json: %v", call.method, call.path, err)
	}
	c.mu.Lock()
	c.ran[route.Operation.OperationID] = true
	c.mu.Unlock()
	in := &openapi3filter.RequestValidationInput{Request: check, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil && !call.offSpec {
		tb.Fatalf("%s %s %s does not conform to /openapi.json: %v", call.method, call.path, body, err)
	}

	res, err := httpClient.Do(newRequest())
	if err != nil {
		tb.Fatalf("%s %s: %v", call.method, call.path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatalf("reading the answer: %v", err)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: res.StatusCode, Header: res.Header,
		Body: io.NopCloser(bytes.NewReader(raw)), Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		tb.Fatalf("the answer to %s %s (%d %s) does not conform to /openapi.json: %v", call.method, call.path, res.StatusCode, raw, err)
	}
	return restResponse{Status: res.StatusCode, Header: res.Header, Body: raw}
}

// unexercised lists the document's operations that no request has been sent to.
func (c *restClient) unexercised() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, item := range c.doc.Paths.Map() {
		for _, op := range item.Operations() {
			if !c.ran[op.OperationID] {
				out = append(out, op.OperationID)
			}
		}
	}
	return out
}
