package store

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Retention. Three collections only grow: the published change events, the webhook
// deliveries and the audit log. Retain deletes from them what is older than an age; the store
// has no TTL index that both MongoDB and FerretDB honour, so a background pass does it.
//
// What may go, and why it is safe:
//
//   - A published event is read by two kinds of readers. Each instance's event reader for
//     GraphQL subscriptions starts at the log's end and keeps its position in memory only, so
//     it never goes back to an event older than the process. The webhook worker resumes from
//     the position the instances saved (WebhookCursor), which is one position for all webhooks:
//     dispatch makes the deliveries of an event for every webhook of its project, enabled or
//     not, and a delivery carries the event's body. So an event behind that position is needed
//     by no one, and Retain deletes only events that are both behind it and older than the
//     age. A webhook that stays disabled or failing longer than the age loses nothing by it:
//     its deliveries were made when the event was dispatched, and they stay pending (see
//     below). Without a saved position no worker has ever run, and one that starts later
//     starts at the log's end (WebhookCursor), so the age alone decides.
//   - A delivery is deleted once it is finished (delivered, or given up after its last
//     attempt) and both it and its finish are older than the age; a pending delivery never
//     is, however old: a disabled webhook's deliveries wait until it is enabled again (or
//     deleted). Its webhook's pending set lists no finished delivery, except one whose process
//     stopped between recording the last attempt and unlisting it; the set's readers skip and
//     unlist an id whose delivery is missing (pendingSet.check), as they do a finished one.
//   - Audit entries are kept forever unless an age is given.
//
// Each pass finds what to delete with a filter that the embedded store answers by reading the
// whole collection: it is rare background work. It then deletes each document by _id (the
// lookup FerretDB serves from an index) with the condition again, so that no one command holds
// the database for long and requests go on meanwhile.

// Retention is how long each collection keeps what it may lose; zero (or less) keeps it
// forever.
type Retention struct {
	Events     time.Duration
	Deliveries time.Duration
	Audit      time.Duration
}

// Retained is what one Retain pass deleted.
type Retained struct {
	Events     int64
	Deliveries int64
	Audit      int64
}

// retainBatch is how many ids one find of a pass returns: a pass deletes them and finds
// again, so that it holds no cursor open while it deletes.
const retainBatch = 5000

// Retain deletes what r lets go as of now: events, finished deliveries and audit entries
// older than their ages (see the comment above). It stops at ctx's end; what it did not reach
// goes at the next pass.
func (s *Store) Retain(ctx context.Context, now time.Time, r Retention) (Retained, error) {
	var out Retained
	var err error
	if r.Events > 0 {
		if out.Events, err = s.retainEvents(ctx, now.Add(-r.Events)); err != nil {
			return out, err
		}
	}
	if r.Deliveries > 0 {
		if out.Deliveries, err = s.retainDeliveries(ctx, now.Add(-r.Deliveries)); err != nil {
			return out, err
		}
	}
	if r.Audit > 0 {
		cutoff := now.Add(-r.Audit)
		if out.Audit, err = s.deleteEach(ctx, s.auditLog(), bson.M{"at": bson.M{"$lt": cutoff}}, bson.M{"at": bson.M{"$lt": cutoff}}, nil); err != nil {
			return out, fmt.Errorf("store: deleting old audit entries: %w", err)
		}
	}
	return out, nil
}

// retainEvents deletes the events published before cutoff that webhook dispatch has passed.
func (s *Store) retainEvents(ctx context.Context, cutoff time.Time) (int64, error) {
	var c struct {
		Next int64 `bson:"next"`
	}
	find := bson.M{"createdAt": bson.M{"$lt": cutoff}}
	switch err := s.meta().FindOne(ctx, bson.M{"_id": webhookCursorID}).Decode(&c); {
	case err == nil:
		// Keys sort as their numbers do (seqKey): the events below the position.
		find["_id"] = bson.M{"$lt": seqKey(c.Next)}
	case !isNoDocuments(err):
		return 0, fmt.Errorf("store: reading the webhook dispatch position: %w", err)
	}
	n, err := s.deleteEach(ctx, s.changes, find, bson.M{"createdAt": bson.M{"$lt": cutoff}}, nil)
	if err != nil {
		return n, fmt.Errorf("store: deleting old events: %w", err)
	}
	return n, nil
}

