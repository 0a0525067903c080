package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// SealedKind says what a stored sealed value is, and so which context it was sealed with.
type SealedKind int

// Kinds of sealed values.
const (
	// SealedIdentitySecret is a project's identity secret (context: the project id).
	SealedIdentitySecret SealedKind = iota + 1
	// SealedEndpointHeader is the value of a user-data endpoint header (context: the project
	// id and the header's name).
	SealedEndpointHeader
)

// SealedValue is one value stored sealed with KNOWN_SECRET, and where it is.
type SealedValue struct {
	ProjectID  known.ProjectID
	Kind       SealedKind
	HeaderName string // for SealedEndpointHeader
	Value      string
	path       string // its field in the project document
}

// SealedValues returns every sealed value of every project, for sealing them again with a
// new secret. It reads every project: it runs at start, not on a request.
func (s *Store) SealedValues(ctx context.Context) ([]SealedValue, error) {
	cur, err := s.projects.Find(ctx, bson.M{}, options.Find().SetProjection(bson.M{"identitySecrets": 1, "userDataEndpoint.headers": 1}))
	if err != nil {
		return nil, fmt.Errorf("store: reading sealed values: %w", err)
	}
	var docs []struct {
		ID              string   `bson:"_id"`
		IdentitySecrets []sealed `bson:"identitySecrets"`
		Endpoint        *struct {
			Headers []SealedHeader `bson:"headers"`
		} `bson:"userDataEndpoint"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("store: reading sealed values: %w", err)
	}
	var out []SealedValue
	for _, d := range docs {
		p := known.ProjectID(d.ID)
		for i, sec := range d.IdentitySecrets {
			out = append(out, SealedValue{ProjectID: p, Kind: SealedIdentitySecret, Value: sec.Value,
				path: "identitySecrets." + strconv.Itoa(i) + ".value"})
		}
		if d.Endpoint != nil {
			for i, h := range d.Endpoint.Headers {
				out = append(out, SealedValue{ProjectID: p, Kind: SealedEndpointHeader, HeaderName: h.Name, Value: h.Value,
					path: "userDataEndpoint.headers." + strconv.Itoa(i) + ".value"})
			}
		}
	}
	return out, nil
}

// ReplaceSealed writes sealed in place of v, in one conditional update of v's project: it
// lands only while v's field still holds v.Value, and reports false, changing nothing,
// otherwise (someone changed it since it was read). The project's updatedAt moves to now, so
// that a rotation that read the old value starts over rather than writing it back.
func (s *Store) ReplaceSealed(ctx context.Context, v SealedValue, sealed string, now time.Time) (bool, error) {
	defer s.serial.lock(s.projects, string(v.ProjectID))()
	r, err := s.projects.UpdateOne(ctx, bson.M{"_id": string(v.ProjectID), v.path: v.Value},
		bson.M{"$set": bson.M{v.path: sealed, "updatedAt": now}})
	if err != nil {
		return false, fmt.Errorf("store: sealing a value again: %w", err)
	}
	return r.MatchedCount == 1, nil
}
