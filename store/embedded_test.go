package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/embedded"
	"github.com/rs/zerolog"
)

// TestEmbeddedLookupsByIDUseAnIndex: a store opened on the embedded FerretDB has every one of
// its collections, and each serves a lookup by _id from an index (see store/embedded).
func TestEmbeddedLookupsByIDUseAnIndex(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Config{DataDir: dir, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	scans, err := embedded.Unindexed(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(scans) > 0 {
		t.Errorf("collections whose lookup by _id reads the whole table: %v", scans)
	}
}
