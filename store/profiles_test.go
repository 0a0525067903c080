package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/store/storetest"
)

// TestSaveProfilesInBulk: a bulk save of more profiles than the embedded store has SQLite
// connections (100) stores every one, new and replaced, without waiting forever: FerretDB
// keeps each statement of an update command open until the command ends. The profile of a user
// that does not exist (erased while its profile was fetched) is not kept.
func TestSaveProfilesInBulk(t *testing.T) {
	st := storetest.Open(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 150
	ids := make([]known.UserID, n)
	var live []known.UserID
	for i := range n {
		if i%10 == 3 {
			continue // erased
		}
		now := time.Now().UTC()
		u := &known.User{ID: known.UserID(fmt.Sprintf("user-%03d", i)), ProjectID: "p1", CreatedAt: now, UpdatedAt: now}
		if err := st.InsertUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		live = append(live, u.ID)
	}
	save := func(round string) {
		t.Helper()
		prs := make([]*known.Profile, n)
		for i := range prs {
			ids[i] = known.UserID(fmt.Sprintf("user-%03d", i))
			first := fmt.Sprintf("%s-%d", round, i)
			prs[i] = &known.Profile{UserID: ids[i], ProjectID: "p1", Status: known.ProfileFound, FirstName: &first,
				CheckedAt: time.Now().UTC(), Applied: round}
		}
		if err := st.SaveProfiles(ctx, prs...); err != nil {
			t.Fatalf("%s: SaveProfiles of %d: %v", round, n, err)
		}
		got, err := st.ProfilesOf(ctx, "p1", ids)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(live) {
			t.Fatalf("%s: %d profiles stored, want %d (none of the %d erased users)", round, len(got), len(live), n-len(live))
		}
		for i, id := range ids {
			if i%10 == 3 {
				continue
			}
			if pr := got[id]; pr == nil || pr.FirstName == nil || *pr.FirstName != fmt.Sprintf("%s-%d", round, i) || pr.Applied != round {
				t.Fatalf("%s: profile %s = %+v", round, id, pr)
			}
		}
	}
	save("new")
	save("replaced")
}
