// Package storetest gives tests a real database: one embedded FerretDB per test binary (or the
// MongoDB deployment named by KNOWN_TEST_MONGODB_URI), and a fresh database per test on it.
package storetest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/knownhq/known/secret"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/embedded"
	"github.com/rs/zerolog"
	"go.mongodb.org/mongo-driver/v2/event"
)

var uri string

// Main starts the database for a test binary, runs its tests and stops it. Call it from
// TestMain: `func TestMain(m *testing.M) { storetest.Main(m) }`.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	uri = os.Getenv("KNOWN_TEST_MONGODB_URI")
	if uri == "" {
		dir, err := os.MkdirTemp("", "known-test-store-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "storetest:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		srv, err := embedded.Start(dir, "", zerolog.New(os.Stderr).Level(zerolog.ErrorLevel))
		if err != nil {
			fmt.Fprintln(os.Stderr, "storetest:", err)
			return 1
		}
		defer srv.Stop()
		uri = srv.URI()
	}
	return m.Run()
}

// URI is the connection string of the test binary's database server.
func URI() string {
	if uri == "" {
		panic("storetest: call storetest.Main from TestMain")
	}
	return uri
}

// NewDatabaseName returns a database name no other test uses.
func NewDatabaseName(tb testing.TB) string {
	name := strings.NewReplacer("/", "_", " ", "_", "#", "_").Replace(tb.Name())
	if len(name) > 30 {
		name = name[:30]
	}
	return "t_" + name + "_" + strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(secret.Random(6)))
}

// Open opens a store on a fresh database, closed when the test ends. monitor may be nil.
func Open(tb testing.TB, monitor *event.CommandMonitor) *store.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Tests are not about outages (those start their own store): a busy machine must not turn
	// a slow connection checkout into a failure.
	st, err := store.Open(ctx, store.Config{URI: URI(), Database: NewDatabaseName(tb), Monitor: monitor, Log: zerolog.Nop(),
		ServerSelectionTimeout: 30 * time.Second})
	if err != nil {
		tb.Fatalf("opening the test store: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = st.Drop(ctx)
		_ = st.Close(ctx)
	})
	return st
}

// OpenEmbedded opens a store on an embedded FerretDB of its own, in a temporary directory,
// whatever KNOWN_TEST_MONGODB_URI says: for tests of the embedded store's own rules. monitor
// may be nil.
func OpenEmbedded(tb testing.TB, monitor *event.CommandMonitor) *store.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Config{DataDir: tb.TempDir(), Monitor: monitor, Log: zerolog.Nop(),
		ServerSelectionTimeout: 30 * time.Second})
	if err != nil {
		tb.Fatalf("opening an embedded store: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = st.Close(ctx)
	})
	return st
}
