package service_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/knownhq/known"
	"github.com/knownhq/known/service"
	"github.com/knownhq/known/store"
	"go.mongodb.org/mongo-driver/v2/event"
)

// The five ways the first version's identity matching could be attacked (issue 8), each played
// end to end on the embedded store. Each failed before the identity engine.

// identityToken makes an identification token for email with the project's secret key.
func identityToken(t *testing.T, e *env, email string) *string {
	t.Helper()
	tok, _, err := e.svc.CreateIdentificationToken(e.ctx, email, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &tok
}

// readable lists the conversations a session may read.
func readable(t *testing.T, e *env, token string) []known.ConversationID {
	t.Helper()
	return sessionConversations(t, e, token)
}

func identities(t *testing.T, e *env, id known.UserID) []known.Identity {
	t.Helper()
	u, err := e.svc.User(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return u.Identities
}

func holds(ids []known.Identity, kind known.IdentityKind, value string, proven bool) bool {
	return slices.ContainsFunc(ids, func(id known.Identity) bool { return id.Kind == kind && id.Value == value && id.Proven == proven })
}

func TestTakeoverThroughClaimRidingOnProof(t *testing.T) {
	e := newEnv(t)
	secret := e.project.IdentitySecret

	t.Run("OwnEmailProvenWithSomeonesUserID", func(t *testing.T) {
		attacker := identify(t, e, "", service.IdentifyInput{Email: str("mallory@example.com"),
			IdentificationToken: identityToken(t, e, "mallory@example.com"), UserID: str("victim-1")})
		if !holds(identities(t, e, *attacker.UserID), known.IdentityExternalID, "victim-1", false) {
			t.Fatalf("the unproven userId should ride along as a claim: %+v", identities(t, e, *attacker.UserID))
		}
		victim := identify(t, e, "", service.IdentifyInput{UserID: str("victim-1"), UserHash: str(hashOf(secret, "victim-1"))})
		if *victim.UserID == *attacker.UserID {
			t.Fatalf("the victim's proof landed on the attacker's user %s", *victim.UserID)
		}
		conv := startConversation(t, e, victim.Token, "my invoice")
		if slices.Contains(readable(t, e, attacker.Token), conv.ID) {
			t.Fatal("the attacker's session reads the victim's conversation")
		}
		if holds(identities(t, e, *attacker.UserID), known.IdentityExternalID, "victim-1", false) {
			t.Errorf("the attacker's user still claims the victim's id")
		}
		if !holds(identities(t, e, *victim.UserID), known.IdentityExternalID, "victim-1", true) {
			t.Errorf("the victim's user does not hold its id proven: %+v", identities(t, e, *victim.UserID))
		}
	})
	t.Run("OwnUserIDProvenWithSomeonesEmail", func(t *testing.T) {
		attacker := identify(t, e, "", service.IdentifyInput{UserID: str("mallory-2"), UserHash: str(hashOf(secret, "mallory-2")),
			Email: str("victim2@example.com")})
		victim := identify(t, e, "", service.IdentifyInput{Email: str("victim2@example.com"),
			IdentificationToken: identityToken(t, e, "victim2@example.com")})
		if *victim.UserID == *attacker.UserID {
			t.Fatalf("the victim's token landed on the attacker's user")
		}
		conv := startConversation(t, e, victim.Token, "my address")
		if slices.Contains(readable(t, e, attacker.Token), conv.ID) {
			t.Fatal("the attacker's session reads the victim's conversation")
		}
	})
	t.Run("VictimsJWTOfIDAndEmailIsNotLockedOut", func(t *testing.T) {
		e, clock := clockedEnv(t)
		pub, priv := newEd25519(t)
		addKey(t, e, spkiPEM(t, pub), nil)
		attacker := identify(t, e, "", service.IdentifyInput{Email: str("mallory3@example.com"),
			IdentificationToken: identityToken(t, e, "mallory3@example.com"), UserID: str("victim-3")})
		raw := signJWT(t, jwt.SigningMethodEdDSA, priv, "", jwtClaims(clock, jwt.MapClaims{"id": "victim-3", "email": "victim3@example.com"}))
		victim, err := setUserErr(e, "", service.SetUserInput{JWT: &raw})
		if err != nil {
			t.Fatalf("the victim's JWT is refused: %v", err)
		}
		if *victim.UserID == *attacker.UserID {
			t.Fatal("the victim's JWT landed on the attacker's user")
		}
		ids := identities(t, e, *victim.UserID)
		if !victim.Verified() || !holds(ids, known.IdentityExternalID, "victim-3", true) || !holds(ids, known.IdentityEmail, "victim3@example.com", true) {
			t.Fatalf("victim session %+v, identities %+v; want both proven", victim, ids)
		}
	})
}

func TestUnicodeEmailsRefused(t *testing.T) {
	e := newEnv(t)
	for _, email := range []string{"\u212Aate@example.com", "\u212Bngstrom@example.com", "ｋate@example.com", "\ufb01nn@example.com"} {
		t.Run(email, func(t *testing.T) {
			_, err := identifyErr(e, "", service.IdentifyInput{Email: &email})
			requireFieldError(t, err, known.Invalid, "input", "email")
			_, _, err = e.svc.CreateIdentificationToken(e.ctx, email, nil, nil)
			requireFieldError(t, err, known.Invalid, "input", "email")
			_, err = e.svc.CreateUser(e.ctx, service.CreateUserInput{Email: &email})
			requireFieldError(t, err, known.Invalid, "input", "email")
		})
	}
	// The proof of a lookalike never verifies its holder as Kate.
	kate := identify(t, e, "", service.IdentifyInput{Email: str("kate@example.com"), IdentificationToken: identityToken(t, e, "kate@example.com")})
	if !kate.Verified() {
		t.Fatal("kate is not verified")
	}
	if _, _, err := e.svc.CreateIdentificationToken(e.ctx, "\u212Aate@example.com", nil, nil); known.ErrorCode(err) != known.Invalid {
		t.Fatalf("a token for the KELVIN SIGN address: %v, want INVALID", err)
	}
}

func requireFieldError(t *testing.T, err error, code known.Code, field ...string) {
	t.Helper()
	var ke *known.Error
	var kes known.Errors
	if errors.As(err, &kes) && len(kes) == 1 {
		ke = kes[0]
	} else {
		errors.As(err, &ke)
	}
	if known.ErrorCode(err) != code || ke == nil || !slices.Equal(ke.Field, field) {
		t.Fatalf("error %v, want %s at %v", err, code, field)
	}
}

func TestMetadataLimitWithTheWrite(t *testing.T) {
	e := newEnv(t)
	fifty := func(prefix string) map[string]any {
		m := map[string]any{}
		for i := range 50 {
			m[fmt.Sprintf("%s%d", prefix, i)] = i
		}
		return m
	}
	t.Run("MergeOfVisitorIntoUser", func(t *testing.T) {
		identify(t, e, "", service.IdentifyInput{UserID: str("full-user"), Metadata: fifty("u")})
		visitor := anonymous(t, e)
		if _, err := e.svc.SetProperties(widgetCtx(visitor.Token), nil, fifty("v")); err != nil {
			t.Fatal(err)
		}
		_, err := identifyErr(e, visitor.Token, service.IdentifyInput{UserID: str("full-user")})
		if known.ErrorCode(err) != known.LimitExceeded {
			t.Fatalf("identify merging 50 properties into 50 metadata keys: %v, want LIMIT_EXCEEDED", err)
		}
		if u := userByExt(t, e, "full-user"); len(u.Metadata) != 50 || len(u.VisitorIDs) != 1 {
			t.Fatalf("the refused merge changed the user: %d keys, %d visitors", len(u.Metadata), len(u.VisitorIDs))
		}
		if ss := sessionOf(t, e, visitor.Token); !ss.Anonymous() {
			t.Fatal("the refused identify changed the visitor's session")
		}
	})
	t.Run("ConcurrentSetProperties", func(t *testing.T) {
		ss := identify(t, e, "", service.IdentifyInput{UserID: str("busy-user")})
		const n = 80
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, errs[i] = e.svc.SetProperties(widgetCtx(ss.Token), nil, map[string]any{fmt.Sprintf("k%d", i): i})
			})
		}
		wg.Wait()
		u := userByExt(t, e, "busy-user")
		stored := 0
		for i, err := range errs {
			_, present := u.Metadata[fmt.Sprintf("k%d", i)]
			switch {
			case err == nil && present:
				stored++
			case known.ErrorCode(err) == known.LimitExceeded && !present:
			default:
				t.Errorf("call %d: %v, key present %v", i, err, present)
			}
		}
		if len(u.Metadata) != 50 || stored != 50 {
			t.Fatalf("%d keys stored (%d calls acknowledged), want exactly 50", len(u.Metadata), stored)
		}
	})
}

