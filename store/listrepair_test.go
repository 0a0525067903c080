package store_test

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/storetest"
	"github.com/rs/zerolog"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// openOn opens a store on database db of the tests' shared embedded store, closed at the
// test's end (closing it twice is harmless).
func openOn(t *testing.T, db string, cfg store.Config) *store.Store {
	t.Helper()
	ctx := context.Background()
	cfg.URI, cfg.Database, cfg.Log = storetest.URI(), db, zerolog.Nop()
	st, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(ctx) })
	return st
}

// breakList makes the list doc's writes fail: a bucket whose e is not a document, or a head
// whose n is not a number.
func breakList(t *testing.T, raw *mongo.Database, doc string) {
	t.Helper()
	field := "e"
	if strings.HasSuffix(doc, "|h") {
		field = "n"
	}
	if _, err := raw.Collection("lists").InsertOne(context.Background(), bson.M{"_id": doc, field: "not a number nor a document"}); err != nil {
		t.Fatal(err)
	}
}

func fixList(t *testing.T, raw *mongo.Database, doc string) {
	t.Helper()
	if _, err := raw.Collection("lists").DeleteOne(context.Background(), bson.M{"_id": doc}); err != nil {
		t.Fatal(err)
	}
}

// timesListed counts the positions of key's list that name id, in the raw buckets.
func timesListed(t *testing.T, raw *mongo.Database, key, id string) int {
	t.Helper()
	ctx := context.Background()
	cur, err := raw.Collection("lists").Find(ctx, bson.M{})
	if err != nil {
		t.Fatal(err)
	}
	var docs []bson.M
	if err := cur.All(ctx, &docs); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range docs {
		b, _ := d["_id"].(string)
		if !strings.HasPrefix(b, key+"|") || strings.HasSuffix(b, "|h") {
			continue
		}
		switch e := d["e"].(type) {
		case bson.D:
			for _, v := range e {
				if v.Value == id {
					n++
				}
			}
		case bson.M:
			for _, v := range e {
				if v == id {
					n++
				}
			}
		}
	}
	return n
}

