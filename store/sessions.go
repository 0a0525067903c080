package store

import (
	"context"
	"fmt"
	"time"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// sessionDoc is a widget session as every Known instance sees it: a token is honoured only
// while its session exists, has not expired and was not ended by resetSession.
type sessionDoc struct {
	ID        string     `bson:"_id"`
	ProjectID string     `bson:"projectId"`
	VisitorID string     `bson:"visitorId"`
	Level     string     `bson:"level"`
	Method    *string    `bson:"method,omitempty"`
	UserID    *string    `bson:"userId,omitempty"`
	CreatedAt time.Time  `bson:"createdAt"`
	ExpiresAt time.Time  `bson:"expiresAt"`
	RevokedAt *time.Time `bson:"revokedAt,omitempty"`
}

// InsertSession stores a new session.
func (s *Store) InsertSession(ctx context.Context, ss *known.Session) error {
	if _, err := s.sessions.InsertOne(ctx, newSessionDoc(ss)); err != nil {
		return fmt.Errorf("store: saving session: %w", err)
	}
	return nil
}

// UpdateSession writes a session's level, method, user and expiry (renewing it), or NotFound
// when it was ended meanwhile.
func (s *Store) UpdateSession(ctx context.Context, ss *known.Session) error {
	d := newSessionDoc(ss)
	set := bson.M{"level": d.Level, "expiresAt": d.ExpiresAt}
	unset := bson.M{}
	for f, v := range map[string]*string{"method": d.Method, "userId": d.UserID} {
		if v == nil {
			unset[f] = ""
		} else {
			set[f] = *v
		}
	}
	update := bson.M{"$set": set}
	if len(unset) > 0 {
		update["$unset"] = unset
	}
	defer s.serial.lock(s.sessions, d.ID)()
	err := s.sessions.FindOneAndUpdate(ctx, bson.M{"_id": d.ID}, update).Err()
	if isNoDocuments(err) {
		return notFound("session")
	}
	if err != nil {
		return fmt.Errorf("store: saving session: %w", err)
	}
	return nil
}

func newSessionDoc(ss *known.Session) sessionDoc {
	d := sessionDoc{ID: ss.ID, ProjectID: string(ss.ProjectID), VisitorID: string(ss.VisitorID), Level: string(ss.Level),
		UserID: (*string)(ss.UserID), CreatedAt: ss.CreatedAt, ExpiresAt: ss.ExpiresAt}
	if ss.Method != nil {
		m := string(*ss.Method)
		d.Method = &m
	}
	return d
}

// SaveSession writes a session whole, replacing the one with its id (tests and tools; the
// widget's calls insert or update).
func (s *Store) SaveSession(ctx context.Context, ss *known.Session) error {
	d := newSessionDoc(ss)
	if _, err := s.sessions.ReplaceOne(ctx, bson.M{"_id": d.ID}, d, options.Replace().SetUpsert(true)); err != nil {
		return fmt.Errorf("store: saving session: %w", err)
	}
	return nil
}

// Session returns a live session (not expired at now, not revoked), or NotFound.
func (s *Store) Session(ctx context.Context, id string, now time.Time) (*known.Session, error) {
	var d sessionDoc
	if err := s.sessions.FindOne(ctx, bson.M{"_id": id}).Decode(&d); err != nil {
		if isNoDocuments(err) {
			return nil, notFound("session")
		}
		return nil, fmt.Errorf("store: finding session: %w", err)
	}
	if d.RevokedAt != nil || !now.Before(d.ExpiresAt) {
		return nil, notFound("session")
	}
	ss := &known.Session{ID: d.ID, ProjectID: known.ProjectID(d.ProjectID), VisitorID: known.VisitorID(d.VisitorID),
		Level: known.Level(d.Level), UserID: (*known.UserID)(d.UserID), CreatedAt: d.CreatedAt, ExpiresAt: d.ExpiresAt}
	if d.Method != nil {
		m := known.VerificationMethod(*d.Method)
		ss.Method = &m
	}
	return ss, nil
}

// RevokeSession ends a session: its token is refused from now on, by every instance.
func (s *Store) RevokeSession(ctx context.Context, id string, now time.Time) error {
	defer s.serial.lock(s.sessions, id)()
	err := s.sessions.FindOneAndUpdate(ctx, bson.M{"_id": id}, bson.M{"$set": bson.M{"revokedAt": now}}).Err()
	if err != nil && !isNoDocuments(err) {
		return fmt.Errorf("store: revoking session: %w", err)
	}
	return nil
}
