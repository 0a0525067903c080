package store

import (
	"context"
	"fmt"
	"time"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// bigBatch is the cursor batch size of queries that serve a whole page of a dashboard list at
// once, so that they answer in one round trip (the server's default first batch is 101).
const bigBatch = 5000

type profileDoc struct {
	ID          string         `bson:"_id"` // the user's id
	ProjectID   string         `bson:"projectId"`
	Status      string         `bson:"status"`
	FirstName   *string        `bson:"firstName,omitempty"`
	LastName    *string        `bson:"lastName,omitempty"`
	Email       *string        `bson:"email,omitempty"`
	PhoneNumber *string        `bson:"phoneNumber,omitempty"`
	Metadata    map[string]any `bson:"metadata,omitempty"`
	FetchedAt   *time.Time     `bson:"fetchedAt,omitempty"`
	CheckedAt   time.Time      `bson:"checkedAt"`
}

func (d *profileDoc) profile() *known.Profile {
	return &known.Profile{UserID: known.UserID(d.ID), ProjectID: known.ProjectID(d.ProjectID), Status: known.ProfileStatus(d.Status),
		FirstName: d.FirstName, LastName: d.LastName, Email: d.Email, PhoneNumber: d.PhoneNumber, Metadata: d.Metadata,
		FetchedAt: d.FetchedAt, CheckedAt: d.CheckedAt}
}

// SaveProfile writes a user's profile, replacing the stored one.
func (s *Store) SaveProfile(ctx context.Context, pr *known.Profile) error {
	d := profileDoc{ID: string(pr.UserID), ProjectID: string(pr.ProjectID), Status: string(pr.Status), FirstName: pr.FirstName,
		LastName: pr.LastName, Email: pr.Email, PhoneNumber: pr.PhoneNumber, Metadata: pr.Metadata, FetchedAt: pr.FetchedAt,
		CheckedAt: pr.CheckedAt}
	// A findOneAndUpdate by _id: on the embedded store the one update that does not read the
	// whole collection.
	set := bson.M{"projectId": d.ProjectID, "status": d.Status, "checkedAt": d.CheckedAt}
	unset := bson.M{}
	if d.Metadata != nil {
		set["metadata"] = d.Metadata
	} else {
		unset["metadata"] = ""
	}
	for f, v := range map[string]any{"firstName": d.FirstName, "lastName": d.LastName, "email": d.Email, "phoneNumber": d.PhoneNumber, "fetchedAt": d.FetchedAt} {
		if isNilPtr(v) || v == (*time.Time)(nil) {
			unset[f] = ""
		} else {
			set[f] = v
		}
	}
	update := bson.M{"$set": set}
	if len(unset) > 0 {
		update["$unset"] = unset
	}
	defer s.serial.lock(s.profiles, d.ID)()
	err := s.profiles.FindOneAndUpdate(ctx, bson.M{"_id": d.ID}, update, options.FindOneAndUpdate().SetUpsert(true)).Err()
	if err != nil && !isNoDocuments(err) {
		return fmt.Errorf("store: saving profile: %w", err)
	}
	return nil
}

// ProfilesOf returns the stored profiles of project p's users with these ids, in one query;
// users without one are left out.
func (s *Store) ProfilesOf(ctx context.Context, p known.ProjectID, users []known.UserID) (map[known.UserID]*known.Profile, error) {
	var docs []profileDoc
	if err := s.byIDs(ctx, s.profiles, strs(users), &docs); err != nil {
		return nil, err
	}
	out := make(map[known.UserID]*known.Profile, len(docs))
	for i := range docs {
		if docs[i].ProjectID == string(p) {
			out[known.UserID(docs[i].ID)] = docs[i].profile()
		}
	}
	return out, nil
}
