package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/storetest"
)

// TestReadsByIDs shows what a read of objects by their ids (a dataloader's batch) returns: each
// object of the project once, whatever the repeats, without missing ones or another project's.
// On the embedded store a read of a few ids (a page of 10) sends finds by _id only; a read of
// many sends one query.
func TestReadsByIDs(t *testing.T) {
	var a storetest.Auditor
	st := storetest.Open(t, a.Monitor())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := time.Now().UTC().Truncate(time.Millisecond)
	p, other := known.ProjectID("app_ids"), known.ProjectID("app_other")
	var seed store.Seed
	var users []known.UserID
	var companies []known.CompanyID
	for i := range 30 {
		proj := p
		if i%10 == 9 {
			proj = other
		}
		u := &known.User{ID: known.UserID(store.NewID()), ProjectID: proj, Metadata: map[string]any{}, CreatedAt: now, UpdatedAt: now}
		c := &known.Company{ID: known.CompanyID(store.NewID()), ProjectID: proj, ExternalID: fmt.Sprint("c", i), CreatedAt: now, UpdatedAt: now}
		seed.Users, seed.Companies = append(seed.Users, u), append(seed.Companies, c)
		users, companies = append(users, u.ID), append(companies, c.ID)
	}
	if err := st.SeedBulk(ctx, seed); err != nil {
		t.Fatal(err)
	}
	ids := func(us []*known.User) []known.UserID {
		out := make([]known.UserID, len(us))
		for i, u := range us {
			out[i] = u.ID
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		name  string
		ask   []known.UserID
		want  []known.UserID
		scans bool
	}{
		{"FewWithRepeatsMissingAndAnotherProjects", append(append(slices.Clone(users[:10]), users[3], users[3], "missing"), users[19]),
			append(slices.Clone(users[:9]), known.UserID("")), false},
		{"Many", users, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if want == nil {
				want = slices.DeleteFunc(slices.Clone(users), func(id known.UserID) bool { return slices.Index(users, id)%10 == 9 })
			}
			want = slices.DeleteFunc(want, func(id known.UserID) bool { return id == "" })
			slices.Sort(want)
			a.Reset()
			got, err := st.UsersByIDs(ctx, p, tc.ask)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), want) {
				t.Fatalf("users %v, want %v", ids(got), want)
			}
			if scans := a.Scans(); st.FerretDB() && (len(scans) > 0) != tc.scans {
				t.Fatalf("commands:\n%s", storetest.Summary(a.Commands()))
			}
		})
	}
	t.Run("FewCompanies", func(t *testing.T) {
		a.Reset()
		got, err := st.CompaniesByIDs(ctx, p, []known.CompanyID{companies[0], companies[9], companies[0], companies[1]})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || !slices.ContainsFunc(got, func(c *known.Company) bool { return c.ID == companies[0] }) ||
			!slices.ContainsFunc(got, func(c *known.Company) bool { return c.ID == companies[1] }) {
			t.Fatalf("companies %+v, want c0 and c1", got)
		}
		if st.FerretDB() {
			wantNoScans(t, st, &a)
		}
	})
}
