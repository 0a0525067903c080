package service

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/identity"
	"github.com/knownhq/known/store"
	"golang.org/x/sync/errgroup"
)

// IdentifyInput is identify's input (seed 002, with seed 000's userId and seed 004's token).
type IdentifyInput struct {
	AppID     string
	VisitorID *string
	// UserID is the customer's own user id: stored as the user's externalId.
	UserID      *string
	Email       *string
	Name        *string
	FirstName   *string
	LastName    *string
	PhoneNumber *string
	AvatarURL   *string
	Metadata    map[string]any
	Company     *CompanyInput
	CompanyIDs  []string
	StageMode   *known.StageMode
	// Proofs: checked by identity verification; until then an identity is only claimed.
	UserHash, JWT, IdentificationToken *string
}

// CompanyInput is identify's company: ID is the customer's own company id.
type CompanyInput struct {
	ID       string
	Name     *string
	Stage    *string
	Metadata map[string]any
}

// SetUserInput is setUser's input (seed 003). A nil ID is an anonymous visitor.
type SetUserInput struct {
	AppID     string
	ID        *string
	Email     *string
	Name      *string
	AvatarURL *string
	Attrs     map[string]any
	// Organizations, when non-nil, is the user's complete list of organizations.
	Organizations []OrganizationInput
	JWT, UserHash *string
}

// OrganizationInput is one organization of setUser: ID is the customer's own id.
type OrganizationInput struct {
	ID    string
	Name  string
	Attrs map[string]any
}

// claimFields is what any source asserts, before validation: identify's and setUser's inputs,
// a JWT's claims and a fetched profile are each put in this one shape, and newClaim makes the
// claim from it.
type claimFields struct {
	source known.IdentitySource
	// at names a field of the source in errors; extField is its externalId field's name.
	at       func(name string) []string
	extField string
	// Field names of the source, when they are not the identify names.
	emailField, phoneField, firstField, lastField, metaField, orgsField string

	ext, email, phone, name, first, last, avatar *string
	meta                                         map[string]any
	company                                      *CompanyInput
	companyIDs                                   []string
	orgs                                         []OrganizationInput
	setOrgs                                      bool
}

// claim is a call's identity claim after validation: what it asserts (identity.Claim) and
// what it writes.
type claim struct {
	identity.Claim
	extField   string
	ext        *string
	email      *string
	emailKey   *string
	phone      *string
	name       *string
	first      *string
	last       *string
	avatar     *string
	company    *CompanyInput
	companyIDs []string
	stageMode  known.StageMode
	orgs       []OrganizationInput
	setOrgs    bool
	// token is the identification token that proved the email: its names fill a nameless user.
	token *known.IdentificationToken
	// fixed is the user a fetched profile is about: the claim lands on it (identity.Facts.Fixed),
	// does not move its lastSeenAt, and adds no visitor.
	fixed *known.User
}

// newClaim validates what a source asserts and makes its claim: the one constructor for every
// source. Problems are collected in v.
func newClaim(v *validator, f claimFields) *claim {
	name := func(n, def string) string {
		if n != "" {
			return n
		}
		return def
	}
	c := &claim{extField: f.extField}
	c.Source = f.source
	if f.extField != "" {
		c.ext = v.optString(f.at(f.extField), f.ext)
	}
	emailField := name(f.emailField, "email")
	c.email, c.emailKey = v.email(f.at(emailField), f.email)
	phoneField := name(f.phoneField, "phoneNumber")
	c.phone = v.phone(f.at(phoneField), f.phone)
	c.name = v.optString(f.at("name"), f.name)
	c.first = v.optString(f.at(name(f.firstField, "firstName")), f.first)
	c.last = v.optString(f.at(name(f.lastField, "lastName")), f.last)
	c.avatar = v.httpsURL(f.at("avatarUrl"), f.avatar)
	c.MetaField = f.at(name(f.metaField, "metadata"))
	c.MetaSet, c.MetaUnset = v.jsonPatch(c.MetaField, f.meta)
	if f.company != nil {
		at := func(n string) []string { return append(f.at("company"), n) }
		c.company = &CompanyInput{
			ID:       v.requiredString(at("id"), f.company.ID),
			Name:     v.optString(at("name"), f.company.Name),
			Stage:    v.optString(at("stage"), f.company.Stage),
			Metadata: v.jsonObject(at("metadata"), f.company.Metadata),
		}
	}
	if f.companyIDs != nil {
		c.companyIDs = v.idList(f.at("companyIds"), f.companyIDs, MaxCompanyIDs)
	}
	if f.setOrgs {
		c.setOrgs = true
		c.orgs = v.organizations(f.at(name(f.orgsField, "organizations")), f.orgs)
	}
	for _, a := range []struct {
		kind  known.IdentityKind
		value *string
		field string
	}{{known.IdentityExternalID, c.ext, f.extField}, {known.IdentityEmail, c.emailKey, emailField}, {known.IdentityPhone, c.phone, phoneField}} {
		if a.value != nil {
			c.Identities = append(c.Identities, identity.Asserted{Kind: a.kind, Value: *a.value, Field: f.at(a.field)})
		}
	}
	return c
}

