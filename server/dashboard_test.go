package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/knownhq/known/clocktest"
	"github.com/knownhq/known/service"
	"go.mongodb.org/mongo-driver/v2/event"
)

// The agent dashboard's inbox: a page of conversations with each one's last message, user,
// external profile (seed 000), companies and organizations. These tests check over HTTP that
// the page fetches each stale profile once, at most KNOWN_PROFILE_CONCURRENCY at a time, and
// that its database round trips do not grow with the page.

// dashboardQuery is the inbox query.
const dashboardQuery = `query($n: Int) {
	conversations(first: $n) { nodes { id lastMessage { body } messages(first: 1) { nodes { body } pageInfo { hasNextPage } }
		user { id name externalProfile { status email firstName }
		companies(first: 10) { nodes { externalId name } } organizations(first: 10) { nodes { externalId name } } } } }
}`

// dashboardPage is the inbox query's answer.
type dashboardPage struct {
	Conversations struct {
		Nodes []struct {
			ID          string
			LastMessage *struct{ Body string }
			Messages    struct {
				Nodes    []struct{ Body string }
				PageInfo struct{ HasNextPage bool }
			}
			User *struct {
				ID              string
				ExternalProfile *struct {
					Status string
					Email  *string
				}
				Companies     struct{ Nodes []struct{ ExternalID string } }
				Organizations struct{ Nodes []struct{ ExternalID string } }
			}
		}
	}
}

// profileAPI is a customer's user API (seed 000) answering GET /users/<id> with a profile made
// from the id, after a short pause; it counts requests and the most at once.
type profileAPI struct {
	srv   *httptest.Server
	pause time.Duration

	total, inflight, maxInflight atomic.Int64
	mu                           sync.Mutex
	perID                        map[string]int
	badKey                       int
}

const profileAPIKey = "dashboard-api-key-value"

func newProfileAPI(tb testing.TB, pause time.Duration) *profileAPI {
	tb.Helper()
	a := &profileAPI{pause: pause, perID: map[string]int{}}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	tb.Cleanup(a.srv.Close)
	return a
}

