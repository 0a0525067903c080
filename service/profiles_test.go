package service_test

import (
	"context"
	"fmt"
	"github.com/knownhq/known/clocktest"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/profile"
	"github.com/knownhq/known/service"
)

// These tests drive the external profiles of seed 000 through the service: the project's
// userDataEndpoint settings, what each answer of a real local user API does to the profile, the
// user and the endpoint's status, the background fetch of identify, staleness, and the bound on
// fetches at once.

// seed000 is seed 000's example answer.
const seed000 = `{"first_name":"John","last_name":"Doe","email":"john.doe@example.com","phone_number":"+1234567890",
"metadata":{"subscription_plan":"Pro","signup_date":"2023-11-15","company":"TechCorp"}}`

// apiAnswer is how the test user API answers one id.
type apiAnswer struct {
	status int
	body   string
	delay  time.Duration
}

// userAPI is a customer's user API (seed 000) on a local test server. It answers GET
// /users/<id> (PATH) and GET /q?<param>=<id> (QUERY), counts requests and the most at once.
type userAPI struct {
	srv *httptest.Server

	mu       sync.Mutex
	answers  map[string]apiAnswer // by id; others get answerFor
	requests []apiRequest

	total, inflight, maxInflight atomic.Int64
	started                      chan string // receives each request's id, when not full
}

type apiRequest struct {
	id, requestURI string
	header         http.Header
}

// answerFor is the default answer: 200 with a profile made from the id.
func answerFor(id string) apiAnswer {
	return apiAnswer{status: 200, body: fmt.Sprintf(`{"first_name":"First %[1]s","last_name":"Last %[1]s","email":"%[1]s@profiles.example.com","metadata":{"source":"api","id":%[2]q}}`,
		url.PathEscape(id), id)}
}

func newUserAPI(t *testing.T) *userAPI {
	t.Helper()
	return newUserAPIWith(t, nil)
}

// newUserAPIWith is newUserAPI with mw around its handler (nil for none).
func newUserAPIWith(t *testing.T, mw func(a *userAPI, w http.ResponseWriter, r *http.Request)) *userAPI {
	t.Helper()
	a := &userAPI{answers: map[string]apiAnswer{}, started: make(chan string, 1000)}
	h := http.HandlerFunc(a.serve)
	if mw != nil {
		h = func(w http.ResponseWriter, r *http.Request) { mw(a, w, r) }
	}
	a.srv = httptest.NewServer(h)
	t.Cleanup(a.srv.Close)
	return a
}

func (a *userAPI) serve(w http.ResponseWriter, r *http.Request) {
	var id string
	switch {
	case strings.HasPrefix(r.URL.EscapedPath(), "/users/"):
		id, _ = url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), "/users/"))
	case r.URL.Path == "/q":
		for _, v := range r.URL.Query() {
			id = v[0]
		}
	}
	n := a.inflight.Add(1)
	defer a.inflight.Add(-1)
	for {
		m := a.maxInflight.Load()
		if n <= m || a.maxInflight.CompareAndSwap(m, n) {
			break
		}
	}
	a.total.Add(1)
	a.mu.Lock()
	a.requests = append(a.requests, apiRequest{id: id, requestURI: r.RequestURI, header: r.Header.Clone()})
	ans, ok := a.answers[id]
	a.mu.Unlock()
	if !ok {
		ans = answerFor(id)
	}
	select {
	case a.started <- id:
	default:
	}
	if ans.delay > 0 {
		select {
		case <-time.After(ans.delay):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ans.status)
	_, _ = w.Write([]byte(ans.body))
}

func (a *userAPI) set(id string, ans apiAnswer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.answers[id] = ans
}

func (a *userAPI) seen() []apiRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]apiRequest(nil), a.requests...)
}

// fetchesOf counts the requests for id.
func (a *userAPI) fetchesOf(id string) int {
	n := 0
	for _, r := range a.seen() {
		if r.id == id {
			n++
		}
	}
	return n
}

// pathURL is the endpoint URL with PATH placement.
func (a *userAPI) pathURL() string { return a.srv.URL + "/users/{id}" }

// profileOpts are the profile settings of a test service.
type profileOpts struct {
	maxAge      time.Duration
	concurrency int
	timeout     time.Duration
}

const testMaxAge = 5 * time.Minute

// newProfileEnv is newEnv (its store and project) served by a service that fetches from local
// user APIs, on a clock the test moves.
func newProfileEnv(t *testing.T, o profileOpts) (*env, *testClock) {
	t.Helper()
	if o.maxAge == 0 {
		o.maxAge = testMaxAge
	}
	if o.timeout == 0 {
		o.timeout = 2 * time.Second
	}
	clock := clocktest.New(time.Now().UTC().Truncate(time.Millisecond))
	e := newEnv(t)
	svc := service.New(e.store, service.Options{Secret: testSecret, AdminToken: adminToken,
		Profiles:      profile.New(profile.Options{AllowPrivate: true, Timeout: o.timeout}),
		ProfileMaxAge: o.maxAge, ProfileConcurrency: o.concurrency, Now: clock.Now})
	e.svc = svc
	t.Cleanup(func() {
		// Background fetches end before the store closes (cleanups run last first).
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := svc.Wait(ctx); err != nil {
			t.Errorf("background profile fetches did not end: %v", err)
		}
	})
	return e, clock
}

func setEndpoint(t *testing.T, e *env, in service.EndpointInput) *known.Project {
	t.Helper()
	p, err := e.svc.UpdateProject(e.ctx, service.UpdateProjectInput{UserDataEndpoint: &in})
	if err != nil {
		t.Fatalf("UpdateProject(userDataEndpoint %+v): %v", in, err)
	}
	return p
}

