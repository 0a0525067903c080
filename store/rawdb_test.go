package store_test

import (
	"context"
	"testing"

	"github.com/knownhq/known/store/storetest"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// rawDatabase returns the name of a fresh database on the tests' server and a handle on it that
// bypasses the store (and its command monitor): for writing data as earlier versions left it,
// and reading what the store wrote. The database is dropped when the test ends.
func rawDatabase(t *testing.T) (string, *mongo.Database) {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(storetest.URI()))
	if err != nil {
		t.Fatal(err)
	}
	name := storetest.NewDatabaseName(t)
	t.Cleanup(func() {
		_ = client.Database(name).Drop(context.Background())
		_ = client.Disconnect(context.Background())
	})
	return name, client.Database(name)
}
