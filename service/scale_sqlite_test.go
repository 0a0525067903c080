package service_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/knownhq/known/store/storetest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// An experiment for issue 10, not a fix: FerretDB 1.24 on SQLite makes each collection's unique
// _id index on the expression _ferretdb_sjson->"_id", but pushes a filter {_id: x} down as
// _ferretdb_sjson->'$._id' = ?, which SQLite does not match to that index (EXPLAIN QUERY PLAN:
// "SCAN <table>"). So even a find by _id reads the table, in SQLite, up to the document. With
// KNOWN_BENCH_SQLITE_ID_INDEX=1 (and the sqlite3 command), BenchmarkScale adds an index on the
// pushed-down expression to every table of its databases after seeding, to show what the
// embedded store would cost with one (EXPLAIN: "SEARCH <table> USING INDEX").

// sqliteIDIndexes reports whether the experiment is asked for.
func sqliteIDIndexes() bool { return os.Getenv("KNOWN_BENCH_SQLITE_ID_INDEX") == "1" }

// databases lists the names of the test server's databases.
func databases(tb testing.TB) []string {
	tb.Helper()
	ctx := context.Background()
	client, err := mongo.Connect(options.Client().ApplyURI(storetest.URI()))
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = client.Disconnect(ctx) }()
	names, err := client.ListDatabaseNames(ctx, bson.M{})
	if err != nil {
		tb.Fatal(err)
	}
	return names
}

// addSQLiteIDIndexes adds the index to every table of the embedded databases named.
func addSQLiteIDIndexes(tb testing.TB, names []string) {
	tb.Helper()
	for _, name := range names {
		files, _ := filepath.Glob(filepath.Join(os.TempDir(), "known-test-store-*", name+".sqlite"))
		if len(files) != 1 {
			tb.Fatalf("database file of %s: %v", name, files)
		}
		out, err := exec.Command("sqlite3", files[0], "SELECT table_name FROM _ferretdb_collections").Output()
		if err != nil {
			tb.Fatalf("sqlite3: %v", err)
		}
		var sql strings.Builder
		for _, table := range strings.Fields(string(out)) {
			sql.WriteString(`CREATE INDEX IF NOT EXISTS "` + table + `_pushdown_id" ON "` + table + `" (_ferretdb_sjson->'$._id');`)
		}
		if out, err := exec.Command("sqlite3", files[0], sql.String()).CombinedOutput(); err != nil {
			tb.Fatalf("sqlite3: %v: %s", err, out)
		}
	}
}

// newDatabases returns the names in after that are not in before.
func newDatabases(before, after []string) []string {
	return slices.DeleteFunc(slices.Clone(after), func(n string) bool { return slices.Contains(before, n) })
}
