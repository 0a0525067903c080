// Package identity holds the rule of API.md §3: which user an identity claim lands on, what it
// may change, and what a widget session may read. Decide takes plain values (the claim, the
// session, the users that hold each identity) and returns a Plan; it reads and writes nothing.
// The service gathers the facts before it and carries out the plan after it, so the whole rule
// is here, in one place, and every case of it has a table test.
package identity

import (
	"fmt"
	"time"

	"github.com/knownhq/known"
)

// MaxMetadataKeys is how many keys a user's metadata may hold after any write or merge.
const MaxMetadataKeys = 50

// Asserted is one identity a claim asserts.
type Asserted struct {
	Kind known.IdentityKind
	// Value is the normalized key: an email lower-cased.
	Value string
	// Field is the input field that asserted it, for errors.
	Field []string
	// Proven is set when the call's proof covers this identity.
	Proven bool
}

// Claim is what one call asserts, from any source: identify, setUser, a JWT's claims, an
// identification token, a profile from the customer's user API, or a widget write that names
// no identity (setProperties, track, …).
type Claim struct {
	Source known.IdentitySource
	// Identities are asserted in matching order: externalId, email, phone.
	Identities []Asserted
	// Method is the proof the call carried and that verified, nil for none.
	Method *known.VerificationMethod
	// Logout is setUser with id null: an identified session ends and a new visitor begins.
	Logout bool
	// MetaSet and MetaUnset change the user's metadata; MetaField names them in errors.
	MetaSet   map[string]any
	MetaUnset []string
	MetaField []string
}

// Facts is what the store said just before the decision.
type Facts struct {
	// RequireVerification is the project's setting: every identity claim needs a proof.
	RequireVerification bool
	// Session is the caller's widget session, nil before its first call.
	Session *known.Session
	// Current is the user the session acts for: the user it is identified as, or its
	// visitor's anonymous record; nil when there is none yet.
	Current *known.User
	// Holders maps each asserted identity's kind to the user that holds its value; an
	// identity nobody holds is absent.
	Holders map[known.IdentityKind]*known.User
	// Fixed, when set, is the user the claim is about, whatever it asserts: a profile that the
	// customer's user API answered for this user. It matches nobody else and takes nothing.
	Fixed *known.User
}

// Take is a claimed identity that a proof takes from the user that only claimed it.
type Take struct {
	Identity Asserted
	From     *known.User
}

// Plan is what the store step carries out.
type Plan struct {
	// User is the existing user the call lands on; nil means a new user (made from the
	// session's anonymous record when Promote is set).
	User *known.User
	// Promote makes the session's anonymous record (Facts.Current) the new user.
	Promote bool
	// Merge is the session's anonymous record, merged into User and deleted.
	Merge *known.User
	// Takes are identities proven by this call that other users only claimed: they move to
	// User and those users lose them.
	Takes []Take
	// Release are identities of User replaced by this call: their keys are given up.
	Release []known.Identity
	// Identities is User's list of identities after the call.
	Identities []known.Identity
	// NewVisitor: the session's visitor is someone else, so the call gets a new visitor and
	// session and the old session ends; Logout does the same for setUser(id: null).
	NewVisitor bool
	Logout     bool
	// Level and Method are the session's after the call.
	Level  known.Level
	Method *known.VerificationMethod
}

func refuse(field []string, code known.Code, format string, args ...any) error {
	return known.FieldErrorf(field, code, format, args...)
}