func project(t *testing.T, e *env) *known.Project {
	t.Helper()
	p, err := e.svc.Project(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newExtUser makes a user with externalId ext through createUser (which fetches nothing).
func newExtUser(t *testing.T, e *env, ext string) *known.User {
	t.Helper()
	u, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{ExternalID: &ext, Email: str("orig-" + emailSafe(ext) + "@example.com"),
		FirstName: str("Orig"), LastName: str("Inal"), Metadata: map[string]any{"plan": "Free"}})
	if err != nil {
		t.Fatalf("CreateUser(%s): %v", ext, err)
	}
	return readUser(t, e, u.ID)
}

// emailSafe keeps the letters and digits of s, replacing the rest with '-'.
func emailSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, s)
}

// endpointText is a project's endpoint settings as text, pointers followed.
func endpointText(ep *known.UserDataEndpoint) string {
	if ep == nil {
		return "<nil>"
	}
	status, at := "<nil>", "<nil>"
	if ep.LastStatus != nil {
		status = string(*ep.LastStatus)
	}
	if ep.LastCheckedAt != nil {
		at = ep.LastCheckedAt.String()
	}
	return fmt.Sprintf("enabled %v url %s idPlacement %s queryParam %s headerNames %q lastStatus %s lastError %s lastCheckedAt %s",
		ep.Enabled, ep.URL, ep.IDPlacement, ep.QueryParam, ep.HeaderNames, status, sp(ep.LastError), at)
}

func externalProfiles(t *testing.T, e *env, users ...*known.User) []*known.Profile {
	t.Helper()
	prs, err := e.svc.ExternalProfiles(e.ctx, service.ProfileKeys(users...))
	if err != nil {
		t.Fatalf("ExternalProfiles: %v", err)
	}
	if len(prs) != len(users) {
		t.Fatalf("ExternalProfiles returned %d profiles for %d users", len(prs), len(users))
	}
	return prs
}

func one(t *testing.T, e *env, u *known.User) *known.Profile {
	t.Helper()
	pr := externalProfiles(t, e, u)[0]
	if pr == nil {
		t.Fatalf("no profile for user %s", u.ID)
	}
	return pr
}

