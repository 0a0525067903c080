package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

type userDoc struct {
	ID                 string         `bson:"_id"`
	ProjectID          string         `bson:"projectId"`
	ExternalID         *string        `bson:"externalId,omitempty"`
	FkUserID           *string        `bson:"fkUserId,omitempty"`
	VisitorIDs         []string       `bson:"visitorIds"`
	Identities         []identityDoc  `bson:"identities"`
	Rev                int64          `bson:"rev"`
	Anonymous          bool           `bson:"anonymous"`
	Verified           bool           `bson:"verified"`
	VerificationMethod *string        `bson:"verificationMethod,omitempty"`
	VerifiedAt         *time.Time     `bson:"verifiedAt,omitempty"`
	Email              *string        `bson:"email,omitempty"`
	EmailKey           *string        `bson:"emailKey,omitempty"`
	PhoneNumber        *string        `bson:"phoneNumber,omitempty"`
	Name               *string        `bson:"name,omitempty"`
	FirstName          *string        `bson:"firstName,omitempty"`
	LastName           *string        `bson:"lastName,omitempty"`
	AvatarURL          *string        `bson:"avatarUrl,omitempty"`
	Context            *string        `bson:"context,omitempty"`
	Source             *string        `bson:"source,omitempty"`
	Metadata           map[string]any `bson:"metadata"`
	OrganizationIDs    []string       `bson:"organizationIds"`
	CompanyIDs         []string       `bson:"companyIds"`
	ActiveCompanyID    *string        `bson:"activeCompanyId,omitempty"`
	CreatedAt          time.Time      `bson:"createdAt"`
	UpdatedAt          time.Time      `bson:"updatedAt"`
	LastSeenAt         *time.Time     `bson:"lastSeenAt,omitempty"`
	// Listed is the user's position in the project's list of users (lists.go), taken before
	// the insert; 0 on users listed by the migration or seeded. An anonymous record's id is
	// derived from its visitor, so a record deleted and made again is listed twice: readers
	// take only the position it names.
	Listed int64 `bson:"listed,omitempty"`
	// Events recorded with a change and not yet published (outbox.go).
	Pending      map[string]changeDoc `bson:"pendingEvents,omitempty"`
	PendingCount int                  `bson:"pendingCount,omitempty"`
}

func newUserDoc(u *known.User) *userDoc {
	u.Derive()
	d := &userDoc{
		ID:              string(u.ID),
		ProjectID:       string(u.ProjectID),
		ExternalID:      (*string)(u.ExternalID),
		FkUserID:        u.FkUserID,
		VisitorIDs:      strs(u.VisitorIDs),
		Identities:      identityDocs(u.Identities),
		Rev:             u.Rev,
		Anonymous:       u.Anonymous(),
		Verified:        u.Verified,
		VerifiedAt:      u.VerifiedAt,
		Email:           u.Email,
		PhoneNumber:     u.PhoneNumber,
		Name:            u.Name,
		FirstName:       u.FirstName,
		LastName:        u.LastName,
		AvatarURL:       u.AvatarURL,
		Context:         u.Context,
		Source:          u.Source,
		Metadata:        u.Metadata,
		OrganizationIDs: strs(u.OrganizationIDs),
		CompanyIDs:      strs(u.CompanyIDs),
		ActiveCompanyID: (*string)(u.ActiveCompanyID),
		CreatedAt:       u.CreatedAt,
		UpdatedAt:       u.UpdatedAt,
		LastSeenAt:      u.LastSeenAt,
	}
	if d.Metadata == nil {
		d.Metadata = map[string]any{}
	}
	if u.VerificationMethod != nil {
		m := string(*u.VerificationMethod)
		d.VerificationMethod = &m
	}
	if id := u.Identity(known.IdentityEmail); id != nil {
		v := id.Value
		d.EmailKey = &v
	}
	return d
}

func (d *userDoc) user() *known.User {
	u := &known.User{
		ID:              known.UserID(d.ID),
		ProjectID:       known.ProjectID(d.ProjectID),
		ExternalID:      (*known.ExternalID)(d.ExternalID),
		FkUserID:        d.FkUserID,
		VisitorIDs:      typed[known.VisitorID](d.VisitorIDs),
		Identities:      identities(d.Identities),
		Rev:             d.Rev,
		Email:           d.Email,
		PhoneNumber:     d.PhoneNumber,
		Name:            d.Name,
		FirstName:       d.FirstName,
		LastName:        d.LastName,
		AvatarURL:       d.AvatarURL,
		Context:         d.Context,
		Source:          d.Source,
		Metadata:        d.Metadata,
		OrganizationIDs: typed[known.OrganizationID](d.OrganizationIDs),
		CompanyIDs:      typed[known.CompanyID](d.CompanyIDs),
		ActiveCompanyID: (*known.CompanyID)(d.ActiveCompanyID),
		CreatedAt:       d.CreatedAt,
		UpdatedAt:       d.UpdatedAt,
		LastSeenAt:      d.LastSeenAt,
	}
	if u.Metadata == nil {
		u.Metadata = map[string]any{}
	}
	u.Derive()
	return u
}

