package storetest_test

import (
	"context"
	"testing"
	"time"

	"github.com/knownhq/known/store/storetest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// TestAuditorClassifies sends each shape of command through the real driver (whose started
// events carry update and delete statements as arrays, not as the wire's document sequences)
// and checks the auditor's verdict on it.
func TestAuditorClassifies(t *testing.T) {
	var a storetest.Auditor
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(storetest.URI()).SetMonitor(a.Monitor()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	db := client.Database(storetest.NewDatabaseName(t))
	defer func() { _ = db.Drop(context.Background()) }()
	c := db.Collection("things")
	oid := bson.NewObjectID()

	cases := []struct {
		name     string
		run      func() error
		constant bool
		want     string
	}{
		{"InsertMany", func() error {
			_, err := c.InsertMany(ctx, []any{bson.M{"_id": "a", "n": 1}, bson.M{"_id": oid}})
			return err
		}, true, "insert things"},
		{"FindByStringID", func() error { return ignoreNone(c.FindOne(ctx, bson.M{"_id": "a"}).Err()) }, true, "find things {_id}"},
		{"FindByObjectID", func() error { return ignoreNone(c.FindOne(ctx, bson.M{"_id": oid}).Err()) }, true, "find things {_id}"},
		{"FindByNumberID", func() error { return ignoreNone(c.FindOne(ctx, bson.M{"_id": 7}).Err()) }, false, "find things {_id}"},
		{"FindByIDIn", func() error { _, err := c.Find(ctx, bson.M{"_id": bson.M{"$in": bson.A{"a"}}}); return err }, false, "find things {_id}"},
		{"FindByIDAndField", func() error { return ignoreNone(c.FindOne(ctx, bson.M{"_id": "a", "n": 1}).Err()) }, false, "find things {_id,n}"},
		{"FindByIDSorted", func() error {
			return ignoreNone(c.FindOne(ctx, bson.M{"_id": "a"}, options.FindOne().SetSort(bson.M{"n": 1})).Err())
		}, false, "find things {_id,sort}"},
		{"FindByField", func() error { _, err := c.Find(ctx, bson.M{"n": 1}); return err }, false, "find things {n}"},
		{"FindAll", func() error { _, err := c.Find(ctx, bson.M{}); return err }, false, "find things {}"},
		{"FindOneAndUpdateByID", func() error {
			return ignoreNone(c.FindOneAndUpdate(ctx, bson.M{"_id": "a"}, bson.M{"$inc": bson.M{"n": 1}}).Err())
		}, true, "findAndModify things {_id}"},
		{"FindOneAndUpdateByIDAndRev", func() error {
			return ignoreNone(c.FindOneAndUpdate(ctx, bson.M{"_id": "a", "n": 2}, bson.M{"$inc": bson.M{"n": 1}}).Err())
		}, false, "findAndModify things {_id,n}"},
		{"UpdateOneByID", func() error {
			_, err := c.UpdateOne(ctx, bson.M{"_id": "a"}, bson.M{"$set": bson.M{"x": 1}})
			return err
		}, true, "update things {_id}"},
		{"UpdateManyByField", func() error { _, err := c.UpdateMany(ctx, bson.M{"n": 1}, bson.M{"$set": bson.M{"x": 1}}); return err }, false, "update things {n}"},
		{"DeleteOneByID", func() error { _, err := c.DeleteOne(ctx, bson.M{"_id": "zz"}); return err }, true, "delete things {_id}"},
		{"DeleteOneByIDAndOwner", func() error { _, err := c.DeleteOne(ctx, bson.M{"_id": "zz", "owner": "o"}); return err }, false, "delete things {_id,owner}"},
		{"Count", func() error { _, err := c.CountDocuments(ctx, bson.M{"_id": "a"}); return err }, false, "aggregate things {?}"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a.Reset()
			if err := tc.run(); err != nil {
				t.Fatal(err)
			}
			cmds := a.Commands()
			if len(cmds) != 1 {
				t.Fatalf("recorded %d commands, want 1:\n%s", len(cmds), storetest.Summary(cmds))
			}
			if got := cmds[0]; got.Constant != tc.constant || got.String() != tc.want {
				t.Fatalf("recorded %q constant=%v, want %q constant=%v", got, got.Constant, tc.want, tc.constant)
			}
			if got := len(a.Scans()); got != map[bool]int{true: 0, false: 1}[tc.constant] {
				t.Fatalf("Scans() has %d commands", got)
			}
		})
	}
}

func ignoreNone(err error) error {
	if err == mongo.ErrNoDocuments {
		return nil
	}
	return err
}