// TestRefusedIdentifyLeavesNoLiveSession: a new visitor's session is inserted alongside
// identify's writes; when a write is refused, that session is revoked, so that no session the
// client never received stays live.
func TestRefusedIdentifyLeavesNoLiveSession(t *testing.T) {
	var mu sync.Mutex
	var inserted []string
	e := newEnvWatched(t, &event.CommandMonitor{Started: func(_ context.Context, ev *event.CommandStartedEvent) {
		if ev.CommandName != "insert" || ev.Command.Lookup("insert").StringValue() != "widget_sessions" {
			return
		}
		docs, _ := ev.Command.Lookup("documents").Array().Values()
		mu.Lock()
		defer mu.Unlock()
		for _, d := range docs {
			inserted = append(inserted, d.Document().Lookup("_id").StringValue())
		}
	}})
	keys := func(prefix string, n int) map[string]any {
		m := map[string]any{}
		for i := range n {
			m[fmt.Sprintf("%s%d", prefix, i)] = i
		}
		return m
	}
	ok := identify(t, e, "", service.IdentifyInput{UserID: str("first"), Company: &service.CompanyInput{ID: "co", Metadata: keys("a", 30)}})
	_, err := identifyErr(e, "", service.IdentifyInput{UserID: str("refused"), Company: &service.CompanyInput{ID: "co", Metadata: keys("b", 30)}})
	requireFieldError(t, err, known.LimitExceeded, "input", "company", "metadata")
	mu.Lock()
	defer mu.Unlock()
	if len(inserted) != 2 {
		t.Fatalf("%d sessions inserted, want one per identify (2)", len(inserted))
	}
	for _, id := range inserted {
		_, err := e.store.Session(context.Background(), id, time.Now())
		switch live := err == nil; {
		case id == ok.ID && !live:
			t.Errorf("the session of the identify that landed is not live: %v", err)
		case id != ok.ID && live:
			t.Errorf("session %s of the refused identify is live", id)
		}
	}
}

