package store

import (
	"context"
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
	ExternalID         *string
	Email, EmailKey    *string
	PhoneNumber        *string
	Name               *string
	FirstName          *string
	LastName           *string
	AvatarURL          *string
	Verified           *bool
	VerificationMethod *string
	VerifiedAt         *time.Time
	ActiveCompanyID    *string
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
}

// UpdateUser applies up to user id and returns the user as it then is, or NotFound.
func (s *Store) UpdateUser(ctx context.Context, id known.UserID, up UserUpdate) (*known.User, error) {
	set := bson.M{"updatedAt": up.UpdatedAt}
	str := map[string]*string{
		"externalId": up.ExternalID, "email": up.Email, "emailKey": up.EmailKey, "phoneNumber": up.PhoneNumber,
		"name": up.Name, "firstName": up.FirstName, "lastName": up.LastName, "avatarUrl": up.AvatarURL,
		"verificationMethod": up.VerificationMethod, "activeCompanyId": up.ActiveCompanyID,
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
	if up.Verified != nil {
		set["verified"] = *up.Verified
	}
	if up.VerifiedAt != nil {
		set["verifiedAt"] = *up.VerifiedAt
	}
	if up.LastSeenAt != nil {
		set["lastSeenAt"] = *up.LastSeenAt
	}
	if up.OrganizationIDs != nil {
		set["organizationIds"] = nonNil(*up.OrganizationIDs)
	}
	if up.ExternalID != nil || up.Email != nil || up.PhoneNumber != nil {
		set["anonymous"] = false
	}
	for k, v := range up.Metadata {
		set["metadata."+k] = v
	}
	for _, k := range up.MetadataUnset {
		unset["metadata."+k] = ""
	}
	doc := bson.M{"$set": set}
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
	defer s.serial.lock(s.users, string(id))()
	err := s.users.FindOneAndUpdate(ctx, bson.M{"_id": string(id)}, doc,
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
	if err != nil {
		if isNoDocuments(err) {
			return nil, notFound("user")
		}
		return nil, fmt.Errorf("store: updating user: %w", err)
	}
	return d.user(), nil
}

// SetMetadataIfAbsent sets each key of m in the user's metadata unless the user has that key
// already: how a merge keeps the user's own values.
func (s *Store) SetMetadataIfAbsent(ctx context.Context, id known.UserID, m map[string]any) error {
	defer s.serial.lock(s.users, string(id))()
	for k, v := range m {
		_, err := s.users.UpdateOne(ctx,
			bson.M{"_id": string(id), "metadata." + k: bson.M{"$exists": false}},
			bson.M{"$set": bson.M{"metadata." + k: v}})
		if err != nil {
			return fmt.Errorf("store: merging metadata: %w", err)
		}
	}
	return nil
}

// MergeUser moves everything of user from (an anonymous visitor's record) to user into: its
// conversations, events, metadata (into's own values win), companies and visitor ids, then
// deletes from. Data moves before keys and the delete, so an interrupted merge is finished by
// running it again, and nothing is lost in between.
func (s *Store) MergeUser(ctx context.Context, p known.ProjectID, from *known.User, into known.UserID) error {
	if _, err := s.conversations.UpdateMany(ctx, bson.M{"userId": string(from.ID)}, bson.M{"$set": bson.M{"userId": string(into)}}); err != nil {
		return fmt.Errorf("store: moving conversations: %w", err)
	}
	if _, err := s.events.UpdateMany(ctx, bson.M{"userId": string(from.ID)}, bson.M{"$set": bson.M{"userId": string(into)}}); err != nil {
		return fmt.Errorf("store: moving events: %w", err)
	}
	if err := s.SetMetadataIfAbsent(ctx, into, from.Metadata); err != nil {
		return err
	}
	up := UserUpdate{AddVisitorIDs: strs(from.VisitorIDs), AddCompanyIDs: strs(from.CompanyIDs), UpdatedAt: time.Now().UTC()}
	if _, err := s.UpdateUser(ctx, into, up); err != nil {
		return err
	}
	if from.ActiveCompanyID != nil {
		unlock := s.serial.lock(s.users, string(into))
		_, err := s.users.UpdateOne(ctx, bson.M{"_id": string(into), "activeCompanyId": nil},
			bson.M{"$set": bson.M{"activeCompanyId": string(*from.ActiveCompanyID)}})
		unlock()
		if err != nil {
			return fmt.Errorf("store: merging active company: %w", err)
		}
	}
	for _, v := range from.VisitorIDs {
		if err := s.moveKey(ctx, p, IdentityKey{KeyVisitor, string(v)}, string(from.ID), string(into)); err != nil {
			return err
		}
	}
	if _, err := s.users.DeleteOne(ctx, bson.M{"_id": string(from.ID)}); err != nil {
		return fmt.Errorf("store: deleting merged user: %w", err)
	}
	return nil
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
