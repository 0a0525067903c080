package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
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
}

// ErrRevChanged says that a conditional update found the user changed since it was read.
var ErrRevChanged = errors.New("store: the user changed since it was read")

// UpdateUser applies up to user id and returns the user as it then is, or NotFound.
func (s *Store) UpdateUser(ctx context.Context, id known.UserID, up UserUpdate) (*known.User, error) {
	defer s.serial.lock(s.users, string(id))()
	return s.updateUser(ctx, id, up)
}

// UpdateUserChecked reads user id of project p, asks decide for the update to make of it (or
// an error, returned as it is), and writes it only onto the revision it read; when another
// write came in between it reads and decides again. On the embedded store the read and the
// write take one turn (serial), so concurrent calls in this process never collide; on MongoDB
// the conditional write makes the rule hold across instances. NotFound when there is no user.
func (s *Store) UpdateUserChecked(ctx context.Context, p known.ProjectID, id known.UserID, decide func(*known.User) (UserUpdate, error)) (*known.User, error) {
	for attempt := 0; ; attempt++ {
		out, err := func() (*known.User, error) {
			defer s.serial.lock(s.users, string(id))()
			u, err := s.User(ctx, p, id)
			if err != nil {
				return nil, err
			}
			up, err := decide(u)
			if err != nil {
				return nil, err
			}
			up.IfRev = &u.Rev
			return s.updateUser(ctx, id, up)
		}()
		if !errors.Is(err, ErrRevChanged) || attempt >= 50 {
			return out, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

func (s *Store) updateUser(ctx context.Context, id known.UserID, up UserUpdate) (*known.User, error) {
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
	var d userDoc
	filter := bson.M{"_id": string(id)}
	if up.IfRev != nil {
		filter["rev"] = *up.IfRev
	}
	err := s.users.FindOneAndUpdate(ctx, filter, doc,
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
	if err != nil {
		if isNoDocuments(err) && up.IfRev != nil {
			return nil, ErrRevChanged
		}
		if isNoDocuments(err) {
			return nil, notFound("user")
		}
		return nil, fmt.Errorf("store: updating user: %w", err)
	}
	return d.user(), nil
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

// byIDs decodes the documents of coll whose _id is in ids into out (a pointer to a slice):
// one query, whatever the number of ids.
func (s *Store) byIDs(ctx context.Context, coll *mongo.Collection, ids []string, out any) error {
	if len(ids) == 0 {
		return nil
	}
	cur, err := coll.Find(ctx, bson.M{"_id": bson.M{"$in": ids}}, options.Find().SetBatchSize(bigBatch))
	if err != nil {
		return fmt.Errorf("store: finding %s by id: %w", coll.Name(), err)
	}
	if err := cur.All(ctx, out); err != nil {
		return fmt.Errorf("store: finding %s by id: %w", coll.Name(), err)
	}
	return nil
}
