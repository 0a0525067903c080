package store_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/storetest"
	"github.com/rs/zerolog"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestMigrateIdentities: users written before identities had provenance get them on start,
// proven where their recorded proof covered them and claimed elsewhere; an anonymous record
// under a random id moves to its visitor's derived id with its conversations; running the
// migration again changes nothing.
func TestMigrateIdentities(t *testing.T) {
	ctx := context.Background()
	db, raw := rawDatabase(t)
	users := raw.Collection("users")
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	verifiedAt := at.Add(time.Hour)
	legacy := []bson.M{
		// Verified by HMAC with an externalId: the id is proven, the email claimed.
		{"_id": "hmac", "projectId": "app_p", "externalId": "42", "email": "Jane@Example.com", "emailKey": "jane@example.com",
			"visitorIds": bson.A{"v1"}, "anonymous": false, "verified": true, "verificationMethod": "HMAC", "verifiedAt": verifiedAt,
			"metadata": bson.M{}, "createdAt": at, "updatedAt": at},
		// Verified by a token: the email is proven, the phone claimed.
		{"_id": "token", "projectId": "app_p", "email": "t@example.com", "emailKey": "t@example.com", "phoneNumber": "+14155550123",
			"visitorIds": bson.A{"v2"}, "anonymous": false, "verified": true, "verificationMethod": "TOKEN", "verifiedAt": verifiedAt,
			"metadata": bson.M{}, "createdAt": at, "updatedAt": at},
		// Made by createUser (no visitor), not verified: claimed, by the API.
		{"_id": "api", "projectId": "app_p", "email": "api@example.com", "emailKey": "api@example.com", "visitorIds": bson.A{},
			"anonymous": false, "verified": false, "metadata": bson.M{}, "createdAt": at, "updatedAt": at},
		// An anonymous visitor's record under a random id, with a conversation.
		{"_id": "anon-random", "projectId": "app_p", "visitorIds": bson.A{"v3"}, "anonymous": true, "verified": false,
			"metadata": bson.M{"plan": "free"}, "createdAt": at, "updatedAt": at},
	}
	for _, d := range legacy {
		if _, err := users.InsertOne(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.Collection("conversations").InsertOne(ctx, bson.M{"_id": "c1", "projectId": "app_p",
		"userId": "anon-random", "visitorId": "v3", "status": "OPEN", "createdAt": at, "updatedAt": at}); err != nil {
		t.Fatal(err)
	}

	hmac, tok := known.VerifiedByHMAC, known.VerifiedByToken
	want := map[known.UserID][]known.Identity{
		"hmac": {{Kind: known.IdentityExternalID, Value: "42", Proven: true, Method: &hmac, Source: known.SourceWidget, At: verifiedAt},
			{Kind: known.IdentityEmail, Value: "jane@example.com", Source: known.SourceWidget, At: at}},
		"token": {{Kind: known.IdentityEmail, Value: "t@example.com", Proven: true, Method: &tok, Source: known.SourceWidget, At: verifiedAt},
			{Kind: known.IdentityPhone, Value: "+14155550123", Source: known.SourceWidget, At: at}},
		"api": {{Kind: known.IdentityEmail, Value: "api@example.com", Source: known.SourceAPI, At: at}},
	}
	for run := range 2 { // the second start finds nothing left to do
		st, err := store.Open(ctx, store.Config{URI: storetest.URI(), Database: db, Log: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		for id, ids := range want {
			u, err := st.User(ctx, "app_p", id)
			if err != nil {
				t.Fatalf("run %d: %v", run, err)
			}
			if !sameIdentities(u.Identities, ids) {
				t.Errorf("run %d: user %s identities %+v, want %+v", run, id, u.Identities, ids)
			}
			if wantVerified := id != "api"; u.Verified != wantVerified {
				t.Errorf("run %d: user %s verified %v, want %v", run, id, u.Verified, wantVerified)
			}
		}
		anon := store.AnonymousUserID("app_p", "v3")
		u, err := st.User(ctx, "app_p", anon)
		if err != nil || u.Metadata["plan"] != "free" {
			t.Fatalf("run %d: the visitor's record at %s: %+v, %v", run, anon, u, err)
		}
		if _, err := st.User(ctx, "app_p", "anon-random"); known.ErrorCode(err) != known.NotFound {
			t.Errorf("run %d: the record under its old id is still there (%v)", run, err)
		}
		c, err := st.Conversation(ctx, "app_p", "c1")
		if err != nil || c.UserID == nil || *c.UserID != anon {
			t.Errorf("run %d: the visitor's conversation belongs to %v (%v), want %s", run, c, err, anon)
		}
		if err := st.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func sameIdentities(a, b []known.Identity) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Kind != y.Kind || x.Value != y.Value || x.Proven != y.Proven || x.Source != y.Source || !x.At.Equal(y.At) ||
			(x.Method == nil) != (y.Method == nil) || (x.Method != nil && *x.Method != *y.Method) {
			return false
		}
	}
	return true
}

// TestMigrateConversationLists: conversations written before projects kept a list of them
// (inserted here straight into the collection, in no order) are listed on start, newest first
// by id, across buckets, each project its own; what an interrupted start left in a bucket
// does not show; a second start changes nothing, and new conversations go on the end.
func TestMigrateConversationLists(t *testing.T) {
	ctx := context.Background()
	db, raw := rawDatabase(t)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, p := range []string{"app_p", "app_q", "app_empty"} {
		if _, err := raw.Collection("projects").InsertOne(ctx, bson.M{"_id": p, "name": p, "createdAt": at}); err != nil {
			t.Fatal(err)
		}
	}
	ids := map[known.ProjectID][]known.ConversationID{}
	var docs []any
	for i := range 133 {
		p := known.ProjectID("app_p")
		if i%50 == 7 {
			p = "app_q"
		}
		id := known.ConversationID(bson.NewObjectID().Hex())
		ids[p] = append(ids[p], id)
		docs = append(docs, bson.M{"_id": string(id), "projectId": string(p), "visitorId": "v", "status": "OPEN",
			"messages": 0, "createdAt": at, "updatedAt": at})
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(docs), func(i, j int) { docs[i], docs[j] = docs[j], docs[i] })
	if _, err := raw.Collection("conversations").InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	// A bucket of a start that stopped before writing its list's head.
	if _, err := raw.Collection("lists").InsertOne(ctx, bson.M{"_id": "app_p|conversations|0",
		"e": bson.M{"1": "stale", "99": "stale"}}); err != nil {
		t.Fatal(err)
	}

	var added known.ConversationID
	for run := range 3 {
		st, err := store.Open(ctx, store.Config{URI: storetest.URI(), Database: db, Log: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		for p, want := range ids {
			want = newestFirst(want)
			if p == "app_p" && added != "" {
				want = append([]known.ConversationID{added}, want...)
			}
			if got := readAll(t, st, p, 100); !slices.Equal(got, want) {
				t.Errorf("run %d: project %s lists %d conversations %v, want %d %v", run, p, len(got), got, len(want), want)
			}
		}
		if got := readAll(t, st, "app_empty", 10); len(got) != 0 {
			t.Errorf("run %d: a project without conversations lists %v", run, got)
		}
		if run == 1 {
			added = startConversation(t, st, ctx, "app_p", "")
		}
		if err := st.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
