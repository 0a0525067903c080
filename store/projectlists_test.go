package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/storetest"
	"github.com/rs/zerolog"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
)

// pager is one of the store's pages of a project list (ProjectUsers, ProjectCompanies, …).
type pager[T any] func(ctx context.Context, p known.ProjectID, page known.Page) ([]T, []string, bool, error)

// readList pages project p's list with pages of first, following each page's last cursor, and
// returns the ids in the order read; it fails the test where hasNext or a cursor is wrong.
func readList[T any](t *testing.T, read pager[T], id func(T) string, p known.ProjectID, first int) []string {
	t.Helper()
	ctx := context.Background()
	var got []string
	page := known.Page{First: first}
	for round := 0; ; round++ {
		items, after, more, err := read(ctx, p, page)
		if err != nil {
			t.Fatalf("page %d: %v", round, err)
		}
		if len(after) != len(items) {
			t.Fatalf("page %d: %d cursors for %d items", round, len(after), len(items))
		}
		for _, it := range items {
			got = append(got, id(it))
		}
		if round > 0 && len(items) == 0 {
			t.Fatalf("page %d is empty, but the page before said hasNext", round)
		}
		if !more {
			if len(items) > first {
				t.Fatalf("page %d: %d items for first %d", round, len(items), first)
			}
			return got
		}
		if len(items) != first {
			t.Fatalf("page %d: hasNext with %d items of %d", round, len(items), first)
		}
		page.After = after[len(after)-1]
	}
}

func userID(u *known.User) string                 { return string(u.ID) }
func companyID(c *known.Company) string           { return string(c.ID) }
func organizationID(o *known.Organization) string { return string(o.ID) }

func reversed(ids []string) []string {
	out := slices.Clone(ids)
	slices.Reverse(out)
	return out
}

// newUser stores a new user of project p: by CreateUser with an email when email is set, else
// an anonymous record of visitor v (InsertUser, as the widget makes one).
func newUser(t testing.TB, st *store.Store, p known.ProjectID, email, v string) known.UserID {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	if email == "" {
		u := &known.User{ID: store.AnonymousUserID(p, known.VisitorID(v)), ProjectID: p, VisitorIDs: []known.VisitorID{known.VisitorID(v)},
			Metadata: map[string]any{}, CreatedAt: now, UpdatedAt: now}
		if err := st.InsertUser(ctx, u); err != nil {
			t.Fatalf("InsertUser: %v", err)
		}
		return u.ID
	}
	u := &known.User{ID: known.UserID(store.NewID()), ProjectID: p, Metadata: map[string]any{}, CreatedAt: now, UpdatedAt: now,
		Identities: []known.Identity{{Kind: known.IdentityEmail, Value: email, Source: known.SourceAPI, At: now}}}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	return u.ID
}

