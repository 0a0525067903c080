package store_test

import (
	"context"
	"testing"

	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/storetest"
	"github.com/rs/zerolog"
)

// TestLaterStartsReadNoWholeCollection: the start-up migrations may read whole collections
// once; a later start of the same database reads none (each finished step is marked done), so
// that a restart costs the same at any size.
func TestLaterStartsReadNoWholeCollection(t *testing.T) {
	ctx := context.Background()
	db := storetest.NewDatabaseName(t)
	st, err := store.Open(ctx, store.Config{URI: storetest.URI(), Database: db, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	u := newUser(t, st, "p", "starter@example.com", "")
	cid := startConversation(t, st, ctx, "p", u)
	c, err := st.Conversation(ctx, "p", cid)
	if err != nil {
		t.Fatal(err)
	}
	addMessage(t, st, c)
	st.WaitPublished()
	if err := st.Close(ctx); err != nil {
		t.Fatal(err)
	}
	audit := &storetest.Auditor{}
	st, err = store.Open(ctx, store.Config{URI: storetest.URI(), Database: db, Log: zerolog.Nop(), Monitor: audit.Monitor()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Drop(ctx)
	defer st.Close(ctx)
	if scans := audit.Scans(); len(scans) > 0 {
		t.Fatalf("a later start reads whole collections:\n%s\nall commands:\n%s", storetest.Summary(scans), storetest.Summary(audit.Commands()))
	}
}
