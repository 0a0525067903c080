package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// migrate brings data written by earlier versions of Known to the current shape. Each step is
// idempotent and safe to interrupt: it writes each document with a condition that holds only
// while the document is still in the old shape, so running it again (on this or another
// instance) finishes what was left and changes nothing else. Migrations may scan: they run
// once, at start.
func (s *Store) migrate(ctx context.Context) error {
	if err := s.migrateIdentities(ctx); err != nil {
		return fmt.Errorf("store: migrating identities: %w", err)
	}
	if err := s.migrateAnonymousRecords(ctx); err != nil {
		return fmt.Errorf("store: migrating visitor records: %w", err)
	}
	if err := s.migrateMessageCounts(ctx); err != nil {
		return fmt.Errorf("store: counting messages: %w", err)
	}
	if err := s.migrateConversationLists(ctx); err != nil {
		return fmt.Errorf("store: listing conversations: %w", err)
	}
	return nil
}

// migrateConversationLists gives each project that has no list of its conversations yet
// (lists.go; versions before it kept none) that list: its conversations in the order of
// their ids, which is the order they started in. A list is written whole, its head last
// (list.write), so a start interrupted half way writes it again from scratch, at the same
// positions, and a list with a head is done. One query reads the conversations of every
// project still to do. No instance of this version may start conversations meanwhile (they
// would take the positions this writes): on FerretDB one instance runs at a time; on MongoDB,
// start the first instance of this version alone.
func (s *Store) migrateConversationLists(ctx context.Context) error {
	cur, err := s.projects.Find(ctx, bson.M{}, options.Find().SetProjection(bson.M{"_id": 1}).SetBatchSize(bigBatch))
	if err != nil {
		return err
	}
	var projects []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &projects); err != nil {
		return err
	}
	heads := make([]string, len(projects))
	for i, p := range projects {
		heads[i] = s.conversationList(known.ProjectID(p.ID)).headID()
	}
	var have []listHead
	if err := s.byIDs(ctx, s.lists(), heads, &have); err != nil {
		return err
	}
	listed := map[string]bool{}
	for _, h := range have {
		listed[h.ID] = true
	}
	var todo []string
	for i, p := range projects {
		if !listed[heads[i]] {
			todo = append(todo, p.ID)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	cur, err = s.conversations.Find(ctx, bson.M{"projectId": bson.M{"$in": todo}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetProjection(bson.M{"_id": 1, "projectId": 1}).SetBatchSize(bigBatch))
	if err != nil {
		return err
	}
	var docs []struct {
		ID        string `bson:"_id"`
		ProjectID string `bson:"projectId"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return err
	}
	ids := map[string][]string{}
	for _, d := range docs {
		ids[d.ProjectID] = append(ids[d.ProjectID], d.ID)
	}
	for _, p := range todo {
		// A project without conversations gets its head too (n: 0), so that later starts
		// skip it.
		if err := s.conversationList(known.ProjectID(p)).write(ctx, ids[p]); err != nil {
			return err
		}
	}
	return nil
}

// migrateIdentities gives every user written before identities had provenance its list of
// identities: the ones its recorded proof covered become proven (by that method, at its time),
// the rest claimed. A user with no visitor was made by the customer's backend (createUser).
func (s *Store) migrateIdentities(ctx context.Context) error {
	cur, err := s.users.Find(ctx, bson.M{"identities": bson.M{"$exists": false}})
	if err != nil {
		return err
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var d userDoc
		if err := cur.Decode(&d); err != nil {
			return err
		}
		ids := legacyIdentities(&d)
		u := known.User{Identities: ids}
		u.Derive()
		_, err := s.users.UpdateOne(ctx, bson.M{"_id": d.ID, "identities": bson.M{"$exists": false}},
			bson.M{"$set": bson.M{"identities": identityDocs(ids), "verified": u.Verified}, "$inc": bson.M{"rev": 1}})
		if err != nil {
			return err
		}
	}
	return cur.Err()
}

// legacyIdentities are the identities of a user document without an identities field.
func legacyIdentities(d *userDoc) []known.Identity {
	source := known.SourceWidget
	if len(d.VisitorIDs) == 0 {
		source = known.SourceAPI
	}
	var method *known.VerificationMethod
	if d.Verified && d.VerificationMethod != nil {
		m := known.VerificationMethod(*d.VerificationMethod)
		method = &m
	}
	provenAt := d.CreatedAt
	if d.VerifiedAt != nil {
		provenAt = *d.VerifiedAt
	}
	email := d.EmailKey
	if email == nil && d.Email != nil {
		k := strings.ToLower(*d.Email)
		email = &k
	}
	var ids []known.Identity
	for _, x := range []struct {
		kind  known.IdentityKind
		value *string
	}{{known.IdentityExternalID, d.ExternalID}, {known.IdentityEmail, email}, {known.IdentityPhone, d.PhoneNumber}} {
		if x.value == nil {
			continue
		}
		id := known.Identity{Kind: x.kind, Value: *x.value, Source: source, At: d.CreatedAt}
		if method != nil && method.Covers(x.kind, d.ExternalID != nil) {
			id.Proven, id.Method, id.At = true, method, provenAt
		}
		ids = append(ids, id)
	}
	return ids
}

// migrateAnonymousRecords moves each anonymous visitor record stored under a random id to the
// id derived from its visitor (AnonymousUserID), where sessions now find it: copy, move its
// conversations and events, then delete the old one and its visitor key.
func (s *Store) migrateAnonymousRecords(ctx context.Context) error {
	cur, err := s.users.Find(ctx, bson.M{"anonymous": true})
	if err != nil {
		return err
	}
	var docs []userDoc
	if err := cur.All(ctx, &docs); err != nil {
		return err
	}
	for _, d := range docs {
		if len(d.VisitorIDs) != 1 {
			continue
		}
		p, v := known.ProjectID(d.ProjectID), known.VisitorID(d.VisitorIDs[0])
		to := AnonymousUserID(p, v)
		if string(to) == d.ID {
			continue
		}
		from := known.UserID(d.ID)
		copied := d
		copied.ID = string(to)
		if _, err := s.users.InsertOne(ctx, copied); err != nil && !mongo.IsDuplicateKeyError(err) {
			return err
		}
		if err := s.MoveUserData(ctx, from, to); err != nil {
			return err
		}
		if _, err := s.users.DeleteOne(ctx, bson.M{"_id": d.ID}); err != nil {
			return err
		}
		if err := s.ReleaseKeys(ctx, p, []IdentityKey{{KeyVisitor, string(v)}}, from); err != nil {
			return err
		}
	}
	return nil
}

// migrateMessageCounts counts the messages of each conversation written before conversations
// counted them, where the count is still missing. (A message that another instance adds while
// this one counts starts the count itself and is not added to it: the count then says too
// few, which only the first page's hasNextPage reads.)
func (s *Store) migrateMessageCounts(ctx context.Context) error {
	cur, err := s.conversations.Find(ctx, bson.M{"messages": bson.M{"$exists": false}})
	if err != nil {
		return err
	}
	var docs []conversationDoc
	if err := cur.All(ctx, &docs); err != nil {
		return err
	}
	for _, d := range docs {
		n, err := s.messages.CountDocuments(ctx, bson.M{"conversationId": d.ID})
		if err != nil {
			return err
		}
		if _, err := s.conversations.UpdateOne(ctx, bson.M{"_id": d.ID, "messages": bson.M{"$exists": false}},
			bson.M{"$set": bson.M{"messages": n}}); err != nil {
			return err
		}
	}
	return nil
}