// TestUserList: the project's list pages its users, made by CreateUser and as anonymous
// records (whose ids are derived, not in the order they were made), newest first across
// bucket boundaries; following the cursors gives each user once; users deleted or merged away
// are skipped; other projects' users are not in it; a bad cursor is BAD_USER_INPUT on after.
func TestUserList(t *testing.T) {
	st := storetest.Open(t, nil)
	ctx := context.Background()
	var ids []string
	gone := map[string]bool{}
	for i := range 230 {
		email := ""
		if i%3 != 0 {
			email = fmt.Sprintf("u%d@example.com", i)
		}
		id := newUser(t, st, "p", email, fmt.Sprintf("v%d", i))
		ids = append(ids, string(id))
		if i%40 == 0 {
			newUser(t, st, "other", fmt.Sprintf("o%d@example.com", i), "")
		}
		if i >= 90 && i < 115 { // a run across a bucket boundary and several pages
			gone[string(id)] = true
		}
	}
	n := 0
	for id := range gone {
		var err error
		if n++; n%2 == 0 {
			err = st.DeleteUser(ctx, "p", known.UserID(id))
		} else {
			err = st.DeleteMergedUser(ctx, known.UserID(id))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var want []string
	for _, id := range reversed(ids) {
		if !gone[id] {
			want = append(want, id)
		}
	}
	for _, first := range []int{100, 7, 30, 205} {
		t.Run(fmt.Sprintf("First%d", first), func(t *testing.T) {
			if got := readList(t, st.ProjectUsers, userID, "p", first); !slices.Equal(got, want) {
				t.Errorf("read %d users, want the %d newest first:\n got %v\nwant %v", len(got), len(want), got, want)
			}
		})
	}
	t.Run("BadCursor", func(t *testing.T) {
		for _, after := range []string{"x", "0", ids[0]} {
			_, _, _, err := st.ProjectUsers(ctx, "p", known.Page{First: 10, After: after})
			var e *known.Error
			if known.ErrorCode(err) != known.BadUserInput || !asError(err, &e) || !slices.Equal(e.Field, []string{"after"}) {
				t.Errorf("after %q: %v, want BAD_USER_INPUT on after", after, err)
			}
		}
	})
}

// TestUserListRecreatedAnonymousRecord: an anonymous record deleted and made again (its id is
// derived from its visitor, so it comes back under the same id) is listed once, at its new
// place.
func TestUserListRecreatedAnonymousRecord(t *testing.T) {
	st := storetest.Open(t, nil)
	ctx := context.Background()
	again := newUser(t, st, "p", "", "back")
	other := newUser(t, st, "p", "a@example.com", "")
	if err := st.DeleteUser(ctx, "p", again); err != nil {
		t.Fatal(err)
	}
	if got := newUser(t, st, "p", "", "back"); got != again {
		t.Fatalf("the record came back as %s, not %s", got, again)
	}
	want := []string{string(again), string(other)}
	for _, first := range []int{1, 10} {
		if got := readList(t, st.ProjectUsers, userID, "p", first); !slices.Equal(got, want) {
			t.Errorf("pages of %d: %v, want %v", first, got, want)
		}
	}
}

// TestUserListConcurrentInserts: users made at once each get a position of their own, and
// concurrent first writes of one visitor's record, of which one inserts, list it once.
func TestUserListConcurrentInserts(t *testing.T) {
	st := storetest.Open(t, nil)
	ctx := context.Background()
	const n = 30
	var wg sync.WaitGroup
	ids := make([]string, n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			ids[i] = string(newUser(t, st, "p", fmt.Sprintf("c%d@example.com", i), ""))
		}()
		go func() {
			defer wg.Done()
			now := time.Now().UTC()
			u := &known.User{ID: store.AnonymousUserID("p", "same"), ProjectID: "p", VisitorIDs: []known.VisitorID{"same"},
				Metadata: map[string]any{}, CreatedAt: now, UpdatedAt: now}
			if err := st.InsertUser(ctx, u); err != nil && known.ErrorCode(err) != known.AlreadyExists {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	want := append(slices.Clone(ids), string(store.AnonymousUserID("p", "same")))
	got := readList(t, st.ProjectUsers, userID, "p", 100)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("listed %d users %v, want %d %v", len(got), got, len(want), want)
	}
}

// TestCompanyAndOrganizationLists: companies and organizations are listed once each when an
// upsert makes them (UpsertCompany, UpdateCompany with a metadata limit, UpsertOrganization),
// not when one updates them, newest first across buckets; concurrent upserts of one new
// company or organization list it once.
func TestCompanyAndOrganizationLists(t *testing.T) {
	st := storetest.Open(t, nil)
	ctx := context.Background()
	now := time.Now().UTC()
	var companies, orgs []string
	name := func(s string) *string { return &s }
	for i := range 130 {
		ext := fmt.Sprintf("c%d", i)
		up := store.CompanyUpdate{Name: name(ext)}
		if i%2 == 0 {
			up = store.CompanyUpdate{Metadata: map[string]any{"k": i}, MaxMetadataKeys: 5}
		}
		c, err := st.UpsertCompany(ctx, "p", ext, up, now)
		if err != nil {
			t.Fatal(err)
		}
		companies = append(companies, string(c.ID))
		o, err := st.UpsertOrganization(ctx, "p", ext, ext, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		orgs = append(orgs, string(o.ID))
		if i%10 == 0 { // updates of existing ones, both ways, and another project's
			if _, err := st.UpsertCompany(ctx, "p", "c0", store.CompanyUpdate{Stage: name("lead")}, now); err != nil {
				t.Fatal(err)
			}
			if _, err := st.UpsertCompany(ctx, "p", "c0", store.CompanyUpdate{Metadata: map[string]any{"x": 1}, MaxMetadataKeys: 5}, now); err != nil {
				t.Fatal(err)
			}
			if _, err := st.UpsertOrganization(ctx, "p", "c0", "renamed", nil, now); err != nil {
				t.Fatal(err)
			}
			if _, err := st.UpsertCompany(ctx, "other", ext, store.CompanyUpdate{}, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	const racers = 20
	var wg sync.WaitGroup
	raced := make([]string, 2*racers)
	for i := range racers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			up := store.CompanyUpdate{Name: name("race")}
			if i%2 == 0 {
				up = store.CompanyUpdate{Metadata: map[string]any{fmt.Sprint(i): 1}, MaxMetadataKeys: 50}
			}
			c, err := st.UpsertCompany(ctx, "p", "race", up, now)
			if err != nil {
				t.Error(err)
				return
			}
			raced[i] = string(c.ID)
		}()
		go func() {
			defer wg.Done()
			o, err := st.UpsertOrganization(ctx, "p", "race", "race", nil, now)
			if err != nil {
				t.Error(err)
				return
			}
			raced[racers+i] = string(o.ID)
		}()
	}
	wg.Wait()
	companies = append(companies, raced[0])
	orgs = append(orgs, raced[racers])
	for _, first := range []int{100, 9} {
		if got := readList(t, st.ProjectCompanies, companyID, "p", first); !slices.Equal(got, reversed(companies)) {
			t.Errorf("companies in pages of %d: %d %v, want %d newest first %v", first, len(got), got, len(companies), reversed(companies))
		}
		if got := readList(t, st.ProjectOrganizations, organizationID, "p", first); !slices.Equal(got, reversed(orgs)) {
			t.Errorf("organizations in pages of %d: %d %v, want %d newest first %v", first, len(got), got, len(orgs), reversed(orgs))
		}
	}
	if got := readList(t, st.ProjectCompanies, companyID, "other", 100); len(got) != 13 {
		t.Errorf("the other project lists %d companies, want 13", len(got))
	}
}

// TestProjectListCommands: a page of the users, companies or organizations list, or of a
// conversation's messages, reads only by _id: the head and the buckets it spans with find
// {_id: <string>}, then its items by _id (messages with their shard key).
func TestProjectListCommands(t *testing.T) {
	var mu sync.Mutex
	var on bool
	var cmds []string
	monitor := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		mu.Lock()
		defer mu.Unlock()
		if on && e.CommandName == "find" {
			cmds = append(cmds, "find "+e.Command.Lookup("find").StringValue()+" "+filterShape(e.Command.Lookup("filter").Document()))
		} else if on {
			cmds = append(cmds, e.CommandName)
		}
	}}
	st := storetest.Open(t, monitor)
	ctx := context.Background()
	now := time.Now().UTC()
	conv, err := st.Conversation(ctx, "p", startConversation(t, st, ctx, "p", ""))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 150 {
		addMessage(t, st, conv)
		newUser(t, st, "p", fmt.Sprintf("u%d@example.com", i), "")
		if _, err := st.UpsertCompany(ctx, "p", fmt.Sprint(i), store.CompanyUpdate{}, now); err != nil {
			t.Fatal(err)
		}
		if _, err := st.UpsertOrganization(ctx, "p", fmt.Sprint(i), "o", nil, now); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		coll string
		read func(known.Page) (int, error)
	}{
		{"users", func(pg known.Page) (int, error) { us, _, _, err := st.ProjectUsers(ctx, "p", pg); return len(us), err }},
		{"companies", func(pg known.Page) (int, error) {
			cs, _, _, err := st.ProjectCompanies(ctx, "p", pg)
			return len(cs), err
		}},
		{"organizations", func(pg known.Page) (int, error) {
			os, _, _, err := st.ProjectOrganizations(ctx, "p", pg)
			return len(os), err
		}},
		{"messages", func(pg known.Page) (int, error) {
			ms, _, _, err := st.ConversationMessages(ctx, conv, pg)
			return len(ms), err
		}},
	} {
		t.Run(c.coll, func(t *testing.T) {
			mu.Lock()
			on, cmds = true, nil
			mu.Unlock()
			n, err := c.read(known.Page{First: 40, After: "120"}) // 119…80: buckets 1 and 0
			mu.Lock()
			on = false
			got := slices.Clone(cmds)
			mu.Unlock()
			if err != nil || n != 40 {
				t.Fatalf("%d items, %v; want 40", n, err)
			}
			want := slices.Repeat([]string{"find lists {_id: string}"}, 3)
			if len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
				t.Fatalf("commands %q, want %q first", got, want)
			}
			rest := got[len(want):]
			if len(rest) == 0 {
				t.Errorf("no read of the %s in %q", c.coll, got)
			}
			byIDs := "find " + c.coll + " {_id: {$in: array}}"
			if c.coll == "messages" { // with their shard key
				byIDs = "find messages {_id: {$in: array}, conversationId: string}"
			}
			for _, cmd := range rest {
				if cmd != byIDs && cmd != "find "+c.coll+" {_id: string}" {
					t.Errorf("command %q reads %s other than by _id", cmd, c.coll)
				}
			}
		})
	}
}

// TestSeedBulkLists: SeedBulk lists the users, companies and organizations it seeds, oldest
// first by id, and each user's conversations in the user's list; DeleteProject deletes those
// lists.
func TestSeedBulkLists(t *testing.T) {
	st := storetest.Open(t, nil)
	ctx := context.Background()
	now := time.Now().UTC()
	var seed store.Seed
	var users, companies, orgs []string
	for i := range 120 {
		u := &known.User{ID: known.UserID(store.NewID()), ProjectID: "app_s", Metadata: map[string]any{}, CreatedAt: now, UpdatedAt: now}
		c := &known.Company{ID: known.CompanyID(store.NewID()), ProjectID: "app_s", ExternalID: fmt.Sprint(i), CreatedAt: now, UpdatedAt: now}
		o := &known.Organization{ID: known.OrganizationID(store.NewID()), ProjectID: "app_s", ExternalID: fmt.Sprint(i), CreatedAt: now, UpdatedAt: now}
		seed.Users, seed.Companies, seed.Organizations = append(seed.Users, u), append(seed.Companies, c), append(seed.Organizations, o)
		users, companies, orgs = append(users, string(u.ID)), append(companies, string(c.ID)), append(orgs, string(o.ID))
	}
	talker := seed.Users[7].ID
	var talks []known.ConversationID
	for range 3 {
		c := &known.Conversation{ID: known.ConversationID(store.NewID()), ProjectID: "app_s", UserID: &talker, VisitorID: "v",
			Status: known.ConversationOpen, CreatedAt: now, UpdatedAt: now}
		seed.Conversations = append(seed.Conversations, c)
		talks = append(talks, c.ID)
	}
	if err := st.CreateProject(ctx, &known.Project{ID: "app_s", Name: "s", CreatedAt: now}, "hash-s", "sealed"); err != nil {
		t.Fatal(err)
	}
	if err := st.SeedBulk(ctx, seed); err != nil {
		t.Fatal(err)
	}
	if got := readList(t, st.ProjectUsers, userID, "app_s", 50); !slices.Equal(got, reversed(users)) {
		t.Errorf("seeded users listed %v, want %v", got, reversed(users))
	}
	if got := readList(t, st.ProjectCompanies, companyID, "app_s", 50); !slices.Equal(got, reversed(companies)) {
		t.Errorf("seeded companies listed %v, want %v", got, reversed(companies))
	}
	if got := readList(t, st.ProjectOrganizations, organizationID, "app_s", 50); !slices.Equal(got, reversed(orgs)) {
		t.Errorf("seeded organizations listed %v, want %v", got, reversed(orgs))
	}
	byUser, err := st.UserConversationIDs(ctx, "app_s", []known.UserID{talker})
	slices.Reverse(talks) // newest first
	if err != nil || !slices.Equal(byUser[talker], talks) {
		t.Errorf("a seeded user's conversations listed %v (%v), want %v", byUser[talker], err, talks)
	}
	newUser(t, st, "app_s", "late@example.com", "")
	if err := st.DeleteProject(ctx, "app_s"); err != nil {
		t.Fatal(err)
	}
	if n, err := st.ListDocuments(ctx, "app_s"); err != nil || n != 0 {
		t.Errorf("the deleted project keeps %d list documents (%v)", n, err)
	}
}

// TestMigrateProjectLists: users, companies and organizations written before projects kept
// lists of them (inserted here straight into their collections, in no order) are listed on
// start, newest first by id, across buckets, each project its own, also a project whose
// conversations are listed already; an anonymous record that the start moves to its derived id
// is listed under it; what an interrupted start left in a bucket does not show; a second start
// changes nothing, and new ones go on the end.
func TestMigrateProjectLists(t *testing.T) {
	ctx := context.Background()
	db, raw := rawDatabase(t)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	insert := func(coll string, docs ...any) {
		t.Helper()
		if _, err := raw.Collection(coll).InsertMany(ctx, docs); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"app_p", "app_q", "app_empty"} {
		insert("projects", bson.M{"_id": p, "name": p, "createdAt": at})
	}
	// app_q's conversations are listed already (the version before this one).
	insert("lists", bson.M{"_id": "app_q|conversations|h", "n": int64(0)})
	// A bucket of a start that stopped before writing its list's head.
	insert("lists", bson.M{"_id": "app_p|users|0", "e": bson.M{"1": "stale", "99": "stale"}})

	type key struct {
		p    known.ProjectID
		list string
	}
	want := map[key][]string{}
	var users, companies, orgs []any
	for i := range 133 {
		p := "app_p"
		if i%50 == 7 {
			p = "app_q"
		}
		uid, cid, oid := bson.NewObjectID().Hex(), bson.NewObjectID().Hex(), bson.NewObjectID().Hex()
		u := bson.M{"_id": uid, "projectId": p, "identities": bson.A{}, "visitorIds": bson.A{}, "metadata": bson.M{},
			"anonymous": false, "createdAt": at, "updatedAt": at}
		if i == 60 { // an anonymous record under a random id, which the start moves
			u["anonymous"], u["visitorIds"] = true, bson.A{"legacy-visitor"}
			uid = string(store.AnonymousUserID(known.ProjectID(p), "legacy-visitor"))
		}
		users = append(users, u)
		companies = append(companies, bson.M{"_id": cid, "projectId": p, "externalId": fmt.Sprint(i), "metadata": bson.M{},
			"rev": int64(1), "createdAt": at, "updatedAt": at})
		orgs = append(orgs, bson.M{"_id": oid, "projectId": p, "externalId": fmt.Sprint(i), "name": "o", "createdAt": at, "updatedAt": at})
		for list, id := range map[string]string{"users": uid, "companies": cid, "organizations": oid} {
			k := key{known.ProjectID(p), list}
			want[k] = append(want[k], id)
		}
	}
	for _, docs := range [][]any{users, companies, orgs} {
		rand.New(rand.NewPCG(1, 2)).Shuffle(len(docs), func(i, j int) { docs[i], docs[j] = docs[j], docs[i] })
	}
	insert("users", users...)
	insert("companies", companies...)
	insert("organizations", orgs...)
	for k, ids := range want {
		slices.Sort(ids)
		want[k] = reversed(ids)
	}

	for run := range 3 {
		st, err := store.Open(ctx, store.Config{URI: storetest.URI(), Database: db, Log: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []known.ProjectID{"app_p", "app_q", "app_empty"} {
			got := map[string][]string{
				"users":         readList(t, st.ProjectUsers, userID, p, 100),
				"companies":     readList(t, st.ProjectCompanies, companyID, p, 100),
				"organizations": readList(t, st.ProjectOrganizations, organizationID, p, 100),
			}
			for list, ids := range got {
				if w := want[key{p, list}]; !slices.Equal(ids, w) {
					t.Errorf("run %d: project %s lists %d %s %v, want %d %v", run, p, len(ids), list, ids, len(w), w)
				}
			}
		}
		if run == 1 {
			u := newUser(t, st, "app_p", "new@example.com", "")
			c, err := st.UpsertCompany(ctx, "app_p", "new", store.CompanyUpdate{}, time.Now().UTC())
			if err != nil {
				t.Fatal(err)
			}
			o, err := st.UpsertOrganization(ctx, "app_p", "new", "new", nil, time.Now().UTC())
			if err != nil {
				t.Fatal(err)
			}
			for list, id := range map[string]string{"users": string(u), "companies": string(c.ID), "organizations": string(o.ID)} {
				k := key{"app_p", list}
				want[k] = append([]string{id}, want[k]...)
			}
		}
		if err := st.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestUnlistedUserKeepsItsKeys: when a new user is stored but naming its place in the project's
// list fails (here a bucket that cannot be written), CreateUser reports ErrUnlisted and leaves
// the user's identity keys naming it, so that the caller's next try finds that user rather
// than making a second one.
func TestUnlistedUserKeepsItsKeys(t *testing.T) {
	db, raw := rawDatabase(t)
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{URI: storetest.URI(), Database: db, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	if _, err := raw.Collection("lists").InsertOne(ctx, bson.M{"_id": "app_u|users|0", "e": "not a document"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	email := "unlisted@example.com"
	u := &known.User{ID: known.UserID(store.NewID()), ProjectID: "app_u", Email: &email, Metadata: map[string]any{},
		Identities: []known.Identity{{Kind: known.IdentityEmail, Value: email, Source: known.SourceAPI, At: now}},
		CreatedAt:  now, UpdatedAt: now}
	err = st.CreateUser(ctx, u)
	if !errors.Is(err, store.ErrUnlisted) {
		t.Fatalf("CreateUser with an unwritable list: %v, want ErrUnlisted", err)
	}
	if _, err := st.User(ctx, "app_u", u.ID); err != nil {
		t.Fatalf("the unlisted user is not stored: %v", err)
	}
	owner, err := st.KeyOwner(ctx, "app_u", store.KeyOf(known.IdentityEmail, email))
	if err != nil || owner != string(u.ID) {
		t.Fatalf("the unlisted user's email key names %q (%v), want %s", owner, err, u.ID)
	}
}