// Decide applies API.md §3 to a claim. Errors are user errors with the field at fault:
// VERIFICATION_REQUIRED, IDENTITY_CONFLICT, LIMIT_EXCEEDED.
//
// The rule, in order:
//   - A project that requires verification refuses an identity claim without a proof.
//   - Proof is per identity. A proven identity chooses the user: the one that holds it proven,
//     or that holds it as written by the customer's backend (createUser), or that only this
//     browser ever identified as. Another user that only claimed it loses it to the prover.
//     Two proven identities held by two users are a conflict.
//   - Without a proof the user is matched by externalId first; by email only when that email is
//     proven or its user has no externalId; by phone only when nothing else is asserted and
//     its user has no externalId. A verified user is never reached by a claim unless the
//     session was verified as that user.
//   - Claimed identities never choose the user when the call carries a proof. Every claimed
//     identity must be free or already the chosen user's; one held by another user is
//     VERIFICATION_REQUIRED when that user is verified, IDENTITY_CONFLICT otherwise.
//   - No user found: the session's anonymous record becomes the user, or a new user is made.
//     A session identified as someone else gets a new visitor; an anonymous record merges
//     into the user it becomes.
//   - The user's metadata holds at most MaxMetadataKeys keys afterwards, merge included.
func Decide(c Claim, f Facts, now time.Time) (Plan, error) {
	ss := f.Session
	if f.Fixed != nil {
		return decideFixed(c, f, now)
	}
	if len(c.Identities) == 0 {
		return decideUnnamed(c, f)
	}
	if f.RequireVerification && c.Method == nil {
		return Plan{}, refuse([]string{"input"}, known.VerificationRequired,
			"this app requires a proof (userHash, jwt or identificationToken) with every identity")
	}
	current := f.Current
	verifiedAs := func(u *known.User) bool {
		return u != nil && ss != nil && ss.Verified() && ss.UserID != nil && *ss.UserID == u.ID
	}

	var p Plan
	var target *known.User
	var targetField []string
	proved := c.Method != nil
	// A proven identity lands on the user that holds it proven, or as written by the
	// customer's backend; failing those, on a user that only this browser was ever
	// identified as. Two users chosen so are a conflict.
	for _, strong := range []bool{true, false} {
		for _, a := range c.Identities {
			h := f.Holders[a.Kind]
			if !a.Proven || h == nil {
				continue
			}
			held := h.Identity(a.Kind)
			if held == nil {
				continue
			}
			if strong && !(held.Proven || held.Source == known.SourceAPI) || !strong && !madeByThisBrowser(h, ss) {
				continue
			}
			if target != nil && target.ID != h.ID {
				if !strong {
					target = nil // two of this browser's users: land on neither
					break
				}
				return Plan{}, refuse(a.Field, known.IdentityConflict,
					"this %s belongs to another user than the other identity this proof proves", fieldName(a.Field))
			}
			target, targetField = h, a.Field
		}
		if target != nil {
			break
		}
	}
	if !proved {
		var err error
		if target, targetField, err = match(c, f); err != nil {
			return Plan{}, err
		}
		if target != nil && target.Verified && !verifiedAs(target) {
			return Plan{}, refuse(targetField, known.VerificationRequired,
				"this user is verified: identify them with a proof (userHash, jwt or identificationToken)")
		}
	}
	if target == nil && proved && current != nil && !current.Anonymous() &&
		(verifiedAs(current) || madeByThisBrowser(current, ss)) && !differs(current, c.Identities) {
		target = current // the session's own user proves more of its identities
	}
	// Any other user that only claimed a proven identity loses it to the prover.
	for _, a := range c.Identities {
		if h := f.Holders[a.Kind]; a.Proven && h != nil && (target == nil || h.ID != target.ID) {
			p.Takes = append(p.Takes, Take{Identity: a, From: h})
		}
	}

	// Every other identity must be free, the target's, or taken by this proof.
	for _, a := range c.Identities {
		h := f.Holders[a.Kind]
		if h == nil || (target != nil && h.ID == target.ID) || taken(p.Takes, a) {
			continue
		}
		if h.Verified {
			return Plan{}, refuse(a.Field, known.VerificationRequired,
				"this %s belongs to a verified user: only a proof of that identity reaches them", fieldName(a.Field))
		}
		return Plan{}, refuse(a.Field, known.IdentityConflict, "this %s belongs to another user", fieldName(a.Field))
	}

	// Where the call lands, and what becomes of the session's visitor.
	switch {
	case target != nil:
		p.User = target
		if current != nil && current.ID != target.ID {
			if current.Anonymous() {
				p.Merge = current
			} else {
				p.NewVisitor = true
			}
		}
	case current != nil && current.Anonymous():
		p.Promote = true
	case current != nil:
		p.NewVisitor = true // identified as someone else: this identity is a new person
	}

	// A claim never replaces a proven identity: a new value of it needs a proof.
	if p.User != nil {
		for _, a := range c.Identities {
			if id := p.User.Identity(a.Kind); !a.Proven && id != nil && id.Proven && id.Value != a.Value {
				return Plan{}, refuse(a.Field, known.VerificationRequired,
					"the user's %s is proven: a new one needs a proof of it too", fieldName(a.Field))
			}
		}
	}
	p.Identities, p.Release = next(c, p.User, now)

	// The session after the call.
	switch {
	case proved:
		p.Level, p.Method = known.LevelVerified, c.Method
	case p.User != nil && verifiedAs(p.User) && !p.NewVisitor:
		p.Level, p.Method = known.LevelVerified, ss.Method
	default:
		p.Level = known.LevelClaimed
	}

	return p, checkMetadata(c, p.User, mergeOrPromote(p, current))
}

