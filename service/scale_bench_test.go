package service_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/service"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/storetest"
)

// Issue 10: at 20,000 users with a conversation each, a dashboard page of 10, a new user's
// identify and a returning user's identify each cost at most 2× what they cost at 500 users.
// On the embedded store (FerretDB on SQLite) a command whose filter is not exactly {_id} reads
// the whole collection (storetest.Auditor), so what decides the ratio is which commands scan.

// scaleEnv is a service on a fresh database seeded with n users, each with a conversation, a
// company and an organization (ten users to each), and an auditor of the commands it sends.
type scaleEnv struct {
	*env
	n      int
	audit  *storetest.Auditor
	caller known.Caller
	// next numbers the users the benchmark makes; returning cycles through the seeded ones.
	next, returning int
}

// newScaleEnv seeds n users on the embedded store, whose costs the benchmark and the command
// rules are about, whatever database the other tests use.
func newScaleEnv(tb testing.TB, n int) *scaleEnv {
	tb.Helper()
	a := &storetest.Auditor{}
	st := storetest.OpenEmbedded(tb, a.Monitor())
	e := &env{svc: service.New(st, service.Options{Secret: testSecret, AdminToken: adminToken}), store: st}
	e.project = e.newProject(tb, "Scale")
	e.ctx = e.as(tb, e.project.SecretKey)
	seedScale(tb, st, e.project.Project.ID, n)
	return &scaleEnv{env: e, n: n, audit: a, caller: known.CallerFromContext(e.ctx)}
}

