package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/storetest"
)

// TestUpdateUserOnARead shows the revision rule of a write told from a read (UserUpdate.Before):
// it lands only on the revision read, and a write that finds the user changed since either
// reads again (unconditional) or changes nothing (IfRev). On the embedded store the check is a
// read by _id in the user's turn, so no command of it reads the whole collection.
func TestUpdateUserOnARead(t *testing.T) {
	var a storetest.Auditor
	st := storetest.Open(t, a.Monitor())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := time.Now().UTC().Truncate(time.Millisecond)
	p := known.ProjectID("app_rev")
	u := &known.User{ID: known.UserID(store.NewID()), ProjectID: p, Metadata: map[string]any{}, CreatedAt: now, UpdatedAt: now}
	if err := st.InsertUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	stale, err := st.User(ctx, p, u.ID) // revision 0
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateUser(ctx, u.ID, store.UserUpdate{Name: ptr("Ann"), UpdatedAt: now, Before: stale}); err != nil {
		t.Fatal(err)
	}

	t.Run("StaleReadIsReadAgain", func(t *testing.T) {
		a.Reset()
		got, err := st.UpdateUser(ctx, u.ID, store.UserUpdate{Name: ptr("Bea"), UpdatedAt: now, Before: stale})
		if err != nil {
			t.Fatal(err)
		}
		if got.Rev != 2 || got.Name == nil || *got.Name != "Bea" {
			t.Fatalf("user after the write: rev %d, name %v; want rev 2, Bea", got.Rev, got.Name)
		}
		wantNoScans(t, st, &a)
		// The event describes the change from the revision the write landed on (Ann), not
		// from the stale read (no name).
		st.WaitPublished()
		evs, err := st.EventsOfProject(ctx, p, 1)
		if err != nil || len(evs) != 1 || evs[0].Type != known.UserUpdated {
			t.Fatalf("last event: %v, %v", evs, err)
		}
		name, _ := evs[0].Data["changes"].(map[string]any)["name"].(map[string]any)
		if name["from"] != "Ann" || name["to"] != "Bea" {
			t.Fatalf("user.updated changes name %v, want from Ann to Bea", name)
		}
	})
	t.Run("StaleConditionalWriteChangesNothing", func(t *testing.T) {
		a.Reset()
		rev := stale.Rev
		_, err := st.UpdateUser(ctx, u.ID, store.UserUpdate{Name: ptr("Cy"), UpdatedAt: now, Before: stale, IfRev: &rev})
		if !errors.Is(err, store.ErrRevChanged) {
			t.Fatalf("UpdateUser on a stale revision: %v, want ErrRevChanged", err)
		}
		wantNoScans(t, st, &a)
		got, err := st.User(ctx, p, u.ID)
		if err != nil || got.Rev != 2 || *got.Name != "Bea" {
			t.Fatalf("user: %+v, %v; want it unchanged at rev 2", got, err)
		}
	})
	t.Run("CurrentConditionalWriteLands", func(t *testing.T) {
		cur, err := st.User(ctx, p, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		a.Reset()
		got, err := st.UpdateUser(ctx, u.ID, store.UserUpdate{Name: ptr("Di"), UpdatedAt: now, Before: cur, IfRev: &cur.Rev})
		if err != nil || got.Rev != cur.Rev+1 || *got.Name != "Di" {
			t.Fatalf("UpdateUser on the current revision: %+v, %v", got, err)
		}
		wantNoScans(t, st, &a)
	})
	t.Run("WriteOnTheRevisionLastWrittenIsOneCommand", func(t *testing.T) {
		cur, err := st.User(ctx, p, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // the first may read the revision; the second knows it
			a.Reset()
			if cur, err = st.UpdateUser(ctx, u.ID, store.UserUpdate{LastSeenAt: &now, UpdatedAt: now, Identified: ptr("v1"), Before: cur}); err != nil {
				t.Fatal(err)
			}
		}
		if cmds := a.Commands(); st.FerretDB() && len(cmds) != 1 {
			t.Fatalf("commands of a write on the revision last written:\n%s", storetest.Summary(cmds))
		}
	})
	t.Run("DeletedUserIsRevChanged", func(t *testing.T) {
		cur, err := st.User(ctx, p, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.DeleteMergedUser(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		_, err = st.UpdateUser(ctx, u.ID, store.UserUpdate{Name: ptr("Ed"), UpdatedAt: now, Before: cur, IfRev: &cur.Rev})
		if !errors.Is(err, store.ErrRevChanged) {
			t.Fatalf("UpdateUser of a deleted user: %v, want ErrRevChanged", err)
		}
	})
	// A user deleted and made again under its id (a visitor's anonymous record, after a
	// merge) is at revision 0: a write told from a read of the one before never lands on it.
	for _, del := range []struct {
		name   string
		delete func(known.UserID) error
	}{
		{"RecreatedAfterMergeIsNotWrittenFromAnOldRead", func(id known.UserID) error { return st.DeleteMergedUser(ctx, id) }},
		{"RecreatedAfterDeleteIsNotWrittenFromAnOldRead", func(id known.UserID) error { return st.DeleteUser(ctx, p, id) }},
	} {
		t.Run(del.name, func(t *testing.T) {
			id := known.UserID(store.NewID())
			if err := st.InsertUser(ctx, &known.User{ID: id, ProjectID: p, Metadata: map[string]any{}, CreatedAt: now, UpdatedAt: now}); err != nil {
				t.Fatal(err)
			}
			old, err := st.UpdateUser(ctx, id, store.UserUpdate{Name: ptr("Old"), UpdatedAt: now})
			if err != nil || old.Rev != 1 {
				t.Fatalf("first write: %+v, %v", old, err)
			}
			if err := del.delete(id); err != nil {
				t.Fatal(err)
			}
			if err := st.InsertUser(ctx, &known.User{ID: id, ProjectID: p, Metadata: map[string]any{}, CreatedAt: now, UpdatedAt: now}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.UpdateUser(ctx, id, store.UserUpdate{Name: ptr("Stale"), UpdatedAt: now, Before: old, IfRev: &old.Rev}); !errors.Is(err, store.ErrRevChanged) {
				t.Fatalf("write told from the deleted user's revision %d: %v, want ErrRevChanged", old.Rev, err)
			}
			got, err := st.User(ctx, p, id)
			if err != nil || got.Rev != 0 || got.Name != nil {
				t.Fatalf("the user made again: %+v, %v; want it untouched at revision 0", got, err)
			}
		})
	}
}

// wantNoScans fails when, on the embedded store, a recorded command reads the whole collection.
// MongoDB serves every filter from an index; its commands are not checked.
func wantNoScans(t *testing.T, st *store.Store, a *storetest.Auditor) {
	t.Helper()
	if scans := a.Scans(); st.FerretDB() && len(scans) > 0 {
		t.Fatalf("commands that scan on the embedded store:\n%s", storetest.Summary(scans))
	}
}

func ptr[T any](v T) *T { return &v }
