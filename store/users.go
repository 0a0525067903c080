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

// KeyKind is a kind of identity key: something that names at most one user of a project.
type KeyKind string

// Identity key kinds.
const (
	KeyExternalID KeyKind = "externalId"
	KeyEmail      KeyKind = "email"
	KeyPhone      KeyKind = "phone"
)

// IdentityKey is one normalized identity of a user (an email is lowercased by the caller).
type IdentityKey struct {
	Kind  KeyKind
	Value string
}

// KeyTakenError says that an identity key already names another user.
type KeyTakenError struct {
	Key    IdentityKey
	UserID known.UserID
}

func (e *KeyTakenError) Error() string {
	return fmt.Sprintf("store: %s already belongs to user %s", e.Key.Kind, e.UserID)
}

// orphanAge is how old a claim whose user does not exist must be before another user may take
// it: a claim is made just before its user is inserted, so a young one may still be in flight,
// and an old one was left by a crash between the two writes.
const orphanAge = time.Minute

type identityKeyDoc struct {
	ID        string    `bson:"_id"`
	ProjectID string    `bson:"projectId"`
	UserID    string    `bson:"userId"`
	CreatedAt time.Time `bson:"createdAt"`
}

func keyID(p known.ProjectID, k IdentityKey) string {
	return string(p) + "|" + string(k.Kind) + "|" + k.Value
}

type userDoc struct {
	ID                 string         `bson:"_id"`
	ProjectID          string         `bson:"projectId"`
	ExternalID         *string        `bson:"externalId,omitempty"`
	FkUserID           *string        `bson:"fkUserId,omitempty"`
	VisitorIDs         []string       `bson:"visitorIds"`
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
	IdentityKeys       []string       `bson:"identityKeys"`
	CreatedAt          time.Time      `bson:"createdAt"`
	UpdatedAt          time.Time      `bson:"updatedAt"`
	LastSeenAt         *time.Time     `bson:"lastSeenAt,omitempty"`
}

