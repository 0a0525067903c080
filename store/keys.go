package store

import (
	"context"
	"fmt"
	"time"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// KeyKind is a kind of identity key: something that names at most one owner in a project.
type KeyKind string

// Identity key kinds. The first four name users; the last two name organizations and
// companies by the customer's own ids.
const (
	KeyExternalID   KeyKind = "externalId"
	KeyEmail        KeyKind = "email"
	KeyPhone        KeyKind = "phone"
	KeyVisitor      KeyKind = "visitor"
	KeyOrganization KeyKind = "organization"
	KeyCompany      KeyKind = "company"
)

// IdentityKey is one normalized identity (an email is lowercased by the caller).
type IdentityKey struct {
	Kind  KeyKind
	Value string
}

// KeyTakenError says that an identity key already names another owner.
type KeyTakenError struct {
	Key     IdentityKey
	OwnerID string
}

func (e *KeyTakenError) Error() string {
	return fmt.Sprintf("store: %s already belongs to %s", e.Key.Kind, e.OwnerID)
}

// orphanAge is how old a claim whose owner no longer carries it must be before another may
// take it: a claim is written just before its owner, so a young one may still be in flight,
// and an old one was left by a crash between the two writes.
const orphanAge = time.Minute

type identityKeyDoc struct {
	ID        string    `bson:"_id"`
	ProjectID string    `bson:"projectId"`
	OwnerID   string    `bson:"ownerId"`
	CreatedAt time.Time `bson:"createdAt"`
}

func keyID(p known.ProjectID, k IdentityKey) string {
	return string(p) + "|" + string(k.Kind) + "|" + k.Value
}

// ownsFunc reports whether owner still carries identity k.
type ownsFunc func(ctx context.Context, owner string, k IdentityKey) (bool, error)

// ClaimKey makes owner (a user) the owner of identity k, or returns a *KeyTakenError naming
// the owner it has. Claiming a key one already owns succeeds.
func (s *Store) ClaimKey(ctx context.Context, p known.ProjectID, k IdentityKey, owner known.UserID) error {
	_, err := s.claimKeys(ctx, p, []IdentityKey{k}, string(owner), s.userOwns)
	return err
}

// ClaimIdentities makes user owner the owner of every key, or of none: when one is taken it
// returns a *KeyTakenError.
func (s *Store) ClaimIdentities(ctx context.Context, p known.ProjectID, owner known.UserID, keys []IdentityKey) error {
	_, err := s.claimKeys(ctx, p, keys, string(owner), s.userOwns)
	return err
}

// claimKeys claims every key for owner, or none: on the first taken key it releases what it
// claimed and returns a *KeyTakenError. It returns the ids of the keys it newly claimed.
func (s *Store) claimKeys(ctx context.Context, p known.ProjectID, keys []IdentityKey, owner string, owns ownsFunc) ([]string, error) {
	var claimed []string
	for _, k := range keys {
		id := keyID(p, k)
		fresh, err := s.claimKey(ctx, p, id, k, owner, owns)
		if err != nil {
			s.releaseKeys(ctx, claimed)
			return nil, err
		}
		if fresh {
			claimed = append(claimed, id)
		}
	}
	return claimed, nil
}

// claimKey claims one key; fresh is false when owner held it already.
func (s *Store) claimKey(ctx context.Context, p known.ProjectID, id string, k IdentityKey, owner string, owns ownsFunc) (fresh bool, err error) {
	doc := identityKeyDoc{ID: id, ProjectID: string(p), OwnerID: owner, CreatedAt: time.Now().UTC()}
	for attempt := 0; ; attempt++ {
		_, err := s.identityKeys.InsertOne(ctx, doc)
		if err == nil {
			return true, nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return false, fmt.Errorf("store: claiming identity key: %w", err)
		}
		var held identityKeyDoc
		if err := s.identityKeys.FindOne(ctx, bson.M{"_id": id}).Decode(&held); err != nil {
			if isNoDocuments(err) && attempt < 3 {
				continue // released between our insert and our read: try again
			}
			return false, fmt.Errorf("store: reading identity key: %w", err)
		}
		if held.OwnerID == owner {
			return false, nil
		}
		if attempt < 3 && time.Since(held.CreatedAt) > orphanAge {
			still, err := owns(ctx, held.OwnerID, k)
			if err != nil {
				return false, fmt.Errorf("store: checking identity key owner: %w", err)
			}
			if !still {
				// Left by an interrupted write: remove exactly that claim and try again.
				_, _ = s.identityKeys.DeleteOne(ctx, bson.M{"_id": id, "ownerId": held.OwnerID})
				continue
			}
		}
		return false, &KeyTakenError{Key: k, OwnerID: held.OwnerID}
	}
}

func (s *Store) releaseKeys(ctx context.Context, ids []string) {
	for _, id := range ids {
		_, _ = s.identityKeys.DeleteOne(context.WithoutCancel(ctx), bson.M{"_id": id})
	}
}

// KeyOwner returns the id of the owner of identity k in project p, or NotFound.
func (s *Store) KeyOwner(ctx context.Context, p known.ProjectID, k IdentityKey) (string, error) {
	var d identityKeyDoc
	if err := s.identityKeys.FindOne(ctx, bson.M{"_id": keyID(p, k)}).Decode(&d); err != nil {
		if isNoDocuments(err) {
			return "", notFound(string(k.Kind))
		}
		return "", fmt.Errorf("store: finding identity key: %w", err)
	}
	return d.OwnerID, nil
}

// ReleaseKey deletes identity k if owner holds it; it is a no-op otherwise.
func (s *Store) ReleaseKey(ctx context.Context, p known.ProjectID, k IdentityKey, owner string) error {
	held, err := s.KeyOwner(ctx, p, k)
	if known.ErrorCode(err) == known.NotFound || (err == nil && held != owner) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := s.identityKeys.DeleteOne(ctx, bson.M{"_id": keyID(p, k)}); err != nil {
		return fmt.Errorf("store: releasing identity key: %w", err)
	}
	return nil
}

// moveKey hands identity k from one owner to another.
func (s *Store) moveKey(ctx context.Context, p known.ProjectID, k IdentityKey, from, to string) error {
	held, err := s.KeyOwner(ctx, p, k)
	if known.ErrorCode(err) == known.NotFound {
		_, err = s.claimKey(ctx, p, keyID(p, k), k, to, s.userOwns)
		return err
	}
	if err != nil || held != from {
		return err
	}
	if _, err := s.identityKeys.UpdateOne(ctx, bson.M{"_id": keyID(p, k)}, bson.M{"$set": bson.M{"ownerId": to}}); err != nil {
		return fmt.Errorf("store: moving identity key: %w", err)
	}
	return nil
}