func repairsLeft(t *testing.T, raw *mongo.Database) int64 {
	t.Helper()
	n, err := raw.Collection("list_repairs").CountDocuments(context.Background(), bson.M{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// repairLists runs a repair pass, which must succeed.
func repairLists(t *testing.T, st *store.Store) {
	t.Helper()
	if _, err := st.RepairLists(context.Background()); err != nil {
		t.Fatalf("RepairLists: %v", err)
	}
}

func emailUser(p known.ProjectID, email string) *known.User {
	now := time.Now().UTC()
	return &known.User{ID: known.UserID(store.NewID()), ProjectID: p, Email: &email, Metadata: map[string]any{},
		Identities: []known.Identity{{Kind: known.IdentityEmail, Value: email, Source: known.SourceAPI, At: now}},
		CreatedAt:  now, UpdatedAt: now}
}

func userIDs(t *testing.T, st *store.Store, p known.ProjectID) []string {
	return readList(t, st.ProjectUsers, func(u *known.User) string { return string(u.ID) }, p, 10)
}

// A user whose place in the project's list could not be named shows in ProjectUsers once the
// list is writable again and a repair has run, at the place its document names; a second
// repair changes nothing.
func TestRepairListsUnlistedUser(t *testing.T) {
	db, raw := rawDatabase(t)
	ctx := context.Background()
	st := openOn(t, db, store.Config{})
	breakList(t, raw, "app_r|users|0")
	u := emailUser("app_r", "repair@example.com")
	if err := st.CreateUser(ctx, u); !errors.Is(err, store.ErrUnlisted) {
		t.Fatalf("CreateUser with an unwritable list: %v, want ErrUnlisted", err)
	}
	if _, err := st.RepairLists(ctx); err == nil {
		t.Fatal("RepairLists with the list still unwritable: no error")
	}
	if n := repairsLeft(t, raw); n != 1 {
		t.Fatalf("%d repair documents, want 1", n)
	}
	fixList(t, raw, "app_r|users|0")
	repairLists(t, st)
	if got := userIDs(t, st, "app_r"); !slices.Equal(got, []string{string(u.ID)}) {
		t.Fatalf("ProjectUsers after the repair: %v, want [%s]", got, u.ID)
	}
	repairLists(t, st)
	if n := timesListed(t, raw, "app_r|users", string(u.ID)); n != 1 {
		t.Fatalf("the user is listed %d times, want 1", n)
	}
	if n := repairsLeft(t, raw); n != 0 {
		t.Fatalf("%d repair documents left, want 0", n)
	}
}

// A company whose listing failed (UpsertCompany) is listed by a repair, once, although the
// client's retry found it stored.
func TestRepairListsUnlistedCompany(t *testing.T) {
	db, raw := rawDatabase(t)
	ctx := context.Background()
	st := openOn(t, db, store.Config{})
	breakList(t, raw, "p|companies|0")
	now := time.Now().UTC()
	if _, err := st.UpsertCompany(ctx, "p", "acme", store.CompanyUpdate{}, now); !errors.Is(err, store.ErrUnlisted) {
		t.Fatalf("UpsertCompany with an unwritable list: %v, want ErrUnlisted", err)
	}
	c, err := st.UpsertCompany(ctx, "p", "acme", store.CompanyUpdate{}, now) // the client's retry
	if err != nil {
		t.Fatal(err)
	}
	fixList(t, raw, "p|companies|0")
	repairLists(t, st)
	repairLists(t, st)
	if got := readList(t, st.ProjectCompanies, func(c *known.Company) string { return string(c.ID) }, "p", 10); !slices.Equal(got, []string{string(c.ID)}) {
		t.Fatalf("ProjectCompanies after the repair: %v, want [%s]", got, c.ID)
	}
}

// A conversation that its project's list could not name shows in ProjectConversations after a
// repair.
func TestRepairListsUnlistedConversation(t *testing.T) {
	db, raw := rawDatabase(t)
	ctx := context.Background()
	st := openOn(t, db, store.Config{})
	breakList(t, raw, "p|conversations|0")
	now := time.Now().UTC()
	c := &known.Conversation{ID: known.ConversationID(store.NewID()), ProjectID: "p", VisitorID: "v", Status: "OPEN",
		CreatedAt: now, UpdatedAt: now}
	if err := st.CreateConversation(ctx, c); err == nil {
		t.Fatal("CreateConversation with an unwritable list: no error")
	}
	fixList(t, raw, "p|conversations|0")
	repairLists(t, st)
	if got := readAll(t, st, "p", 10); !slices.Equal(got, []known.ConversationID{c.ID}) {
		t.Fatalf("ProjectConversations after the repair: %v, want [%s]", got, c.ID)
	}
}

// A repair recorded before a restart is done by the next process, which has only its
// document.
func TestRepairListsAfterRestart(t *testing.T) {
	db, raw := rawDatabase(t)
	ctx := context.Background()
	st := openOn(t, db, store.Config{})
	breakList(t, raw, "app_r|users|0")
	u := emailUser("app_r", "restart@example.com")
	if err := st.CreateUser(ctx, u); !errors.Is(err, store.ErrUnlisted) {
		t.Fatalf("CreateUser with an unwritable list: %v, want ErrUnlisted", err)
	}
	if err := st.Close(ctx); err != nil {
		t.Fatal(err)
	}
	fixList(t, raw, "app_r|users|0")
	next := openOn(t, db, store.Config{})
	repairLists(t, next)
	if got := userIDs(t, next, "app_r"); !slices.Equal(got, []string{string(u.ID)}) {
		t.Fatalf("ProjectUsers after a restart and a repair: %v, want [%s]", got, u.ID)
	}
}

// A repair that appends (no place was reserved: the list's head was unwritable) lists its item
// once however many times it runs, and by however many processes that know it: the first run
// writes the place it takes into the repair's document, and every later run names that place.
func TestRepairListsAppendsOnce(t *testing.T) {
	db, raw := rawDatabase(t)
	ctx := context.Background()
	st := openOn(t, db, store.Config{})
	breakList(t, raw, "p|companies|h")
	now := time.Now().UTC()
	if _, err := st.UpsertCompany(ctx, "p", "acme", store.CompanyUpdate{}, now); !errors.Is(err, store.ErrUnlisted) {
		t.Fatalf("UpsertCompany with an unwritable list head: %v, want ErrUnlisted", err)
	}
	// Another process on the database (an instance on MongoDB, or the next start) reads the
	// repair too.
	other := openOn(t, db, store.Config{})
	fixList(t, raw, "p|companies|h")
	if _, err := other.RepairLists(ctx); err != nil {
		t.Fatal(err)
	}
	repairLists(t, st)
	repairLists(t, st)
	repairLists(t, other)
	c, err := st.UpsertCompany(ctx, "p", "acme", store.CompanyUpdate{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if n := timesListed(t, raw, "p|companies", string(c.ID)); n != 1 {
		t.Fatalf("the company is listed %d times, want 1", n)
	}
	if got := readList(t, st.ProjectCompanies, func(c *known.Company) string { return string(c.ID) }, "p", 10); !slices.Equal(got, []string{string(c.ID)}) {
		t.Fatalf("ProjectCompanies after the repairs: %v, want [%s]", got, c.ID)
	}
	if n := repairsLeft(t, raw); n != 0 {
		t.Fatalf("%d repair documents left, want 0", n)
	}
}

// A repair of an item deleted since lists nothing.
func TestRepairListsSkipsDeleted(t *testing.T) {
	db, raw := rawDatabase(t)
	ctx := context.Background()
	st := openOn(t, db, store.Config{})
	breakList(t, raw, "p|companies|h")
	now := time.Now().UTC()
	if _, err := st.UpsertCompany(ctx, "p", "gone", store.CompanyUpdate{}, now); !errors.Is(err, store.ErrUnlisted) {
		t.Fatalf("UpsertCompany with an unwritable list head: %v, want ErrUnlisted", err)
	}
	c, err := st.UpsertCompany(ctx, "p", "gone", store.CompanyUpdate{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Collection("companies").DeleteOne(ctx, bson.M{"_id": string(c.ID)}); err != nil {
		t.Fatal(err)
	}
	fixList(t, raw, "p|companies|h")
	repairLists(t, st)
	if n := timesListed(t, raw, "p|companies", string(c.ID)); n != 0 {
		t.Fatalf("the deleted company is listed %d times, want 0", n)
	}
	if n := repairsLeft(t, raw); n != 0 {
		t.Fatalf("%d repair documents left, want 0", n)
	}
}

// The successful paths send what they sent before repairs existed: nothing touches
// list_repairs, and the commands are those listed here.
func TestRepairListsCostNothingOnSuccess(t *testing.T) {
	db, _ := rawDatabase(t)
	ctx := context.Background()
	var a storetest.Auditor
	st := openOn(t, db, store.Config{Monitor: a.Monitor()})
	now := time.Now().UTC()
	run := func(name string, want string, f func() error) {
		t.Helper()
		a.Reset()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var got []string
		for _, c := range a.Commands() {
			got = append(got, c.String())
		}
		sort.Strings(got)
		if s := strings.Join(got, "; "); s != want {
			t.Errorf("%s sends %s, want %s", name, s, want)
		}
	}
	u := emailUser("p", "ok@example.com")
	run("InsertUser", "findAndModify lists {_id}; findAndModify lists {_id}; insert users", func() error { return st.InsertUser(ctx, u) })
	run("UpsertCompany", "find identity_keys {_id}; findAndModify companies {_id}; findAndModify lists {_id}; findAndModify lists {_id}; insert identity_keys", func() error { _, err := st.UpsertCompany(ctx, "p", "ok", store.CompanyUpdate{}, now); return err })
	c := &known.Conversation{ID: known.ConversationID(store.NewID()), ProjectID: "p", UserID: &u.ID, VisitorID: "v", Status: "OPEN",
		CreatedAt: now, UpdatedAt: now}
	run("CreateConversation", "findAndModify lists {_id}; findAndModify lists {_id}; findAndModify lists {_id}; findAndModify lists {_id}; findAndModify lists {_id}; findAndModify lists {_id}; insert conversations", func() error { return st.CreateConversation(ctx, c) })
	m := &known.Message{ID: known.MessageID(store.NewID()), ProjectID: "p", ConversationID: c.ID, Body: "hi", Author: "USER", CreatedAt: now}
	run("AddMessage", "find conversations {_id}; findAndModify conversations {_id}; findAndModify lists {_id}; findAndModify lists {_id}; insert messages", func() error { return st.AddMessage(ctx, c, m) })
}

// A message whose conversation's list could not be appended to (its head unwritable: no place
// reserved), an event whose user's list could not name it, and a conversation that its
// user's list could not name, and its visitor's list not append to, show in their lists after
// a repair.
func TestRepairListsMessagesEventsUserConversations(t *testing.T) {
	db, raw := rawDatabase(t)
	ctx := context.Background()
	st := openOn(t, db, store.Config{})
	now := time.Now().UTC()
	u := known.UserID(store.NewID())
	c := &known.Conversation{ID: known.ConversationID(store.NewID()), ProjectID: "p", UserID: &u, VisitorID: "v", Status: "OPEN",
		CreatedAt: now, UpdatedAt: now}
	broken := []string{"p|messages|" + string(c.ID) + "|h", "p|events|" + string(u) + "|0", "p|userConversations|" + string(u) + "|0",
		"p|visitorConversations|v|h"}
	for _, b := range broken {
		breakList(t, raw, b)
	}
	if err := st.CreateConversation(ctx, c); err == nil {
		t.Fatal("CreateConversation with an unwritable user list: no error")
	}
	m := &known.Message{ID: known.MessageID(store.NewID()), ProjectID: "p", ConversationID: c.ID, Body: "hi", Author: "USER", CreatedAt: now}
	if err := st.AddMessage(ctx, c, m); err == nil {
		t.Fatal("AddMessage with an unwritable list: no error")
	}
	e := &known.Event{ID: known.EventID(store.NewID()), ProjectID: "p", UserID: &u, Name: "signed_up", OccurredAt: now, CreatedAt: now}
	if err := st.AddEvent(ctx, e); err == nil {
		t.Fatal("AddEvent with an unwritable list: no error")
	}
	for _, b := range broken {
		fixList(t, raw, b)
	}
	repairLists(t, st)
	repairLists(t, st)
	ms, _, _, err := st.ConversationMessages(ctx, c, known.Page{First: 10})
	if err != nil || len(ms) != 1 || ms[0].ID != m.ID {
		t.Errorf("ConversationMessages after the repair: %v (%v), want [%s]", ms, err, m.ID)
	}
	es, _, _, err := st.UserEvents(ctx, "p", u, known.Page{First: 10})
	if err != nil || len(es) != 1 || es[0].ID != e.ID {
		t.Errorf("UserEvents after the repair: %v (%v), want [%s]", es, err, e.ID)
	}
	cs, err := st.UserConversationIDs(ctx, "p", []known.UserID{u})
	if err != nil || !slices.Equal(cs[u], []known.ConversationID{c.ID}) {
		t.Errorf("UserConversationIDs after the repair: %v (%v), want [%s]", cs[u], err, c.ID)
	}
	vs, _, _, err := st.VisitorConversations(ctx, "p", "v", known.Page{First: 10})
	if err != nil || len(vs) != 1 || vs[0].ID != c.ID {
		t.Errorf("VisitorConversations after the repair: %v (%v), want [%s]", vs, err, c.ID)
	}
	if n := repairsLeft(t, raw); n != 0 {
		t.Fatalf("%d repair documents left, want 0", n)
	}
}