func sp(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func TestProfileEndpointSettings(t *testing.T) {
	e, _ := newProfileEnv(t, profileOpts{})
	const authValue, keyValue = "Bearer tok-SECRET-0a1b2c", "key-VALUE-9z8y7x"
	api := newUserAPIWith(t, func(a *userAPI, w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != authValue || r.Header.Get("X-Api-Key") != keyValue {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		a.serve(w, r)
	})
	valid := service.EndpointInput{Enabled: true, URL: api.pathURL(), IDPlacement: "PATH",
		Headers: []known.Header{{Name: "Authorization", Value: authValue}, {Name: "x-api-key", Value: keyValue}}}

	t.Run("header values are never returned", func(t *testing.T) {
		updated := setEndpoint(t, e, valid)
		for what, p := range map[string]*known.Project{"updateProject": updated, "project": project(t, e)} {
			ep := p.UserDataEndpoint
			if ep == nil {
				t.Fatalf("%s: no userDataEndpoint", what)
			}
			if !reflect.DeepEqual(ep.HeaderNames, []string{"Authorization", "X-Api-Key"}) {
				t.Errorf("%s: headerNames = %q, want [Authorization X-Api-Key]", what, ep.HeaderNames)
			}
			if !ep.Enabled || ep.URL != api.pathURL() || ep.IDPlacement != "PATH" || ep.QueryParam != "id" {
				t.Errorf("%s: endpoint = %+v", what, *ep)
			}
			text := fmt.Sprintf("%+v %+v", *p, *ep)
			for _, secret := range []string{authValue, keyValue, "tok-SECRET", "VALUE-9z8y7x"} {
				if strings.Contains(text, secret) {
					t.Errorf("%s shows header value text %q: %s", what, secret, text)
				}
			}
		}
	})

	t.Run("header values are stored and sent", func(t *testing.T) {
		setEndpoint(t, e, valid)
		pr := one(t, e, newExtUser(t, e, "hdr-1"))
		if pr.Status != known.ProfileFound {
			t.Fatalf("status %s, want FOUND: the endpoint did not get both header values", pr.Status)
		}
		reqs := api.seen()
		last := reqs[len(reqs)-1]
		if last.header.Get("Authorization") != authValue || last.header.Get("X-Api-Key") != keyValue {
			t.Fatalf("headers sent: Authorization %q, X-Api-Key %q", last.header.Get("Authorization"), last.header.Get("X-Api-Key"))
		}
	})

	t.Run("nil headers keep the stored ones", func(t *testing.T) {
		in := valid
		in.Headers = nil
		p := setEndpoint(t, e, in)
		if !reflect.DeepEqual(p.UserDataEndpoint.HeaderNames, []string{"Authorization", "X-Api-Key"}) {
			t.Fatalf("headerNames = %q after an update without headers", p.UserDataEndpoint.HeaderNames)
		}
		if pr := one(t, e, newExtUser(t, e, "hdr-2")); pr.Status != known.ProfileFound {
			t.Fatalf("status %s, want FOUND with the kept headers", pr.Status)
		}
	})

	t.Run("an empty list removes them", func(t *testing.T) {
		in := valid
		in.Headers = []known.Header{}
		p := setEndpoint(t, e, in)
		if len(p.UserDataEndpoint.HeaderNames) != 0 {
			t.Fatalf("headerNames = %q, want none", p.UserDataEndpoint.HeaderNames)
		}
		if pr := one(t, e, newExtUser(t, e, "hdr-3")); pr.Status != known.ProfileUnauthorized {
			t.Fatalf("status %s, want UNAUTHORIZED without headers", pr.Status)
		}
		setEndpoint(t, e, valid)
	})

	field := func(name ...string) []string { return append([]string{"input", "userDataEndpoint"}, name...) }
	many := make([]known.Header, service.MaxHeaders+1)
	for i := range many {
		many[i] = known.Header{Name: fmt.Sprintf("X-H%d", i), Value: "v"}
	}
	rejected := []struct {
		name  string
		edit  func(in *service.EndpointInput)
		code  known.Code
		field []string
	}{
		{"url not http(s)", func(in *service.EndpointInput) { in.URL = "ftp://api.example.com/users/{id}" }, known.Invalid, field("url")},
		{"url without a host", func(in *service.EndpointInput) { in.URL = "https:///users/{id}" }, known.Invalid, field("url")},
		{"url not a URL", func(in *service.EndpointInput) { in.URL = "api.example.com/users/{id}" }, known.Invalid, field("url")},
		{"url with credentials", func(in *service.EndpointInput) { in.URL = "https://u:p@api.example.com/users/{id}" }, known.Invalid, field("url")},
		{"PATH without {id}", func(in *service.EndpointInput) { in.URL = "https://api.example.com/users" }, known.Invalid, field("url")},
		{"idPlacement neither PATH nor QUERY", func(in *service.EndpointInput) { in.IDPlacement = "BODY"; in.URL = "https://api.example.com/users" },
			known.Invalid, field("idPlacement")},
		{"QUERY with an empty queryParam", func(in *service.EndpointInput) { in.IDPlacement = "QUERY"; in.QueryParam = str(" ") }, known.Invalid, field("queryParam")},
		{"QUERY with queryParam a=b", func(in *service.EndpointInput) { in.IDPlacement = "QUERY"; in.QueryParam = str("a=b") }, known.Invalid, field("queryParam")},
		{"header name with a space", func(in *service.EndpointInput) { in.Headers = []known.Header{{Name: "X Api", Value: "v"}} },
			known.Invalid, field("headers", "0", "name")},
		{"header name empty", func(in *service.EndpointInput) {
			in.Headers = []known.Header{{Name: "X-Ok", Value: "v"}, {Name: " ", Value: "v"}}
		}, known.Invalid, field("headers", "1", "name")},
		{"header value with a newline", func(in *service.EndpointInput) {
			in.Headers = []known.Header{{Name: "X-Ok", Value: "v"}, {Name: "X-Bad", Value: "a\nInjected: b"}}
		}, known.Invalid, field("headers", "1", "value")},
		{"header value with a carriage return", func(in *service.EndpointInput) { in.Headers = []known.Header{{Name: "X-Bad", Value: "a\rb"}} },
			known.Invalid, field("headers", "0", "value")},
		{"more than 20 headers", func(in *service.EndpointInput) { in.Headers = many }, known.LimitExceeded, field("headers")},
	}
	for _, tc := range rejected {
		t.Run("rejected: "+tc.name, func(t *testing.T) {
			setEndpoint(t, e, valid)
			defer setEndpoint(t, e, valid)
			before := endpointText(project(t, e).UserDataEndpoint)
			in := valid
			in.Headers = []known.Header{{Name: "X-Other", Value: "other"}}
			in.URL = "https://api.example.com/users/{id}"
			tc.edit(&in)
			p, err := e.svc.UpdateProject(e.ctx, service.UpdateProjectInput{UserDataEndpoint: &in})
			wantCode(t, err, tc.code, tc.field...)
			if p != nil {
				t.Errorf("a rejected update returned project %+v", *p)
			}
			if after := endpointText(project(t, e).UserDataEndpoint); after != before {
				t.Errorf("a rejected update changed the endpoint:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	t.Run("exactly 20 headers are accepted", func(t *testing.T) {
		in := valid
		in.Headers = many[:service.MaxHeaders]
		if p := setEndpoint(t, e, in); len(p.UserDataEndpoint.HeaderNames) != service.MaxHeaders {
			t.Fatalf("%d header names, want %d", len(p.UserDataEndpoint.HeaderNames), service.MaxHeaders)
		}
		setEndpoint(t, e, valid)
	})
}

func TestProfileQueryPlacement(t *testing.T) {
	e, _ := newProfileEnv(t, profileOpts{})
	api := newUserAPI(t)
	setEndpoint(t, e, service.EndpointInput{Enabled: true, URL: api.srv.URL + "/q", IDPlacement: "QUERY", QueryParam: str("uid")})
	pr := one(t, e, newExtUser(t, e, "q 1/2"))
	if pr.Status != known.ProfileFound || sp(pr.FirstName) != "First q%201%2F2" {
		t.Fatalf("profile %s first %s", pr.Status, sp(pr.FirstName))
	}
	reqs := api.seen()
	if len(reqs) != 1 || reqs[0].requestURI != "/q?uid=q+1%2F2" {
		t.Fatalf("requests %+v, want one GET /q?uid=q+1%%2F2", reqs)
	}
}

// TestProfileSeed000 plays each answer of seed 000 and checks the profile, the user and the
// project's endpoint status.
func TestProfileSeed000(t *testing.T) {
	e, clock := newProfileEnv(t, profileOpts{timeout: 500 * time.Millisecond})
	api := newUserAPI(t)
	setEndpoint(t, e, service.EndpointInput{Enabled: true, URL: api.pathURL(), IDPlacement: "PATH"})

	endpointStatus := func(t *testing.T) (known.ProfileStatus, string, time.Time) {
		t.Helper()
		ep := project(t, e).UserDataEndpoint
		if ep.LastStatus == nil || ep.LastCheckedAt == nil {
			t.Fatalf("endpoint lastStatus %v lastCheckedAt %v after a fetch", ep.LastStatus, ep.LastCheckedAt)
		}
		return *ep.LastStatus, sp(ep.LastError), *ep.LastCheckedAt
	}

	t.Run("200 updates names, email, phone and metadata", func(t *testing.T) {
		u := newExtUser(t, e, "ok-200")
		api.set("ok-200", apiAnswer{status: 200, body: seed000})
		clock.Advance(time.Second)
		now := clock.Now().Truncate(time.Millisecond)
		pr := one(t, e, u)
		if pr.Status != known.ProfileFound || sp(pr.FirstName) != "John" || sp(pr.LastName) != "Doe" ||
			sp(pr.Email) != "john.doe@example.com" || sp(pr.PhoneNumber) != "+1234567890" ||
			!reflect.DeepEqual(pr.Metadata, map[string]any{"subscription_plan": "Pro", "signup_date": "2023-11-15", "company": "TechCorp"}) {
			t.Errorf("profile = %s %s %s %s %s %v", pr.Status, sp(pr.FirstName), sp(pr.LastName), sp(pr.Email), sp(pr.PhoneNumber), pr.Metadata)
		}
		if pr.FetchedAt == nil || !pr.FetchedAt.Equal(now) || !pr.CheckedAt.Equal(now) {
			t.Errorf("fetchedAt %v checkedAt %v, want both %v", pr.FetchedAt, pr.CheckedAt, now)
		}
		got := readUser(t, e, u.ID)
		if sp(got.FirstName) != "John" || sp(got.LastName) != "Doe" || sp(got.Name) != "John Doe" ||
			sp(got.Email) != "john.doe@example.com" || sp(got.PhoneNumber) != "+1234567890" {
			t.Errorf("user = first %s last %s name %s email %s phone %s", sp(got.FirstName), sp(got.LastName), sp(got.Name), sp(got.Email), sp(got.PhoneNumber))
		}
		for k, v := range map[string]any{"subscription_plan": "Pro", "signup_date": "2023-11-15", "company": "TechCorp"} {
			if got.Metadata[k] != v {
				t.Errorf("user metadata[%s] = %v, want %v (metadata %v)", k, got.Metadata[k], v, got.Metadata)
			}
		}
		if got.ExternalID == nil || *got.ExternalID != "ok-200" {
			t.Errorf("externalId = %v", got.ExternalID)
		}
		if st, msg, at := endpointStatus(t); st != known.ProfileFound || msg != "<nil>" || !at.Equal(now) {
			t.Errorf("endpoint lastStatus %s lastError %s lastCheckedAt %v; want FOUND, none, %v", st, msg, at, now)
		}
		// The old email is free again: a new user may take it.
		if _, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("orig-ok-200@example.com")}); err != nil {
			t.Errorf("the user's previous email is still held: %v", err)
		}
	})

	t.Run("a fetch does not mark the user as seen", func(t *testing.T) {
		// lastSeenAt is "when the user was last active in the widget"; a fetch made because an
		// agent read the dashboard is not the user being active.
		u := newExtUser(t, e, "not-seen")
		if u.LastSeenAt != nil {
			t.Fatalf("a user made by createUser has lastSeenAt %v", u.LastSeenAt)
		}
		if pr := one(t, e, u); pr.Status != known.ProfileFound {
			t.Fatalf("status %s", pr.Status)
		}
		got := readUser(t, e, u.ID)
		if sp(got.FirstName) != "First not-seen" {
			t.Fatalf("the profile was not applied: firstName %s", sp(got.FirstName))
		}
		if got.LastSeenAt != nil {
			t.Errorf("lastSeenAt = %v after a profile fetch; want it unchanged (nil)", *got.LastSeenAt)
		}
	})

	t.Run("404 is NOT_FOUND and leaves the user as it is", func(t *testing.T) {
		u := newExtUser(t, e, "nf-404")
		api.set("nf-404", apiAnswer{status: 404, body: `{"error":"unknown user"}`})
		clock.Advance(time.Second)
		pr := one(t, e, u)
		if pr.Status != known.ProfileNotFound || pr.FirstName != nil || pr.Email != nil || pr.FetchedAt == nil {
			t.Errorf("profile = %s first %s email %s fetchedAt %v; want NOT_FOUND, no fields, fetchedAt set", pr.Status, sp(pr.FirstName), sp(pr.Email), pr.FetchedAt)
		}
		if got := readUser(t, e, u.ID); !reflect.DeepEqual(got, u) {
			t.Errorf("user changed:\nbefore %+v\nafter  %+v", *u, *got)
		}
		if st, _, _ := endpointStatus(t); st != known.ProfileNotFound {
			t.Errorf("endpoint lastStatus %s, want NOT_FOUND", st)
		}
	})

	for _, code := range []int{401, 403} {
		t.Run(fmt.Sprintf("%d is UNAUTHORIZED on the profile and the endpoint", code), func(t *testing.T) {
			ext := fmt.Sprintf("unauth-%d", code)
			u := newExtUser(t, e, ext)
			api.set(ext, apiAnswer{status: code, body: seed000})
			clock.Advance(time.Second)
			pr := one(t, e, u)
			if pr.Status != known.ProfileUnauthorized || pr.FirstName != nil || pr.FetchedAt != nil {
				t.Errorf("profile = %s first %s fetchedAt %v; want UNAUTHORIZED, nothing fetched", pr.Status, sp(pr.FirstName), pr.FetchedAt)
			}
			if got := readUser(t, e, u.ID); !reflect.DeepEqual(got, u) {
				t.Errorf("user changed:\nbefore %+v\nafter  %+v", *u, *got)
			}
			if st, msg, _ := endpointStatus(t); st != known.ProfileUnauthorized || !strings.Contains(msg, fmt.Sprint(code)) {
				t.Errorf("endpoint lastStatus %s lastError %q; want UNAUTHORIZED mentioning %d", st, msg, code)
			}
		})
	}

	failures := []struct {
		name string
		ans  apiAnswer
		want known.ProfileStatus
	}{
		{"500", apiAnswer{status: 500, body: "oops"}, known.ProfileError},
		{"503", apiAnswer{status: 503, body: seed000}, known.ProfileError},
		{"timeout", apiAnswer{status: 200, body: seed000, delay: 3 * time.Second}, known.ProfileTimeout},
		{"bad JSON", apiAnswer{status: 200, body: `{"first_name": "Late"`}, known.ProfileError},
		{"JSON array", apiAnswer{status: 200, body: `[{"first_name": "Late"}]`}, known.ProfileError},
		{"wrong types", apiAnswer{status: 200, body: `{"first_name": ["Late"]}`}, known.ProfileError},
	}
	for _, tc := range failures {
		t.Run(tc.name+" keeps the earlier data", func(t *testing.T) {
			ext := "fail-" + strings.ReplaceAll(tc.name, " ", "-")
			u := newExtUser(t, e, ext)
			clock.Advance(time.Second)
			first := one(t, e, u) // the default answer: 200
			if first.Status != known.ProfileFound {
				t.Fatalf("first fetch %s", first.Status)
			}
			afterFirst := readUser(t, e, u.ID)
			api.set(ext, apiAnswer{status: tc.ans.status, body: tc.ans.body, delay: tc.ans.delay})
			clock.Advance(testMaxAge + time.Second)
			now := clock.Now().Truncate(time.Millisecond)
			pr := one(t, e, afterFirst)
			if pr.Status != tc.want {
				t.Errorf("status %s, want %s", pr.Status, tc.want)
			}
			if sp(pr.FirstName) != sp(first.FirstName) || sp(pr.Email) != sp(first.Email) || !reflect.DeepEqual(pr.Metadata, first.Metadata) {
				t.Errorf("profile fields %s %s %v; want the earlier %s %s %v", sp(pr.FirstName), sp(pr.Email), pr.Metadata,
					sp(first.FirstName), sp(first.Email), first.Metadata)
			}
			if pr.FetchedAt == nil || !pr.FetchedAt.Equal(*first.FetchedAt) || !pr.CheckedAt.Equal(now) {
				t.Errorf("fetchedAt %v checkedAt %v; want the earlier fetchedAt %v and checkedAt %v", pr.FetchedAt, pr.CheckedAt, first.FetchedAt, now)
			}
			if got := readUser(t, e, u.ID); !reflect.DeepEqual(got, afterFirst) {
				t.Errorf("user changed:\nbefore %+v\nafter  %+v", *afterFirst, *got)
			}
			if st, msg, at := endpointStatus(t); st != tc.want || msg == "<nil>" || !at.Equal(now) {
				t.Errorf("endpoint lastStatus %s lastError %s at %v; want %s with an error at %v", st, msg, at, tc.want, now)
			}
			// A later success clears lastError.
			api.set(ext, answerFor(ext))
			clock.Advance(testMaxAge + time.Second)
			if pr := one(t, e, afterFirst); pr.Status != known.ProfileFound {
				t.Fatalf("status %s after recovery", pr.Status)
			}
			if st, msg, _ := endpointStatus(t); st != known.ProfileFound || msg != "<nil>" {
				t.Errorf("after recovery: endpoint lastStatus %s lastError %s", st, msg)
			}
		})
	}

	t.Run("an email of another user is not applied, the names are", func(t *testing.T) {
		other, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("taken@example.com"), FirstName: str("Other")})
		if err != nil {
			t.Fatal(err)
		}
		u := newExtUser(t, e, "conflict-email")
		api.set("conflict-email", apiAnswer{status: 200, body: `{"first_name":"Newfirst","last_name":"Newlast","email":"Taken@Example.com","metadata":{"tier":"gold"}}`})
		clock.Advance(time.Second)
		prs, err := e.svc.ExternalProfiles(e.ctx, service.ProfileKeys(u))
		if err != nil {
			t.Fatalf("ExternalProfiles: %v, want no error for a conflicting email", err)
		}
		if prs[0].Status != known.ProfileFound || sp(prs[0].Email) != "Taken@Example.com" {
			t.Errorf("profile %s email %s; want FOUND with the email the API sent", prs[0].Status, sp(prs[0].Email))
		}
		got := readUser(t, e, u.ID)
		if sp(got.Email) != sp(u.Email) {
			t.Errorf("user email = %s, want the user's own %s", sp(got.Email), sp(u.Email))
		}
		if sp(got.FirstName) != "Newfirst" || sp(got.LastName) != "Newlast" || got.Metadata["tier"] != "gold" {
			t.Errorf("user first %s last %s metadata %v; want the profile's names and metadata", sp(got.FirstName), sp(got.LastName), got.Metadata)
		}
		if o := readUser(t, e, other.ID); sp(o.Email) != "taken@example.com" || sp(o.FirstName) != "Other" {
			t.Errorf("the other user changed: email %s first %s", sp(o.Email), sp(o.FirstName))
		}
	})

	t.Run("a free email is applied when only the phone belongs to another user", func(t *testing.T) {
		if _, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{PhoneNumber: str("+15550001111")}); err != nil {
			t.Fatal(err)
		}
		u := newExtUser(t, e, "conflict-phone")
		api.set("conflict-phone", apiAnswer{status: 200, body: `{"first_name":"Pfirst","email":"free-email@example.com","phone_number":"+15550001111"}`})
		clock.Advance(time.Second)
		if pr := one(t, e, u); pr.Status != known.ProfileFound {
			t.Fatalf("status %s", pr.Status)
		}
		got := readUser(t, e, u.ID)
		if sp(got.FirstName) != "Pfirst" || got.PhoneNumber != nil {
			t.Errorf("user first %s phone %s; want Pfirst and no phone", sp(got.FirstName), sp(got.PhoneNumber))
		}
		if sp(got.Email) != "free-email@example.com" {
			t.Errorf("user email = %s; want free-email@example.com (only the conflicting phone is left out)", sp(got.Email))
			// Then nobody shows that email, and nobody may be left holding it.
			if _, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("free-email@example.com")}); err != nil {
				t.Errorf("no user shows free-email@example.com, yet createUser with it fails: %v (the fetch left its identity key claimed by user %s)", err, known.GlobalID(known.KindUser, string(u.ID)))
			}
		}
	})

	t.Run("bad values are dropped one by one", func(t *testing.T) {
		u := newExtUser(t, e, "bad-values")
		api.set("bad-values", apiAnswer{status: 200, body: `{"first_name":"Good","email":"not an email","phone_number":"12","metadata":{"tier":"silver"}}`})
		clock.Advance(time.Second)
		if pr := one(t, e, u); pr.Status != known.ProfileFound {
			t.Fatalf("status %s", pr.Status)
		}
		got := readUser(t, e, u.ID)
		if sp(got.FirstName) != "Good" || sp(got.Email) != sp(u.Email) || got.PhoneNumber != nil {
			t.Errorf("user first %s email %s phone %s; want Good, the old email, no phone", sp(got.FirstName), sp(got.Email), sp(got.PhoneNumber))
		}
		if got.Metadata["tier"] != "silver" {
			t.Errorf("user metadata %v; want the valid metadata applied (tier silver) although the email and phone were bad", got.Metadata)
		}
	})

	t.Run("users without externalId and a disabled endpoint fetch nothing", func(t *testing.T) {
		anon, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("noext@example.com")})
		if err != nil {
			t.Fatal(err)
		}
		before := api.total.Load()
		if pr := externalProfiles(t, e, readUser(t, e, anon.ID))[0]; pr != nil {
			t.Errorf("a user without externalId has profile %+v", *pr)
		}
		u := newExtUser(t, e, "disabled")
		setEndpoint(t, e, service.EndpointInput{Enabled: false, URL: api.pathURL(), IDPlacement: "PATH"})
		defer setEndpoint(t, e, service.EndpointInput{Enabled: true, URL: api.pathURL(), IDPlacement: "PATH"})
		if pr := externalProfiles(t, e, u)[0]; pr != nil {
			t.Errorf("with the endpoint disabled: profile %+v", *pr)
		}
		if n := api.total.Load() - before; n != 0 {
			t.Errorf("%d fetches, want 0", n)
		}
	})
}