func newUserDoc(u *known.User, keys []IdentityKey) *userDoc {
	d := &userDoc{
		ID:              string(u.ID),
		ProjectID:       string(u.ProjectID),
		ExternalID:      (*string)(u.ExternalID),
		FkUserID:        u.FkUserID,
		VisitorIDs:      strs(u.VisitorIDs),
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
		IdentityKeys:    []string{},
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
	for _, k := range keys {
		d.IdentityKeys = append(d.IdentityKeys, keyID(u.ProjectID, k))
		if k.Kind == KeyEmail {
			v := k.Value
			d.EmailKey = &v
		}
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
		Verified:        d.Verified,
		VerifiedAt:      d.VerifiedAt,
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
	if d.VerificationMethod != nil {
		m := known.VerificationMethod(*d.VerificationMethod)
		u.VerificationMethod = &m
	}
	return u
}

// CreateUser stores a new user that owns the given identity keys. Each key is claimed first;
// when one already names another user nothing is stored and a *KeyTakenError names that user.
// Concurrent calls with one key create exactly one user.
func (s *Store) CreateUser(ctx context.Context, u *known.User, keys []IdentityKey) error {
	var claimed []string
	release := func() {
		for _, id := range claimed {
			_, _ = s.identityKeys.DeleteOne(context.WithoutCancel(ctx), bson.M{"_id": id})
		}
	}
	for _, k := range keys {
		id := keyID(u.ProjectID, k)
		if err := s.claimKey(ctx, id, u); err != nil {
			release()
			var taken *KeyTakenError
			if errors.As(err, &taken) {
				taken.Key = k
			}
			return err
		}
		claimed = append(claimed, id)
	}
	if _, err := s.users.InsertOne(ctx, newUserDoc(u, keys)); err != nil {
		release()
		return fmt.Errorf("store: creating user: %w", err)
	}
	return nil
}

// claimKey makes u the owner of identity key id, or returns a *KeyTakenError naming the owner.
func (s *Store) claimKey(ctx context.Context, id string, u *known.User) error {
	doc := identityKeyDoc{ID: id, ProjectID: string(u.ProjectID), UserID: string(u.ID), CreatedAt: time.Now().UTC()}
	for attempt := 0; ; attempt++ {
		_, err := s.identityKeys.InsertOne(ctx, doc)
		if err == nil {
			return nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("store: claiming identity key: %w", err)
		}
		var owner identityKeyDoc
		if err := s.identityKeys.FindOne(ctx, bson.M{"_id": id}).Decode(&owner); err != nil {
			if isNoDocuments(err) && attempt < 3 {
				continue // released between our insert and our read: try again
			}
			return fmt.Errorf("store: reading identity key: %w", err)
		}
		if attempt < 3 && time.Since(owner.CreatedAt) > orphanAge {
			n, err := s.users.CountDocuments(ctx, bson.M{"_id": owner.UserID})
			if err != nil {
				return fmt.Errorf("store: checking identity key owner: %w", err)
			}
			if n == 0 {
				// An orphan left by a crash: remove exactly that claim and try again.
				_, _ = s.identityKeys.DeleteOne(ctx, bson.M{"_id": id, "userId": owner.UserID})
				continue
			}
		}
		return &KeyTakenError{UserID: known.UserID(owner.UserID)}
	}
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
	var d identityKeyDoc
	if err := s.identityKeys.FindOne(ctx, bson.M{"_id": keyID(p, k)}).Decode(&d); err != nil {
		if isNoDocuments(err) {
			return nil, notFound("user")
		}
		return nil, fmt.Errorf("store: finding identity key: %w", err)
	}
	return s.User(ctx, p, known.UserID(d.UserID))
}

// UserFilter selects users; every set condition must hold. Email is the normalized key.
type UserFilter struct {
	EmailKey    *string
	PhoneNumber *string
	ExternalID  *known.ExternalID
	Anonymous   *bool
	Verified    *bool
}

// Users returns a page of project p's users, newest first, and whether more follow.
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
	var docs []userDoc
	more, err := s.page(ctx, s.users, filter, page, &docs)
	if err != nil {
		return nil, false, err
	}
	out := make([]*known.User, len(docs))
	for i := range docs {
		out[i] = docs[i].user()
	}
	return out, more, nil
}

// page runs a newest-first page query: at most page.First documents with _id below
// page.After, decoded into out, and whether more follow.
func (s *Store) page(ctx context.Context, coll *mongo.Collection, filter bson.M, page known.Page, out any) (bool, error) {
	if page.After != "" {
		filter["_id"] = bson.M{"$lt": page.After}
	}
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetLimit(int64(page.First) + 1)
	cur, err := coll.Find(ctx, filter, opts)
	if err != nil {
		return false, fmt.Errorf("store: listing %s: %w", coll.Name(), err)
	}
	if err := cur.All(ctx, out); err != nil {
		return false, fmt.Errorf("store: listing %s: %w", coll.Name(), err)
	}
	return trimPage(out, page.First), nil
}

// ConversationIDs returns the ids of a user's conversations, newest first.
func (s *Store) ConversationIDs(ctx context.Context, u known.UserID) ([]known.ConversationID, error) {
	cur, err := s.conversations.Find(ctx, bson.M{"userId": string(u)},
		options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetProjection(bson.M{"_id": 1}))
	if err != nil {
		return nil, fmt.Errorf("store: listing conversation ids: %w", err)
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("store: listing conversation ids: %w", err)
	}
	ids := make([]known.ConversationID, len(docs))
	for i, d := range docs {
		ids[i] = known.ConversationID(d.ID)
	}
	return ids, nil
}

// DeleteUser erases a user of project p with its identity keys, events, conversations and
// their messages. The user document goes last, so that an interrupted delete can be repeated.
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
	convIDs, err := s.ConversationIDs(ctx, id)
	if err != nil {
		return err
	}
	if len(convIDs) > 0 {
		if _, err := s.messages.DeleteMany(ctx, bson.M{"conversationId": bson.M{"$in": convIDs}}); err != nil {
			return fmt.Errorf("store: deleting messages: %w", err)
		}
	}
	if _, err := s.conversations.DeleteMany(ctx, bson.M{"userId": string(id)}); err != nil {
		return fmt.Errorf("store: deleting conversations: %w", err)
	}
	if _, err := s.events.DeleteMany(ctx, bson.M{"userId": string(id)}); err != nil {
		return fmt.Errorf("store: deleting events: %w", err)
	}
	for _, k := range d.IdentityKeys {
		if _, err := s.identityKeys.DeleteOne(ctx, bson.M{"_id": k}); err != nil {
			return fmt.Errorf("store: deleting identity key: %w", err)
		}
	}
	if _, err := s.users.DeleteOne(ctx, bson.M{"_id": string(id)}); err != nil {
		return fmt.Errorf("store: deleting user: %w", err)
	}
	return nil
}