// TestCompanyMetadataLimitWithTheWrite: a company's metadata holds at most 50 keys after any
// number of identifies, concurrent ones included, and a refused identify writes nothing.
func TestCompanyMetadataLimitWithTheWrite(t *testing.T) {
	e := newEnv(t)
	keys := func(prefix string, n int) map[string]any {
		m := map[string]any{}
		for i := range n {
			m[fmt.Sprintf("%s%d", prefix, i)] = i
		}
		return m
	}
	identify(t, e, "", service.IdentifyInput{UserID: str("co-a"), Company: &service.CompanyInput{ID: "co", Metadata: keys("a", 30)}})
	_, err := identifyErr(e, "", service.IdentifyInput{UserID: str("co-b"), Company: &service.CompanyInput{ID: "co", Metadata: keys("b", 30)}})
	requireFieldError(t, err, known.LimitExceeded, "input", "company", "metadata")
	if userByExt(t, e, "co-b") != nil {
		t.Fatal("the refused identify made its user")
	}
	const n = 12
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = identifyErr(e, "", service.IdentifyInput{UserID: str(fmt.Sprintf("co-c%d", i)),
				Company: &service.CompanyInput{ID: "co2", Metadata: keys(fmt.Sprintf("c%d-", i), 10)}})
		})
	}
	wg.Wait()
	cs, _, err := e.svc.Companies(e.ctx, known.Page{First: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.ExternalID != "co2" {
			continue
		}
		acked := 0
		for i, err := range errs {
			_, present := c.Metadata[fmt.Sprintf("c%d-0", i)]
			switch {
			case err == nil && present:
				acked++
			case known.ErrorCode(err) == known.LimitExceeded && !present:
			default:
				t.Errorf("identify %d: %v, its keys present %v", i, err, present)
			}
		}
		if len(c.Metadata) != 50 || acked != 5 {
			t.Fatalf("company metadata has %d keys from %d acknowledged identifies, want 50 from 5", len(c.Metadata), acked)
		}
		return
	}
	t.Fatal("no company co2")
}

