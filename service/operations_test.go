package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/service"
	"github.com/knownhq/known/store"
)

// caller returns the Caller a context carries after authenticating credential.
func (e *env) caller(t *testing.T, credential string) known.Caller {
	t.Helper()
	return known.CallerFromContext(e.as(t, credential))
}

// TestProjects: the operator lists every project page by page; a project key and no
// credential are refused.
func TestProjects(t *testing.T) {
	e := newEnv(t)
	e.newProject(t, "Second")
	e.newProject(t, "Third")
	admin := e.as(t, adminToken)
	seen := map[string]bool{}
	page := known.Page{First: 2}
	for {
		ps, more, err := e.svc.Projects(admin, page)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			seen[p.Name] = true
		}
		if !more {
			break
		}
		page.After = string(ps[len(ps)-1].ID)
	}
	if len(seen) != 3 || !seen["Acme"] || !seen["Second"] || !seen["Third"] {
		t.Fatalf("projects listed: %v, want the three", seen)
	}
	_, _, err := e.svc.Projects(e.ctx, known.Page{First: 10})
	wantCode(t, err, known.Forbidden)
	_, _, err = e.svc.Projects(context.Background(), known.Page{First: 10})
	wantCode(t, err, known.Unauthenticated)
	_, _, err = e.svc.Projects(admin, known.Page{First: 101})
	wantCode(t, err, known.BadUserInput)
}