// TestProfileIdentifyFetchesInBackground: identify with a userId starts a fetch and returns
// without waiting for it.
func TestProfileIdentifyFetchesInBackground(t *testing.T) {
	e, _ := newProfileEnv(t, profileOpts{})
	finished := make(chan struct{})
	api := newUserAPIWith(t, func(a *userAPI, w http.ResponseWriter, r *http.Request) {
		a.serve(w, r)
		if strings.HasSuffix(r.URL.Path, "/slow-1") {
			close(finished)
		}
	})
	api.set("slow-1", apiAnswer{status: 200, body: `{"first_name":"Slow","last_name":"Api","email":"slow@example.com"}`, delay: 1500 * time.Millisecond})
	setEndpoint(t, e, service.EndpointInput{Enabled: true, URL: api.pathURL(), IDPlacement: "PATH"})

	ss := claimed(t, e, "slow-1", service.IdentifyInput{})
	select {
	case <-finished:
		t.Fatal("identify returned after the endpoint answered: it waited for the fetch")
	default:
	}
	select {
	case id := <-api.started:
		if id != "slow-1" {
			t.Fatalf("the endpoint was asked for %q, want slow-1", id)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no fetch reached the endpoint within 2 s of identify")
	}
	<-finished
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.svc.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	u := readUser(t, e, *ss.UserID)
	if sp(u.FirstName) != "Slow" || sp(u.Email) != "slow@example.com" {
		t.Fatalf("user first %s email %s after the background fetch; want Slow, slow@example.com", sp(u.FirstName), sp(u.Email))
	}
	if n := api.total.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}

	t.Run("a fresh profile is not fetched again", func(t *testing.T) {
		claimed(t, e, "slow-1", service.IdentifyInput{})
		if err := e.svc.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if n := api.total.Load(); n != 1 {
			t.Fatalf("%d fetches after a second identify, want 1", n)
		}
	})
	t.Run("no fetch without a userId", func(t *testing.T) {
		identify(t, e, "", service.IdentifyInput{Email: str("anon-fetch@example.com")})
		if err := e.svc.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if n := api.total.Load(); n != 1 {
			t.Fatalf("%d fetches, want 1", n)
		}
	})
	t.Run("a visitor's userId cannot move the request off {id}", func(t *testing.T) {
		// The userId of an unverified identify is the visitor's choice. ".." must not make
		// Known ask the customer's API for /users/.. (= /) with the customer's headers.
		for _, ext := range []string{"..", "."} {
			claimed(t, e, ext, service.IdentifyInput{})
		}
		if err := e.svc.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		for _, r := range api.seen() {
			if clean := path.Clean(r.requestURI); !strings.HasPrefix(clean, "/users/") {
				t.Errorf("a fetch asked for %q, which the API resolves to %q", r.requestURI, clean)
			}
		}
	})
}

