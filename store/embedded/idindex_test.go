package embedded_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/knownhq/known/store/embedded"
	"github.com/rs/zerolog"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// TestIndexIDs: FerretDB's own _id index does not serve its lookups by _id (SQLite would read
// the whole table); after IndexIDs every collection's lookup uses an index, a second call
// changes nothing, and documents are found by _id as before.
func TestIndexIDs(t *testing.T) {
	dir := t.TempDir()
	srv, err := embedded.Start(dir, "", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	db := client.Database("idx")
	for _, name := range []string{"users", "profiles"} {
		if _, err := db.Collection(name).InsertMany(ctx, []any{bson.M{"_id": "a", "n": 1}, bson.M{"_id": "b", "n": 2}}); err != nil {
			t.Fatal(err)
		}
	}

	before, err := embedded.Unindexed(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 2 {
		t.Fatalf("before IndexIDs: tables whose _id lookup scans = %v; want both collections' (FerretDB's own index does not serve it)", before)
	}
	for range 2 {
		if err := srv.IndexIDs(ctx, "idx"); err != nil {
			t.Fatalf("IndexIDs: %v", err)
		}
	}
	after, err := embedded.Unindexed(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != 0 {
		t.Fatalf("after IndexIDs: tables whose _id lookup scans = %v; want none", after)
	}
	for _, name := range []string{"users", "profiles"} {
		var got bson.M
		if err := db.Collection(name).FindOne(ctx, bson.M{"_id": "b"}).Decode(&got); err != nil || got["n"] != int32(2) {
			t.Errorf("%s: find {_id: b} = %v, %v", name, got, err)
		}
		if err := db.Collection(name).FindOneAndUpdate(ctx, bson.M{"_id": "a"}, bson.M{"$set": bson.M{"n": 3}}).Err(); err != nil {
			t.Errorf("%s: update by _id: %v", name, err)
		}
		var names []string
		cur, err := db.Collection(name).Find(ctx, bson.M{}, options.Find().SetSort(bson.M{"_id": 1}))
		if err != nil {
			t.Fatal(err)
		}
		var docs []bson.M
		if err := cur.All(ctx, &docs); err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			names = append(names, d["_id"].(string))
		}
		if !slices.Equal(names, []string{"a", "b"}) || docs[0]["n"] != int32(3) {
			t.Errorf("%s: documents %v", name, docs)
		}
	}
}
