package store

import (
	"context"
	"fmt"
	"time"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
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