func TestProfileStaleness(t *testing.T) {
	e, clock := newProfileEnv(t, profileOpts{maxAge: time.Minute})
	api := newUserAPI(t)
	setEndpoint(t, e, service.EndpointInput{Enabled: true, URL: api.pathURL(), IDPlacement: "PATH"})
	u := newExtUser(t, e, "stale-1")

	first := one(t, e, u)
	if n := api.fetchesOf("stale-1"); n != 1 || first.Status != known.ProfileFound {
		t.Fatalf("first read: %d fetches, status %s; want 1, FOUND", n, first.Status)
	}
	t.Run("within ProfileMaxAge no fetch", func(t *testing.T) {
		clock.Advance(59 * time.Second)
		pr := one(t, e, u)
		if n := api.fetchesOf("stale-1"); n != 1 {
			t.Fatalf("%d fetches, want 1", n)
		}
		if !pr.CheckedAt.Equal(first.CheckedAt) || sp(pr.FirstName) != sp(first.FirstName) {
			t.Fatalf("profile checkedAt %v first %s; want the stored %v %s", pr.CheckedAt, sp(pr.FirstName), first.CheckedAt, sp(first.FirstName))
		}
	})
	t.Run("past ProfileMaxAge one fetch", func(t *testing.T) {
		clock.Advance(2 * time.Second)
		api.set("stale-1", apiAnswer{status: 200, body: `{"first_name":"Second"}`})
		pr := one(t, e, u)
		if n := api.fetchesOf("stale-1"); n != 2 {
			t.Fatalf("%d fetches, want 2", n)
		}
		if sp(pr.FirstName) != "Second" || !pr.CheckedAt.Equal(clock.Now().Truncate(time.Millisecond)) {
			t.Fatalf("profile first %s checkedAt %v", sp(pr.FirstName), pr.CheckedAt)
		}
		one(t, e, u)
		if n := api.fetchesOf("stale-1"); n != 2 {
			t.Fatalf("%d fetches after re-reading the fresh profile, want 2", n)
		}
	})
	t.Run("a failed fetch also counts as checked", func(t *testing.T) {
		clock.Advance(2 * time.Minute)
		api.set("stale-1", apiAnswer{status: 500})
		if pr := one(t, e, u); pr.Status != known.ProfileError {
			t.Fatalf("status %s", pr.Status)
		}
		one(t, e, u)
		if n := api.fetchesOf("stale-1"); n != 3 {
			t.Fatalf("%d fetches, want 3: a failing API is not asked again on every read", n)
		}
	})
}