// next returns user u's identities after claim c (u nil: a new user), and u's identities the
// claim replaces.
func next(c Claim, u *known.User, now time.Time) (ids []known.Identity, release []known.Identity) {
	if u != nil {
		ids = append(ids, u.Identities...)
	}
	for _, a := range c.Identities {
		n := known.Identity{Kind: a.Kind, Value: a.Value, Proven: a.Proven, Source: c.Source, At: now}
		if a.Proven {
			n.Method = c.Method
		}
		i := indexOf(ids, a.Kind)
		switch {
		case i < 0:
			ids = append(ids, n)
		case ids[i].Value == a.Value:
			if a.Proven {
				ids[i] = n // proven (again): the latest proof's method and time
			}
		default:
			release = append(release, ids[i])
			ids[i] = n
		}
	}
	return ids, release
}

// decideFixed decides a claim about a given user (a fetched profile): each identity must be
// free or already the user's, and a proven identity of the user is not replaced by a claim.
func decideFixed(c Claim, f Facts, now time.Time) (Plan, error) {
	u := f.Fixed
	for _, a := range c.Identities {
		if h := f.Holders[a.Kind]; h != nil && h.ID != u.ID {
			return Plan{}, otherUser(h, a.Field, "this "+fieldName(a.Field)+" belongs to another user")
		}
		if id := u.Identity(a.Kind); id != nil && id.Proven && id.Value != a.Value {
			return Plan{}, refuse(a.Field, known.IdentityConflict, "the user's %s is proven: a claim does not replace it", fieldName(a.Field))
		}
	}
	p := Plan{User: u}
	p.Identities, p.Release = next(c, u, now)
	return p, checkMetadata(c, u, nil)
}

// decideUnnamed decides a call that asserts no identity: a widget write (setProperties,
// track, …) lands on the session's user, made as an anonymous record when it has none; a
// setUser(id: null) ends an identified session.
func decideUnnamed(c Claim, f Facts) (Plan, error) {
	ss := f.Session
	if c.Logout && ss != nil && !ss.Anonymous() {
		return Plan{Logout: true, Level: known.LevelAnonymous}, nil
	}
	p := Plan{User: f.Current, Level: known.LevelAnonymous}
	if ss != nil {
		p.Level, p.Method = ss.Level, ss.Method
	}
	if f.Current != nil {
		if err := MayActFor(ss, f.Current); err != nil {
			return Plan{}, err
		}
		p.Identities = f.Current.Identities
	}
	return p, checkMetadata(c, f.Current, nil)
}

// match finds the user an unproven claim names (API.md §3), or nil for a new identity.
func match(c Claim, f Facts) (*known.User, []string, error) {
	var ext, email, phone *Asserted
	for i := range c.Identities {
		switch c.Identities[i].Kind {
		case known.IdentityExternalID:
			ext = &c.Identities[i]
		case known.IdentityEmail:
			email = &c.Identities[i]
		case known.IdentityPhone:
			phone = &c.Identities[i]
		}
	}
	if ext != nil && f.Holders[ext.Kind] != nil {
		return f.Holders[ext.Kind], ext.Field, nil
	}
	if email != nil {
		if h := f.Holders[email.Kind]; h != nil {
			held := h.Identity(known.IdentityEmail)
			if held != nil && (held.Proven || h.ExternalID == nil) {
				if ext != nil && h.ExternalID != nil {
					return nil, nil, otherUser(h, email.Field, "this email belongs to a user with another "+fieldName(ext.Field))
				}
				return h, email.Field, nil
			}
			if ext != nil {
				return nil, nil, otherUser(h, email.Field, "this email belongs to a user with another "+fieldName(ext.Field))
			}
			return nil, nil, otherUser(h, email.Field, "this email belongs to a user known by their own user id: send it too")
		}
	}
	if phone != nil && ext == nil && email == nil {
		if h := f.Holders[phone.Kind]; h != nil && h.ExternalID == nil {
			return h, phone.Field, nil
		}
	}
	return nil, nil, nil
}

