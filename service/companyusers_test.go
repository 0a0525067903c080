package service_test

import (
	"fmt"
	"testing"

	"github.com/knownhq/known"
	"github.com/knownhq/known/service"
)

// TestCompanyUsersFirstPages: the first pages of many companies' users, loaded together, are
// exactly what each company's own page would be, also when one company's users crowd the
// shared bound.
func TestCompanyUsersFirstPages(t *testing.T) {
	e := newEnv(t)
	linked := map[string]int{"big": 7, "small": 1, "pair": 2, "none": 0}
	ids := map[string]known.CompanyID{}
	for name, n := range linked {
		for i := range n {
			identify(t, e, "", service.IdentifyInput{UserID: str(fmt.Sprintf("%s-%d", name, i)),
				Company: &service.CompanyInput{ID: name}})
		}
		if n == 0 {
			identify(t, e, "", service.IdentifyInput{UserID: str("lonely"), Company: &service.CompanyInput{ID: name}, CompanyIDs: []string{"big"}})
			linked["big"]++
		}
	}
	cs, _, err := e.svc.Companies(e.ctx, known.Page{First: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		ids[c.ExternalID] = c.ID
	}
	for _, first := range []int{1, 2, 3, 10} {
		t.Run(fmt.Sprint("First", first), func(t *testing.T) {
			var pages []service.CompanyPage
			names := []string{"big", "small", "pair", "none"}
			for _, n := range names {
				pages = append(pages, service.CompanyPage{Company: ids[n], First: first})
			}
			got, err := e.svc.CompanyUsersFirstPages(e.ctx, pages)
			if err != nil {
				t.Fatal(err)
			}
			for i, n := range names {
				want, more, err := e.svc.LinkedUsers(e.ctx, &pages[i].Company, nil, known.Page{First: first})
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(userIDs(got[i].Users)) != fmt.Sprint(userIDs(want)) || got[i].More != more {
					t.Errorf("%s: batched page %v (more %v), own page %v (more %v)", n, userIDs(got[i].Users), got[i].More, userIDs(want), more)
				}
			}
		})
	}
	t.Run("FirstOutOfRangeIsBadUserInput", func(t *testing.T) {
		_, err := e.svc.CompanyUsersFirstPages(e.ctx, []service.CompanyPage{{Company: ids["big"], First: 101}})
		wantCode(t, err, known.BadUserInput, "first")
	})
}

func userIDs(us []*known.User) []known.UserID {
	out := make([]known.UserID, len(us))
	for i, u := range us {
		out[i] = u.ID
	}
	return out
}
