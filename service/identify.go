package service

import (
	"context"
	"errors"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/store"
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

// claim is an identify or setUser call after validation: what it asserts and what it writes.
type claim struct {
	extField   string // "userId" (identify) or "id" (setUser), for errors
	ext        *string
	email      *string
	emailKey   *string
	phone      *string
	name       *string
	first      *string
	last       *string
	avatar     *string
	metaSet    map[string]any
	metaUnset  []string
	company    *CompanyInput
	companyIDs []string
	stageMode  known.StageMode
	orgs       []OrganizationInput
	setOrgs    bool
	logout     bool
	// method is the proof that verified the claim, nil for a claim without one.
	method *known.VerificationMethod
	// token is the identification token that verified it, whose names fill a nameless user.
	token *known.IdentificationToken
	// unseen marks a claim that does not come from the visitor (a fetched profile): it does
	// not move the user's lastSeenAt.
	unseen bool
}

// identityField names the input field of the strongest identity the claim asserts.
func (c *claim) identityField() string {
	switch {
	case c.ext != nil:
		return c.extField
	case c.emailKey != nil:
		return "email"
	}
	return "phoneNumber"
}

// metaField names the claim's metadata field: attrs in setUser, metadata in identify.
func (c *claim) metaField() string {
	if c.extField == "id" {
		return "attrs"
	}
	return "metadata"
}

func (c *claim) identified() bool { return c.ext != nil || c.emailKey != nil || c.phone != nil }

// writes reports whether the claim has anything to write to the visitor's record.
func (c *claim) writes() bool {
	return c.identified() || c.name != nil || c.first != nil || c.last != nil || c.avatar != nil ||
		len(c.metaSet) > 0 || len(c.metaUnset) > 0 || c.company != nil || len(c.companyIDs) > 0 || c.setOrgs
}

// Identify tells Known who the widget's visitor is (seed 002). Identity rules (API.md §3): a
// user is matched by externalId first, by email only when the user has no externalId (or is
// verified), never by a guess between two users (IDENTITY_CONFLICT); a visitor's anonymous
// record merges into the user it becomes; a visitor already identified as someone else gets
// a new visitor for the new identity. Returns the renewed session. User errors: INVALID,
// LIMIT_EXCEEDED, IDENTITY_CONFLICT, VERIFICATION_REQUIRED.
func (s *Service) Identify(ctx context.Context, in IdentifyInput) (*known.Session, error) {
	wc, err := s.widget(ctx, &in.AppID, false)
	if err != nil {
		return nil, err
	}
	var v validator
	c := claim{extField: "userId"}
	c.ext = v.optString(path("input", "userId"), in.UserID)
	c.email, c.emailKey = v.email(path("input", "email"), in.Email)
	c.phone = v.phone(path("input", "phoneNumber"), in.PhoneNumber)
	c.name = v.optString(path("input", "name"), in.Name)
	c.first = v.optString(path("input", "firstName"), in.FirstName)
	c.last = v.optString(path("input", "lastName"), in.LastName)
	c.avatar = v.httpsURL(path("input", "avatarUrl"), in.AvatarURL)
	c.metaSet, c.metaUnset = v.jsonPatch(path("input", "metadata"), in.Metadata)
	v.optString(path("input", "visitorId"), in.VisitorID)
	if in.Company != nil {
		c.company = &CompanyInput{
			ID:       v.requiredString(path("input", "company", "id"), in.Company.ID),
			Name:     v.optString(path("input", "company", "name"), in.Company.Name),
			Stage:    v.optString(path("input", "company", "stage"), in.Company.Stage),
			Metadata: v.jsonObject(path("input", "company", "metadata"), in.Company.Metadata),
		}
	}
	c.companyIDs = v.idList(path("input", "companyIds"), in.CompanyIDs, MaxCompanyIDs)
	c.stageMode = wc.project.StageMode
	if in.StageMode != nil {
		c.stageMode = *in.StageMode
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	cp, err := s.prove(ctx, wc, &c, proofs{userHash: in.UserHash, jwt: in.JWT, identificationToken: in.IdentificationToken})
	if err != nil {
		return nil, err
	}
	return s.identify(ctx, wc, cp)
}

// prove checks the proof a call gives, if any, and returns the claim to carry out: with a
// JWT, the claim it signs (only signed fields are written); otherwise c, verified when its
// userHash or identification token holds. A proof that fails is VERIFICATION_FAILED.
func (s *Service) prove(ctx context.Context, wc *widgetCall, c *claim, p proofs) (*claim, error) {
	switch {
	case p.jwt != nil:
		return s.jwtClaim(ctx, wc, *p.jwt, c.extField)
	case p.userHash != nil:
		if err := s.checkUserHash(ctx, wc, c, *p.userHash); err != nil {
			return nil, err
		}
		m := known.VerifiedByHMAC
		c.method = &m
	case p.identificationToken != nil:
		t, err := s.checkIdentificationToken(ctx, wc, c, *p.identificationToken)
		if err != nil {
			return nil, err
		}
		m := known.VerifiedByToken
		c.method, c.token = &m, t
	}
	return c, nil
}

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
	c := claim{extField: "id", stageMode: wc.project.StageMode}
	c.ext = v.optString(path("input", "id"), in.ID)
	c.logout = c.ext == nil
	c.email, c.emailKey = v.email(path("input", "email"), in.Email)
	c.name = v.optString(path("input", "name"), in.Name)
	c.avatar = v.httpsURL(path("input", "avatarUrl"), in.AvatarURL)
	c.metaSet, c.metaUnset = v.jsonPatch(path("input", "attrs"), in.Attrs)
	if in.Organizations != nil {
		c.setOrgs = true
		c.orgs = v.organizations(path("input", "organizations"), in.Organizations)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	if c.logout && c.identified() && in.JWT == nil {
		return nil, known.FieldErrorf(path("input", "id"), known.Invalid, "an anonymous visitor (id: null) cannot have an email")
	}
	cp, err := s.prove(ctx, wc, &c, proofs{userHash: in.UserHash, jwt: in.JWT})
	if err != nil {
		return nil, err
	}
	return s.identify(ctx, wc, cp)
}

// identify is Identify and SetUser after validation.
func (s *Service) identify(ctx context.Context, wc *widgetCall, c *claim) (*known.Session, error) {
	p := wc.project
	if c.identified() && p.RequireVerification && c.method == nil {
		return nil, known.FieldErrorf(path("input"), known.VerificationRequired,
			"this app requires a proof (userHash, jwt or identificationToken) with every identity")
	}
	ss := wc.session
	if ss != nil && c.logout && !ss.Anonymous() {
		if err := s.store.RevokeSession(ctx, ss.ID, wc.now); err != nil {
			return nil, err
		}
		ss = nil
	}
	if ss == nil {
		ss = &known.Session{ProjectID: p.ID, VisitorID: newVisitor(), Level: known.LevelAnonymous}
	}
	var u *known.User
	var err error
	if c.identified() {
		u, ss, err = s.attach(ctx, wc, ss, c)
	} else if c.writes() {
		wc.session = ss
		u, err = s.sessionUser(ctx, wc, true)
		if err == nil {
			err = checkMetadataKeys(path("input", c.metaField()), u.Metadata, c.metaSet, c.metaUnset)
		}
	}
	if err != nil {
		return nil, err
	}
	if u != nil {
		if err := s.apply(ctx, wc, u, c); err != nil {
			return nil, err
		}
	}
	out, err := s.issue(ctx, ss, wc.now)
	if err != nil {
		return nil, err
	}
	remember(ctx, wc, out)
	if e := p.UserDataEndpoint; e != nil && e.Enabled && u != nil && c.ext != nil {
		s.refreshLater(p.ID, u.ID, *c.ext) // seed 000: a session that begins with an externalId
	}
	return out, nil
}

// attach finds or makes the user a claim names and ties the session's visitor to it,
// returning the user and the session to issue (a new one when the visitor was someone else).
func (s *Service) attach(ctx context.Context, wc *widgetCall, ss *known.Session, c *claim) (*known.User, *known.Session, error) {
	p := wc.project.ID
	var ended string // the session replaced by a new visitor's, if any
	for attempt := range maxAttempts {
		if attempt > 0 {
			// Another call holds a key this one needs and is still writing its user: give it
			// time rather than failing (100 visitors of one new user arrive together).
			if err := backoff(ctx, attempt); err != nil {
				return nil, nil, err
			}
		}
		target, err := s.match(ctx, p, c)
		if err != nil {
			return nil, nil, err
		}
		visitor, err := s.visitorUserOr(ctx, p, ss.VisitorID, target)
		if err != nil {
			return nil, nil, err
		}
		if target != nil && target.Verified && c.method == nil && (!ss.Verified() || ss.UserID == nil || *ss.UserID != target.ID) {
			return nil, nil, known.FieldErrorf(path("input", c.identityField()), known.VerificationRequired,
				"this user is verified: identify them with a proof (userHash, jwt or identificationToken)")
		}
		if visitor != nil && !visitor.Anonymous() && (target == nil || target.ID != visitor.ID) {
			// This browser's visitor is someone else: the new identity gets a visitor and a
			// session of its own, and sees nothing of the other's. The old session ends once
			// the new identity is in place.
			if ss.ID != "" {
				ended = ss.ID
			}
			ss, visitor = &known.Session{ProjectID: p, VisitorID: newVisitor()}, nil
		}
		if err := checkMetadataKeys(path("input", c.metaField()), metadataOf(target, visitor), c.metaSet, c.metaUnset); err != nil {
			return nil, nil, err
		}
		switch {
		case c.method != nil:
			ss.Level, ss.Method = known.LevelVerified, c.method
		case !ss.Verified() || (ss.UserID != nil && target != nil && *ss.UserID != target.ID):
			ss.Level, ss.Method = known.LevelClaimed, nil
		}
		var u *known.User
		switch {
		case target == nil && visitor != nil:
			// The anonymous visitor becomes this identity.
			err = s.store.ClaimIdentities(ctx, p, visitor.ID, identityKeys(c.ext, c.emailKey, c.phone))
			u = visitor
		case target == nil:
			u = &known.User{ID: known.UserID(store.NewID()), ProjectID: p, VisitorIDs: []known.VisitorID{ss.VisitorID},
				Metadata: map[string]any{}, CreatedAt: wc.now, UpdatedAt: wc.now, LastSeenAt: &wc.now}
			keys := append(identityKeys(c.ext, c.emailKey, c.phone), store.IdentityKey{Kind: store.KeyVisitor, Value: string(ss.VisitorID)})
			err = s.store.CreateUser(ctx, u, keys)
		case visitor != nil && visitor.ID != target.ID:
			err = s.store.MergeUser(ctx, p, visitor, target.ID)
			u = target
		case visitor == nil:
			err = s.store.ClaimKey(ctx, p, store.IdentityKey{Kind: store.KeyVisitor, Value: string(ss.VisitorID)}, target.ID)
			if err == nil {
				_, err = s.store.UpdateUser(ctx, target.ID, store.UserUpdate{AddVisitorIDs: []string{string(ss.VisitorID)}, UpdatedAt: wc.now})
			}
			u = target
		default:
			u = target
		}
		var taken *store.KeyTakenError
		if errors.As(err, &taken) {
			continue // another call claimed an identity first: match again
		}
		if err != nil {
			return nil, nil, err
		}
		if ended != "" && ended != ss.ID {
			if err := s.store.RevokeSession(ctx, ended, wc.now); err != nil {
				return nil, nil, err
			}
		}
		ss.UserID = &u.ID
		return u, ss, nil
	}
	return nil, nil, known.FieldErrorf(path("input"), known.IdentityConflict, "this identity is being changed by other calls; try again")
}

// maxAttempts bounds how often a write that lost a race for an identity is tried again.
const maxAttempts = 8

// backoff waits a little longer at each attempt: 5 ms, 20 ms, 45 ms, … (1.4 s in all).
func backoff(ctx context.Context, attempt int) error {
	t := time.NewTimer(time.Duration(attempt*attempt) * 5 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// match returns the existing user a claim names, or nil for a new identity. A proof covers
// only the identity it proves (a userHash its userId, or its email when there is none; an
// identification token its email; a JWT everything it signs): then only that identity chooses
// the user, and every other identity in the claim must be free or already that user's, so
// that a proof of one's own identity never reaches someone else's record. Without a proof a
// user is matched by externalId first, by email only when the user has no externalId, then by
// phone in the same way. Identities of two different users are IDENTITY_CONFLICT.
func (s *Service) match(ctx context.Context, p known.ProjectID, c *claim) (*known.User, error) {
	byExt, err := s.userByKey(ctx, p, store.KeyExternalID, c.ext)
	if err != nil {
		return nil, err
	}
	byEmail, err := s.userByKey(ctx, p, store.KeyEmail, c.emailKey)
	if err != nil {
		return nil, err
	}
	byPhone, err := s.userByKey(ctx, p, store.KeyPhone, c.phone)
	if err != nil {
		return nil, err
	}
	conflict := func(field, msg string) error {
		return known.FieldErrorf(path("input", field), known.IdentityConflict, "%s", msg)
	}
	extProven, emailProven := c.proves()
	var target *known.User
	switch {
	case c.method != nil && c.ext != nil && extProven:
		target = byExt
		if target == nil && emailProven && byEmail != nil && byEmail.ExternalID == nil {
			target = byEmail // a signed email and id: the email's user gets the id
		}
	case c.method != nil && emailProven:
		target = byEmail
	case c.method != nil:
		return nil, known.Errorf(known.Internal, "a proof that proves no identity")
	default:
		target = byExt
		if target == nil && byEmail != nil {
			switch {
			case byEmail.ExternalID != nil && c.ext != nil:
				return nil, conflict("email", "this email belongs to a user with another "+c.extField)
			case byEmail.ExternalID != nil && !byEmail.Verified:
				return nil, conflict("email", "this email belongs to a user known by "+c.extField+": send it too")
			}
			target = byEmail
		}
		if target == nil && byPhone != nil && c.ext == nil && c.emailKey == nil && byPhone.ExternalID == nil {
			target = byPhone
		}
	}
	// An identity of another user: a verified one is never reached by a claim
	// (VERIFICATION_REQUIRED); an unverified one is not guessed at (IDENTITY_CONFLICT).
	for _, o := range []struct {
		u     *known.User
		field string
	}{{byExt, c.extField}, {byEmail, "email"}, {byPhone, "phoneNumber"}} {
		if o.u == nil || (target != nil && o.u.ID == target.ID) {
			continue
		}
		if o.u.Verified {
			return nil, known.FieldErrorf(path("input", o.field), known.VerificationRequired,
				"this %s belongs to a verified user: only a proof of that identity reaches them", o.field)
		}
		return nil, conflict(o.field, "this "+o.field+" belongs to another user")
	}
	return target, nil
}

// proves reports which identities of the claim its proof covers.
func (c *claim) proves() (ext, email bool) {
	if c.method == nil {
		return false, false
	}
	switch *c.method {
	case known.VerifiedByJWT:
		return true, true
	case known.VerifiedByHMAC:
		return c.ext != nil, c.ext == nil
	case known.VerifiedByToken:
		return false, true
	}
	return false, false
}

// userByKey returns the user owning an identity, or nil when value is nil or no user has it.
func (s *Service) userByKey(ctx context.Context, p known.ProjectID, kind store.KeyKind, value *string) (*known.User, error) {
	if value == nil {
		return nil, nil
	}
	u, err := s.store.UserByKey(ctx, p, store.IdentityKey{Kind: kind, Value: *value})
	if known.ErrorCode(err) == known.NotFound {
		return nil, nil
	}
	return u, err
}

// apply writes a claim's identities and attributes to user u.
func (s *Service) apply(ctx context.Context, wc *widgetCall, u *known.User, c *claim) error {
	p := wc.project.ID
	up := store.UserUpdate{UpdatedAt: wc.now, Metadata: c.metaSet, MetadataUnset: c.metaUnset, AvatarURL: c.avatar}
	if !c.unseen {
		up.LastSeenAt = &wc.now
	}
	var release, claimed []store.IdentityKey
	// A claim that fails gives back what this call claimed before it, so that a refused
	// write leaves no identity held by a user who does not show it.
	defer func() {
		for _, k := range claimed {
			_ = s.store.ReleaseKey(context.WithoutCancel(ctx), p, k, string(u.ID))
		}
	}()
	claimNew := func(kind store.KeyKind, value *string, field string) error {
		k := store.IdentityKey{Kind: kind, Value: *value}
		err := s.store.ClaimKey(ctx, p, k, u.ID)
		var taken *store.KeyTakenError
		if errors.As(err, &taken) {
			return known.FieldErrorf(path("input", field), known.IdentityConflict, "this %s belongs to another user", field)
		}
		if err == nil {
			claimed = append(claimed, k)
		}
		return err
	}
	if c.ext != nil && u.ExternalID == nil {
		if err := claimNew(store.KeyExternalID, c.ext, c.extField); err != nil {
			return err
		}
		up.ExternalID = c.ext
	}
	if c.emailKey != nil {
		if old := emailKeyOf(u); old == nil || *old != *c.emailKey {
			if err := claimNew(store.KeyEmail, c.emailKey, "email"); err != nil {
				return err
			}
			if old != nil {
				release = append(release, store.IdentityKey{Kind: store.KeyEmail, Value: *old})
			}
		}
		up.Email, up.EmailKey = c.email, c.emailKey
	}
	if c.phone != nil && (u.PhoneNumber == nil || *u.PhoneNumber != *c.phone) {
		if err := claimNew(store.KeyPhone, c.phone, "phoneNumber"); err != nil {
			return err
		}
		if u.PhoneNumber != nil {
			release = append(release, store.IdentityKey{Kind: store.KeyPhone, Value: *u.PhoneNumber})
		}
		up.PhoneNumber = c.phone
	}
	first, last := c.first, c.last
	if t := c.token; t != nil && first == nil && last == nil && c.name == nil &&
		u.Name == nil && u.FirstName == nil && u.LastName == nil {
		first, last = t.FirstName, t.LastName // seed 004: only a user with no name gets them
	}
	up.Name, up.FirstName, up.LastName = names(u, c.name, first, last)
	if c.method != nil {
		method := string(*c.method)
		up.Verified, up.VerificationMethod, up.VerifiedAt = ptrTo(true), &method, &wc.now
	}
	if err := s.linkCompanies(ctx, wc, c, &up); err != nil {
		return err
	}
	if c.setOrgs {
		ids := make([]string, 0, len(c.orgs))
		for _, o := range c.orgs {
			org, err := s.store.UpsertOrganization(ctx, p, o.ID, o.Name, o.Attrs, wc.now)
			if err != nil {
				return err
			}
			ids = append(ids, string(org.ID))
		}
		up.OrganizationIDs = &ids
	}
	if _, err := s.store.UpdateUser(ctx, u.ID, up); err != nil {
		return err
	}
	claimed = nil // written: the user shows them now
	for _, k := range release {
		if err := s.store.ReleaseKey(ctx, p, k, string(u.ID)); err != nil {
			return err
		}
	}
	return nil
}

func emailKeyOf(u *known.User) *string {
	if u.Email == nil {
		return nil
	}
	k := lower(*u.Email)
	return &k
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

// linkCompanies upserts the claim's company (made active) and companyIds (linked only).
func (s *Service) linkCompanies(ctx context.Context, wc *widgetCall, c *claim, up *store.UserUpdate) error {
	p := wc.project.ID
	if c.company != nil {
		comp, err := s.store.UpsertCompany(ctx, p, c.company.ID, store.CompanyUpdate{
			Name: c.company.Name, Metadata: c.company.Metadata, Stage: c.company.Stage,
			StageIfEmpty: c.stageMode == known.StageIfEmpty,
		}, wc.now)
		if err != nil {
			return err
		}
		id := string(comp.ID)
		up.AddCompanyIDs = append(up.AddCompanyIDs, id)
		up.ActiveCompanyID = &id
	}
	for _, ext := range c.companyIDs {
		comp, err := s.store.UpsertCompany(ctx, p, ext, store.CompanyUpdate{}, wc.now)
		if err != nil {
			return err
		}
		up.AddCompanyIDs = append(up.AddCompanyIDs, string(comp.ID))
	}
	return nil
}

// metadataOf returns the metadata a claim's writes will land on: the matched user's, else
// the visitor's record's (nil when neither exists yet).
func metadataOf(target, visitor *known.User) map[string]any {
	switch {
	case target != nil:
		return target.Metadata
	case visitor != nil:
		return visitor.Metadata
	}
	return nil
}

func ptrTo[T any](v T) *T { return &v }