func TestProfileConcurrency(t *testing.T) {
	t.Run("30 stale users, at most 4 at once", func(t *testing.T) {
		e, _ := newProfileEnv(t, profileOpts{concurrency: 4})
		api := newUserAPI(t)
		users := make([]*known.User, 30)
		for i := range users {
			ext := fmt.Sprintf("c30-%02d", i)
			api.set(ext, apiAnswer{status: 200, body: answerFor(ext).body, delay: 100 * time.Millisecond})
			users[i] = newExtUser(t, e, ext)
		}
		setEndpoint(t, e, service.EndpointInput{Enabled: true, URL: api.pathURL(), IDPlacement: "PATH"})
		prs := externalProfiles(t, e, users...)
		for i, pr := range prs {
			if pr == nil || pr.Status != known.ProfileFound || pr.UserID != users[i].ID || sp(pr.FirstName) != "First "+string(*users[i].ExternalID) {
				t.Fatalf("profile %d = %+v, want FOUND for user %s", i, pr, users[i].ID)
			}
		}
		if n := api.total.Load(); n != 30 {
			t.Errorf("%d fetches, want 30", n)
		}
		for _, u := range users {
			if n := api.fetchesOf(string(*u.ExternalID)); n != 1 {
				t.Errorf("%s fetched %d times, want 1", *u.ExternalID, n)
			}
		}
		if m := api.maxInflight.Load(); m != 4 {
			t.Errorf("at most %d fetches at once, want 4 (the bound, reached)", m)
		}
	})

	t.Run("two concurrent calls for the same 10 users share fetches", func(t *testing.T) {
		e, _ := newProfileEnv(t, profileOpts{concurrency: 4})
		api := newUserAPI(t)
		users := make([]*known.User, 10)
		for i := range users {
			ext := fmt.Sprintf("shared-%d", i)
			api.set(ext, apiAnswer{status: 200, body: answerFor(ext).body, delay: 200 * time.Millisecond})
			users[i] = newExtUser(t, e, ext)
		}
		setEndpoint(t, e, service.EndpointInput{Enabled: true, URL: api.pathURL(), IDPlacement: "PATH"})
		var wg sync.WaitGroup
		start := make(chan struct{})
		results := make([][]*known.Profile, 2)
		errs := make([]error, 2)
		for c := range 2 {
			wg.Go(func() {
				<-start
				results[c], errs[c] = e.svc.ExternalProfiles(e.ctx, service.ProfileKeys(users...))
			})
		}
		close(start)
		wg.Wait()
		for c := range 2 {
			if errs[c] != nil {
				t.Fatalf("call %d: %v", c, errs[c])
			}
			for i, pr := range results[c] {
				if pr == nil || pr.Status != known.ProfileFound || pr.UserID != users[i].ID {
					t.Fatalf("call %d profile %d = %+v", c, i, pr)
				}
			}
		}
		if n := api.total.Load(); n != 10 {
			t.Errorf("%d fetches for two calls over the same 10 users, want 10", n)
		}
		if m := api.maxInflight.Load(); m > 4 {
			t.Errorf("%d fetches at once, want at most 4", m)
		}
	})

	t.Run("a caller giving up does not fail the others' shared fetch", func(t *testing.T) {
		e, _ := newProfileEnv(t, profileOpts{concurrency: 4})
		api := newUserAPI(t)
		api.set("giveup", apiAnswer{status: 200, body: answerFor("giveup").body, delay: 300 * time.Millisecond})
		u := newExtUser(t, e, "giveup")
		setEndpoint(t, e, service.EndpointInput{Enabled: true, URL: api.pathURL(), IDPlacement: "PATH"})
		short, cancel := context.WithTimeout(e.ctx, 50*time.Millisecond)
		defer cancel()
		var wg sync.WaitGroup
		var shortErr error
		wg.Go(func() { _, shortErr = e.svc.ExternalProfiles(short, service.ProfileKeys(u)) })
		select {
		case <-api.started:
		case <-time.After(5 * time.Second):
			t.Fatal("the first caller's fetch did not start")
		}
		prs := externalProfiles(t, e, u)
		wg.Wait()
		if prs[0] == nil || prs[0].Status != known.ProfileFound {
			t.Fatalf("the patient caller got %+v, want FOUND", prs[0])
		}
		if n := api.total.Load(); n != 1 {
			t.Errorf("%d fetches, want 1", n)
		}
		t.Logf("the impatient caller got error %v", shortErr)
	})
}