// A verified user's email with another, unproven userId: VERIFICATION_REQUIRED (API.md §3).
func TestVerifiedUsersEmailWithAnotherUserID(t *testing.T) {
	e := newEnv(t)
	identify(t, e, "", service.IdentifyInput{UserID: str("vera"), UserHash: str(hashOf(e.project.IdentitySecret, "vera")), Email: str("vera@example.com")})
	_, err := identifyErr(e, "", service.IdentifyInput{UserID: str("not-vera"), Email: str("vera@example.com")})
	requireFieldError(t, err, known.VerificationRequired, "input", "email")
}

// A squatter's unproven claim of an id nobody has seen yet: when the owner proves the id, the
// owner's verified user has none of the squatter's email, metadata or conversations.
func TestSquattedIDProvenByOwner(t *testing.T) {
	e := newEnv(t)
	squatter := identify(t, e, "", service.IdentifyInput{UserID: str("owner-1"), Email: str("squatter@example.com"),
		Metadata: map[string]any{"planted": true}})
	planted := startConversation(t, e, squatter.Token, "planted history")
	owner := identify(t, e, "", service.IdentifyInput{UserID: str("owner-1"), UserHash: str(hashOf(e.project.IdentitySecret, "owner-1"))})
	if *owner.UserID == *squatter.UserID {
		t.Fatal("the owner's proof landed on the squatter's user")
	}
	u, err := e.svc.User(e.ctx, *owner.UserID)
	if err != nil {
		t.Fatal(err)
	}
	if u.Email != nil || len(u.Metadata) != 0 || slices.Contains(readable(t, e, owner.Token), planted.ID) {
		t.Fatalf("the owner's user keeps the squatter's data: email %v, metadata %v", opt(u.Email), u.Metadata)
	}
	if !holds(u.Identities, known.IdentityExternalID, "owner-1", true) {
		t.Fatalf("the owner's id is not proven: %+v", u.Identities)
	}
	sq, err := e.svc.User(e.ctx, *squatter.UserID)
	if err != nil || sq.ExternalID != nil || opt(sq.Email) != "squatter@example.com" {
		t.Fatalf("the squatter's user: %+v, %v; want it to have lost the id and kept its email", sq, err)
	}
	// The squatter's claim of the id now meets a proven identity.
	_, err = identifyErr(e, squatter.Token, service.IdentifyInput{UserID: str("owner-1")})
	requireFieldError(t, err, known.VerificationRequired, "input", "userId")
}

