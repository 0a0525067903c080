package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// UserUpdate changes some fields of a user; nil fields stay as they are, and a pointer to ""
// removes the field. Each update is one
// atomic write to the user document, so concurrent updates of different fields (and of
// different metadata keys) all land.
type UserUpdate struct {
	ExternalID      *string
	Email, EmailKey *string
	PhoneNumber     *string
	Name            *string
	FirstName       *string
	LastName        *string
	AvatarURL       *string
	// Identities, when non-nil, replaces the user's identities (and what derives from them:
	// verified, verificationMethod, verifiedAt, anonymous).
	Identities      *[]known.Identity
	ActiveCompanyID *string
	// OrganizationIDs, when non-nil, replaces the user's organizations (an empty list unlinks
	// all of them).
	OrganizationIDs *[]string
	AddCompanyIDs   []string
	AddVisitorIDs   []string
	// Metadata sets these keys; MetadataUnset removes these.
	Metadata      map[string]any
	MetadataUnset []string
	LastSeenAt    *time.Time
	UpdatedAt     time.Time
	// IfRev, when set, makes the update conditional: it lands only while the user is at this
	// revision, else UpdateUser returns ErrRevChanged and changes nothing.
	IfRev *int64
	// Identified names the visitor a widget call identified as this user: the write records
	// user.identified when the visitor is new to the user (or the user was anonymous).
	Identified *string
	// MergedFrom names the record merged into this user: the write records user.merged.
	MergedFrom *string
	// Before, when set, is the user as the caller read it: the write is tried on that
	// revision without reading it again (and, without IfRev, read and retried if it changed).
	Before *known.User
}

// ErrRevChanged says that a conditional update found the user changed since it was read.
var ErrRevChanged = errors.New("store: the user changed since it was read")

// UpdateUser applies up to user id and returns the user as it then is, or NotFound.
// The write also records the change's events (user.updated with its changes, user.verified,
// user.identified, user.merged) in the user document, and then publishes them (outbox.go).
func (s *Store) UpdateUser(ctx context.Context, id known.UserID, up UserUpdate) (*known.User, error) {
	u, evs, err := func() (*known.User, []changeDoc, error) {
		defer s.serial.lock(s.users, string(id))()
		return s.updateUser(ctx, id, up, up.Before, false)
	}()
	if err == nil {
		s.publish(ctx, s.users, string(id), evs)
	}
	return u, err
}

