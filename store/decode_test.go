package store_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/storetest"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// nestedMetadata holds an embedded document, a document in an array and a deeper one: what a
// customer's metadata may hold.
func nestedMetadata() map[string]any {
	return map[string]any{"plan": "pro", "seats": int32(5), "address": map[string]any{"city": "Lyon", "geo": map[string]any{"lat": 45.7}},
		"tags": []any{"a", map[string]any{"b": int32(1)}}}
}

// TestBatchReadsDecodeAsSingleReads: documents read in a batch (one find by _id, or one $in),
// which the store decodes with bson.Unmarshal, come back as the driver decodes them for a single
// read: an embedded document in metadata, attributes or properties is a bson.M, at any depth,
// also inside arrays.
func TestBatchReadsDecodeAsSingleReads(t *testing.T) {
	st := storetest.Open(t, nil)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	var ids []known.UserID
	for _, id := range []known.UserID{"u-nested-1", "u-nested-2"} {
		if err := st.InsertUser(ctx, &known.User{ID: id, ProjectID: "p", Metadata: nestedMetadata(), CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	c, err := st.UpsertCompany(ctx, "p", "co-nested", store.CompanyUpdate{Metadata: nestedMetadata()}, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SaveProfiles(ctx, &known.Profile{UserID: ids[0], ProjectID: "p", Status: known.ProfileFound, CheckedAt: now,
		Metadata: nestedMetadata()}); err != nil {
		t.Fatal(err)
	}
	st.WaitPublished()

	single, err := st.User(ctx, "p", ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := single.Metadata["address"].(bson.M); !ok {
		t.Fatalf("a single read decodes an embedded document as %T, want bson.M", single.Metadata["address"])
	}
	for _, batch := range [][]known.UserID{ids[:1], ids} {
		us, err := st.UsersByIDs(ctx, "p", batch)
		if err != nil || len(us) != len(batch) {
			t.Fatalf("UsersByIDs(%v): %d users, %v", batch, len(us), err)
		}
		for _, u := range us {
			if !reflect.DeepEqual(u.Metadata, single.Metadata) {
				t.Fatalf("batch of %d: metadata %#v, want %#v", len(batch), u.Metadata, single.Metadata)
			}
		}
	}
	one, err := st.Company(ctx, "p", c.ID)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := st.CompaniesByIDs(ctx, "p", []known.CompanyID{c.ID})
	if err != nil || len(cs) != 1 || !reflect.DeepEqual(cs[0].Metadata, one.Metadata) {
		t.Fatalf("CompaniesByIDs: %v (%v), want metadata %#v", cs, err, one.Metadata)
	}
	prs, err := st.ProfilesOf(ctx, "p", ids[:1])
	if err != nil || prs[ids[0]] == nil || !reflect.DeepEqual(prs[ids[0]].Metadata, single.Metadata) {
		t.Fatalf("ProfilesOf: %v (%v), want metadata %#v", prs[ids[0]], err, single.Metadata)
	}
}