// TestReadingThroughTheUserNeedsItsProof: a verified session reads its user's conversations
// started by the user's other browsers, and answers in them, only while the user still holds
// a proven identity (API.md §3: a claimant never reads a user's conversations through an
// identity that user has proven). No path removes a user's last proof today; the store write
// below stands in for one. The session's own visitor's conversation stays its own.
func TestReadingThroughTheUserNeedsItsProof(t *testing.T) {
	e := newEnv(t)
	proof := service.IdentifyInput{UserID: str("proven-1"), UserHash: str(hashOf(e.project.IdentitySecret, "proven-1"))}
	d1 := identify(t, e, "", proof)
	d2 := identify(t, e, "", proof)
	if !d2.Verified() || *d1.UserID != *d2.UserID || d1.VisitorID == d2.VisitorID {
		t.Fatalf("two verified browsers of one user expected: %+v, %+v", d1, d2)
	}
	c1 := startConversation(t, e, d1.Token, "from browser 1")
	c2 := startConversation(t, e, d2.Token, "from browser 2")
	if _, _, err := e.svc.Messages(widgetCtx(d2.Token), c1, known.Page{First: 10}); err != nil {
		t.Fatalf("browser 2 reads the user's conversation from browser 1: %v", err)
	}

	unprove(t, e, *d1.UserID)
	_, _, err := e.svc.Messages(widgetCtx(d2.Token), c1, known.Page{First: 10})
	wantCode(t, err, known.NotFound)
	_, err = e.svc.SendMessage(widgetCtx(d2.Token), nil, c1.ID, "still reading browser 1?")
	wantCode(t, err, known.NotFound, "input", "conversationId")
	if _, _, err := e.svc.Messages(widgetCtx(d2.Token), c2, known.Page{First: 10}); err != nil {
		t.Fatalf("browser 2 no longer reads its own conversation: %v", err)
	}
	if _, err := e.svc.SendMessage(widgetCtx(d2.Token), nil, c2.ID, "mine"); err != nil {
		t.Fatalf("browser 2 no longer answers in its own conversation: %v", err)
	}
}

// TestSessionUserReadOncePerRequest: a request that reads several conversations through its
// session's user (a widget's list of conversations with their messages) reads the user once.
func TestSessionUserReadOncePerRequest(t *testing.T) {
	var userFinds atomic.Int64
	e := newEnvWatched(t, &event.CommandMonitor{Started: func(_ context.Context, ev *event.CommandStartedEvent) {
		if ev.CommandName == "find" && ev.Command.Lookup("find").StringValue() == "users" {
			userFinds.Add(1)
		}
	}})
	proof := service.IdentifyInput{UserID: str("proven-2"), UserHash: str(hashOf(e.project.IdentitySecret, "proven-2"))}
	var convs []*known.Conversation
	for range 3 {
		convs = append(convs, startConversation(t, e, identify(t, e, "", proof).Token, "hello"))
	}
	reader := identify(t, e, "", proof)
	ctx := clientCtx(known.Client{IP: widgetIP, WidgetToken: reader.Token, Memo: &known.Memo{}})
	userFinds.Store(0)
	for _, c := range convs {
		if _, _, err := e.svc.Messages(ctx, c, known.Page{First: 10}); err != nil {
			t.Fatal(err)
		}
	}
	if n := userFinds.Load(); n != 1 {
		t.Fatalf("%d reads of the session's user for 3 conversations in one request, want 1", n)
	}
}

// unprove makes every identity of user id claimed, as no API path does today: it stands in for
// one that would remove a user's last proof, in the tests of what a session reads through its
// user.
func unprove(t *testing.T, e *env, id known.UserID) {
	t.Helper()
	u := readUser(t, e, id)
	ids := slices.Clone(u.Identities)
	for i := range ids {
		ids[i].Proven, ids[i].Method = false, nil
	}
	if _, err := e.store.UpdateUser(context.Background(), u.ID, store.UserUpdate{Identities: &ids, UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}