// CreateUser stores a new user that owns its identities' keys. The keys are claimed first;
// when one already names another user nothing is stored and a *KeyTakenError names that user.
// Concurrent calls with one key create exactly one user.
func (s *Store) CreateUser(ctx context.Context, u *known.User) error {
	var keys []IdentityKey
	for _, id := range u.Identities {
		keys = append(keys, KeyOf(id.Kind, id.Value))
	}
	held, err := s.ReserveKeys(ctx, u.ProjectID, keys, u.ID)
	if err != nil {
		return err
	}
	if len(held) > 0 {
		var mine []IdentityKey
		for _, k := range keys {
			if !slices.Contains(held, k) {
				mine = append(mine, k)
			}
		}
		_ = s.ReleaseKeys(context.WithoutCancel(ctx), u.ProjectID, mine, u.ID)
		owner, err := s.KeyOwner(ctx, u.ProjectID, held[0])
		if err != nil {
			return err
		}
		return &KeyTakenError{Key: held[0], OwnerID: owner}
	}
	if err := s.InsertUser(ctx, u); err != nil {
		if !errors.Is(err, ErrUnlisted) { // an unlisted user exists, and its keys name it
			_ = s.ReleaseKeys(context.WithoutCancel(ctx), u.ProjectID, keys, u.ID)
		}
		return err
	}
	return nil
}

// userKeys lists the identity keys a user document carries.
func (d *userDoc) keys() []IdentityKey {
	var ks []IdentityKey
	if d.ExternalID != nil {
		ks = append(ks, IdentityKey{KeyExternalID, *d.ExternalID})
	}
	if d.EmailKey != nil {
		ks = append(ks, IdentityKey{KeyEmail, *d.EmailKey})
	}
	if d.PhoneNumber != nil {
		ks = append(ks, IdentityKey{KeyPhone, *d.PhoneNumber})
	}
	for _, v := range d.VisitorIDs {
		ks = append(ks, IdentityKey{KeyVisitor, v})
	}
	return ks
}

// User returns the user with this id in project p, or NotFound (also for another project's user).
func (s *Store) User(ctx context.Context, p known.ProjectID, id known.UserID) (*known.User, error) {
	var d userDoc
	if err := s.users.FindOne(ctx, bson.M{"_id": string(id)}).Decode(&d); err != nil {
		if isNoDocuments(err) {
			return nil, notFound("user")
		}
		return nil, fmt.Errorf("store: finding user: %w", err)
	}
	if d.ProjectID != string(p) {
		return nil, notFound("user")
	}
	return d.user(), nil
}

// UserByKey returns the user that owns an identity key in project p, or NotFound.
func (s *Store) UserByKey(ctx context.Context, p known.ProjectID, k IdentityKey) (*known.User, error) {
	owner, err := s.KeyOwner(ctx, p, k)
	if err != nil {
		return nil, err
	}
	return s.User(ctx, p, known.UserID(owner))
}

// UserFilter selects users; every set condition must hold. Email is the normalized key.
type UserFilter struct {
	EmailKey    *string
	PhoneNumber *string
	ExternalID  *known.ExternalID
	Anonymous   *bool
	Verified    *bool
	// CompanyID and OrganizationID select the users linked to that company or organization.
	CompanyID      *known.CompanyID
	OrganizationID *known.OrganizationID
}

