package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/sync/errgroup"
)

// identityDoc is one identity of a user, with its provenance (API.md §3).
type identityDoc struct {
	Kind   string    `bson:"kind"`
	Value  string    `bson:"value"`
	Proven bool      `bson:"proven"`
	Method *string   `bson:"method,omitempty"`
	Source string    `bson:"source"`
	At     time.Time `bson:"at"`
}

func identityDocs(ids []known.Identity) []identityDoc {
	out := make([]identityDoc, len(ids))
	for i, id := range ids {
		out[i] = identityDoc{Kind: string(id.Kind), Value: id.Value, Proven: id.Proven, Source: string(id.Source), At: id.At}
		if id.Method != nil {
			m := string(*id.Method)
			out[i].Method = &m
		}
	}
	return out
}

func identities(docs []identityDoc) []known.Identity {
	out := make([]known.Identity, len(docs))
	for i, d := range docs {
		out[i] = known.Identity{Kind: known.IdentityKind(d.Kind), Value: d.Value, Proven: d.Proven,
			Source: known.IdentitySource(d.Source), At: d.At}
		if d.Method != nil {
			m := known.VerificationMethod(*d.Method)
			out[i].Method = &m
		}
	}
	return out
}

// KeyOf returns the identity key of an identity of kind with normalized value.
func KeyOf(kind known.IdentityKind, value string) IdentityKey {
	switch kind {
	case known.IdentityExternalID:
		return IdentityKey{KeyExternalID, value}
	case known.IdentityEmail:
		return IdentityKey{KeyEmail, value}
	}
	return IdentityKey{KeyPhone, value}
}

// AnonymousUserID is the id of the anonymous record of visitor v of project p: derived, so that
// the record is found by _id from the session alone and concurrent first writes of one visitor
// make one record.
func AnonymousUserID(p known.ProjectID, v known.VisitorID) known.UserID {
	h := sha256.Sum256([]byte(string(p) + "|visitor|" + string(v)))
	return known.UserID(hex.EncodeToString(h[:12]))
}

// ReserveKeys claims every free key for owner in one unordered insert, and returns the keys
// that were not free (held by another owner, or by owner already), which it leaves alone.
func (s *Store) ReserveKeys(ctx context.Context, p known.ProjectID, keys []IdentityKey, owner known.UserID) ([]IdentityKey, error) {
	owners := make([]string, len(keys))
	for i := range keys {
		owners[i] = string(owner)
	}
	return s.reserve(ctx, p, keys, owners)
}

// reserve inserts keys[i] for owners[i], unordered, and returns the keys that were held.
func (s *Store) reserve(ctx context.Context, p known.ProjectID, keys []IdentityKey, owners []string) ([]IdentityKey, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	now := time.Now().UTC()
	docs := make([]any, len(keys))
	for i, k := range keys {
		docs[i] = identityKeyDoc{ID: keyID(p, k), ProjectID: string(p), OwnerID: owners[i], CreatedAt: now}
	}
	_, err := s.identityKeys.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err == nil {
		return nil, nil
	}
	var bw mongo.BulkWriteException
	if !errors.As(err, &bw) || bw.WriteConcernError != nil {
		return nil, fmt.Errorf("store: claiming identity keys: %w", err)
	}
	var held []IdentityKey
	for _, we := range bw.WriteErrors {
		if !mongo.IsDuplicateKeyError(we) || we.Index < 0 || we.Index >= len(keys) {
			return nil, fmt.Errorf("store: claiming identity keys: %w", err)
		}
		held = append(held, keys[we.Index])
	}
	return held, nil
}

// Keyed is the owner of an identity key, as KeyedIDs found or made it.
type Keyed struct {
	ID string
	// Made says that this call made the id (nobody held the key): no document has it yet, and
	// its upsert will insert it.
	Made bool
}

// KeyedIDs returns the id of the owner of each key (organizations and companies named by the
// customer's ids), reserving a new id for each key nobody holds yet: one read per key, sent
// together, then one insert for the new ones. The owner's document may not exist yet: it is
// upserted by that id.
func (s *Store) KeyedIDs(ctx context.Context, p known.ProjectID, keys []IdentityKey) (map[IdentityKey]Keyed, error) {
	holds, err := s.KeyHolds(ctx, p, keys)
	if err != nil {
		return nil, err
	}
	out := map[IdentityKey]Keyed{}
	var fresh []IdentityKey
	var ids []string
	for _, k := range keys {
		if h, ok := holds[k]; ok {
			out[k] = Keyed{ID: string(h.OwnerID)}
		} else if _, dup := out[k]; !dup && !slices.Contains(fresh, k) {
			fresh = append(fresh, k)
			ids = append(ids, NewID())
		}
	}
	held, err := s.reserve(ctx, p, fresh, ids)
	if err != nil {
		return nil, err
	}
	for i, k := range fresh {
		if !slices.Contains(held, k) {
			out[k] = Keyed{ID: ids[i], Made: true}
		}
	}
	if len(held) > 0 { // made by a concurrent call just now: use its id
		won, err := s.KeyHolds(ctx, p, held)
		if err != nil {
			return nil, err
		}
		for _, k := range held {
			h, ok := won[k]
			if !ok {
				return nil, fmt.Errorf("store: identity key %s vanished", k.Kind)
			}
			out[k] = Keyed{ID: string(h.OwnerID)}
		}
	}
	return out, nil
}