// UpdateUserChecked reads user id of project p, asks decide for the update to make of it (or
// an error, returned as it is), and writes it only onto the revision it read; when another
// write came in between it reads and decides again. On the embedded store the read and the
// write take one turn (serial), so concurrent calls in this process never collide; on MongoDB
// the conditional write makes the rule hold across instances. NotFound when there is no user.
func (s *Store) UpdateUserChecked(ctx context.Context, p known.ProjectID, id known.UserID, decide func(*known.User) (UserUpdate, error)) (*known.User, error) {
	for attempt := 0; ; attempt++ {
		out, evs, err := func() (*known.User, []changeDoc, error) {
			defer s.serial.lock(s.users, string(id))()
			u, err := s.User(ctx, p, id)
			if err != nil {
				return nil, nil, err
			}
			up, err := decide(u)
			if err != nil {
				return nil, nil, err
			}
			up.IfRev = &u.Rev
			return s.updateUser(ctx, id, up, u, true)
		}()
		if err == nil {
			s.publish(ctx, s.users, string(id), evs)
		}
		if !errors.Is(err, ErrRevChanged) || attempt >= 50 {
			return out, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// updateUser writes up onto user id, as read (before, or read here when nil): the write is
// conditional on the revision read, so that the events it records describe exactly the
// change it made. An unconditional update (no IfRev) reads again and retries when another
// write came in between. The caller holds the user's turn; fresh says that before was read
// in it.
func (s *Store) updateUser(ctx context.Context, id known.UserID, up UserUpdate, before *known.User, fresh bool) (*known.User, []changeDoc, error) {
	if before == nil && up.IfRev == nil && up.eventless() {
		// Only lastSeenAt: no event can come of it, so no read is needed to describe it.
		return s.updateUserAt(ctx, nil, id, up, false)
	}
	for attempt := 0; ; attempt++ {
		b, bFresh := before, fresh
		if b == nil {
			bFresh = true
			var d userDoc
			err := s.users.FindOne(ctx, bson.M{"_id": string(id)}).Decode(&d)
			switch {
			case isNoDocuments(err) && up.IfRev != nil:
				return nil, nil, ErrRevChanged
			case isNoDocuments(err):
				return nil, nil, notFound("user")
			case err != nil:
				return nil, nil, fmt.Errorf("store: updating user: %w", err)
			}
			b = d.user()
		}
		if up.IfRev != nil && b.Rev != *up.IfRev {
			return nil, nil, ErrRevChanged
		}
		u, evs, err := s.updateUserAt(ctx, b, id, up, bFresh)
		if errors.Is(err, ErrRevChanged) && up.IfRev == nil && attempt < 50 {
			before = nil // changed since it was read: read it again
			continue
		}
		return u, evs, err
	}
}

// eventless reports whether up changes nothing an event reports (only lastSeenAt and
// updatedAt).
func (up *UserUpdate) eventless() bool {
	return up.ExternalID == nil && up.Email == nil && up.EmailKey == nil && up.PhoneNumber == nil && up.Name == nil &&
		up.FirstName == nil && up.LastName == nil && up.AvatarURL == nil && up.Identities == nil &&
		up.ActiveCompanyID == nil && up.OrganizationIDs == nil && len(up.AddCompanyIDs) == 0 &&
		len(up.AddVisitorIDs) == 0 && len(up.Metadata) == 0 && len(up.MetadataUnset) == 0 &&
		up.Identified == nil && up.MergedFrom == nil
}

// updateUserAt writes up onto user id, only while it is at b's revision (b nil: whatever it
// is, for an eventless update). The caller holds the user's turn; fresh says that b was read
// in it.
func (s *Store) updateUserAt(ctx context.Context, b *known.User, id known.UserID, up UserUpdate, fresh bool) (*known.User, []changeDoc, error) {
	var evs []changeDoc
	filter := bson.M{"_id": string(id)}
	if b != nil {
		evs = userEvents(b, applyUserUpdate(b, up), up.Identified, up.MergedFrom, up.UpdatedAt)
		switch {
		case !s.serial.on:
			filter["rev"] = b.Rev // MongoDB checks the revision in the write, atomically
		case !fresh:
			// FerretDB reads and decodes the whole collection for any filter but {_id}. Every
			// write of a user in this process holds its turn (serial), so the revision this
			// process last wrote, or one read in the turn, is the one the write lands on:
			// the check costs no command or a read by _id, and the write goes by _id alone.
			if err := s.userAtRev(ctx, id, b.Rev); err != nil {
				return nil, nil, err
			}
		}
	}

	set := bson.M{"updatedAt": up.UpdatedAt}
	str := map[string]*string{
		"externalId": up.ExternalID, "email": up.Email, "emailKey": up.EmailKey, "phoneNumber": up.PhoneNumber,
		"name": up.Name, "firstName": up.FirstName, "lastName": up.LastName, "avatarUrl": up.AvatarURL,
		"activeCompanyId": up.ActiveCompanyID,
	}
	unset := bson.M{}
	for field, v := range str {
		switch {
		case v == nil:
		case *v == "":
			unset[field] = ""
		default:
			set[field] = *v
		}
	}
	if up.Identities != nil {
		u := known.User{Identities: *up.Identities}
		u.Derive()
		set["identities"] = identityDocs(u.Identities)
		set["verified"] = u.Verified
		set["anonymous"] = len(u.Identities) == 0
		if u.Verified && u.VerificationMethod != nil {
			set["verificationMethod"], set["verifiedAt"] = string(*u.VerificationMethod), *u.VerifiedAt
		} else {
			unset["verificationMethod"], unset["verifiedAt"] = "", ""
		}
	}
	if up.LastSeenAt != nil {
		set["lastSeenAt"] = *up.LastSeenAt
	}
	if up.OrganizationIDs != nil {
		set["organizationIds"] = nonNil(*up.OrganizationIDs)
	}
	if (up.ExternalID != nil || up.Email != nil || up.PhoneNumber != nil) && up.Identities == nil {
		set["anonymous"] = false
	}
	for k, v := range up.Metadata {
		set["metadata."+k] = v
	}
	for _, k := range up.MetadataUnset {
		unset["metadata."+k] = ""
	}
	doc := bson.M{"$set": set, "$inc": bson.M{"rev": 1}}
	if len(unset) > 0 {
		doc["$unset"] = unset
	}
	add := bson.M{}
	if len(up.AddCompanyIDs) > 0 {
		add["companyIds"] = bson.M{"$each": up.AddCompanyIDs}
	}
	if len(up.AddVisitorIDs) > 0 {
		add["visitorIds"] = bson.M{"$each": up.AddVisitorIDs}
	}
	if len(add) > 0 {
		doc["$addToSet"] = add
	}
	pending(doc, evs)
	var d userDoc
	err := s.users.FindOneAndUpdate(ctx, filter, doc,
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
	if err != nil {
		// Gone, or not known to have landed or not: read the user next time.
		s.serial.userRevs.forget(string(id))
		if isNoDocuments(err) && b == nil {
			return nil, nil, notFound("user")
		}
		if isNoDocuments(err) {
			return nil, nil, ErrRevChanged
		}
		return nil, nil, fmt.Errorf("store: updating user: %w", err)
	}
	if s.serial.on {
		s.serial.userRevs.set(string(id), d.Rev)
	}
	return d.user(), evs, nil
}

// userAtRev returns ErrRevChanged unless user id exists at revision rev: on FerretDB, in the
// user's turn. The revision this process last wrote answers without a command when it knows
// one; otherwise the user's revision is read by _id.
func (s *Store) userAtRev(ctx context.Context, id known.UserID, rev int64) error {
	if cur, ok := s.serial.userRevs.get(string(id)); ok {
		if cur != rev {
			return ErrRevChanged
		}
		return nil
	}
	var d struct {
		Rev int64 `bson:"rev"`
	}
	err := s.users.FindOne(ctx, bson.M{"_id": string(id)}, options.FindOne().SetProjection(bson.M{"rev": 1})).Decode(&d)
	switch {
	case isNoDocuments(err):
		return ErrRevChanged
	case err != nil:
		return fmt.Errorf("store: updating user: %w", err)
	}
	s.serial.userRevs.set(string(id), d.Rev)
	if d.Rev != rev {
		return ErrRevChanged
	}
	return nil
}

// userRevs holds, on FerretDB, the revision of each user as this process last wrote or read it
// in the user's turn, so that a write told from an earlier read (UserUpdate.Before) is checked
// without another round trip. It relies on the rule of serial: every write that changes a
// user's revision (updateUserAt) or removes the user (DeleteUser, DeleteMergedUser) takes the
// user's turn and, in it, sets or forgets the user's entry, so an entry is the revision the
// user is at. A user without an entry is read. Entries are dropped all at once past
// maxUserRevs, which costs only reads.
type userRevs struct {
	mu   sync.Mutex
	revs map[string]int64
}

// maxUserRevs bounds userRevs (about 5 MB).
const maxUserRevs = 1 << 16

func (r *userRevs) get(id string) (int64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rev, ok := r.revs[id]
	return rev, ok
}

// set records user id at revision rev: call it in the user's turn.
func (r *userRevs) set(id string, rev int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.revs == nil || len(r.revs) >= maxUserRevs {
		r.revs = map[string]int64{}
	}
	r.revs[id] = rev
}

// forget drops the entry of user id: call it in the user's turn.
func (r *userRevs) forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.revs, id)
}

// applyUserUpdate returns user b as up leaves it: what updateUserAt writes, applied in Go, so
// that the write can carry the events that describe it.
func applyUserUpdate(b *known.User, up UserUpdate) *known.User {
	u := *b
	u.Metadata = maps.Clone(b.Metadata)
	if u.Metadata == nil {
		u.Metadata = map[string]any{}
	}
	u.Identities = slices.Clone(b.Identities)
	set := func(dst **string, v *string) {
		switch {
		case v == nil:
		case *v == "":
			*dst = nil
		default:
			c := *v
			*dst = &c
		}
	}
	var ext, active *string = (*string)(b.ExternalID), (*string)(b.ActiveCompanyID)
	set(&ext, up.ExternalID)
	set(&active, up.ActiveCompanyID)
	u.ExternalID, u.ActiveCompanyID = (*known.ExternalID)(ext), (*known.CompanyID)(active)
	set(&u.Email, up.Email)
	set(&u.PhoneNumber, up.PhoneNumber)
	set(&u.Name, up.Name)
	set(&u.FirstName, up.FirstName)
	set(&u.LastName, up.LastName)
	set(&u.AvatarURL, up.AvatarURL)
	if up.Identities != nil {
		u.Identities = slices.Clone(*up.Identities)
	}
	if up.LastSeenAt != nil {
		u.LastSeenAt = up.LastSeenAt
	}
	if up.OrganizationIDs != nil {
		u.OrganizationIDs = typed[known.OrganizationID](nonNil(*up.OrganizationIDs))
	}
	for k, v := range up.Metadata {
		u.Metadata[k] = v
	}
	for _, k := range up.MetadataUnset {
		delete(u.Metadata, k)
	}
	u.CompanyIDs = slices.Clone(b.CompanyIDs)
	for _, c := range up.AddCompanyIDs {
		if !slices.Contains(u.CompanyIDs, known.CompanyID(c)) {
			u.CompanyIDs = append(u.CompanyIDs, known.CompanyID(c))
		}
	}
	u.VisitorIDs = slices.Clone(b.VisitorIDs)
	for _, v := range up.AddVisitorIDs {
		if !slices.Contains(u.VisitorIDs, known.VisitorID(v)) {
			u.VisitorIDs = append(u.VisitorIDs, known.VisitorID(v))
		}
	}
	u.UpdatedAt = up.UpdatedAt
	u.Rev = b.Rev + 1
	u.Derive()
	return &u
}

// UsersByIDs returns the users with these ids in project p, in no particular order; ids
// that do not exist or belong to another project are left out.
func (s *Store) UsersByIDs(ctx context.Context, p known.ProjectID, ids []known.UserID) ([]*known.User, error) {
	var docs []userDoc
	if err := s.byIDs(ctx, s.users, strs(ids), &docs); err != nil {
		return nil, err
	}
	out := make([]*known.User, 0, len(docs))
	for i := range docs {
		if docs[i].ProjectID == string(p) {
			out = append(out, docs[i].user())
		}
	}
	return out, nil
}
