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
	Applied     string         `bson:"applied,omitempty"`
}

func (d *profileDoc) profile() *known.Profile {
	return &known.Profile{UserID: known.UserID(d.ID), ProjectID: known.ProjectID(d.ProjectID), Status: known.ProfileStatus(d.Status),
		FirstName: d.FirstName, LastName: d.LastName, Email: d.Email, PhoneNumber: d.PhoneNumber, Metadata: d.Metadata,
		FetchedAt: d.FetchedAt, CheckedAt: d.CheckedAt, Applied: d.Applied}
}

// ferretBulk is how many statements one bulk write sends to FerretDB, whose update command
// keeps each statement's query open until the command ends, one SQLite connection each of its
// pool of 100: a command of 100 statements waits for a connection that never frees. Bulk
// writes to FerretDB also take turns (serial.bulk), so that together they hold at most this
// many.
const ferretBulk = 20

// SaveProfiles writes users' profiles, each replacing the stored one, in bulk writes (upserts
// by _id): one command on MongoDB, one per ferretBulk profiles on FerretDB. Then it reads which
// of the users still exist and deletes the profiles of the others: a user erased while its
// profile was fetched keeps nothing (DeleteUser deletes the profile after the user document, so
// one of the two deletes it, whichever comes last).
func (s *Store) SaveProfiles(ctx context.Context, prs ...*known.Profile) error {
	if len(prs) == 0 {
		return nil
	}
	chunk := len(prs)
	if s.serial.on {
		chunk = ferretBulk
	}
	for rest := prs; len(rest) > 0; {
		n := min(len(rest), chunk)
		if err := s.saveProfiles(ctx, rest[:n]); err != nil {
			return err
		}
		rest = rest[n:]
	}
	ids := make([]string, len(prs))
	for i, pr := range prs {
		ids[i] = string(pr.UserID)
	}
	var users []struct {
		ID string `bson:"_id"`
	}
	if err := s.byIDs(ctx, s.users, ids, &users); err != nil {
		return err
	}
	live := make(map[string]bool, len(users))
	for _, u := range users {
		live[u.ID] = true
	}
	for _, id := range ids {
		if !live[id] {
			if _, err := s.profiles.DeleteOne(ctx, bson.M{"_id": id}); err != nil {
				return fmt.Errorf("store: deleting an erased user's profile: %w", err)
			}
		}
	}
	return nil
}

// saveProfiles is one bulk write of SaveProfiles.
func (s *Store) saveProfiles(ctx context.Context, prs []*known.Profile) error {
	models := make([]mongo.WriteModel, 0, len(prs))
	for _, pr := range prs {
		models = append(models, mongo.NewUpdateOneModel().SetFilter(bson.M{"_id": string(pr.UserID)}).
			SetUpdate(profileUpdate(pr)).SetUpsert(true))
	}
	// Only bulk writes update profiles (deletes need no turn), so their turn is enough: turns
	// of single documents would hold slots that other collections' writes share.
	if s.serial.on {
		s.serial.bulk.Lock()
		defer s.serial.bulk.Unlock()
	}
	if _, err := s.profiles.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil {
		return fmt.Errorf("store: saving profiles: %w", err)
	}
	return nil
}

// profileUpdate is the update that makes a stored profile pr.
func profileUpdate(pr *known.Profile) bson.M {
	set := bson.M{"projectId": string(pr.ProjectID), "status": string(pr.Status), "checkedAt": pr.CheckedAt}
	unset := bson.M{}
	if pr.Metadata != nil {
		set["metadata"] = pr.Metadata
	} else {
		unset["metadata"] = ""
	}
	for f, v := range map[string]any{"firstName": pr.FirstName, "lastName": pr.LastName, "email": pr.Email,
		"phoneNumber": pr.PhoneNumber, "fetchedAt": pr.FetchedAt} {
		if isNilPtr(v) || v == (*time.Time)(nil) {
			unset[f] = ""
		} else {
			set[f] = v
		}
	}
	if pr.Applied != "" {
		set["applied"] = pr.Applied
	} else {
		unset["applied"] = ""
	}
	update := bson.M{"$set": set}
	if len(unset) > 0 {
		update["$unset"] = unset
	}
	return update
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