// TestProfileDeletedWithUser: deleteUser erases the user (API.md §5); the external profile
// fetched for it (names, email, phone, metadata from the customer's API) goes with it.
func TestProfileDeletedWithUser(t *testing.T) {
	e, _ := newProfileEnv(t, profileOpts{})
	api := newUserAPI(t)
	setEndpoint(t, e, service.EndpointInput{Enabled: true, URL: api.pathURL(), IDPlacement: "PATH"})
	stored := func(t *testing.T, id known.UserID) *known.Profile {
		t.Helper()
		m, err := e.store.ProfilesOf(context.Background(), e.project.Project.ID, []known.UserID{id})
		if err != nil {
			t.Fatal(err)
		}
		return m[id]
	}

	t.Run("after a fetch", func(t *testing.T) {
		u := newExtUser(t, e, "deleted-1")
		if pr := one(t, e, u); pr.Status != known.ProfileFound {
			t.Fatalf("status %s", pr.Status)
		}
		if stored(t, u.ID) == nil {
			t.Fatal("no stored profile after a FOUND fetch")
		}
		if err := e.svc.DeleteUser(e.ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		if pr := stored(t, u.ID); pr != nil {
			t.Errorf("the deleted user's profile is still stored: status %s first %s email %s", pr.Status, sp(pr.FirstName), sp(pr.Email))
		}
	})

	t.Run("during a fetch", func(t *testing.T) {
		u := newExtUser(t, e, "deleted-2")
		api.set("deleted-2", apiAnswer{status: 200, body: answerFor("deleted-2").body, delay: 300 * time.Millisecond})
		done := make(chan error, 1)
		go func() {
			_, err := e.svc.ExternalProfiles(e.ctx, service.ProfileKeys(u))
			done <- err
		}()
		select {
		case <-api.started:
		case <-time.After(5 * time.Second):
			t.Fatal("the fetch did not start")
		}
		if err := e.svc.DeleteUser(e.ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Logf("ExternalProfiles for a user deleted meanwhile: %v", err)
		}
		if pr := stored(t, u.ID); pr != nil {
			t.Errorf("a profile was stored for the deleted user: status %s first %s email %s", pr.Status, sp(pr.FirstName), sp(pr.Email))
		}
		if _, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("deleted-2@profiles.example.com")}); err != nil {
			t.Errorf("the fetched email is held by the deleted user: %v", err)
		}
	})
}