// KeyHold is who holds an identity key, and since when.
type KeyHold struct {
	OwnerID   known.UserID
	CreatedAt time.Time
}

// KeyHolds reads who holds each key (absent when nobody does): one find by _id per key, sent
// together.
func (s *Store) KeyHolds(ctx context.Context, p known.ProjectID, keys []IdentityKey) (map[IdentityKey]KeyHold, error) {
	out := make([]*KeyHold, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	for i, k := range keys {
		g.Go(func() error {
			var d identityKeyDoc
			err := s.identityKeys.FindOne(gctx, bson.M{"_id": keyID(p, k)}).Decode(&d)
			if isNoDocuments(err) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("store: finding identity key: %w", err)
			}
			out[i] = &KeyHold{OwnerID: known.UserID(d.OwnerID), CreatedAt: d.CreatedAt}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	m := map[IdentityKey]KeyHold{}
	for i, h := range out {
		if h != nil {
			m[keys[i]] = *h
		}
	}
	return m, nil
}

// MoveKey hands key k from owner from to owner to, only if from still holds it; it reports
// whether it did.
func (s *Store) MoveKey(ctx context.Context, p known.ProjectID, k IdentityKey, from, to known.UserID) (bool, error) {
	id := keyID(p, k)
	defer s.serial.lock(s.identityKeys, id)()
	filter, err := s.keyHeldBy(ctx, id, from)
	if filter == nil || err != nil {
		return false, err
	}
	err = s.identityKeys.FindOneAndUpdate(ctx, filter,
		bson.M{"$set": bson.M{"ownerId": string(to), "createdAt": time.Now().UTC()}}).Err()
	if isNoDocuments(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: moving identity key: %w", err)
	}
	return true, nil
}

// ReleaseKeys deletes each key that owner holds; keys held by others stay.
func (s *Store) ReleaseKeys(ctx context.Context, p known.ProjectID, keys []IdentityKey, owner known.UserID) error {
	for _, k := range keys {
		if err := s.releaseKey(ctx, keyID(p, k), owner); err != nil {
			return err
		}
	}
	return nil
}

// releaseKey deletes identity key id if owner holds it.
func (s *Store) releaseKey(ctx context.Context, id string, owner known.UserID) error {
	defer s.serial.lock(s.identityKeys, id)()
	filter, err := s.keyHeldBy(ctx, id, owner)
	if filter == nil || err != nil {
		return err
	}
	if _, err := s.identityKeys.DeleteOne(ctx, filter); err != nil {
		return fmt.Errorf("store: releasing identity key: %w", err)
	}
	return nil
}

// keyHeldBy returns the filter of a write to identity key id that must land only while owner
// holds it, or nil when, as far as this process can tell, owner does not. On MongoDB the
// filter says so and the write checks it atomically. FerretDB reads and decodes the whole
// collection for any filter but {_id}: there the key is read by _id in its turn (serial), which
// every move and release in this process takes (a key is otherwise only inserted, which fails
// while it exists), so the owner read is the one the write finds, and the filter is {_id}.
func (s *Store) keyHeldBy(ctx context.Context, id string, owner known.UserID) (bson.M, error) {
	if !s.serial.on {
		return bson.M{"_id": id, "ownerId": string(owner)}, nil
	}
	var d identityKeyDoc
	err := s.identityKeys.FindOne(ctx, bson.M{"_id": id}).Decode(&d)
	if isNoDocuments(err) || (err == nil && d.OwnerID != string(owner)) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: finding identity key: %w", err)
	}
	return bson.M{"_id": id}, nil
}

// OrphanAge is how old a key whose owner does not carry it must be before another call may
// take it: a key is claimed just before its owner is written, so a younger one may still be
// in flight, and an older one was left by a crash between the two writes.
const OrphanAge = orphanAge

// InsertUser stores a new user whole. Its identity keys must be held for it already. The
// user carries its events (user.created; user.identified when a widget's visitor came with an
// identity; user.verified when one is proven), published after the insert (outbox.go).
func (s *Store) InsertUser(ctx context.Context, u *known.User) error {
	d := newUserDoc(u)
	var visitor *string
	if len(u.VisitorIDs) > 0 && len(u.Identities) > 0 {
		v := string(u.VisitorIDs[0])
		visitor = &v
	}
	now := u.CreatedAt
	if now.IsZero() {
		now = time.Now()
	}
	evs := userEvents(nil, u, visitor, nil, now)
	d.Pending, d.PendingCount = pendingMap(evs), len(evs)
	// The user's place in the project's list is taken first, so that the document names it
	// (userDoc.Listed); the insert and the naming of the place in the list then go together,
	// in one round trip. Readers show a user only at the place its document names, so a list
	// entry whose insert has not landed yet, or failed (a concurrent first write of one
	// visitor, whose winner names another place), shows nothing. Should the naming fail, the
	// user exists but is missing from the project's unfiltered list (ProjectUsers): the error
	// wraps ErrUnlisted.
	l := s.projectList(u.ProjectID, listUsers)
	pos, err := l.reserve(ctx)
	if err != nil {
		return err
	}
	d.Listed = pos
	var inserted, named error
	var wg sync.WaitGroup
	wg.Go(func() { _, inserted = s.users.InsertOne(ctx, d) })
	wg.Go(func() { named = l.set(ctx, pos, d.ID) })
	wg.Wait()
	if inserted != nil {
		if mongo.IsDuplicateKeyError(inserted) {
			return known.Errorf(known.AlreadyExists, "user %s exists", u.ID)
		}
		return fmt.Errorf("store: creating user: %w", inserted)
	}
	s.publish(ctx, s.users, d.ID, evs)
	if named != nil {
		// The repairer names this same place: the document names it, and readers show the
		// user nowhere else.
		s.unlisted(ctx, l, s.users, pos, d.ID)
		return fmt.Errorf("%w: user %s: %w", ErrUnlisted, d.ID, named)
	}
	return nil
}

// UsersByIDsEach reads users by id, one find by _id each, sent together; missing ones (and
// another project's) are nil.
func (s *Store) UsersByIDsEach(ctx context.Context, p known.ProjectID, ids []known.UserID) ([]*known.User, error) {
	out := make([]*known.User, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	for i, id := range ids {
		g.Go(func() error {
			u, err := s.User(gctx, p, id)
			if known.ErrorCode(err) == known.NotFound {
				return nil
			}
			out[i] = u
			return err
		})
	}
	return out, g.Wait()
}

// MoveUserData moves the conversations and events of user from to user into. Each
// conversation moves in a write of its own, which records its conversation.moved event and
// names its place in into's list of conversations (moveConversation). The events move in one
// write, after from's list of them is copied onto into's (copyEventList), so that into's list
// shows them once they are into's; from's list is deleted after. from's conversations and
// events are found by the query by user, so that none is left behind that a list misses.
func (s *Store) MoveUserData(ctx context.Context, from, into known.UserID) error {
	var byUser map[known.UserID][]known.ConversationID
	var owner struct {
		ProjectID string `bson:"projectId"`
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { byUser, err = s.ConversationIDsOfUsers(gctx, []known.UserID{from}); return err })
	g.Go(func() error {
		// The project names from's list of events (a gone user has none to copy).
		err := s.users.FindOne(gctx, bson.M{"_id": string(from)}, options.FindOne().SetProjection(bson.M{"projectId": 1})).Decode(&owner)
		if err != nil && !isNoDocuments(err) {
			return fmt.Errorf("store: moving events: %w", err)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	// Oldest first, so that into's list of conversations (which a move appends to) has them
	// in the order they started, the newest on top.
	for _, cid := range slices.Backward(byUser[from]) {
		if err := s.moveConversation(ctx, cid, from, into); err != nil {
			return err
		}
	}
	done := func(context.Context) error { return nil }
	if owner.ProjectID != "" {
		var err error
		if done, err = s.copyEventList(ctx, known.ProjectID(owner.ProjectID), from, into); err != nil {
			return err
		}
	}
	if _, err := s.events.UpdateMany(ctx, bson.M{"userId": string(from)}, bson.M{"$set": bson.M{"userId": string(into)}}); err != nil {
		return fmt.Errorf("store: moving events: %w", err)
	}
	if owner.ProjectID == "" {
		return done(ctx)
	}
	// An event tracked for from while this ran was moved too, but is listed only in from's
	// list: copy again (what the first copy placed keeps its place) before from's list goes.
	done, err := s.copyEventList(ctx, known.ProjectID(owner.ProjectID), from, into)
	if err != nil {
		return err
	}
	if err := done(ctx); err != nil {
		return err
	}
	// Every conversation of from is into's now, and names its place there: from's list of
	// them names none that it shows, and would stay behind (a visitor's record made again
	// under the same id would read through it).
	return s.userConversationList(known.ProjectID(owner.ProjectID), from).delete(ctx)
}

// DeleteMergedUser deletes user id after a merge moved everything of it elsewhere; events it
// still holds are published first.
func (s *Store) DeleteMergedUser(ctx context.Context, id known.UserID) error {
	if err := s.flushBeforeDelete(ctx, s.users, string(id)); err != nil {
		return err
	}
	defer s.serial.lock(s.users, string(id))()
	defer s.serial.userRevs.forget(string(id))
	if _, err := s.users.DeleteOne(ctx, bson.M{"_id": string(id)}); err != nil {
		return fmt.Errorf("store: deleting merged user: %w", err)
	}
	return nil
}