func (a *profileAPI) serve(w http.ResponseWriter, r *http.Request) {
	n := a.inflight.Add(1)
	defer a.inflight.Add(-1)
	for {
		m := a.maxInflight.Load()
		if n <= m || a.maxInflight.CompareAndSwap(m, n) {
			break
		}
	}
	a.total.Add(1)
	id, _ := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), "/users/"))
	a.mu.Lock()
	a.perID[id]++
	ok := r.Header.Get("X-Api-Key") == profileAPIKey
	if !ok {
		a.badKey++
	}
	a.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	select {
	case <-time.After(a.pause):
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"first_name":"First %[1]s","last_name":"Last","email":%[2]q,"metadata":{"plan":"Pro"}}`, id, profileEmail(id))
}

func profileEmail(ext string) string { return ext + "@profiles.example.com" }

// counts returns the total requests, the distinct ids asked, the most requests for one id and
// the requests without the right key.
func (a *profileAPI) counts() (total, distinct, most, badKey int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, n := range a.perID {
		most = max(most, n)
	}
	return int(a.total.Load()), len(a.perID), most, a.badKey
}

// setProfileEndpoint sets the project's userDataEndpoint to api over GraphQL.
func setProfileEndpoint(tb testing.TB, baseURL, key string, api *profileAPI, enabled bool) {
	tb.Helper()
	r := gql(tb, baseURL, key, `mutation($input: UpdateProjectInput!) {
		updateProject(input: $input) { project { userDataEndpoint { enabled url headerNames } } userErrors { field code message } }
	}`, map[string]any{"input": map[string]any{"userDataEndpoint": map[string]any{
		"enabled": enabled, "url": api.srv.URL + "/users/{id}", "idPlacement": "PATH",
		"headers": []map[string]any{{"name": "X-Api-Key", "value": profileAPIKey}},
	}}})
	var data struct {
		UpdateProject struct {
			Project *struct {
				UserDataEndpoint struct {
					Enabled     bool
					URL         string
					HeaderNames []string
				}
			}
			UserErrors []userError
		}
	}
	r.decode(tb, &data)
	p := data.UpdateProject
	if len(p.UserErrors) > 0 || p.Project == nil || p.Project.UserDataEndpoint.Enabled != enabled ||
		strings.Join(p.Project.UserDataEndpoint.HeaderNames, ",") != "X-Api-Key" {
		tb.Fatalf("updateProject(userDataEndpoint enabled %v) = %s", enabled, r.Body)
	}
	if strings.Contains(r.Body, profileAPIKey) {
		tb.Fatalf("updateProject returned the header value: %s", r.Body)
	}
}

// seedInbox makes n conversations of n distinct users through the widget: identify with a
// userId and a company, setUser with an organization, startConversation ("hello from <ext>").
// Eight workers make them at once.
func seedInbox(tb testing.TB, baseURL, appID string, n int) {
	tb.Helper()
	const workers = 8
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	var failed atomic.Bool
	for range workers {
		wg.Go(func() {
			w := &workerTB{TB: tb, fail: func(msg string) {
				failed.Store(true)
				mu.Lock()
				defer mu.Unlock()
				failures = append(failures, msg)
			}}
			for i := range next {
				if failed.Load() {
					return
				}
				seedOne(w, baseURL, appID, fmt.Sprintf("inbox-%03d", i))
			}
		})
	}
	wg.Wait()
	if len(failures) > 0 {
		tb.Fatalf("seeding the inbox: %s", strings.Join(failures, "\n"))
	}
}

func seedOne(tb testing.TB, baseURL, appID, ext string) {
	tb.Helper()
	s := mustIdentify(tb, baseURL, "", map[string]any{"appId": appID, "userId": ext,
		"company": map[string]any{"id": "co-" + ext, "name": "Company " + ext}})
	p := trySetUser(tb, baseURL, s.Token, map[string]any{"appId": appID, "id": ext,
		"organizations": []map[string]any{{"id": "org-" + ext, "name": "Org " + ext}}})
	s2 := requireSession(tb, "setUser", p)
	if s2.UserID == nil || s.UserID == nil || *s2.UserID != *s.UserID {
		tb.Fatalf("setUser(%s) is user %s, identify was %s", ext, deref(s2.UserID), deref(s.UserID))
	}
	startConversation(tb, baseURL, s2.Token, "hello from "+ext)
}

// workerTB lets the shared helpers run in a worker goroutine: a failure is handed to fail and
// ends the worker's goroutine, and the test fails from its own goroutine afterwards.
type workerTB struct {
	testing.TB
	fail func(string)
}

func (w *workerTB) Helper() {}

func (w *workerTB) Fatalf(format string, args ...any) {
	w.fail(fmt.Sprintf(format, args...))
	runtime.Goexit()
}

func (w *workerTB) Fatal(args ...any) {
	w.fail(fmt.Sprint(args...))
	runtime.Goexit()
}

func (w *workerTB) FailNow() {
	w.fail("FailNow")
	runtime.Goexit()
}

func (w *workerTB) Errorf(format string, args ...any) { w.fail(fmt.Sprintf(format, args...)) }

func (w *workerTB) Error(args ...any) { w.fail(fmt.Sprint(args...)) }

// readInbox runs the inbox query for the first n conversations and checks every row: the last
// message, the user's company and organization, and a FOUND profile with the API's email.
func readInbox(tb testing.TB, baseURL, key string, n int) dashboardPage {
	tb.Helper()
	r := gql(tb, baseURL, key, dashboardQuery, map[string]any{"n": n})
	var page dashboardPage
	r.decode(tb, &page)
	nodes := page.Conversations.Nodes
	if len(nodes) != n {
		tb.Fatalf("%d conversations, want %d", len(nodes), n)
	}
	users := map[string]bool{}
	for _, c := range nodes {
		u := c.User
		if u == nil || c.LastMessage == nil {
			tb.Fatalf("conversation %s: user %v lastMessage %v", c.ID, u, c.LastMessage)
		}
		if m := c.Messages; len(m.Nodes) != 1 || m.Nodes[0].Body != c.LastMessage.Body || m.PageInfo.HasNextPage {
			tb.Fatalf("conversation %s: messages(first: 1) %+v, want [%q] and no next page", c.ID, m, c.LastMessage.Body)
		}
		ext := strings.TrimPrefix(c.LastMessage.Body, "hello from ")
		users[u.ID] = true
		if p := u.ExternalProfile; p == nil || p.Status != "FOUND" || deref(p.Email) != profileEmail(ext) {
			tb.Fatalf("conversation %s (%s): externalProfile %+v, want FOUND with %s", c.ID, ext, p, profileEmail(ext))
		}
		if len(u.Companies.Nodes) != 1 || u.Companies.Nodes[0].ExternalID != "co-"+ext {
			tb.Fatalf("conversation %s (%s): companies %+v, want [co-%s]", c.ID, ext, u.Companies.Nodes, ext)
		}
		if len(u.Organizations.Nodes) != 1 || u.Organizations.Nodes[0].ExternalID != "org-"+ext {
			tb.Fatalf("conversation %s (%s): organizations %+v, want [org-%s]", c.ID, ext, u.Organizations.Nodes, ext)
		}
	}
	if len(users) != n {
		tb.Fatalf("%d distinct users on %d conversations, want %d", len(users), n, n)
	}
	return page
}

// profileKnownEnv is the environment of a Known that may fetch from a local user API, 4 at a
// time, without a widget rate limit.
func profileKnownEnv(tb testing.TB) map[string]string {
	env := widgetEnv(tb) // KNOWN_WIDGET_RATE_LIMIT=0
	env["KNOWN_ALLOW_PRIVATE_NETWORKS"] = "true"
	env["KNOWN_PROFILE_CONCURRENCY"] = "4"
	env["KNOWN_LOG_LEVEL"] = "warn"
	return env
}

// commandsTotal sums known_mongodb_commands_total over its labels.
func commandsTotal(t *testing.T, baseURL string) float64 {
	t.Helper()
	var sum float64
	for k, v := range scrapeMetrics(t, baseURL) {
		if strings.HasPrefix(k, "known_mongodb_commands_total{") {
			sum += v
		}
	}
	return sum
}

// TestDashboardProfiles reads the inbox of 100 conversations whose users' profiles were never
// fetched: 100 fetches, at most 4 at once, every profile FOUND; then again: no fetch.
func TestDashboardProfiles(t *testing.T) {
	api := newProfileAPI(t, 20*time.Millisecond)
	k := startRun(t, profileKnownEnv(t))
	appID, key := createProject(t, k.URL, "Inbox")
	setProfileEndpoint(t, k.URL, key, api, false)
	seedInbox(t, k.URL, appID, 100)
	if total, _, _, _ := api.counts(); total != 0 {
		t.Fatalf("%d fetches while the endpoint was disabled, want 0", total)
	}
	setProfileEndpoint(t, k.URL, key, api, true)

	t.Run("first read fetches each profile once, 4 at a time", func(t *testing.T) {
		readInbox(t, k.URL, key, 100)
		total, distinct, most, bad := api.counts()
		if total != 100 || distinct != 100 || most != 1 {
			t.Errorf("fetches: %d, for %d ids, at most %d for one id; want 100, 100, 1", total, distinct, most)
		}
		if bad != 0 {
			t.Errorf("%d fetches without the configured X-Api-Key", bad)
		}
		if m := api.maxInflight.Load(); m > 4 || m < 2 {
			t.Errorf("at most %d fetches at once; want at most KNOWN_PROFILE_CONCURRENCY=4 (and some parallelism)", m)
		}
		t.Logf("100 fetches, at most %d at once", api.maxInflight.Load())
		m := scrapeMetrics(t, k.URL)
		if got := m[`known_profile_fetch_duration_seconds_count{status="FOUND"}`]; got != 100 {
			t.Errorf("metrics: %v FOUND fetches, want 100", got)
		}
	})

	t.Run("second read fetches nothing", func(t *testing.T) {
		readInbox(t, k.URL, key, 100)
		if total, _, _, _ := api.counts(); total != 100 {
			t.Errorf("%d fetches after a second read, want still 100", total)
		}
	})

	t.Run("project shows the endpoint's last status", func(t *testing.T) {
		r := gql(t, k.URL, key, `{ project { userDataEndpoint { lastStatus lastError headerNames } } }`, nil)
		var data struct {
			Project struct {
				UserDataEndpoint struct {
					LastStatus  *string
					LastError   *string
					HeaderNames []string
				}
			}
		}
		r.decode(t, &data)
		ep := data.Project.UserDataEndpoint
		if deref(ep.LastStatus) != "FOUND" || ep.LastError != nil || strings.Join(ep.HeaderNames, ",") != "X-Api-Key" {
			t.Errorf("userDataEndpoint = %s", r.Body)
		}
		if strings.Contains(r.Body, profileAPIKey) {
			t.Errorf("project shows the header value: %s", r.Body)
		}
	})

	t.Run("commands do not grow with the page (metrics)", func(t *testing.T) {
		// Profiles are fresh: count the commands of reads of 10 and of 100 through
		// known_mongodb_commands_total. A key's project and the profile endpoint are kept 3 s on
		// the real clock, so a read that follows their expiry costs up to two look-ups more (on a
		// busy machine every read may): the fewest of three reads of each compare, within 2.
		// TestDashboardCommandCount counts exactly, on a clock that stands still.
		readInbox(t, k.URL, key, 10) // warm
		count := func(n int) float64 {
			c0 := commandsTotal(t, k.URL)
			readInbox(t, k.URL, key, n)
			return commandsTotal(t, k.URL) - c0
		}
		n10, n100 := math.Inf(1), math.Inf(1)
		for range 3 {
			n10, n100 = min(n10, count(10)), min(n100, count(100))
		}
		t.Logf("MongoDB commands per inbox read (from /metrics, fewest of 3): 10 conversations %v, 100 conversations %v", n10, n100)
		if n100 > n10+2 {
			t.Errorf("inbox read: %v commands for 10 conversations, %v for 100; want at most 2 more (the key and endpoint look-ups)", n10, n100)
		}
	})
}

// commandCounter counts the MongoDB commands started while it records.
type commandCounter struct {
	on    atomic.Bool
	mu    sync.Mutex
	names map[string]int
}

func (c *commandCounter) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if !c.on.Load() {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.names[e.CommandName+" "+collectionOf(e)]++
	}}
}

// collectionOf names the collection a command is about, when it says.
func collectionOf(e *event.CommandStartedEvent) string {
	v, err := e.Command.LookupErr(e.CommandName)
	if err != nil {
		return ""
	}
	s, _ := v.StringValueOK()
	return s
}

// during counts the commands f starts.
func (c *commandCounter) during(f func()) (int, string) {
	c.mu.Lock()
	c.names = map[string]int{}
	c.mu.Unlock()
	c.on.Store(true)
	f()
	c.on.Store(false)
	c.mu.Lock()
	defer c.mu.Unlock()
	total := 0
	var parts []string
	for name, n := range c.names {
		total += n
		parts = append(parts, fmt.Sprintf("%s×%d", name, n))
	}
	sort.Strings(parts)
	return total, strings.Join(parts, ", ")
}

// profileMaxAge is the KNOWN_PROFILE_MAX_AGE of counted in-process Knowns.
const profileMaxAge = 5 * time.Minute

// counted is an in-process Known on a store whose commands a test counts, with a clock that
// stands still unless the test moves it: what the service keeps for a few seconds (a key's
// project, the profile endpoint) stays kept, so that counts of commands do not depend on timing.
type counted struct {
	*inProcess
	clock *clocktest.Clock
}

// inProcessKnown serves Known's HTTP handler on a store whose commands monitor sees.
func inProcessKnown(tb testing.TB, monitor *event.CommandMonitor) *counted {
	tb.Helper()
	clock := clocktest.New(time.Now().UTC())
	k := startMonitored(tb, monitor, func(o *service.Options) {
		o.ProfileConcurrency, o.ProfileMaxAge, o.Now = 4, profileMaxAge, clock.Now
	})
	return &counted{inProcess: k, clock: clock}
}

// settle waits until the work a request left behind is done (background profile checks, the
// publishing of change events), so that none of it lands inside a counted read.
func (k *counted) settle(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := k.svc.Wait(ctx); err != nil {
		tb.Fatalf("background profile checks did not end: %v", err)
	}
	k.store.WaitPublished()
}

// TestDashboardCommandCount: the inbox of 100 conversations makes no more MongoDB commands than
// the inbox of 10, counted by a command monitor on the store: the same number with fresh
// profiles, at most 5 more when every profile on the page is stale and fetched again (they are
// stored in bulk: one command on MongoDB, one per 20 on FerretDB).
func TestDashboardCommandCount(t *testing.T) {
	counter := &commandCounter{}
	k := inProcessKnown(t, counter.monitor())
	api := newProfileAPI(t, time.Millisecond)
	appID, key := createProject(t, k.URL, "Inbox")
	setProfileEndpoint(t, k.URL, key, api, false)
	seedInbox(t, k.URL, appID, 100)
	setProfileEndpoint(t, k.URL, key, api, true)
	k.settle(t)

	cold, coldNames := counter.during(func() { readInbox(t, k.URL, key, 100) })
	if total, distinct, _, _ := api.counts(); total != 100 || distinct != 100 {
		t.Fatalf("first read: %d fetches for %d ids, want 100 and 100", total, distinct)
	}
	t.Logf("first read of 100 (100 new profiles fetched and applied): %d commands", cold)
	t.Logf("  %s", coldNames)
	k.settle(t)
	readInbox(t, k.URL, key, 10) // warm

	var counts10, counts100 []int
	for i := range 3 {
		n10, names10 := counter.during(func() { readInbox(t, k.URL, key, 10) })
		n100, names100 := counter.during(func() { readInbox(t, k.URL, key, 100) })
		counts10, counts100 = append(counts10, n10), append(counts100, n100)
		if n10 != n100 || i == 0 {
			t.Logf("fresh run %d: 10 conversations %d commands (%s)", i, n10, names10)
			t.Logf("fresh run %d: 100 conversations %d commands (%s)", i, n100, names100)
		}
	}
	t.Logf("fresh inbox reads: 10 conversations %v commands, 100 conversations %v", counts10, counts100)
	for i := range counts10 {
		if counts10[i] != counts100[i] {
			t.Errorf("fresh run %d: %d commands for 10 conversations, %d for 100; want the same", i, counts10[i], counts100[i])
		}
	}
	if total, _, _, _ := api.counts(); total != 100 {
		t.Errorf("%d fetches after fresh reads, want still 100", total)
	}

	// Every profile on the page stale: each is fetched again (unchanged) and stored in bulk.
	stale := func(n int) (int, string) {
		k.clock.Advance(profileMaxAge + time.Second)
		before, _, _, _ := api.counts()
		defer func() {
			if t.Failed() {
				for _, l := range k.errorLines(t) {
					t.Logf("Known logged: %v", l)
				}
			}
		}()
		c, names := counter.during(func() { readInbox(t, k.URL, key, n) })
		if after, _, _, _ := api.counts(); after-before != n {
			t.Fatalf("stale read of %d: %d fetches, want %d", n, after-before, n)
		}
		k.settle(t)
		return c, names
	}
	s10, names10 := stale(10)
	s100, names100 := stale(100)
	t.Logf("stale inbox reads: 10 conversations %d commands (%s)", s10, names10)
	t.Logf("stale inbox reads: 100 conversations %d commands (%s)", s100, names100)
	if s100 > s10+5 {
		t.Errorf("stale reads: %d commands for 100 conversations, %d for 10; want at most 5 more", s100, s10)
	}
}

// TestDashboardPrivateEndpointRefused: without KNOWN_ALLOW_PRIVATE_NETWORKS a user API on a
// loopback address is never asked; the profile is ERROR and the project says why.
func TestDashboardPrivateEndpointRefused(t *testing.T) {
	api := newProfileAPI(t, time.Millisecond)
	env := widgetEnv(t)
	env["KNOWN_LOG_LEVEL"] = "warn"
	k := startRun(t, env) // KNOWN_ALLOW_PRIVATE_NETWORKS unset: false
	appID, key := createProject(t, k.URL, "Private")
	setProfileEndpoint(t, k.URL, key, api, true)
	seedOne(t, k.URL, appID, "private-1") // identify starts a background fetch
	r := gql(t, k.URL, key, `{ conversations(first: 1) { nodes { user { externalProfile { status email } } } }
		project { userDataEndpoint { lastStatus lastError } } }`, nil)
	var data struct {
		Conversations struct {
			Nodes []struct {
				User struct {
					ExternalProfile *struct {
						Status string
						Email  *string
					}
				}
			}
		}
		Project struct {
			UserDataEndpoint struct {
				LastStatus *string
				LastError  *string
			}
		}
	}
	r.decode(t, &data)
	if len(data.Conversations.Nodes) != 1 {
		t.Fatalf("conversations: %s", r.Body)
	}
	if p := data.Conversations.Nodes[0].User.ExternalProfile; p == nil || p.Status != "ERROR" || p.Email != nil {
		t.Errorf("externalProfile = %+v, want ERROR without data", p)
	}
	ep := data.Project.UserDataEndpoint
	if deref(ep.LastStatus) != "ERROR" || !strings.Contains(deref(ep.LastError), "KNOWN_ALLOW_PRIVATE_NETWORKS") {
		t.Errorf("userDataEndpoint lastStatus %s lastError %s; want ERROR naming KNOWN_ALLOW_PRIVATE_NETWORKS", deref(ep.LastStatus), deref(ep.LastError))
	}
	if total, _, _, _ := api.counts(); total != 0 {
		t.Errorf("the loopback user API got %d requests, want 0", total)
	}
}
