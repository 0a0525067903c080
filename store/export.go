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

// UserData is everything the store holds about one user, for a data-access request.
type UserData struct {
	User          *known.User
	Organizations []*known.Organization
	Companies     []*known.Company
	Events        []*known.Event
	Conversations []*known.Conversation
	// Messages maps each conversation to its messages, oldest first.
	Messages map[known.ConversationID][]*known.Message
	Profile  *known.Profile
	Sessions []SessionRecord
	Audit    []*known.AuditEntry
}

// SessionRecord is a widget session as an export shows it: never its token.
type SessionRecord struct {
	VisitorID known.VisitorID
	Level     known.Level
	Method    *known.VerificationMethod
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt *time.Time
}

// ExportUser reads everything project p holds about user id: the user, its organizations
// and companies, its events, its conversations with all their messages, its external
// profile, its widget sessions and the audit entries about it. NotFound when the user is not
// p's. It reads whole lists without paging, and the sessions and audit entries by user scan
// on the embedded store (and sessions on MongoDB too): an export is rare.
func (s *Store) ExportUser(ctx context.Context, p known.ProjectID, id known.UserID) (*UserData, error) {
	u, err := s.User(ctx, p, id)
	if err != nil {
		return nil, err
	}
	out := &UserData{User: u, Messages: map[known.ConversationID][]*known.Message{}}
	if out.Organizations, err = s.OrganizationsByIDs(ctx, p, u.OrganizationIDs); err != nil {
		return nil, err
	}
	if out.Companies, err = s.CompaniesByIDs(ctx, p, u.CompanyIDs); err != nil {
		return nil, err
	}
	byUser := bson.M{"projectId": string(p), "userId": string(id)}
	var events []eventDoc
	if err := findAll(ctx, s.events, byUser, &events); err != nil {
		return nil, err
	}
	out.Events = mapDocs(events, (*eventDoc).event)
	var convs []conversationDoc
	if err := findAll(ctx, s.conversations, byUser, &convs); err != nil {
		return nil, err
	}
	out.Conversations = mapDocs(convs, (*conversationDoc).conversation)
	if len(convs) > 0 {
		ids := make([]string, len(convs))
		for i, c := range convs {
			ids[i] = c.ID
		}
		var msgs []messageDoc
		if err := findAll(ctx, s.messages, bson.M{"projectId": string(p), "conversationId": bson.M{"$in": ids}}, &msgs); err != nil {
			return nil, err
		}
		for i := len(msgs) - 1; i >= 0; i-- { // findAll lists newest first
			m := msgs[i].message()
			out.Messages[m.ConversationID] = append(out.Messages[m.ConversationID], m)
		}
	}
	profiles, err := s.ProfilesOf(ctx, p, []known.UserID{id})
	if err != nil {
		return nil, err
	}
	out.Profile = profiles[id]
	var sessions []sessionDoc
	if err := findAll(ctx, s.sessions, byUser, &sessions); err != nil {
		return nil, err
	}
	for _, d := range sessions {
		out.Sessions = append(out.Sessions, SessionRecord{VisitorID: known.VisitorID(d.VisitorID), Level: known.Level(d.Level),
			Method: (*known.VerificationMethod)(d.Method), CreatedAt: d.CreatedAt, ExpiresAt: d.ExpiresAt, RevokedAt: d.RevokedAt})
	}
	var audit []auditDoc
	about := bson.M{"projectId": string(p), "$or": bson.A{bson.M{"userId": string(id)}, bson.M{"otherUserId": string(id)}}}
	if err := findAll(ctx, s.auditLog(), about, &audit); err != nil {
		return nil, err
	}
	out.Audit = mapDocs(audit, (*auditDoc).entry)
	return out, nil
}

// findAll decodes every document matching filter into out, newest first.
func findAll(ctx context.Context, coll *mongo.Collection, filter bson.M, out any) error {
	cur, err := coll.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetBatchSize(bigBatch))
	if err != nil {
		return fmt.Errorf("store: reading %s: %w", coll.Name(), err)
	}
	if err := cur.All(ctx, out); err != nil {
		return fmt.Errorf("store: reading %s: %w", coll.Name(), err)
	}
	return nil
}
