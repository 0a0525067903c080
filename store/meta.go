package store

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// The meta collection holds Known's own small documents, each under a fixed _id: the secret
// check value and the single-instance lease.
const (
	metaCollection = "meta"
	secretCheckID  = "secretCheck"
)

func (s *Store) meta() *mongo.Collection { return s.db.Collection(metaCollection) }

// SecretCheck returns the check value sealed with KNOWN_SECRET, or "" when the database has
// none yet.
func (s *Store) SecretCheck(ctx context.Context) (string, error) {
	var d struct {
		Value string `bson:"value"`
	}
	if err := s.meta().FindOne(ctx, bson.M{"_id": secretCheckID}).Decode(&d); err != nil {
		if isNoDocuments(err) {
			return "", nil
		}
		return "", fmt.Errorf("store: reading the secret check value: %w", err)
	}
	return d.Value, nil
}

// CreateSecretCheck stores the first check value; it reports false, changing nothing, when
// the database has one already (another instance stored it first).
func (s *Store) CreateSecretCheck(ctx context.Context, sealed string) (bool, error) {
	_, err := s.meta().InsertOne(ctx, bson.M{"_id": secretCheckID, "value": sealed})
	if mongo.IsDuplicateKeyError(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: storing the secret check value: %w", err)
	}
	return true, nil
}

// ReplaceSecretCheck replaces the check value old by sealed; it reports false, changing
// nothing, when the stored value is no longer old.
func (s *Store) ReplaceSecretCheck(ctx context.Context, old, sealed string) (bool, error) {
	defer s.serial.lock(s.meta(), secretCheckID)()
	r, err := s.meta().UpdateOne(ctx, bson.M{"_id": secretCheckID, "value": old}, bson.M{"$set": bson.M{"value": sealed}})
	if err != nil {
		return false, fmt.Errorf("store: replacing the secret check value: %w", err)
	}
	return r.MatchedCount == 1, nil
}
