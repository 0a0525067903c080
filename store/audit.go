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

// auditCollection holds the audit log. Known only inserts into it (and deleteProject erases
// a deleted project's entries with the rest of its data, and Retain, given an audit age,
// deletes older entries).
const auditCollection = "audit_log"

func (s *Store) auditLog() *mongo.Collection { return s.db.Collection(auditCollection) }

// auditIndexes serve a project's log, newest first, and one user's entries.
var auditIndexes = []mongo.IndexModel{
	{Keys: bson.D{{Key: "projectId", Value: 1}, {Key: "_id", Value: -1}}},
	{Keys: bson.D{{Key: "userId", Value: 1}, {Key: "_id", Value: -1}}},
	{Keys: bson.D{{Key: "otherUserId", Value: 1}, {Key: "_id", Value: -1}}},
}

type auditDoc struct {
	ID          string    `bson:"_id"`
	ProjectID   string    `bson:"projectId"`
	Action      string    `bson:"action"`
	ActorKind   string    `bson:"actorKind"`
	VisitorID   *string   `bson:"visitorId,omitempty"`
	UserID      *string   `bson:"userId,omitempty"`
	OtherUserID *string   `bson:"otherUserId,omitempty"`
	Identity    *string   `bson:"identity,omitempty"`
	Method      *string   `bson:"method,omitempty"`
	Subject     *string   `bson:"subject,omitempty"`
	At          time.Time `bson:"at"`
}

func (d *auditDoc) entry() *known.AuditEntry {
	return &known.AuditEntry{ID: d.ID, ProjectID: known.ProjectID(d.ProjectID), Action: known.AuditAction(d.Action),
		Actor:  known.Actor{Kind: known.ActorKind(d.ActorKind), VisitorID: (*known.VisitorID)(d.VisitorID)},
		UserID: (*known.UserID)(d.UserID), OtherUserID: (*known.UserID)(d.OtherUserID),
		Identity: (*known.IdentityKind)(d.Identity), Method: (*known.VerificationMethod)(d.Method), Subject: d.Subject, At: d.At}
}

// AppendAudit inserts entries into the audit log, in one command, giving each a new id.
func (s *Store) AppendAudit(ctx context.Context, entries ...*known.AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	docs := make([]any, len(entries))
	for i, e := range entries {
		e.ID = NewID()
		docs[i] = auditDoc{ID: e.ID, ProjectID: string(e.ProjectID), Action: string(e.Action), ActorKind: string(e.Actor.Kind),
			VisitorID: (*string)(e.Actor.VisitorID), UserID: (*string)(e.UserID), OtherUserID: (*string)(e.OtherUserID),
			Identity: (*string)(e.Identity), Method: (*string)(e.Method), Subject: e.Subject, At: e.At}
	}
	if _, err := s.auditLog().InsertMany(ctx, docs, options.InsertMany().SetOrdered(true)); err != nil {
		return fmt.Errorf("store: appending to the audit log: %w", err)
	}
	return nil
}

// AuditLog returns a page of project p's audit log ("" is the operator's), newest first;
// with user, only the entries about that user (on either side).
func (s *Store) AuditLog(ctx context.Context, p known.ProjectID, user *known.UserID, page known.Page) ([]*known.AuditEntry, bool, error) {
	filter := bson.M{"projectId": string(p)}
	if user != nil {
		filter["$or"] = bson.A{bson.M{"userId": string(*user)}, bson.M{"otherUserId": string(*user)}}
	}
	var docs []auditDoc
	more, err := s.page(ctx, s.auditLog(), filter, page, &docs)
	return mapDocs(docs, (*auditDoc).entry), more, err
}