// TestProfileAppliedOncePerChange: a profile fetched again unchanged is stored (checked now)
// but not applied to its user again, so that what the user changed since keeps its newer
// value and an unchanged page of profiles costs no user writes; a changed profile is applied.
func TestProfileAppliedOncePerChange(t *testing.T) {
	e, clock := newProfileEnv(t, profileOpts{})
	api := newUserAPI(t)
	setEndpoint(t, e, service.EndpointInput{Enabled: true, URL: api.pathURL(), IDPlacement: "PATH"})
	u := newExtUser(t, e, "once-1")
	api.set("once-1", apiAnswer{status: 200, body: `{"first_name":"Fetched","metadata":{"tier":"gold"}}`})
	clock.Advance(time.Second)
	one(t, e, u)
	applied := readUser(t, e, u.ID)
	if sp(applied.FirstName) != "Fetched" {
		t.Fatalf("first fetch: user first name %q, want Fetched", sp(applied.FirstName))
	}

	clock.Advance(testMaxAge + time.Second)
	pr := one(t, e, u)
	if n := api.fetchesOf("once-1"); n != 2 || !pr.CheckedAt.Equal(clock.Now().Truncate(time.Millisecond)) {
		t.Fatalf("stale read: %d fetches, checkedAt %v; want 2, now", n, pr.CheckedAt)
	}
	if again := readUser(t, e, u.ID); !again.UpdatedAt.Equal(applied.UpdatedAt) {
		t.Errorf("an unchanged profile was applied again: user updatedAt %v, was %v", again.UpdatedAt, applied.UpdatedAt)
	}

	api.set("once-1", apiAnswer{status: 200, body: `{"first_name":"Changed","metadata":{"tier":"gold"}}`})
	clock.Advance(testMaxAge + time.Second)
	one(t, e, u)
	if changed := readUser(t, e, u.ID); sp(changed.FirstName) != "Changed" || !changed.UpdatedAt.After(applied.UpdatedAt) {
		t.Errorf("a changed profile: user first name %q updatedAt %v; want Changed, after %v", sp(changed.FirstName), changed.UpdatedAt, applied.UpdatedAt)
	}
}
