package identity_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/identity"
)

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

var (
	hmac  = known.VerifiedByHMAC
	token = known.VerifiedByToken
	jwt   = known.VerifiedByJWT
)

// user builds a stored user: "ext:42", "email:a@x", "phone:+1…" identities, each "!"-suffixed
// when proven (by HMAC, or by the method named after the "!": "email:a@x!TOKEN"); "api:"
// before a kind marks an identity written by createUser; "visitor:v" adds a visitor.
func user(id string, specs ...string) *known.User {
	u := &known.User{ID: known.UserID(id), Metadata: map[string]any{}}
	for _, s := range specs {
		source := known.SourceWidget
		if rest, ok := strings.CutPrefix(s, "api:"); ok {
			s, source = rest, known.SourceAPI
		}
		kind, value, _ := strings.Cut(s, ":")
		if kind == "visitor" {
			u.VisitorIDs = append(u.VisitorIDs, known.VisitorID(value))
			continue
		}
		value, method, proven := strings.Cut(value, "!")
		id := known.Identity{Kind: kinds[kind], Value: value, Proven: proven, Source: source, At: now.Add(-time.Hour)}
		if proven {
			m := hmac
			if method != "" {
				m = known.VerificationMethod(method)
			}
			id.Method = &m
		}
		u.Identities = append(u.Identities, id)
		switch kind {
		case "ext":
			e := known.ExternalID(value)
			u.ExternalID = &e
		case "email":
			u.Email = &id.Value
		case "phone":
			u.PhoneNumber = &id.Value
		}
	}
	u.Derive()
	return u
}

var kinds = map[string]known.IdentityKind{"ext": known.IdentityExternalID, "email": known.IdentityEmail, "phone": known.IdentityPhone}

var fields = map[known.IdentityKind][]string{
	known.IdentityExternalID: {"input", "userId"}, known.IdentityEmail: {"input", "email"}, known.IdentityPhone: {"input", "phoneNumber"},
}

// claim builds a claim of identities "ext:42", "email:a@x", "phone:+1…", proven by method
// (nil: none) where the method covers them.
func claim(method *known.VerificationMethod, specs ...string) identity.Claim {
	c := identity.Claim{Source: known.SourceWidget, Method: method, MetaField: []string{"input", "metadata"}}
	hasExt := slices.ContainsFunc(specs, func(s string) bool { return strings.HasPrefix(s, "ext:") })
	for _, s := range specs {
		kind, value, _ := strings.Cut(s, ":")
		k := kinds[kind]
		a := identity.Asserted{Kind: k, Value: value, Field: fields[k]}
		if method != nil {
			a.Proven = method.Covers(k, hasExt)
		}
		c.Identities = append(c.Identities, a)
	}
	return c
}

func session(visitor string, level known.Level, u *known.User) *known.Session {
	ss := &known.Session{ID: "s-" + visitor, VisitorID: known.VisitorID(visitor), Level: level}
	if u != nil {
		ss.UserID = &u.ID
	}
	if level == known.LevelVerified {
		ss.Method = &hmac
	}
	return ss
}

func holders(us ...*known.User) map[known.IdentityKind]*known.User {
	m := map[known.IdentityKind]*known.User{}
	for _, u := range us {
		for _, id := range u.Identities {
			m[id.Kind] = u
		}
	}
	return m
}

func metadata(n int, prefix string) map[string]any {
	m := map[string]any{}
	for i := range n {
		m[fmt.Sprintf("%s%d", prefix, i)] = i
	}
	return m
}

// want is what a case expects of the plan, in the words of Plan.String, or the refusal.
type want struct {
	user    string // "new", "promote" or the id of the existing user
	code    known.Code
	field   string // the refused field's last name
	takes   []string
	merge   bool
	visitor bool // a new visitor
	level   known.Level
	proven  []string // identities the user holds proven afterwards, "kind:value"
	claimed []string // and claimed
}