// Users returns a page of project p's users that f selects, newest first by id, and whether
// more follow: a query of the collection, which the embedded store answers by reading all of
// it. The unfiltered list is ProjectUsers'.
func (s *Store) Users(ctx context.Context, p known.ProjectID, f UserFilter, page known.Page) ([]*known.User, bool, error) {
	filter := bson.M{"projectId": string(p)}
	if f.EmailKey != nil {
		filter["emailKey"] = *f.EmailKey
	}
	if f.PhoneNumber != nil {
		filter["phoneNumber"] = *f.PhoneNumber
	}
	if f.ExternalID != nil {
		filter["externalId"] = string(*f.ExternalID)
	}
	if f.Anonymous != nil {
		filter["anonymous"] = *f.Anonymous
	}
	if f.Verified != nil {
		filter["verified"] = *f.Verified
	}
	if f.CompanyID != nil {
		filter["companyIds"] = string(*f.CompanyID)
	}
	if f.OrganizationID != nil {
		filter["organizationIds"] = string(*f.OrganizationID)
	}
	var docs []userDoc
	more, err := s.page(ctx, s.users, filter, page, &docs)
	return mapDocs(docs, (*userDoc).user), more, err
}

// listedUser is a user read from the project's list, with the position its document names.
type listedUser struct {
	u  *known.User
	at int64
}

func (l listedUser) listedAt() int64 { return l.at }

// ProjectUsers returns a page of all of project p's users, newest first, from the project's
// list (lists.go): a few reads by _id and one read of the page's users, however many users the
// project or the store holds. after[i] is the page.After that continues after us[i];
// page.After is "" or such a value, anything else is BAD_USER_INPUT (field after). A user
// deleted or merged away since it was listed is skipped. The filtered lists (Users) query the
// collection instead: they are kept in no list.
func (s *Store) ProjectUsers(ctx context.Context, p known.ProjectID, page known.Page) (us []*known.User, after []string, more bool, err error) {
	ls, after, more, err := pageProjectList(ctx, s, p, s.users, page,
		func(d *userDoc) (string, string) { return d.ID, d.ProjectID },
		func(d *userDoc) listedUser { return listedUser{u: d.user(), at: d.Listed} })
	us = make([]*known.User, len(ls))
	for i, l := range ls {
		us[i] = l.u
	}
	return us, after, more, err
}

// page runs a newest-first page query: at most page.First documents with _id below
// page.After, decoded into out, and whether more follow.
func (s *Store) page(ctx context.Context, coll *mongo.Collection, filter bson.M, page known.Page, out any) (bool, error) {
	if page.After != "" {
		filter["_id"] = bson.M{"$lt": page.After}
	}
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetLimit(int64(page.First) + 1).SetBatchSize(bigBatch)
	cur, err := coll.Find(ctx, filter, opts)
	if err != nil {
		return false, fmt.Errorf("store: listing %s: %w", coll.Name(), err)
	}
	if err := cur.All(ctx, out); err != nil {
		return false, fmt.Errorf("store: listing %s: %w", coll.Name(), err)
	}
	return trimPage(out, page.First), nil
}