// seedScale stores n users of project p in bulk, shaped as identify leaves them: externalId
// u<i> and email u<i>@example.com (claimed), one visitor, one company and one organization of
// n/10 each, and one conversation with a visitor's message.
func seedScale(tb testing.TB, st *store.Store, p known.ProjectID, n int) {
	tb.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	var seed store.Seed
	groups := max(n/10, 1)
	for i := range groups {
		name := fmt.Sprintf("Company %d", i)
		seed.Companies = append(seed.Companies, &known.Company{ID: known.CompanyID(store.NewID()), ProjectID: p,
			ExternalID: fmt.Sprintf("c%d", i), Name: &name, Metadata: map[string]any{"plan": "pro"}, CreatedAt: now, UpdatedAt: now})
		seed.Organizations = append(seed.Organizations, &known.Organization{ID: known.OrganizationID(store.NewID()), ProjectID: p,
			ExternalID: fmt.Sprintf("o%d", i), Name: fmt.Sprintf("Org %d", i), Attrs: map[string]any{}, CreatedAt: now, UpdatedAt: now})
	}
	for i := range n {
		ext, email, name := fmt.Sprintf("u%d", i), fmt.Sprintf("u%d@example.com", i), fmt.Sprintf("User %d", i)
		company := seed.Companies[i%groups].ID
		u := &known.User{ID: known.UserID(store.NewID()), ProjectID: p, ExternalID: (*known.ExternalID)(&ext), Email: &email,
			Name: &name, VisitorIDs: []known.VisitorID{known.VisitorID(fmt.Sprintf("v_seed%d", i))},
			Identities: []known.Identity{
				{Kind: known.IdentityExternalID, Value: ext, Source: known.SourceWidget, At: now},
				{Kind: known.IdentityEmail, Value: email, Source: known.SourceWidget, At: now},
			},
			Metadata: map[string]any{"plan": "pro"}, CompanyIDs: []known.CompanyID{company}, ActiveCompanyID: &company,
			OrganizationIDs: []known.OrganizationID{seed.Organizations[i%groups].ID}, CreatedAt: now, UpdatedAt: now, LastSeenAt: &now}
		seed.Users = append(seed.Users, u)
		c := &known.Conversation{ID: known.ConversationID(store.NewID()), ProjectID: p, UserID: &u.ID, VisitorID: u.VisitorIDs[0],
			Status: known.ConversationOpen, CreatedAt: now, UpdatedAt: now}
		c.Last = &known.Message{ID: known.MessageID(store.NewID()), ProjectID: p, ConversationID: c.ID,
			Body: "Hello, I need help with my order", Author: known.AuthorVisitor, CreatedAt: now}
		seed.Conversations = append(seed.Conversations, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := st.SeedBulk(ctx, seed); err != nil {
		tb.Fatalf("seeding %d users: %v", n, err)
	}
}

// newUser is a new user's first identify, with a new company: a widget without a session.
func (s *scaleEnv) newUser(tb testing.TB) {
	s.next++
	in := service.IdentifyInput{AppID: s.appID(), UserID: str(fmt.Sprintf("new%d", s.next)),
		Email: str(fmt.Sprintf("new%d@example.com", s.next)), Name: str("New User"),
		Company: &service.CompanyInput{ID: fmt.Sprintf("newc%d", s.next), Name: str("New Co")}}
	ss, err := s.svc.Identify(widgetCtx(""), in)
	if err != nil || ss.UserID == nil {
		tb.Fatalf("new user's identify: %v", err)
	}
}

// returningUser is a seeded user's identify by its userId from a new browser (no session).
func (s *scaleEnv) returningUser(tb testing.TB) {
	// A different seeded user each time, from all over the collection: the embedded store
	// finds a document by reading the table in order until it meets it.
	s.returning++
	i := s.returning * 7919 % s.n
	ss, err := s.svc.Identify(widgetCtx(""), service.IdentifyInput{AppID: s.appID(), UserID: str(fmt.Sprintf("u%d", i))})
	if err != nil || ss.UserID == nil {
		tb.Fatalf("returning user's identify: %v", err)
	}
}

// dashboardPage makes the service calls of the inbox query conversations(first: 10) with each
// conversation's user and the user's companies, organizations and stored external profile, as
// the resolvers and dataloaders make them: the page, then the users, then the rest together.
func (s *scaleEnv) dashboardPage(tb testing.TB) {
	// A context of its own: the env's expires a minute after it was made.
	ctx, cancel := context.WithTimeout(known.NewContextWithCaller(context.Background(), s.caller), time.Minute)
	defer cancel()
	cs, _, _, err := s.svc.ProjectConversations(ctx, known.Page{First: 10})
	if err != nil || len(cs) != 10 {
		tb.Fatalf("conversations: %d, %v", len(cs), err)
	}
	var ids []known.UserID
	for _, c := range cs {
		ids = append(ids, *c.UserID)
	}
	users, err := s.svc.UsersByIDs(ctx, ids)
	if err != nil {
		tb.Fatal(err)
	}
	var companies []known.CompanyID
	var orgs []known.OrganizationID
	for _, u := range users {
		if u == nil {
			tb.Fatal("a conversation's user is missing")
		}
		companies = append(companies, u.CompanyIDs...)
		orgs = append(orgs, u.OrganizationIDs...)
	}
	var wg sync.WaitGroup
	var cerr, oerr, perr error
	wg.Go(func() { _, cerr = s.svc.CompaniesByIDs(ctx, companies) })
	wg.Go(func() { _, oerr = s.svc.OrganizationsByIDs(ctx, orgs) })
	wg.Go(func() { _, perr = s.svc.ExternalProfiles(ctx, service.ProfileKeys(users...)) })
	wg.Wait()
	if cerr != nil || oerr != nil || perr != nil {
		tb.Fatal(cerr, oerr, perr)
	}
}

// scaleOps are the operations the issue bounds.
var scaleOps = []struct {
	name string
	run  func(*scaleEnv, testing.TB)
}{
	{"NewUserIdentify", (*scaleEnv).newUser},
	{"ReturningUserIdentify", (*scaleEnv).returningUser},
	{"DashboardPage10", (*scaleEnv).dashboardPage},
}

// BenchmarkScale seeds 500 and 20,000 users (in bulk, seconds) and then, in each iteration,
// runs every operation at both sizes in turn, so that both meet the same machine. It reports
// per operation the time at each size (the request's own time; the events it queued are
// published before the next operation starts, and that time is reported apart as publish-ns),
// the ratio 20000/500, and the commands the request sent, listing those that scan. It asserts
// no time. Run it with a small fixed count: go test -run XXX -bench Scale -benchtime 20x ./service/
func BenchmarkScale(b *testing.B) {
	sizes := []int{500, 20000}
	t0 := time.Now()
	envs := make([]*scaleEnv, len(sizes))
	for i, n := range sizes {
		envs[i] = newScaleEnv(b, n)
	}
	b.Logf("seeded %v users in %v", sizes, time.Since(t0).Round(time.Millisecond))
	type stat struct {
		d, publish time.Duration
		cmds       int
		scans      map[string]bool
	}
	stats := map[string]*stat{}
	key := func(op string, n int) string { return fmt.Sprintf("%s/%d", op, n) }
	for _, op := range scaleOps {
		for _, e := range envs {
			stats[key(op.name, e.n)] = &stat{scans: map[string]bool{}}
			start := time.Now()
			op.run(e, b) // warm up: caches, connections
			e.store.WaitPublished()
			b.Logf("warm-up %s at %d: %v\n%s", op.name, e.n, time.Since(start).Round(time.Millisecond), storetest.Summary(e.audit.Commands()))
			e.audit.Reset()
		}
	}
	b.ResetTimer()
	for b.Loop() {
		for _, op := range scaleOps {
			for _, e := range envs {
				st := stats[key(op.name, e.n)]
				e.audit.Reset()
				start := time.Now()
				op.run(e, b)
				st.d += time.Since(start)
				cmds := e.audit.Commands()
				start = time.Now()
				e.store.WaitPublished()
				st.publish += time.Since(start)
				st.cmds += len(cmds)
				for _, c := range cmds {
					if !c.Constant {
						st.scans[c.String()] = true
					}
				}
			}
		}
	}
	b.StopTimer()
	var report strings.Builder
	for _, op := range scaleOps {
		small, large := stats[key(op.name, sizes[0])], stats[key(op.name, sizes[1])]
		ratio := float64(large.d) / float64(small.d)
		per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N) }
		b.ReportMetric(per(small.d), op.name+"-500-ns/op")
		b.ReportMetric(per(large.d), op.name+"-20000-ns/op")
		b.ReportMetric(ratio, op.name+"-20000/500")
		scans := slices.Sorted(maps.Keys(large.scans))
		fmt.Fprintf(&report, "\n%-22s 500: %8.2f ms  20000: %8.2f ms  ratio %5.2f  commands/op %.1f  (publish after: %.2f ms / %.2f ms)  scanning: %d %v",
			op.name, per(small.d)/1e6, per(large.d)/1e6, ratio, float64(large.cmds)/float64(b.N),
			per(small.publish)/1e6, per(large.publish)/1e6, len(scans), scans)
	}
	b.Logf("%d iterations:%s", b.N, report.String())
}