// otherUser refuses a claim that names another user's identity: VERIFICATION_REQUIRED when
// that user is verified, IDENTITY_CONFLICT otherwise.
func otherUser(h *known.User, field []string, msg string) error {
	if h.Verified {
		return refuse(field, known.VerificationRequired, "%s, who is verified: only a proof of that identity reaches them", msg)
	}
	return refuse(field, known.IdentityConflict, "%s", msg)
}

// madeByThisBrowser reports whether only the session's own visitor was ever identified as u:
// then every claim u holds came from the browser that now proves it, and the proof may land
// on u rather than take the identity from it.
func madeByThisBrowser(u *known.User, ss *known.Session) bool {
	return ss != nil && len(u.VisitorIDs) == 1 && u.VisitorIDs[0] == ss.VisitorID
}

// differs reports whether a claim names someone other than u: another externalId than u's
// when it asserts one (the customer's own id is the strongest identity: with it the same, an
// email may change), else another value of any kind u holds.
func differs(u *known.User, as []Asserted) bool {
	for _, a := range as {
		if a.Kind == known.IdentityExternalID {
			id := u.Identity(a.Kind)
			return id != nil && id.Value != a.Value
		}
	}
	for _, a := range as {
		if id := u.Identity(a.Kind); id != nil && id.Value != a.Value {
			return true
		}
	}
	return false
}

func taken(ts []Take, a Asserted) bool {
	for _, t := range ts {
		if t.Identity.Kind == a.Kind {
			return true
		}
	}
	return false
}

func indexOf(ids []known.Identity, kind known.IdentityKind) int {
	for i := range ids {
		if ids[i].Kind == kind {
			return i
		}
	}
	return -1
}

func mergeOrPromote(p Plan, current *known.User) *known.User {
	if p.Merge != nil {
		return p.Merge
	}
	if p.Promote {
		return current
	}
	return nil
}

// checkMetadata counts the metadata keys user u holds after merging record r into it and
// applying the claim's change; more than MaxMetadataKeys is LIMIT_EXCEEDED.
func checkMetadata(c Claim, u, r *known.User) error {
	keys := map[string]bool{}
	for _, x := range []*known.User{u, r} {
		if x != nil {
			for k := range x.Metadata {
				keys[k] = true
			}
		}
	}
	for k := range c.MetaSet {
		keys[k] = true
	}
	for _, k := range c.MetaUnset {
		delete(keys, k)
	}
	if len(keys) > MaxMetadataKeys {
		field := c.MetaField
		if len(field) == 0 {
			field = []string{"input"}
		}
		what := "the user's metadata"
		if r != nil && len(r.Metadata) > 0 && u != nil {
			what = "the user's metadata, merged with this visitor's properties,"
		}
		return refuse(field, known.LimitExceeded, "%s would have %d keys; the limit is %d", what, len(keys), MaxMetadataKeys)
	}
	return nil
}

// MayActFor refuses (VERIFICATION_REQUIRED) a session that is not verified as user u when u is
// verified: a claimant never writes to, or reads the history of, a verified user.
func MayActFor(ss *known.Session, u *known.User) error {
	if u == nil || !u.Verified {
		return nil
	}
	if ss != nil && ss.Verified() && ss.UserID != nil && *ss.UserID == u.ID {
		return nil
	}
	return known.Errorf(known.VerificationRequired, "this user is verified: identify with a proof to act for them")
}

// MayRead reports whether a widget session may read a conversation: its own visitor's, or,
// when the session is verified, any of the user's it was verified as (API.md §3).
func MayRead(ss *known.Session, c *known.Conversation) bool {
	if ss == nil || c.ProjectID != ss.ProjectID {
		return false
	}
	if c.VisitorID == ss.VisitorID {
		return true
	}
	return ss.Verified() && ss.UserID != nil && c.UserID != nil && *c.UserID == *ss.UserID
}

func fieldName(field []string) string {
	if len(field) == 0 {
		return "identity"
	}
	return field[len(field)-1]
}

// String describes a plan for test failures.
func (p Plan) String() string {
	user := "new"
	if p.User != nil {
		user = string(p.User.ID)
	}
	return fmt.Sprintf("user=%s promote=%v merge=%v takes=%d release=%d newVisitor=%v logout=%v level=%s",
		user, p.Promote, p.Merge != nil, len(p.Takes), len(p.Release), p.NewVisitor, p.Logout, p.Level)
}