// proven marks the identities the proof by method covers (API.md §3: a proof proves exactly
// what it covers; the rest of the call stays a claim).
func (c *claim) proven(method known.VerificationMethod) {
	c.Method = &method
	for i := range c.Identities {
		c.Identities[i].Proven = method.Covers(c.Identities[i].Kind, c.ext != nil)
	}
}

func (c *claim) identified() bool { return len(c.Identities) > 0 }

// writes reports whether the claim has anything to write to the visitor's record.
func (c *claim) writes() bool {
	return c.identified() || c.name != nil || c.first != nil || c.last != nil || c.avatar != nil ||
		len(c.MetaSet) > 0 || len(c.MetaUnset) > 0 || c.company != nil || len(c.companyIDs) > 0 || c.setOrgs
}

// Identify tells Known who the widget's visitor is (seed 002); the rule is identity.Decide
// (API.md §3). Returns the renewed session. User errors: INVALID, LIMIT_EXCEEDED,
// IDENTITY_CONFLICT, VERIFICATION_REQUIRED, VERIFICATION_FAILED.
func (s *Service) Identify(ctx context.Context, in IdentifyInput) (*known.Session, error) {
	wc, err := s.widget(ctx, &in.AppID, false)
	if err != nil {
		return nil, err
	}
	var v validator
	v.optString(path("input", "visitorId"), in.VisitorID)
	c := newClaim(&v, claimFields{source: known.SourceWidget, at: inputField, extField: "userId",
		ext: in.UserID, email: in.Email, phone: in.PhoneNumber, name: in.Name, first: in.FirstName, last: in.LastName,
		avatar: in.AvatarURL, meta: in.Metadata, company: in.Company, companyIDs: in.CompanyIDs})
	c.stageMode = wc.project.StageMode
	if in.StageMode != nil {
		c.stageMode = *in.StageMode
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	cp, err := s.prove(ctx, wc, c, proofs{userHash: in.UserHash, jwt: in.JWT, identificationToken: in.IdentificationToken})
	if err != nil {
		return nil, err
	}
	return s.identify(ctx, wc, cp)
}

func inputField(name string) []string { return path("input", name) }

// SetUser tells Known who the widget's visitor is (seed 003): like Identify, with id as the
// externalId, attrs merged into metadata and organizations as the complete list (at most 10,
// deduplicated by id). A nil id is an anonymous visitor: a session identified as someone is
// ended and a new anonymous visitor begins.
func (s *Service) SetUser(ctx context.Context, in SetUserInput) (*known.Session, error) {
	wc, err := s.widget(ctx, &in.AppID, false)
	if err != nil {
		return nil, err
	}
	var v validator
	c := newClaim(&v, claimFields{source: known.SourceWidget, at: inputField, extField: "id", metaField: "attrs",
		ext: in.ID, email: in.Email, name: in.Name, avatar: in.AvatarURL, meta: in.Attrs,
		orgs: in.Organizations, setOrgs: in.Organizations != nil})
	c.stageMode = wc.project.StageMode
	c.Logout = c.ext == nil
	if err := v.err(); err != nil {
		return nil, err
	}
	if c.Logout && c.identified() && in.JWT == nil {
		return nil, known.FieldErrorf(path("input", "id"), known.Invalid, "an anonymous visitor (id: null) cannot have an email")
	}
	cp, err := s.prove(ctx, wc, c, proofs{userHash: in.UserHash, jwt: in.JWT})
	if err != nil {
		return nil, err
	}
	return s.identify(ctx, wc, cp)
}

// prove checks the proof a call gives, if any, and returns the claim to carry out: with a
// JWT, the claim it signs (only signed fields are written); otherwise c, with the identities
// its userHash or identification token covers marked proven. A proof that fails is
// VERIFICATION_FAILED.
func (s *Service) prove(ctx context.Context, wc *widgetCall, c *claim, p proofs) (*claim, error) {
	switch {
	case p.jwt != nil:
		jc, err := s.jwtClaim(ctx, wc, *p.jwt, c.extField)
		if err == nil {
			jc.stageMode = c.stageMode
		}
		return jc, err
	case p.userHash != nil:
		if err := s.checkUserHash(ctx, wc, c, *p.userHash); err != nil {
			return nil, err
		}
		c.proven(known.VerifiedByHMAC)
	case p.identificationToken != nil:
		t, err := s.checkIdentificationToken(ctx, wc, c, *p.identificationToken)
		if err != nil {
			return nil, err
		}
		c.proven(known.VerifiedByToken)
		c.token = t
	}
	return c, nil
}

// identify carries out a widget claim: gather the facts, decide (identity.Decide), carry out
// the plan. A write that finds the facts changed under it (another call claimed a key, or
// changed the user) starts over with fresh facts.
func (s *Service) identify(ctx context.Context, wc *widgetCall, c *claim) (*known.Session, error) {
	for attempt := range maxAttempts {
		if attempt > 0 {
			// Another call holds a key this one needs and is still writing its user: give it
			// time rather than failing (100 visitors of one new user arrive together).
			if err := backoff(ctx, attempt); err != nil {
				return nil, err
			}
		}
		out, err := s.identifyOnce(ctx, wc, c)
		if errors.Is(err, errStale) {
			continue
		}
		return out, err
	}
	return nil, known.FieldErrorf(path("input"), known.IdentityConflict, "this identity is being changed by other calls; try again")
}

// errStale says that the facts a decision was made on changed before its write landed.
var errStale = errors.New("identity facts changed")

// facts is what gather read: the decision's input, and what the write step needs besides.
type facts struct {
	identity.Facts
	// candidate owns the keys reserved for a user this call may make or extend.
	candidate known.UserID
	reserved  []store.IdentityKey
	// companies maps the claim's companies and organizations to their ids (made by this call, for new ones).
	companies map[store.IdentityKey]store.Keyed
}

// gather reads what the decision needs: the session's user, who holds each asserted identity,
// and the ids of the claim's companies and organizations. An identity nobody holds is
// reserved at once for the call's candidate user (one insert for all of them): the cheapest way
// to learn that a key is free is to take it. What the plan does not use is given back.
func (s *Service) gather(ctx context.Context, wc *widgetCall, c *claim) (*facts, error) {
	p := wc.project.ID
	f := &facts{Facts: identity.Facts{RequireVerification: wc.project.RequireVerification, Session: wc.session,
		Holders: map[known.IdentityKind]*known.User{}}}
	cur, err := s.currentUser(ctx, wc.project.ID, wc.session)
	if err != nil {
		return nil, err
	}
	if c.fixed != nil {
		cur, f.Fixed = c.fixed, c.fixed
	}
	f.Current = cur
	f.candidate = known.UserID(store.NewID())
	if cur != nil {
		f.candidate = cur.ID
	}
	var keys []store.IdentityKey
	for _, a := range c.Identities {
		if cur != nil && cur.Holds(a.Kind, a.Value) {
			f.Holders[a.Kind] = cur
			continue
		}
		keys = append(keys, store.KeyOf(a.Kind, a.Value))
	}
	var held []store.IdentityKey
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		held, err = s.store.ReserveKeys(gctx, p, keys, f.candidate)
		if err != nil {
			// Cut off midway, some may be ours: give back whatever the candidate holds.
			_ = s.store.ReleaseKeys(context.WithoutCancel(gctx), p, keys, f.candidate)
		}
		return err
	})
	if ck := companyKeys(c); len(ck) > 0 {
		g.Go(func() error {
			var err error
			f.companies, err = s.store.KeyedIDs(gctx, p, ck)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, k := range keys {
		if !slices.Contains(held, k) {
			f.reserved = append(f.reserved, k)
		}
	}
	if len(held) == 0 {
		return f, nil
	}
	holds, err := s.store.KeyHolds(ctx, p, held)
	if err != nil {
		return nil, s.giveBack(ctx, p, f, err)
	}
	var owners []known.UserID
	for _, k := range held {
		if h, ok := holds[k]; ok && !slices.Contains(owners, h.OwnerID) {
			owners = append(owners, h.OwnerID)
		}
	}
	users, err := s.store.UsersByIDsEach(ctx, p, owners)
	if err != nil {
		return nil, s.giveBack(ctx, p, f, err)
	}
	for _, a := range c.Identities {
		k := store.KeyOf(a.Kind, a.Value)
		if !slices.Contains(held, k) {
			continue
		}
		h, ok := holds[k]
		if !ok {
			return nil, s.giveBack(ctx, p, f, errStale) // released since: look again
		}
		u := users[slices.Index(owners, h.OwnerID)]
		if u == nil || !u.Holds(a.Kind, a.Value) {
			// Its owner is still being written, or a crash left the key behind.
			if time.Since(h.CreatedAt) > store.OrphanAge {
				_ = s.store.ReleaseKeys(ctx, p, []store.IdentityKey{k}, h.OwnerID)
			}
			return nil, s.giveBack(ctx, p, f, errStale)
		}
		f.Holders[a.Kind] = u
	}
	return f, nil
}

// giveBack releases the keys gather reserved, and returns err.
func (s *Service) giveBack(ctx context.Context, p known.ProjectID, f *facts, err error) error {
	if len(f.reserved) > 0 {
		_ = s.store.ReleaseKeys(context.WithoutCancel(ctx), p, f.reserved, f.candidate)
		f.reserved = nil
	}
	return err
}

// companyKeys lists the identity keys of the claim's companies and organizations.
func companyKeys(c *claim) []store.IdentityKey {
	var ks []store.IdentityKey
	if c.company != nil {
		ks = append(ks, store.IdentityKey{Kind: store.KeyCompany, Value: c.company.ID})
	}
	for _, id := range c.companyIDs {
		ks = append(ks, store.IdentityKey{Kind: store.KeyCompany, Value: id})
	}
	for _, o := range c.orgs {
		ks = append(ks, store.IdentityKey{Kind: store.KeyOrganization, Value: o.ID})
	}
	return ks
}

// currentUser returns the user a session acts for: the user it is identified as, or its
// visitor's anonymous record; nil when there is none (or no session).
func (s *Service) currentUser(ctx context.Context, p known.ProjectID, ss *known.Session) (*known.User, error) {
	if ss == nil {
		return nil, nil
	}
	id := store.AnonymousUserID(p, ss.VisitorID)
	if ss.UserID != nil {
		id = *ss.UserID
	}
	u, err := s.store.User(ctx, p, id)
	if known.ErrorCode(err) == known.NotFound {
		return nil, nil
	}
	return u, err
}

// identifyOnce is one attempt of identify.
func (s *Service) identifyOnce(ctx context.Context, wc *widgetCall, c *claim) (*known.Session, error) {
	if !c.identified() && !c.writes() && !c.Logout {
		return s.renew(ctx, wc, wc.session)
	}
	f, err := s.gather(ctx, wc, c)
	if err != nil {
		return nil, err
	}
	plan, err := identity.Decide(c.Claim, f.Facts, wc.now)
	if err != nil {
		return nil, s.giveBack(ctx, wc.project.ID, f, err)
	}
	// Decided: the plan's writes are carried out whole even if the client goes away now, so
	// that a cut-off call leaves no half of them behind.
	ctx = context.WithoutCancel(ctx)
	if plan.Logout {
		if err := s.store.RevokeSession(ctx, wc.session.ID, wc.now); err != nil {
			return nil, err
		}
		return s.renew(ctx, wc, nil)
	}
	// The session the call ends with.
	ss := wc.session
	var ended string
	if ss == nil || plan.NewVisitor {
		if ss != nil {
			ended = ss.ID
		}
		ss = &known.Session{ProjectID: wc.project.ID, VisitorID: newVisitor()}
	} else {
		copied := *ss
		ss = &copied
	}
	id := userOf(wc.project.ID, c, f, plan, ss.VisitorID)
	ss.Level, ss.Method = plan.Level, plan.Method
	if c.identified() {
		ss.UserID = &id
	}
	// A new session is inserted alongside the writes, a round trip sooner: its token is
	// handed out only once they landed, and it is revoked if they fail.
	fresh := ss.ID == ""
	var saved error
	var wg sync.WaitGroup
	if fresh {
		wg.Go(func() { saved = s.saveSession(ctx, wc, ss) })
	}
	u, err := s.write(ctx, wc, c, f, plan, id, ss.VisitorID)
	if err == nil {
		err = s.auditIdentify(ctx, wc.project.ID, ss.VisitorID, plan, f.Current, u)
	}
	wg.Wait()
	if err != nil {
		if fresh && saved == nil {
			_ = s.store.RevokeSession(ctx, ss.ID, wc.now)
		}
		return nil, err
	}
	if ended != "" {
		if err := s.store.RevokeSession(ctx, ended, wc.now); err != nil {
			return nil, err
		}
	}
	var out *known.Session
	if fresh {
		out, err = s.signed(ctx, wc, ss), saved
	} else {
		out, err = s.renew(ctx, wc, ss)
	}
	if err != nil {
		return nil, err
	}
	if e := wc.project.UserDataEndpoint; e != nil && e.Enabled && c.ext != nil {
		s.refreshLater(wc.project.ID, u.ID, *c.ext) // seed 000: a session that begins with an externalId
	}
	return out, nil
}

// userOf is the id of the user a plan writes: the user it names, the current one it promotes,
// or a new one (the id gather reserved keys for); a visitor's first write without an identity
// makes its anonymous record.
func userOf(p known.ProjectID, c *claim, f *facts, plan identity.Plan, visitor known.VisitorID) known.UserID {
	if !c.identified() && plan.User == nil {
		return store.AnonymousUserID(p, visitor)
	}
	switch {
	case plan.User != nil:
		return plan.User.ID
	case plan.Promote:
		return f.Current.ID
	case f.Current == nil || f.candidate != f.Current.ID:
		return f.candidate
	default:
		return known.UserID(store.NewID())
	}
}

// write carries out a plan for user id (userOf): keys first (a user never shows an identity
// whose key it does not hold), then the user, then what moves to it, then the keys it gave
// up. visitor is the visitor the call ends with.
func (s *Service) write(ctx context.Context, wc *widgetCall, c *claim, f *facts, plan identity.Plan, id known.UserID, visitor known.VisitorID) (*known.User, error) {
	p := wc.project.ID
	// Keys: the reserved ones move to the user when the candidate was someone else, and taken
	// ones move from the user that only claimed them.
	var moved []keyMove
	undo := func(err error) error {
		for i := len(moved) - 1; i >= 0; i-- {
			m := moved[i]
			if m.from == "" {
				_ = s.store.ReleaseKeys(context.WithoutCancel(ctx), p, []store.IdentityKey{m.key}, m.to)
			} else {
				_, _ = s.store.MoveKey(context.WithoutCancel(ctx), p, m.key, m.to, m.from)
			}
		}
		return err
	}
	for _, k := range f.reserved {
		moved = append(moved, keyMove{key: k, to: f.candidate})
		if id == f.candidate {
			continue
		}
		ok, err := s.store.MoveKey(ctx, p, k, f.candidate, id)
		if err != nil || !ok {
			return nil, undo(orStale(err))
		}
		moved[len(moved)-1].to = id
	}
	for _, t := range plan.Takes {
		k := store.KeyOf(t.Identity.Kind, t.Identity.Value)
		ok, err := s.store.MoveKey(ctx, p, k, t.From.ID, id)
		if err != nil || !ok {
			return nil, undo(orStale(err))
		}
		moved = append(moved, keyMove{key: k, from: t.From.ID, to: id})
	}

	up, checked, companies := s.userUpdate(wc, c, f, plan, visitor)
	// A company write that may be refused (its metadata within the limit) goes first, so that
	// a refusal writes nothing else. The others are written alongside the user: it names them
	// by the ids gather found, and writing one again is harmless if the user's write must
	// start over.
	for _, w := range checked {
		if err := w(ctx); err != nil {
			return nil, undo(err)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, w := range companies {
		g.Go(func() error { return w(gctx) })
	}
	var u *known.User
	var err error
	if plan.User == nil && !plan.Promote {
		u = newUser(p, id, visitor, up, wc.now)
		err = s.store.InsertUser(ctx, u)
		if known.ErrorCode(err) == known.AlreadyExists && !c.identified() {
			err = errStale // a concurrent first write of this visitor made its record
		}
	} else {
		target := plan.User
		if plan.Promote {
			target = f.Current
		}
		if up.Identities != nil || len(up.Metadata) > 0 || plan.Merge != nil {
			// The decision read these: write them only onto the user it read.
			up.IfRev = &target.Rev
		}
		up.Before = target // the events of the write are told from it, without reading it again
		u, err = s.store.UpdateUser(ctx, id, up)
		if errors.Is(err, store.ErrRevChanged) || known.ErrorCode(err) == known.NotFound {
			err = errStale
		}
	}
	if gerr := g.Wait(); err == nil {
		err = gerr
	}
	if errors.Is(err, store.ErrUnlisted) {
		return nil, err // the user exists and its keys name it: a retry finds it
	}
	if err != nil {
		return nil, undo(err)
	}
	moved = nil // written: the user shows its keys now

	if r := plan.Merge; r != nil {
		if err := s.store.MoveUserData(ctx, r.ID, u.ID); err != nil {
			return nil, err
		}
		if err := s.store.DeleteMergedUser(ctx, r.ID); err != nil {
			return nil, err
		}
	}
	for _, t := range plan.Takes {
		if err := s.dropIdentity(ctx, t.From, t.Identity.Kind, wc.now); err != nil {
			return nil, err
		}
	}
	var release []store.IdentityKey
	for _, r := range plan.Release {
		release = append(release, store.KeyOf(r.Kind, r.Value))
	}
	if err := s.store.ReleaseKeys(ctx, p, release, u.ID); err != nil {
		return nil, err
	}
	return u, nil
}

type keyMove struct {
	key      store.IdentityKey
	from, to known.UserID // from is "" for a key reserved by this call
}

func orStale(err error) error {
	if err == nil {
		return errStale
	}
	return err
}

// dropIdentity removes the identity of kind from user u, which lost it to a prover.
func (s *Service) dropIdentity(ctx context.Context, u *known.User, kind known.IdentityKind, now time.Time) error {
	for range maxAttempts {
		ids := slices.DeleteFunc(slices.Clone(u.Identities), func(id known.Identity) bool { return id.Kind == kind })
		empty := ""
		up := store.UserUpdate{Identities: &ids, UpdatedAt: now, IfRev: &u.Rev}
		switch kind {
		case known.IdentityExternalID:
			up.ExternalID = &empty
		case known.IdentityEmail:
			up.Email, up.EmailKey = &empty, &empty
		case known.IdentityPhone:
			up.PhoneNumber = &empty
		}
		_, err := s.store.UpdateUser(ctx, u.ID, up)
		if !errors.Is(err, store.ErrRevChanged) {
			if known.ErrorCode(err) == known.NotFound {
				return nil
			}
			return err
		}
		if u, err = s.store.User(ctx, u.ProjectID, u.ID); err != nil {
			if known.ErrorCode(err) == known.NotFound {
				return nil
			}
			return err
		}
	}
	return known.Errorf(known.Internal, "user %s kept changing", u.ID)
}

// userUpdate makes the write of a plan to its user: identities, names, metadata (a merged
// record's keys the user lacks, then the claim's), companies, organizations, visitors.
func (s *Service) userUpdate(wc *widgetCall, c *claim, f *facts, plan identity.Plan, visitor known.VisitorID) (up store.UserUpdate, checked, writes []func(context.Context) error) {
	up = store.UserUpdate{UpdatedAt: wc.now, AvatarURL: c.avatar, Metadata: map[string]any{}, MetadataUnset: c.MetaUnset}
	if c.fixed == nil {
		up.LastSeenAt = &wc.now
	}
	base := plan.User
	if plan.Promote {
		base = f.Current
	}
	if base == nil {
		base = &known.User{}
	}
	if c.identified() && !slices.Equal(plan.Identities, base.Identities) {
		ids := slices.Clone(plan.Identities)
		up.Identities = &ids
	}
	if c.ext != nil && (base.ExternalID == nil || string(*base.ExternalID) != *c.ext) {
		up.ExternalID = c.ext
	}
	if c.emailKey != nil {
		up.Email, up.EmailKey = c.email, c.emailKey
	}
	if c.phone != nil {
		up.PhoneNumber = c.phone
	}
	first, last := c.first, c.last
	if t := c.token; t != nil && first == nil && last == nil && c.name == nil &&
		base.Name == nil && base.FirstName == nil && base.LastName == nil {
		first, last = t.FirstName, t.LastName // seed 004: only a user with no name gets them
	}
	up.Name, up.FirstName, up.LastName = names(base, c.name, first, last)
	if r := plan.Merge; r != nil {
		for k, v := range r.Metadata {
			if _, ok := base.Metadata[k]; !ok {
				up.Metadata[k] = v // the user's own values win
			}
		}
		up.AddVisitorIDs = strs(r.VisitorIDs)
		up.AddCompanyIDs = strs(r.CompanyIDs)
		if base.ActiveCompanyID == nil && r.ActiveCompanyID != nil {
			id := string(*r.ActiveCompanyID)
			up.ActiveCompanyID = &id
		}
	}
	for k, v := range c.MetaSet {
		up.Metadata[k] = v
	}
	if visitor != "" && !slices.Contains(base.VisitorIDs, visitor) {
		up.AddVisitorIDs = append(up.AddVisitorIDs, string(visitor))
	}
	if c.identified() && visitor != "" {
		up.Identified = ptrTo(string(visitor)) // user.identified, when the visitor is new to the user
	}
	if r := plan.Merge; r != nil {
		up.MergedFrom = ptrTo(string(r.ID)) // user.merged
	}
	checked, writes = s.linkCompanies(wc, c, f, &up)
	return up, checked, writes
}

// newUser is the user a plan makes from scratch, from the write meant for it.
func newUser(p known.ProjectID, id known.UserID, visitor known.VisitorID, up store.UserUpdate, now time.Time) *known.User {
	u := &known.User{ID: id, ProjectID: p, VisitorIDs: []known.VisitorID{visitor}, Metadata: up.Metadata,
		ExternalID: (*known.ExternalID)(up.ExternalID), Email: up.Email, PhoneNumber: up.PhoneNumber,
		Name: up.Name, FirstName: up.FirstName, LastName: up.LastName, AvatarURL: up.AvatarURL,
		CompanyIDs: typed[known.CompanyID](up.AddCompanyIDs), ActiveCompanyID: (*known.CompanyID)(up.ActiveCompanyID),
		CreatedAt: now, UpdatedAt: now, LastSeenAt: up.LastSeenAt}
	if up.Identities != nil {
		u.Identities = *up.Identities
	}
	if up.OrganizationIDs != nil {
		u.OrganizationIDs = typed[known.OrganizationID](*up.OrganizationIDs)
	}
	return u
}

// maxAttempts bounds how often a write that lost a race (for an identity, or to change one
// user) is tried again.
const maxAttempts = 30

// backoff waits before attempt (1, 2, …) a random time up to a bound that doubles from 2 ms
// to 100 ms: random, so that calls that collided once do not collide again; about 2 s in all.
func backoff(ctx context.Context, attempt int) error {
	bound := min(2*time.Millisecond<<min(attempt, 10), 100*time.Millisecond)
	t := time.NewTimer(rand.N(bound) + time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// names keeps name and firstName/lastName consistent: a name alone is split into first and
// last names; first or last names alone make the name.
func names(u *known.User, name, first, last *string) (n, f, l *string) {
	switch {
	case name == nil && first == nil && last == nil:
		return nil, nil, nil
	case first == nil && last == nil:
		f, l = splitName(*name)
		if l == nil {
			empty := ""
			l = &empty
		}
		return name, f, l
	}
	f, l = first, last
	if f == nil {
		f = u.FirstName
	}
	if l == nil {
		l = u.LastName
	}
	if name == nil {
		name = joinName(f, l)
	}
	return name, first, last
}

// linkCompanies links the claim's company (made active), companyIds (linked only) and
// organizations (the complete list) in up, by the ids gather found or reserved, and returns
// the writes that make or update them: checked ones, which may be refused (a company's
// metadata over its limit is LIMIT_EXCEEDED), and the others.
func (s *Service) linkCompanies(wc *widgetCall, c *claim, f *facts, up *store.UserUpdate) (checked, writes []func(context.Context) error) {
	p := wc.project.ID
	if c.company != nil {
		id := f.companies[store.IdentityKey{Kind: store.KeyCompany, Value: c.company.ID}]
		up.AddCompanyIDs = append(up.AddCompanyIDs, id.ID)
		up.ActiveCompanyID = &id.ID
		w := func(ctx context.Context) error {
			_, err := s.store.UpdateCompany(ctx, p, id, c.company.ID, store.CompanyUpdate{
				Name: c.company.Name, Metadata: c.company.Metadata, Stage: c.company.Stage,
				StageIfEmpty: c.stageMode == known.StageIfEmpty, MaxMetadataKeys: MaxJSONKeys,
			}, wc.now)
			var tm *store.TooManyKeysError
			if errors.As(err, &tm) {
				return known.FieldErrorf(path("input", "company", "metadata"), known.LimitExceeded,
					"the company's metadata would have %d keys; the limit is %d", tm.Keys, tm.Limit)
			}
			return err
		}
		if len(c.company.Metadata) > 0 {
			checked = append(checked, w)
		} else {
			writes = append(writes, w)
		}
	}
	for _, ext := range c.companyIDs {
		id := f.companies[store.IdentityKey{Kind: store.KeyCompany, Value: ext}]
		up.AddCompanyIDs = append(up.AddCompanyIDs, id.ID)
		writes = append(writes, func(ctx context.Context) error {
			_, err := s.store.UpdateCompany(ctx, p, id, ext, store.CompanyUpdate{}, wc.now)
			return err
		})
	}
	if c.setOrgs {
		ids := make([]string, 0, len(c.orgs))
		for _, o := range c.orgs {
			id := f.companies[store.IdentityKey{Kind: store.KeyOrganization, Value: o.ID}]
			ids = append(ids, id.ID)
			writes = append(writes, func(ctx context.Context) error {
				_, err := s.store.UpdateOrganization(ctx, p, id, o.ID, o.Name, o.Attrs, wc.now)
				return err
			})
		}
		up.OrganizationIDs = &ids
	}
	return checked, writes
}

func strs[T ~string](in []T) []string {
	out := make([]string, len(in))
	for i, v := range in {
		out[i] = string(v)
	}
	return out
}

func typed[T ~string](in []string) []T {
	if in == nil {
		return nil
	}
	out := make([]T, len(in))
	for i, v := range in {
		out[i] = T(v)
	}
	return out
}