// TestDeleteProject: deleting a project erases everything it holds and nothing of another
// project; its key and widget sessions stop working at once; only the operator may, and the
// operator's audit log records it.
func TestDeleteProject(t *testing.T) {
	e := newEnv(t)
	other := otherProjectEnv(t, e, "Other")
	fill := func(e *env) string {
		ss := anonymous(t, e)
		startConversation(t, e, ss.Token, "hello from "+e.appID())
		ss = identify(t, e, ss.Token, service.IdentifyInput{UserID: str("del-1"), Email: str("del@example.com"),
			UserHash: str(hashOf(e.project.IdentitySecret, "del-1")), Company: &service.CompanyInput{ID: "co-1"}})
		ss = setUser(t, e, ss.Token, service.SetUserInput{ID: str("del-1"), Organizations: []service.OrganizationInput{{ID: "org-1", Name: "Org"}}})
		if _, err := e.svc.Track(widgetCtx(ss.Token), service.TrackInput{Event: "signed-up"}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("api@example.com")}); err != nil {
			t.Fatal(err)
		}
		return ss.Token
	}
	token := fill(e)
	fill(other)
	otherBefore := state(t, other)
	p := e.project.Project.ID

	wantCode(t, e.svc.DeleteProject(e.ctx, p), known.Forbidden)
	wantCode(t, e.svc.DeleteProject(context.Background(), p), known.Unauthenticated)
	admin := e.as(t, adminToken)
	if err := e.svc.DeleteProject(admin, p); err != nil {
		t.Fatal(err)
	}

	t.Run("NothingOfItIsLeft", func(t *testing.T) {
		for coll, n := range e.counts(t, p) {
			if n != 0 {
				t.Errorf("%d %s left", n, coll)
			}
		}
		if _, err := e.store.Project(context.Background(), p); known.ErrorCode(err) != known.NotFound {
			t.Errorf("the project is still there: %v", err)
		}
		cs, _, err := e.store.Companies(context.Background(), p, known.Page{First: 10})
		if err != nil || len(cs) != 0 {
			t.Errorf("companies left: %d (%v)", len(cs), err)
		}
		os, _, err := e.store.Organizations(context.Background(), p, known.Page{First: 10})
		if err != nil || len(os) != 0 {
			t.Errorf("organizations left: %d (%v)", len(os), err)
		}
		entries, _, err := e.store.AuditLog(context.Background(), p, nil, known.Page{First: 10})
		if err != nil || len(entries) != 0 {
			t.Errorf("audit entries left: %d (%v)", len(entries), err)
		}
	})
	t.Run("KeyAndSessionsStopWorking", func(t *testing.T) {
		if c := e.caller(t, e.project.SecretKey); !c.BadCredential {
			t.Fatalf("the deleted project's key authenticates: %+v", c)
		}
		if _, err := e.svc.Session(widgetCtx(token)); err == nil {
			t.Fatal("the deleted project's widget session still works")
		}
	})
	t.Run("OtherProjectUntouched", func(t *testing.T) {
		if got := state(t, other); got != otherBefore {
			t.Fatalf("the other project changed:\n%s\nwant\n%s", got, otherBefore)
		}
	})
	t.Run("OperatorLogRecordsIt", func(t *testing.T) {
		entries, _, err := e.svc.AuditLog(admin, nil, known.Page{First: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Action != known.AuditProjectDeleted || entries[0].Actor.Kind != known.ActorAdmin ||
			entries[0].Subject == nil || *entries[0].Subject != string(p) {
			t.Fatalf("operator log = %+v, want one PROJECT_DELETED of %s by the admin", entries, p)
		}
		others, _, err := e.svc.AuditLog(other.ctx, nil, known.Page{First: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range others {
			if en.Action == known.AuditProjectDeleted {
				t.Fatal("a project's key reads the operator's entries")
			}
		}
	})
	t.Run("SecondDeleteIsNotFound", func(t *testing.T) {
		wantCode(t, e.svc.DeleteProject(admin, p), known.NotFound, "input", "id")
	})
}

// TestRotateSecretKey: the new key works at once; the old one stops at once without a grace
// period, or when the grace period ends; the grace period is 0 to 7 days.
func TestRotateSecretKey(t *testing.T) {
	e, clock := clockedEnv(t)
	old := e.project.SecretKey
	grace := 60
	k1, err := e.svc.RotateSecretKey(e.ctx, &grace)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.PreviousKeyExpiresAt.Equal(clock.Now().Add(time.Hour)) {
		t.Fatalf("previous key expires at %v, want in 60 minutes", k1.PreviousKeyExpiresAt)
	}
	works := func(key string) bool { return e.caller(t, key).ProjectID == e.project.Project.ID }
	if !works(k1.SecretKey) || !works(old) {
		t.Fatal("during the grace period both keys must work")
	}
	clock.Advance(59 * time.Minute)
	if !works(old) {
		t.Fatal("the old key stopped before its grace period ended")
	}
	clock.Advance(time.Minute)
	if works(old) {
		t.Fatal("the old key works after its grace period")
	}
	if !works(k1.SecretKey) {
		t.Fatal("the new key stopped")
	}

	k2, err := e.svc.RotateSecretKey(e.as(t, k1.SecretKey), nil)
	if err != nil {
		t.Fatal(err)
	}
	if works(k1.SecretKey) {
		t.Fatal("without a grace period the old key must stop at once")
	}
	if !works(k2.SecretKey) {
		t.Fatal("the new key does not work")
	}
	ctx := e.as(t, k2.SecretKey)
	for _, c := range []struct {
		minutes int
		code    known.Code
	}{{-1, known.Invalid}, {7*24*60 + 1, known.LimitExceeded}} {
		_, err := e.svc.RotateSecretKey(ctx, &c.minutes)
		wantCode(t, err, c.code, "input", "graceMinutes")
	}
	if !works(k2.SecretKey) {
		t.Fatal("a refused rotation changed the keys")
	}
	_, err = e.svc.RotateSecretKey(e.as(t, adminToken), nil)
	wantCode(t, err, known.Unauthenticated)
}

// TestExportUser: the export holds every part of what Known keeps about the user, and
// nothing of another user.
func TestExportUser(t *testing.T) {
	e := newEnv(t)
	person := func(tag string) (*known.User, *known.Session) {
		ss := anonymous(t, e)
		startConversation(t, e, ss.Token, "question-"+tag)
		ss = identify(t, e, ss.Token, service.IdentifyInput{UserID: str("ext-" + tag), Email: str(tag + "@example.com"),
			UserHash: str(hashOf(e.project.IdentitySecret, "ext-"+tag)), Metadata: map[string]any{"plan-" + tag: "pro"},
			Company: &service.CompanyInput{ID: "company-" + tag, Name: str("Company " + tag)}})
		ss = setUser(t, e, ss.Token, service.SetUserInput{ID: str("ext-" + tag),
			Organizations: []service.OrganizationInput{{ID: "org-" + tag, Name: "Org " + tag}}})
		if _, err := e.svc.Track(widgetCtx(ss.Token), service.TrackInput{Event: "event-" + tag}); err != nil {
			t.Fatal(err)
		}
		u := readUser(t, e, *ss.UserID)
		cs, _, _, err := e.svc.ListedUserConversations(e.ctx, u.ID, known.Page{First: 10})
		if err != nil || len(cs) != 1 {
			t.Fatalf("conversations: %d, %v", len(cs), err)
		}
		if _, err := e.svc.ReplyToConversation(e.ctx, cs[0].ID, "answer-"+tag); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		if err := e.store.SaveProfiles(context.Background(), &known.Profile{UserID: u.ID, ProjectID: e.project.Project.ID,
			Status: known.ProfileFound, FirstName: str("Profile-" + tag), FetchedAt: &now, CheckedAt: now}); err != nil {
			t.Fatal(err)
		}
		return u, ss
	}
	a, ss := person("alice")
	b, _ := person("bob")

	doc, err := e.svc.ExportUser(e.ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	for part, want := range map[string]string{
		"user id":            a.GlobalID(),
		"external id":        `"externalId":"ext-alice"`,
		"email":              "alice@example.com",
		"metadata":           "plan-alice",
		"proven identity":    `"method":"HMAC"`,
		"identity source":    `"source":"WIDGET"`,
		"visitor id":         string(ss.VisitorID),
		"organization":       "Org alice",
		"company":            "Company alice",
		"event":              "event-alice",
		"visitor's message":  "question-alice",
		"agent's message":    "answer-alice",
		"external profile":   "Profile-alice",
		"audit entry":        `"action":"IDENTITY_PROVEN"`,
		"the merged session": `"sessions":[{`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the export lacks the %s (%s)", part, want)
		}
	}
	for _, leak := range []string{"bob", b.GlobalID(), string(b.ID)} {
		if strings.Contains(strings.ToLower(text), strings.ToLower(leak)) {
			t.Errorf("the export holds %q, which is another user's", leak)
		}
	}
	for _, secretish := range []string{ss.Token, e.project.SecretKey} {
		if strings.Contains(text, secretish) {
			t.Error("the export holds a secret")
		}
	}
	other := otherProjectEnv(t, e, "Other")
	_, err = other.svc.ExportUser(other.ctx, a.ID)
	wantCode(t, err, known.NotFound)
	_, err = e.svc.ExportUser(context.Background(), a.ID)
	wantCode(t, err, known.Unauthenticated)
}

// TestAuditLog: proofs, takes, merges, deletions and key changes are recorded with who made
// them; a proof sent again records nothing; a user's entries can be read alone; a project
// reads only its own.
func TestAuditLog(t *testing.T) {
	e := newEnv(t)
	secret := e.project.IdentitySecret
	log := func(ctx context.Context, user *known.UserID) []*known.AuditEntry {
		t.Helper()
		var all []*known.AuditEntry
		page := known.Page{First: 2}
		for {
			es, more, err := e.svc.AuditLog(ctx, user, page)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, es...)
			if !more {
				return all
			}
			page.After = es[len(es)-1].ID
		}
	}
	describe := func(es []*known.AuditEntry) string {
		var b strings.Builder
		for i := len(es) - 1; i >= 0; i-- { // oldest first
			en := es[i]
			fmt.Fprintf(&b, "%s by %s", en.Action, en.Actor.Kind)
			if en.Identity != nil {
				fmt.Fprintf(&b, " %s", *en.Identity)
			}
			if en.Method != nil {
				fmt.Fprintf(&b, " %s", *en.Method)
			}
			b.WriteString("\n")
		}
		return b.String()
	}

	// A backend-made user; a visitor with a conversation proves its externalId: merge.
	api, err := e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: str("m@example.com"), ExternalID: str("m-1")})
	if err != nil {
		t.Fatal(err)
	}
	visitor := anonymous(t, e)
	startConversation(t, e, visitor.Token, "hi")
	anon := store.AnonymousUserID(e.project.Project.ID, visitor.VisitorID)
	merged := identify(t, e, visitor.Token, service.IdentifyInput{UserID: str("m-1"), UserHash: str(hashOf(secret, "m-1"))})
	if *merged.UserID != api.ID {
		t.Fatalf("the proof landed on %s, want the backend's user %s", *merged.UserID, api.ID)
	}
	// The same proof again changes nothing, and records nothing.
	identify(t, e, merged.Token, service.IdentifyInput{UserID: str("m-1"), UserHash: str(hashOf(secret, "m-1"))})

	// A claim of an email, then a proof of it from another browser: taken.
	claimant := claimed(t, e, "t-1", service.IdentifyInput{Email: str("t@example.com")})
	prover := identify(t, e, "", service.IdentifyInput{Email: str("t@example.com"), UserHash: str(hashOf(secret, "t@example.com"))})

	if err := e.svc.DeleteUser(e.ctx, *claimant.UserID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.RotateIdentitySecret(e.ctx); err != nil {
		t.Fatal(err)
	}
	pub, _ := newEd25519(t)
	key := addKey(t, e, spkiPEM(t, pub), nil)
	if _, err := e.svc.RotateSecretKey(e.ctx, ptrInt(60)); err != nil {
		t.Fatal(err)
	}

	entries := log(e.ctx, nil)
	want := `IDENTITY_PROVEN by WIDGET EXTERNAL_ID HMAC
USER_MERGED by WIDGET
IDENTITY_PROVEN by WIDGET EMAIL HMAC
IDENTITY_TAKEN by WIDGET EMAIL HMAC
USER_DELETED by SECRET_KEY
IDENTITY_SECRET_ROTATED by SECRET_KEY
JWT_KEY_ADDED by SECRET_KEY
SECRET_KEY_ROTATED by SECRET_KEY
`
	if got := describe(entries); got != want {
		t.Fatalf("audit log:\n%swant\n%s", got, want)
	}
	byAction := map[known.AuditAction]*known.AuditEntry{}
	for _, en := range entries {
		byAction[en.Action] = en
	}
	t.Run("WhoAndWhat", func(t *testing.T) {
		m := byAction[known.AuditUserMerged]
		if *m.UserID != api.ID || *m.OtherUserID != anon || m.Actor.VisitorID == nil || *m.Actor.VisitorID != merged.VisitorID {
			t.Errorf("merge entry = %+v, want %s into %s by visitor %s", m, anon, api.ID, merged.VisitorID)
		}
		tk := byAction[known.AuditIdentityTaken]
		if *tk.UserID != *prover.UserID || *tk.OtherUserID != *claimant.UserID {
			t.Errorf("take entry = %+v, want from %s to %s", tk, *claimant.UserID, *prover.UserID)
		}
		if d := byAction[known.AuditUserDeleted]; *d.UserID != *claimant.UserID {
			t.Errorf("delete entry names %s", *d.UserID)
		}
		if j := byAction[known.AuditJwtKeyAdded]; j.Subject == nil || *j.Subject != key.ID {
			t.Errorf("JWT key entry = %+v, want subject %s", j, key.ID)
		}
		for _, en := range entries {
			if en.At.IsZero() || en.ProjectID != e.project.Project.ID {
				t.Errorf("entry %+v lacks its time or project", en)
			}
		}
	})
	t.Run("OneUsersEntries", func(t *testing.T) {
		got := describe(log(e.ctx, claimant.UserID))
		if got != "IDENTITY_TAKEN by WIDGET EMAIL HMAC\nUSER_DELETED by SECRET_KEY\n" {
			t.Fatalf("the deleted claimant's entries:\n%s", got)
		}
	})
	t.Run("OtherProjectSeesNone", func(t *testing.T) {
		other := otherProjectEnv(t, e, "Other")
		if es := log(other.ctx, nil); len(es) != 0 {
			t.Fatalf("another project reads %d entries", len(es))
		}
	})
	t.Run("Credentials", func(t *testing.T) {
		_, _, err := e.svc.AuditLog(context.Background(), nil, known.Page{First: 10})
		wantCode(t, err, known.Unauthenticated)
		_, _, err = e.svc.AuditLog(e.as(t, adminToken), claimant.UserID, known.Page{First: 10})
		wantCode(t, err, known.BadUserInput)
	})
}

func ptrInt(n int) *int { return &n }