func TestDecide(t *testing.T) {
	alice := user("alice", "ext:42!", "email:alice@x")                  // verified by her id
	bob := user("bob", "ext:7", "email:bob@x", "visitor:vb")            // claimed, from one browser
	carol := user("carol", "email:carol@x")                             // claimed, no externalId
	dave := user("dave", "ext:9", "email:dave@x!TOKEN")                 // email proven, id claimed
	api := user("api", "api:email:api@x")                               // made by createUser
	squat := user("squat", "ext:victim", "email:squat@x", "visitor:vs") // a squatter's claim
	anon := user("anon", "visitor:va")
	anon.Metadata = metadata(50, "v")
	full := user("full", "ext:50keys")
	full.Metadata = metadata(50, "u")

	cases := []struct {
		name string
		c    identity.Claim
		f    identity.Facts
		want want
	}{
		// Anonymous.
		{"AnonymousWriteMakesRecord", identity.Claim{MetaSet: map[string]any{"a": 1}}, identity.Facts{Session: session("va", known.LevelAnonymous, nil)},
			want{user: "new", level: known.LevelAnonymous}},
		{"AnonymousWriteToItsRecord", identity.Claim{MetaSet: map[string]any{"a": 1}}, identity.Facts{Session: session("va", known.LevelAnonymous, nil), Current: user("r", "visitor:va")},
			want{user: "r", level: known.LevelAnonymous}},
		{"ClaimedSessionMayNotWriteToVerifiedUser", identity.Claim{MetaSet: map[string]any{"a": 1}}, identity.Facts{Session: session("vx", known.LevelClaimed, alice), Current: alice},
			want{code: known.VerificationRequired}},
		{"VerifiedSessionWritesToItsUser", identity.Claim{MetaSet: map[string]any{"a": 1}}, identity.Facts{Session: session("vx", known.LevelVerified, alice), Current: alice},
			want{user: "alice", level: known.LevelVerified}},
		{"MetadataOverLimit", identity.Claim{MetaSet: map[string]any{"new": 1}, MetaField: []string{"input", "properties"}}, identity.Facts{Session: session("vf", known.LevelClaimed, full), Current: full},
			want{code: known.LimitExceeded, field: "properties"}},
		{"LogoutEndsIdentifiedSession", identity.Claim{Logout: true}, identity.Facts{Session: session("vb", known.LevelClaimed, bob), Current: bob},
			want{user: "new", level: known.LevelAnonymous}},

		// Claimed (no proof).
		{"NewIdentity", claim(nil, "ext:1", "email:new@x"), identity.Facts{},
			want{user: "new", level: known.LevelClaimed, claimed: []string{"ext:1", "email:new@x"}}},
		{"AnonymousVisitorBecomesTheUser", claim(nil, "ext:1"), identity.Facts{Session: session("va", known.LevelAnonymous, nil), Current: user("r", "visitor:va")},
			want{user: "promote", level: known.LevelClaimed, claimed: []string{"ext:1"}}},
		{"MatchByExternalID", claim(nil, "ext:7"), identity.Facts{Holders: holders(bob)},
			want{user: "bob", level: known.LevelClaimed}},
		{"MatchByEmailWithoutExternalID", claim(nil, "ext:1", "email:carol@x"), identity.Facts{Holders: map[known.IdentityKind]*known.User{known.IdentityEmail: carol}},
			want{user: "carol", level: known.LevelClaimed, claimed: []string{"email:carol@x", "ext:1"}}},
		{"EmailOfUserWithAnotherExternalID", claim(nil, "ext:1", "email:bob@x"), identity.Facts{Holders: map[known.IdentityKind]*known.User{known.IdentityEmail: bob}},
			want{code: known.IdentityConflict, field: "email"}},
		{"EmailAloneOfUserKnownByID", claim(nil, "email:bob@x"), identity.Facts{Holders: holders(bob)},
			want{code: known.IdentityConflict, field: "email"}},
		{"ProvenEmailMatchesAlone", claim(nil, "email:dave@x"), identity.Facts{Holders: holders(dave)},
			want{code: known.VerificationRequired, field: "email"}},
		{"PhoneMatchesOnlyAlone", claim(nil, "phone:+14155550123"), identity.Facts{Holders: holders(user("p", "phone:+14155550123"))},
			want{user: "p", level: known.LevelClaimed}},
		{"PhoneOfUserWithExternalIDConflicts", claim(nil, "phone:+14155550123"), identity.Facts{Holders: holders(user("p", "ext:3", "phone:+14155550123"))},
			want{code: known.IdentityConflict, field: "phoneNumber"}},
		{"TwoUsersConflict", claim(nil, "ext:7", "email:carol@x"), identity.Facts{Holders: map[known.IdentityKind]*known.User{known.IdentityExternalID: bob, known.IdentityEmail: carol}},
			want{code: known.IdentityConflict, field: "email"}},
		{"ClaimNeverReachesVerifiedUser", claim(nil, "ext:42"), identity.Facts{Holders: holders(alice)},
			want{code: known.VerificationRequired, field: "userId"}},
		{"VerifiedSessionReachesItsUserWithoutProof", claim(nil, "ext:42"), identity.Facts{Holders: holders(alice), Session: session("vx", known.LevelVerified, alice), Current: alice},
			want{user: "alice", level: known.LevelVerified}},
		// Case 4 of issue 8: a verified user's email with another, unproven userId.
		{"VerifiedUsersEmailWithAnotherUserID", claim(nil, "ext:1", "email:alice@x"), identity.Facts{Holders: map[known.IdentityKind]*known.User{known.IdentityEmail: alice}},
			want{code: known.VerificationRequired, field: "email"}},
		{"VerifiedUsersClaimedEmailAlone", claim(nil, "email:alice@x"), identity.Facts{Holders: holders(alice)},
			want{code: known.VerificationRequired, field: "email"}},
		{"RequireVerification", claim(nil, "ext:1"), identity.Facts{RequireVerification: true},
			want{code: known.VerificationRequired, field: "input"}},
		{"SessionOfSomeoneElseGetsNewVisitor", claim(nil, "ext:1"), identity.Facts{Session: session("vb", known.LevelClaimed, bob), Current: bob},
			want{user: "new", visitor: true, level: known.LevelClaimed}},
		{"AnonymousRecordMergesIntoUser", claim(nil, "ext:7"), identity.Facts{Holders: holders(bob), Session: session("va", known.LevelAnonymous, nil), Current: user("r", "visitor:va")},
			want{user: "bob", merge: true, level: known.LevelClaimed}},
		{"MergeWithinTheLimit", claim(nil, "ext:50keys"), identity.Facts{Holders: holders(full), Session: session("va", known.LevelAnonymous, nil), Current: anon},
			want{code: known.LimitExceeded, field: "metadata"}},

		// Proven.
		{"ProofReachesItsProvenUser", claim(&hmac, "ext:42"), identity.Facts{Holders: holders(alice)},
			want{user: "alice", level: known.LevelVerified, proven: []string{"ext:42"}, claimed: []string{"email:alice@x"}}},
		{"ProofOfNewIdentity", claim(&hmac, "ext:1"), identity.Facts{},
			want{user: "new", level: known.LevelVerified, proven: []string{"ext:1"}}},
		{"ProofTakesIdentityFromClaimant", claim(&hmac, "ext:7"), identity.Facts{Holders: holders(bob)},
			want{user: "new", takes: []string{"bob"}, level: known.LevelVerified, proven: []string{"ext:7"}}},
		{"ProofFromTheClaimingBrowserLandsOnItsUser", claim(&hmac, "ext:7"), identity.Facts{Holders: holders(bob), Session: session("vb", known.LevelClaimed, bob), Current: bob},
			want{user: "bob", level: known.LevelVerified, proven: []string{"ext:7"}, claimed: []string{"email:bob@x"}}},
		// Case 5 of issue 8: the owner proves the squatted id alone, from their own browser.
		{"SquatLosesTheIDAndKeepsItsData", claim(&hmac, "ext:victim"), identity.Facts{Holders: holders(squat), Session: session("vowner", known.LevelAnonymous, nil)},
			want{user: "new", takes: []string{"squat"}, level: known.LevelVerified, proven: []string{"ext:victim"}}},
		{"ProofLandsOnBackendRecord", claim(&token, "email:api@x"), identity.Facts{Holders: holders(api)},
			want{user: "api", level: known.LevelVerified, proven: []string{"email:api@x"}}},
		{"TokenProvesOnlyTheEmail", claim(&token, "ext:1", "email:new@x"), identity.Facts{},
			want{user: "new", level: known.LevelVerified, proven: []string{"email:new@x"}, claimed: []string{"ext:1"}}},
		// Case 1 of issue 8: a proof of one's own email carrying a claim of someone's id.
		{"ClaimRidingOnProofMustBeFree", claim(&token, "ext:7", "email:new@x"), identity.Facts{Holders: map[known.IdentityKind]*known.User{known.IdentityExternalID: bob}},
			want{code: known.IdentityConflict, field: "userId"}},
		{"ClaimRidingOnProofOfVerifiedUser", claim(&hmac, "ext:1", "email:alice@x"), identity.Facts{Holders: map[known.IdentityKind]*known.User{known.IdentityEmail: alice}},
			want{code: known.VerificationRequired, field: "email"}},
		{"ClaimedIDDoesNotChooseTheUserOfAProof", claim(&token, "ext:9", "email:other@x"), identity.Facts{Holders: map[known.IdentityKind]*known.User{known.IdentityExternalID: dave}},
			want{code: known.VerificationRequired, field: "userId"}},
		{"HashOfEmailWithoutID", claim(&hmac, "email:carol@x"), identity.Facts{Holders: holders(carol)},
			want{user: "new", takes: []string{"carol"}, level: known.LevelVerified, proven: []string{"email:carol@x"}}},
		{"JWTProvesIDAndEmail", claim(&jwt, "ext:42", "email:alice@x"), identity.Facts{Holders: holders(alice)},
			want{user: "alice", level: known.LevelVerified, proven: []string{"ext:42", "email:alice@x"}}},
		// Case 3 of issue 8 (a JWT of id + email is not locked out by a claimant of the id).
		{"JWTTakesClaimedIDFromSquatter", claim(&jwt, "ext:victim", "email:victim@x"), identity.Facts{Holders: map[known.IdentityKind]*known.User{known.IdentityExternalID: squat}},
			want{user: "new", takes: []string{"squat"}, level: known.LevelVerified, proven: []string{"ext:victim", "email:victim@x"}}},
		{"JWTOfTwoProvenUsersConflicts", claim(&jwt, "ext:42", "email:dave@x"), identity.Facts{Holders: map[known.IdentityKind]*known.User{known.IdentityExternalID: alice, known.IdentityEmail: dave}},
			want{code: known.IdentityConflict, field: "email"}},
		{"JWTGivesIDToProvenEmailsUser", claim(&jwt, "ext:new", "email:dave@x"), identity.Facts{Holders: map[known.IdentityKind]*known.User{known.IdentityEmail: dave}},
			want{user: "dave", level: known.LevelVerified, proven: []string{"ext:new", "email:dave@x"}}},
		{"VerifiedSessionProvesNewEmail", claim(&token, "ext:42", "email:alice2@x"), identity.Facts{Holders: map[known.IdentityKind]*known.User{known.IdentityExternalID: alice}, Session: session("vx", known.LevelVerified, alice), Current: alice},
			want{user: "alice", level: known.LevelVerified, proven: []string{"ext:42", "email:alice2@x"}}},
		{"VerifiedSessionOfSomeoneElseGetsNewVisitor", claim(&token, "email:bob2@x"), identity.Facts{Session: session("vx", known.LevelVerified, alice), Current: alice},
			want{user: "new", visitor: true, level: known.LevelVerified, proven: []string{"email:bob2@x"}}},
		// Found by the property test: a claim replacing a proven email left a verified session
		// on a user with nothing proven.
		{"ClaimDoesNotReplaceProvenEmail", claim(nil, "ext:9", "email:new@x"), identity.Facts{Holders: map[known.IdentityKind]*known.User{known.IdentityExternalID: dave}, Session: session("vd", known.LevelVerified, dave), Current: dave},
			want{code: known.VerificationRequired, field: "email"}},
		// Found by the property test: this browser's own claim of an id must not block its JWT
		// of the id and an email another user holds proven.
		{"OwnClaimDoesNotBlockJWT", claim(&jwt, "ext:u-max", "email:max@x"), identity.Facts{Holders: map[known.IdentityKind]*known.User{
			known.IdentityExternalID: user("u2", "ext:u-max", "visitor:vm"), known.IdentityEmail: user("u1", "email:max@x!")}, Session: session("vm", known.LevelClaimed, nil)},
			want{user: "u1", takes: []string{"u2"}, level: known.LevelVerified, proven: []string{"ext:u-max", "email:max@x"}}},
		{"ProofOfOwnIDReplacesClaimedEmail", claim(&hmac, "ext:42", "email:alice2@x"), identity.Facts{Holders: map[known.IdentityKind]*known.User{known.IdentityExternalID: alice}},
			want{user: "alice", level: known.LevelVerified, proven: []string{"ext:42"}, claimed: []string{"email:alice2@x"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.f.Holders == nil {
				tc.f.Holders = map[known.IdentityKind]*known.User{}
			}
			p, err := identity.Decide(tc.c, tc.f, now)
			if tc.want.code != "" {
				if known.ErrorCode(err) != tc.want.code {
					t.Fatalf("Decide = %v, %v; want %s", p, err, tc.want.code)
				}
				var e *known.Error
				if f := err.(*known.Error).Field; tc.want.field != "" && (len(f) == 0 || f[len(f)-1] != tc.want.field) {
					t.Fatalf("refused field %v, want %s (%v)", f, tc.want.field, e)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decide: %v; want %+v", err, tc.want)
			}
			got := "new"
			switch {
			case p.User != nil:
				got = string(p.User.ID)
			case p.Promote:
				got = "promote"
			}
			if got != tc.want.user {
				t.Errorf("lands on %s, want %s (%v)", got, tc.want.user, p)
			}
			var takes []string
			for _, tk := range p.Takes {
				takes = append(takes, string(tk.From.ID))
			}
			if !slices.Equal(takes, tc.want.takes) {
				t.Errorf("takes from %v, want %v", takes, tc.want.takes)
			}
			if (p.Merge != nil) != tc.want.merge || p.NewVisitor != tc.want.visitor {
				t.Errorf("merge %v new visitor %v, want %v %v", p.Merge != nil, p.NewVisitor, tc.want.merge, tc.want.visitor)
			}
			if tc.want.level != "" && p.Level != tc.want.level {
				t.Errorf("session level %s, want %s", p.Level, tc.want.level)
			}
			for _, spec := range tc.want.proven {
				if !has(p.Identities, spec, true) {
					t.Errorf("identities %+v lack proven %s", p.Identities, spec)
				}
			}
			for _, spec := range tc.want.claimed {
				if !has(p.Identities, spec, false) {
					t.Errorf("identities %+v lack claimed %s", p.Identities, spec)
				}
			}
		})
	}
}

func has(ids []known.Identity, spec string, proven bool) bool {
	kind, value, _ := strings.Cut(spec, ":")
	return slices.ContainsFunc(ids, func(id known.Identity) bool {
		return id.Kind == kinds[kind] && id.Value == value && id.Proven == proven
	})
}

// TestDecideProfile: a profile from the customer's API is about one user: it matches nobody
// else, takes nothing, and does not replace what the user proved.
func TestDecideProfile(t *testing.T) {
	dave := user("dave", "ext:9", "email:dave@x!TOKEN")
	carol := user("carol", "email:carol@x")
	profile := func(specs ...string) identity.Claim {
		c := claim(nil, specs...)
		c.Source = known.SourceProfile
		return c
	}
	if _, err := identity.Decide(profile("email:carol@x"), identity.Facts{Fixed: dave, Holders: holders(carol)}, now); known.ErrorCode(err) != known.IdentityConflict {
		t.Errorf("another user's email: %v, want IDENTITY_CONFLICT", err)
	}
	if _, err := identity.Decide(profile("email:other@x"), identity.Facts{Fixed: dave, Holders: map[known.IdentityKind]*known.User{}}, now); known.ErrorCode(err) != known.IdentityConflict {
		t.Errorf("replacing a proven email: %v, want IDENTITY_CONFLICT", err)
	}
	p, err := identity.Decide(profile("email:dave@x", "phone:+14155550123"), identity.Facts{Fixed: dave, Holders: holders(dave)}, now)
	if err != nil || p.User != dave || !has(p.Identities, "email:dave@x", true) || !has(p.Identities, "phone:+14155550123", false) {
		t.Errorf("profile of the user's own email and a new phone: %v %+v, %v", p, p.Identities, err)
	}
}

// TestMayRead: a session reads its own visitor's conversations, and, when verified, its
// user's; a claimed session reads no other conversation of its user.
func TestMayRead(t *testing.T) {
	u := known.UserID("u")
	conv := &known.Conversation{ProjectID: "p", UserID: &u, VisitorID: "other"}
	own := &known.Conversation{ProjectID: "p", UserID: &u, VisitorID: "v"}
	verified := &known.Session{ProjectID: "p", VisitorID: "v", Level: known.LevelVerified, UserID: &u}
	claimed := &known.Session{ProjectID: "p", VisitorID: "v", Level: known.LevelClaimed, UserID: &u}
	for _, c := range []struct {
		ss   *known.Session
		c    *known.Conversation
		want bool
	}{{verified, conv, true}, {claimed, conv, false}, {claimed, own, true}, {nil, own, false},
		{&known.Session{ProjectID: "q", VisitorID: "v", Level: known.LevelVerified, UserID: &u}, own, false}} {
		if got := identity.MayRead(c.ss, c.c); got != c.want {
			t.Errorf("MayRead(%+v, %+v) = %v, want %v", c.ss, c.c, got, c.want)
		}
	}
}