// DeleteUser erases a user of project p with its identity keys, events (tracked ones and
// change events, but for its user.deleted) and its list of them, conversations and its list of
// them, their messages and lists of them. The user document goes last, so that an interrupted delete can be repeated.
func (s *Store) DeleteUser(ctx context.Context, p known.ProjectID, id known.UserID) error {
	var d userDoc
	if err := s.users.FindOne(ctx, bson.M{"_id": string(id)}).Decode(&d); err != nil {
		if isNoDocuments(err) {
			return notFound("user")
		}
		return fmt.Errorf("store: finding user: %w", err)
	}
	if d.ProjectID != string(p) {
		return notFound("user")
	}
	// user.deleted is recorded in the user first (an outbox like every change's), under an id
	// derived from the user, so that a delete repeated after a failure records it once; it is
	// published before the user document goes, with whatever else the user still held.
	gone := changeDoc{EventID: userDeletedEventID(id), ProjectID: d.ProjectID, Type: string(known.UserDeleted),
		UserID: &d.ID, Data: map[string]any{"user": map[string]any{"id": known.GlobalID(known.KindUser, d.ID),
			"externalId": optString(d.ExternalID)}}, CreatedAt: time.Now().UTC()}
	if err := func() error {
		defer s.serial.lock(s.users, d.ID)()
		k := "pendingEvents." + pendingKey(gone.EventID)
		_, err := s.users.UpdateOne(ctx, bson.M{"_id": d.ID, k: bson.M{"$exists": false}},
			bson.M{"$set": bson.M{k: gone}, "$inc": bson.M{"pendingCount": 1}})
		return err
	}(); err != nil {
		return fmt.Errorf("store: recording user.deleted: %w", err)
	}
	byUser, err := s.ConversationIDsOfUsers(ctx, []known.UserID{id})
	if err != nil {
		return err
	}
	convIDs := byUser[id]
	if len(convIDs) > 0 {
		if _, err := s.messages.DeleteMany(ctx, bson.M{"conversationId": bson.M{"$in": convIDs}}); err != nil {
			return fmt.Errorf("store: deleting messages: %w", err)
		}
	}
	// The lists of their messages go before the conversations, so that a repeated delete
	// still finds them.
	for _, c := range convIDs {
		if err := s.messageList(p, c).delete(ctx); err != nil {
			return err
		}
	}
	if _, err := s.conversations.DeleteMany(ctx, bson.M{"userId": string(id)}); err != nil {
		return fmt.Errorf("store: deleting conversations: %w", err)
	}
	if _, err := s.events.DeleteMany(ctx, bson.M{"userId": string(id)}); err != nil {
		return fmt.Errorf("store: deleting events: %w", err)
	}
	if err := s.eventList(p, id).delete(ctx); err != nil {
		return err
	}
	if err := s.userConversationList(p, id).delete(ctx); err != nil {
		return err
	}
	if err := s.ReleaseKeys(ctx, p, d.keys(), id); err != nil {
		return err
	}
	// Its widget sessions end with it: nothing of the erased user is reachable any more.
	if _, err := s.sessions.UpdateMany(ctx, bson.M{"userId": string(id), "revokedAt": nil}, bson.M{"$set": bson.M{"revokedAt": time.Now().UTC()}}); err != nil {
		return fmt.Errorf("store: ending sessions: %w", err)
	}
	if _, err := s.profiles.DeleteOne(ctx, bson.M{"_id": string(id)}); err != nil {
		return fmt.Errorf("store: deleting profile: %w", err)
	}
	if err := s.flushBeforeDelete(ctx, s.users, string(id)); err != nil {
		return err
	}
	// The user's change events and their webhook deliveries hold its data: they are erased
	// too, all but user.deleted (readers skip the numbers they leave empty).
	notDeleted := bson.M{"$ne": string(known.UserDeleted)}
	if _, err := s.changes.DeleteMany(ctx, bson.M{"userId": string(id), "type": notDeleted}); err != nil {
		return fmt.Errorf("store: deleting the user's change events: %w", err)
	}
	if _, err := s.deliveries.DeleteMany(ctx, bson.M{"userId": string(id), "eventType": notDeleted}); err != nil {
		return fmt.Errorf("store: deleting the user's webhook deliveries: %w", err)
	}
	// In the user's turn, which forgets the revision it was written at (userRevs).
	defer s.serial.lock(s.users, string(id))()
	defer s.serial.userRevs.forget(string(id))
	if _, err := s.users.DeleteOne(ctx, bson.M{"_id": string(id)}); err != nil {
		return fmt.Errorf("store: deleting user: %w", err)
	}
	// Again: a profile fetched meanwhile may have been stored since the first delete;
	// SaveProfiles deletes those it stores after this point (see there).
	if _, err := s.profiles.DeleteOne(ctx, bson.M{"_id": string(id)}); err != nil {
		return fmt.Errorf("store: deleting profile: %w", err)
	}
	return nil
}

// flushBeforeDelete publishes every event document id of coll still holds, and fails when one
// stays: a document is deleted only once its events are safe.
func (s *Store) flushBeforeDelete(ctx context.Context, coll *mongo.Collection, id string) error {
	// What this process queued goes first, in its order; publishing it here as well would
	// only leave gaps in the numbers.
	s.WaitPublished()
	if _, err := s.flush(ctx, coll, id, 0); err != nil {
		return err
	}
	// Read by _id (the one filter the embedded store serves without decoding the collection).
	var d struct {
		PendingCount int `bson:"pendingCount"`
	}
	err := coll.FindOne(ctx, bson.M{"_id": id}, options.FindOne().SetProjection(bson.M{"pendingCount": 1})).Decode(&d)
	if err != nil && !isNoDocuments(err) {
		return fmt.Errorf("store: checking pending events: %w", err)
	}
	if d.PendingCount > 0 {
		return fmt.Errorf("store: %s %s still holds events that could not be published", coll.Name(), id)
	}
	return nil
}

// UsersOfCompanies returns project p's users linked to any of the companies, newest first, at
// most limit of them, and whether the limit cut the list: one query for many companies.
func (s *Store) UsersOfCompanies(ctx context.Context, p known.ProjectID, companies []known.CompanyID, limit int) ([]*known.User, bool, error) {
	var docs []userDoc
	more, err := s.page(ctx, s.users, bson.M{"projectId": string(p), "companyIds": bson.M{"$in": strs(companies)}}, known.Page{First: limit}, &docs)
	return mapDocs(docs, (*userDoc).user), more, err
}
