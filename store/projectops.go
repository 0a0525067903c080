package store

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Projects returns a page of every project, in descending order of id (project ids are
// random, so this is a stable order, not one of age). Operator only; it scans, and is rare.
func (s *Store) Projects(ctx context.Context, page known.Page) ([]*known.Project, bool, error) {
	var docs []projectDoc
	more, err := s.page(ctx, s.projects, bson.M{}, page, &docs)
	return mapDocs(docs, (*projectDoc).project), more, err
}

// DeleteProject erases project p and everything it holds: its secret keys first (so that
// nothing authenticates as it while the rest goes), widget sessions, users, identity keys,
// organizations, companies, conversations, messages, events, external profiles,
// identification tokens, used JWT ids, its audit log, its lists (lists.go) and its webhooks
// with their deliveries and pending sets (webhooks.go); the project
// document goes last, so that an interrupted delete can be repeated. NotFound when there is
// no such project. Each step is a DeleteMany on projectId (or on a prefix of _id), which
// scans on the embedded store: deleting a project is rare.
func (s *Store) DeleteProject(ctx context.Context, p known.ProjectID) error {
	if _, err := s.Project(ctx, p); err != nil {
		return err
	}
	byProject := bson.M{"projectId": string(p)}
	for _, coll := range []*mongo.Collection{s.projectKeys, s.sessions, s.users, s.identityKeys, s.organizations,
		s.companies, s.conversations, s.messages, s.events, s.profiles, s.idTokens, s.auditLog(), s.deliveries} {
		if _, err := coll.DeleteMany(ctx, byProject); err != nil {
			return fmt.Errorf("store: deleting the project's %s: %w", coll.Name(), err)
		}
	}
	// A used jti's id is "<project>|<jti>" (UseJWTID).
	jtis := bson.M{"_id": bson.M{"$regex": "^" + regexp.QuoteMeta(string(p)+"|")}}
	if _, err := s.jwtIDs.DeleteMany(ctx, jtis); err != nil {
		return fmt.Errorf("store: deleting the project's jwt ids: %w", err)
	}
	if err := s.deleteLists(ctx, projectListPrefix(p)); err != nil {
		return err
	}
	if err := s.deleteProjectWebhooks(ctx, p); err != nil {
		return err
	}
	if _, err := s.projects.DeleteOne(ctx, bson.M{"_id": string(p)}); err != nil {
		return fmt.Errorf("store: deleting project: %w", err)
	}
	return nil
}

// AddProjectKey makes the secret key with this hash another key of project p.
func (s *Store) AddProjectKey(ctx context.Context, p known.ProjectID, hash string, now time.Time) error {
	if _, err := s.projectKeys.InsertOne(ctx, keyDoc{ID: hash, ProjectID: string(p), CreatedAt: now}); err != nil {
		return fmt.Errorf("store: adding project key: %w", err)
	}
	return nil
}

// ExpireProjectKeys makes every secret key of project p but the one with hash keep stops
// authenticating at until: at once (they are deleted) when until is not after now. A key
// already set to expire earlier keeps its earlier time. It scans project p's keys (a
// project has one or two): rotations are rare.
func (s *Store) ExpireProjectKeys(ctx context.Context, p known.ProjectID, keep string, now, until time.Time) error {
	others := bson.M{"projectId": string(p), "_id": bson.M{"$ne": keep}}
	if !until.After(now) {
		if _, err := s.projectKeys.DeleteMany(ctx, others); err != nil {
			return fmt.Errorf("store: deleting replaced project keys: %w", err)
		}
		return nil
	}
	others["$or"] = bson.A{bson.M{"expiresAt": nil}, bson.M{"expiresAt": bson.M{"$gt": until}}}
	if _, err := s.projectKeys.UpdateMany(ctx, others, bson.M{"$set": bson.M{"expiresAt": until}}); err != nil {
		return fmt.Errorf("store: expiring replaced project keys: %w", err)
	}
	return nil
}