// retainDeliveries deletes the deliveries finished before cutoff. A delivery finished by an
// earlier version has no finishedAt; its creation, which is before its finish, stands in.
func (s *Store) retainDeliveries(ctx context.Context, cutoff time.Time) (int64, error) {
	cond := bson.M{
		"status":    bson.M{"$in": bson.A{string(known.DeliveryDelivered), string(known.DeliveryFailed)}},
		"createdAt": bson.M{"$lt": cutoff},
		"$or":       bson.A{bson.M{"finishedAt": bson.M{"$lt": cutoff}}, bson.M{"finishedAt": bson.M{"$exists": false}}},
	}
	// A finished delivery does not change; the check in the turn is for safety's sake, should
	// one ever be sent again.
	still := func(raw bson.Raw) bool {
		var d struct {
			Status     string     `bson:"status"`
			CreatedAt  time.Time  `bson:"createdAt"`
			FinishedAt *time.Time `bson:"finishedAt"`
		}
		if bson.Unmarshal(raw, &d) != nil {
			return false
		}
		return (d.Status == string(known.DeliveryDelivered) || d.Status == string(known.DeliveryFailed)) &&
			d.CreatedAt.Before(cutoff) && (d.FinishedAt == nil || d.FinishedAt.Before(cutoff))
	}
	n, err := s.deleteEach(ctx, s.deliveries, cond, cond, still)
	if err != nil {
		return n, fmt.Errorf("store: deleting old webhook deliveries: %w", err)
	}
	return n, nil
}

// deleteEach deletes the documents of coll that find matches, each by its _id with the
// condition checked again, in batches of retainBatch, and returns how many it deleted. The
// condition is said twice, as updateIf's is: as the filter cond (it must not name _id), which
// MongoDB checks in the delete itself; and as still, which the embedded store checks on the
// document read by _id in its turn, since FerretDB serves a delete whose filter is more than
// {_id} by reading the whole collection, once per deleted document. still is nil for documents
// that never change once written (events, audit entries): the find's match stands.
func (s *Store) deleteEach(ctx context.Context, coll *mongo.Collection, find, cond bson.M, still func(bson.Raw) bool) (int64, error) {
	var n int64
	for {
		cur, err := coll.Find(ctx, find, options.Find().SetProjection(bson.M{"_id": 1}).SetLimit(retainBatch))
		if err != nil {
			return n, err
		}
		// Every _id Known writes is a string; one that is not (written by hand) is deleted
		// as it is rather than failing the pass.
		var ids []struct {
			ID any `bson:"_id"`
		}
		if err := cur.All(ctx, &ids); err != nil {
			return n, err
		}
		var deleted int64
		for _, d := range ids {
			r, err := s.deleteIf(ctx, coll, d.ID, cond, still)
			if err != nil {
				return n, err
			}
			deleted += r
		}
		n += deleted
		// A batch that deleted nothing would be found again: the rest waits for the next pass.
		if len(ids) < retainBatch || deleted == 0 {
			return n, nil
		}
	}
}

// deleteIf deletes document id of coll if it still meets the condition (deleteEach), in its
// turn (serial.go), like every other write of one document, and returns how many it deleted.
func (s *Store) deleteIf(ctx context.Context, coll *mongo.Collection, id any, cond bson.M, still func(bson.Raw) bool) (int64, error) {
	defer s.serial.lock(coll, fmt.Sprint(id))()
	filter := bson.M{"_id": id}
	if !s.serial.on {
		maps.Copy(filter, cond)
	} else if still != nil {
		raw, err := coll.FindOne(ctx, filter).Raw()
		if isNoDocuments(err) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		if !still(raw) {
			return 0, nil
		}
	}
	r, err := coll.DeleteOne(ctx, filter)
	if err != nil {
		return 0, err
	}
	return r.DeletedCount, nil
}
