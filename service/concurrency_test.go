package service_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/knownhq/known"
	"github.com/knownhq/known/service"
)

// TestConcurrentIdentifyOneExternalID: 100 fresh anonymous sessions identify as one new
// externalId at once: exactly one user, holding all 100 visitor ids, and no errors.
func TestConcurrentIdentifyOneExternalID(t *testing.T) {
	e := newEnv(t)
	const n = 100
	sessions := make([]*known.Session, n)
	for i := range sessions {
		sessions[i] = anonymous(t, e)
	}
	start := make(chan struct{})
	errs := make([]error, n)
	users := make([]known.UserID, n)
	var wg sync.WaitGroup
	for i, ss := range sessions {
		wg.Go(func() {
			<-start
			got, err := identifyErr(e, ss.Token, service.IdentifyInput{UserID: str("same-user")})
			errs[i] = err
			if err == nil && got.UserID != nil {
				users[i] = *got.UserID
			}
		})
	}
	close(start)
	wg.Wait()

	var failed []string
	for i, err := range errs {
		if err != nil {
			failed = append(failed, fmt.Sprintf("#%d: %v", i, err))
		}
	}
	if len(failed) > 0 {
		t.Errorf("%d of %d identifies failed:\n%s", len(failed), n, strings.Join(failed, "\n"))
	}
	counts := e.counts(t, e.project.Project.ID)
	if counts["users"] != 1 {
		t.Errorf("%d users in the store, want 1", counts["users"])
	}
	if counts["identity_keys"] != 1 {
		t.Errorf("%d identity keys, want 1 (the externalId: visitors are found from their sessions)", counts["identity_keys"])
	}
	u := userByExt(t, e, "same-user")
	if u == nil {
		t.Fatal("no user with the externalId")
	}
	for i, id := range users {
		if errs[i] == nil && id != u.ID {
			t.Errorf("session %d was given user %s, want %s", i, id, u.ID)
		}
	}
	var missing []known.VisitorID
	for _, ss := range sessions {
		if !slices.Contains(u.VisitorIDs, ss.VisitorID) {
			missing = append(missing, ss.VisitorID)
		}
	}
	if len(u.VisitorIDs) != n || len(missing) > 0 {
		t.Errorf("the user holds %d visitor ids, want %d; missing %d", len(u.VisitorIDs), n, len(missing))
	}
}

// TestConcurrentSetProperties: 20 different keys set at once on one session all land.
func TestConcurrentSetProperties(t *testing.T) {
	for _, c := range []struct {
		name  string
		start func(t *testing.T, e *env) *known.Session
	}{
		{"ClaimedSession", func(t *testing.T, e *env) *known.Session { return claimed(t, e, "props", service.IdentifyInput{}) }},
		// No user record yet: the concurrent calls must make exactly one.
		{"FreshAnonymousSession", func(t *testing.T, e *env) *known.Session { return anonymous(t, e) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			ss := c.start(t, e)
			const n = 20
			start := make(chan struct{})
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					<-start
					_, errs[i] = e.svc.SetProperties(widgetCtx(ss.Token), nil, map[string]any{fmt.Sprint("key", i): i})
				})
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("SetProperties key%d: %v", i, err)
				}
			}
			us, _, err := e.svc.Users(e.ctx, service.UserFilter{}, known.Page{First: 100})
			if err != nil {
				t.Fatal(err)
			}
			if len(us) != 1 {
				t.Fatalf("%d users, want the session's one", len(us))
			}
			for i := range n {
				if v, ok := us[0].Metadata[fmt.Sprint("key", i)]; !ok || fmt.Sprint(v) != fmt.Sprint(i) {
					t.Errorf("key%d = %v (present %v)", i, v, ok)
				}
			}
			if len(us[0].Metadata) != n {
				t.Errorf("metadata = %v, want %d keys", us[0].Metadata, n)
			}
		})
	}
}

// TestConcurrentSetUserOrganizations: 10 different organization lists sent at once for one
// user: the user ends with exactly one of them, in its order.
func TestConcurrentSetUserOrganizations(t *testing.T) {
	e := newEnv(t)
	ss := setUser(t, e, "", service.SetUserInput{ID: str("orgs")})
	const n = 10
	lists := make([][]service.OrganizationInput, n)
	var want []string
	for i := range n {
		// Overlapping lists, each in its own order: org i, the shared org, org i+1; reversed for
		// odd i. Every call upserts the shared organization at once with the others.
		for _, id := range []string{fmt.Sprint("org", i), "shared", fmt.Sprint("org", i+1)} {
			lists[i] = append(lists[i], service.OrganizationInput{ID: id, Name: strings.ToUpper(id)})
		}
		if i%2 == 1 {
			slices.Reverse(lists[i])
		}
		var ids []string
		for _, o := range lists[i] {
			ids = append(ids, o.ID)
		}
		want = append(want, fmt.Sprint(ids))
	}
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = setUserErr(e, ss.Token, service.SetUserInput{ID: str("orgs"), Organizations: lists[i]})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("SetUser list %d: %v", i, err)
		}
	}
	u := readUser(t, e, *ss.UserID)
	os, err := e.svc.UserOrganizations(e.ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range os {
		got = append(got, o.ExternalID)
	}
	if !slices.Contains(want, fmt.Sprint(got)) || len(u.OrganizationIDs) != 3 {
		t.Fatalf("organizations = %v (%d ids), want exactly one of %v", got, len(u.OrganizationIDs), want)
	}
	// Each organization exists once, however many calls upserted it.
	all, _, err := e.svc.Organizations(e.ctx, known.Page{First: 100})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, o := range all {
		seen[o.ExternalID]++
	}
	for ext, k := range seen {
		if k != 1 {
			t.Errorf("organization %s exists %d times", ext, k)
		}
	}
	if len(seen) != n+2 {
		t.Errorf("%d organizations, want %d", len(seen), n+2)
	}
}
