package store

import (
	"context"
	"fmt"
	"time"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

type jwtKeyDoc struct {
	ID        string     `bson:"id"`
	Algorithm string     `bson:"algorithm"`
	PEM       string     `bson:"pem"`
	CreatedAt time.Time  `bson:"createdAt"`
	ExpiresAt *time.Time `bson:"expiresAt,omitempty"`
}

// projectSecrets is the part of a project document that holds its verification material.
type projectSecrets struct {
	IdentitySecrets []sealed    `bson:"identitySecrets"`
	JwtKeys         []jwtKeyDoc `bson:"jwtKeys"`
	UpdatedAt       time.Time   `bson:"updatedAt"`
}

func (s *Store) projectSecrets(ctx context.Context, p known.ProjectID) (*projectSecrets, error) {
	var d projectSecrets
	if err := s.projects.FindOne(ctx, bson.M{"_id": string(p)}).Decode(&d); err != nil {
		if isNoDocuments(err) {
			return nil, notFound("project")
		}
		return nil, fmt.Errorf("store: reading project secrets: %w", err)
	}
	return &d, nil
}

// ProjectAuth is a project with its verification material, read in one lookup.
type ProjectAuth struct {
	Project *known.Project
	// IdentitySecrets are the sealed identity secrets that verify at the time of the read,
	// the current one first; JwtKeys likewise.
	IdentitySecrets []string
	JwtKeys         []known.JwtKey
}

// ProjectWithSecrets returns project p with the identity secrets and JWT keys that verify at
// now, from one read: a widget call that carries a proof needs no second one. NotFound when
// there is no such project.
func (s *Store) ProjectWithSecrets(ctx context.Context, p known.ProjectID, now time.Time) (*ProjectAuth, error) {
	var d projectDoc
	if err := s.projects.FindOne(ctx, bson.M{"_id": string(p)}).Decode(&d); err != nil {
		if isNoDocuments(err) {
			return nil, notFound("project")
		}
		return nil, fmt.Errorf("store: finding project: %w", err)
	}
	sec := projectSecrets{IdentitySecrets: d.IdentitySecrets, JwtKeys: d.JwtKeys}
	return &ProjectAuth{Project: d.project(), IdentitySecrets: sec.liveSecrets(now), JwtKeys: sec.liveKeys(now)}, nil
}

func (d *projectSecrets) liveSecrets(now time.Time) []string {
	var out []string
	for i := len(d.IdentitySecrets) - 1; i >= 0; i-- {
		if sec := d.IdentitySecrets[i]; sec.ExpiresAt == nil || now.Before(*sec.ExpiresAt) {
			out = append(out, sec.Value)
		}
	}
	return out
}

func (d *projectSecrets) liveKeys(now time.Time) []known.JwtKey {
	out := []known.JwtKey{}
	for i := len(d.JwtKeys) - 1; i >= 0; i-- {
		k := d.JwtKeys[i]
		if k.ExpiresAt == nil || now.Before(*k.ExpiresAt) {
			out = append(out, known.JwtKey{ID: k.ID, Algorithm: k.Algorithm, PEM: k.PEM, CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt})
		}
	}
	return out
}

// IdentitySecrets returns project p's sealed identity secrets that still verify at now, the
// current one first.
func (s *Store) IdentitySecrets(ctx context.Context, p known.ProjectID, now time.Time) ([]string, error) {
	d, err := s.projectSecrets(ctx, p)
	if err != nil {
		return nil, err
	}
	return d.liveSecrets(now), nil
}

// RotateIdentitySecret makes sealedNew project p's current identity secret; the previous
// current one keeps verifying until graceUntil, and secrets already expired are dropped.
func (s *Store) RotateIdentitySecret(ctx context.Context, p known.ProjectID, sealedNew string, now, graceUntil time.Time) error {
	return s.updateSecrets(ctx, p, now, func(d *projectSecrets) {
		kept := []sealed{}
		for _, sec := range d.IdentitySecrets {
			if sec.ExpiresAt == nil {
				sec.ExpiresAt = &graceUntil
			}
			if now.Before(*sec.ExpiresAt) {
				kept = append(kept, sec)
			}
		}
		d.IdentitySecrets = append(kept, sealed{Value: sealedNew, CreatedAt: now})
	})
}

// JwtKeys returns project p's JWT public keys that still verify at now, the current one first.
func (s *Store) JwtKeys(ctx context.Context, p known.ProjectID, now time.Time) ([]known.JwtKey, error) {
	d, err := s.projectSecrets(ctx, p)
	if err != nil {
		return nil, err
	}
	return d.liveKeys(now), nil
}

// AddJwtKey makes k project p's current JWT key; the previous current key keeps verifying
// until graceUntil, and keys already expired are dropped.
func (s *Store) AddJwtKey(ctx context.Context, p known.ProjectID, k known.JwtKey, now, graceUntil time.Time) error {
	return s.updateSecrets(ctx, p, now, func(d *projectSecrets) {
		kept := []jwtKeyDoc{}
		for _, old := range d.JwtKeys {
			if old.ExpiresAt == nil {
				old.ExpiresAt = &graceUntil
			}
			if now.Before(*old.ExpiresAt) {
				kept = append(kept, old)
			}
		}
		d.JwtKeys = append(kept, jwtKeyDoc{ID: k.ID, Algorithm: k.Algorithm, PEM: k.PEM, CreatedAt: now})
	})
}

// updateSecrets changes project p's verification material: a read, a change and a write that
// lands only if nobody wrote in between (else it starts over), so that two rotations at once
// do not lose a secret.
func (s *Store) updateSecrets(ctx context.Context, p known.ProjectID, now time.Time, change func(*projectSecrets)) error {
	defer s.serial.lock(s.projects, string(p))()
	for range 5 {
		d, err := s.projectSecrets(ctx, p)
		if err != nil {
			return err
		}
		before := d.UpdatedAt
		change(d)
		if !now.After(before) {
			now = before.Add(time.Millisecond) // the version must move forward
		}
		r, err := s.projects.UpdateOne(ctx, bson.M{"_id": string(p), "updatedAt": before},
			bson.M{"$set": bson.M{"identitySecrets": nonNil(d.IdentitySecrets), "jwtKeys": nonNil(d.JwtKeys), "updatedAt": now}})
		if err != nil {
			return fmt.Errorf("store: updating project secrets: %w", err)
		}
		if r.MatchedCount == 1 {
			return nil
		}
	}
	return fmt.Errorf("store: project secrets kept changing")
}

// UseJWTID records that the JWT id jti of project p was used; it reports false when it was
// used before (a replay). The record is kept until expiresAt, then swept.
func (s *Store) UseJWTID(ctx context.Context, p known.ProjectID, jti string, expiresAt time.Time) (bool, error) {
	_, err := s.jwtIDs.InsertOne(ctx, bson.M{"_id": string(p) + "|" + jti, "expiresAt": expiresAt})
	if mongo.IsDuplicateKeyError(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: recording jti: %w", err)
	}
	return true, nil
}

type identificationTokenDoc struct {
	ID        string    `bson:"_id"` // SHA-256 of the token
	ProjectID string    `bson:"projectId"`
	EmailKey  string    `bson:"emailKey"`
	FirstName *string   `bson:"firstName,omitempty"`
	LastName  *string   `bson:"lastName,omitempty"`
	CreatedAt time.Time `bson:"createdAt"`
	ExpiresAt time.Time `bson:"expiresAt"`
}

// SaveIdentificationToken stores an identification token under the hash of its value.
func (s *Store) SaveIdentificationToken(ctx context.Context, hash string, t *known.IdentificationToken) error {
	_, err := s.idTokens.InsertOne(ctx, identificationTokenDoc{ID: hash, ProjectID: string(t.ProjectID), EmailKey: t.EmailKey,
		FirstName: t.FirstName, LastName: t.LastName, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt})
	if err != nil {
		return fmt.Errorf("store: saving identification token: %w", err)
	}
	return nil
}

// IdentificationToken returns project p's token with this hash, or NotFound (also when it
// belongs to another project).
func (s *Store) IdentificationToken(ctx context.Context, p known.ProjectID, hash string) (*known.IdentificationToken, error) {
	var d identificationTokenDoc
	if err := s.findInProject(ctx, s.idTokens, p, hash, &d, &d.ProjectID); err != nil {
		return nil, err
	}
	return &known.IdentificationToken{ProjectID: known.ProjectID(d.ProjectID), EmailKey: d.EmailKey, FirstName: d.FirstName,
		LastName: d.LastName, CreatedAt: d.CreatedAt, ExpiresAt: d.ExpiresAt}, nil
}

// DeleteExpired removes expired sessions, jti records, identification tokens and replaced
// secret keys (no TTL index is honoured by both MongoDB and FerretDB, so a sweeper calls this).
func (s *Store) DeleteExpired(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	for _, coll := range []*mongo.Collection{s.sessions, s.jwtIDs, s.idTokens, s.projectKeys} {
		r, err := coll.DeleteMany(ctx, bson.M{"expiresAt": bson.M{"$lt": now}})
		if err != nil {
			return n, fmt.Errorf("store: deleting expired %s: %w", coll.Name(), err)
		}
		n += r.DeletedCount
	}
	return n, nil
}
