package store

import (
	"context"
	"fmt"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// OldestProjectNamed returns the first project made with this name, or NotFound. Names are not
// unique and not indexed: this scans, and serves only the demo page.
func (s *Store) OldestProjectNamed(ctx context.Context, name string) (*known.Project, error) {
	var d projectDoc
	opts := options.FindOne().SetSort(bson.D{{Key: "createdAt", Value: 1}, {Key: "_id", Value: 1}})
	if err := s.projects.FindOne(ctx, bson.M{"name": name}, opts).Decode(&d); err != nil {
		if isNoDocuments(err) {
			return nil, notFound("project")
		}
		return nil, fmt.Errorf("store: finding project by name: %w", err)
	}
	return d.project(), nil
}
