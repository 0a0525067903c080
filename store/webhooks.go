package store

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Webhooks and their deliveries (API.md §9). A delivery's _id is its webhook's id and the
// event's sequence number, so that making it again (another instance dispatching the same
// event, or a restart before the dispatch position was saved) is a duplicate insert that
// changes nothing, and a webhook's deliveries sort by event.

const webhookCursorID = "webhookCursor"

type webhookDoc struct {
	ID           string     `bson:"_id"`
	ProjectID    string     `bson:"projectId"`
	URL          string     `bson:"url"`
	Events       []string   `bson:"events"`
	Secret       string     `bson:"secret"` // sealed
	Enabled      bool       `bson:"enabled"`
	LastError    *string    `bson:"lastError,omitempty"`
	FailingSince *time.Time `bson:"failingSince,omitempty"`
	DisabledAt   *time.Time `bson:"disabledAt,omitempty"`
	FromSeq      int64      `bson:"fromSeq"`
	CreatedAt    time.Time  `bson:"createdAt"`
	UpdatedAt    time.Time  `bson:"updatedAt"`
}

func (d *webhookDoc) webhook() *known.Webhook {
	return &known.Webhook{ID: known.WebhookID(d.ID), ProjectID: known.ProjectID(d.ProjectID), URL: d.URL,
		Events: typed[known.EventType](d.Events), Enabled: d.Enabled, LastError: d.LastError,
		FailingSince: d.FailingSince, DisabledAt: d.DisabledAt, FromSeq: d.FromSeq, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
}

type deliveryDoc struct {
	ID               string     `bson:"_id"`
	WebhookID        string     `bson:"webhookId"`
	ProjectID        string     `bson:"projectId"`
	EventID          string     `bson:"eventId"`
	EventSeq         int64      `bson:"eventSeq"`
	EventType        string     `bson:"eventType"`
	OrderKey         string     `bson:"orderKey"`
	UserID           *string    `bson:"userId,omitempty"` // erased with the user
	Body             string     `bson:"body"`
	Status           string     `bson:"status"`
	Attempts         int        `bson:"attempts"`
	LastResponseCode *int       `bson:"lastResponseCode,omitempty"`
	LastError        *string    `bson:"lastError,omitempty"`
	NextAttemptAt    *time.Time `bson:"nextAttemptAt,omitempty"`
	DeliveredAt      *time.Time `bson:"deliveredAt,omitempty"`
	// FinishedAt is when it was delivered or given up: retention counts from it (Retain).
	FinishedAt *time.Time `bson:"finishedAt,omitempty"`
	LeaseUntil *time.Time `bson:"leaseUntil,omitempty"`
	LeaseToken string     `bson:"leaseToken,omitempty"`
	// PendingIn is the bucket of its webhook's pending set that lists it (nil for a delivery
	// of an earlier version that the start-up migration has not listed yet).
	PendingIn *int64    `bson:"pendingIn,omitempty"`
	CreatedAt time.Time `bson:"createdAt"`
}

func (d *deliveryDoc) delivery() *known.WebhookDelivery {
	return &known.WebhookDelivery{ID: d.ID, WebhookID: known.WebhookID(d.WebhookID), ProjectID: known.ProjectID(d.ProjectID),
		EventID: known.InboxEventID(d.EventID), EventSeq: d.EventSeq, EventType: known.EventType(d.EventType),
		OrderKey: d.OrderKey, Body: d.Body, Status: known.DeliveryStatus(d.Status), Attempts: d.Attempts,
		LastResponseCode: d.LastResponseCode, LastError: d.LastError, NextAttemptAt: d.NextAttemptAt,
		DeliveredAt: d.DeliveredAt, CreatedAt: d.CreatedAt}
}

// DeliveryID is the id of the delivery of event seq to webhook w.
func DeliveryID(w known.WebhookID, seq int64) string { return fmt.Sprintf("%s|%019d", w, seq) }

// InsertWebhook stores a new webhook with its sealed signing secret; it gets the events
// published from now on (w.FromSeq is set).
func (s *Store) InsertWebhook(ctx context.Context, w *known.Webhook, sealedSecret string) error {
	last, err := s.LastEventSeq(ctx)
	if err != nil {
		return err
	}
	w.FromSeq = last + 1
	_, err = s.webhooks.InsertOne(ctx, webhookDoc{ID: string(w.ID), ProjectID: string(w.ProjectID), URL: w.URL,
		Events: nonNil(strs(w.Events)), Secret: sealedSecret, Enabled: w.Enabled, FromSeq: w.FromSeq, CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt})
	if err != nil {
		return fmt.Errorf("store: creating webhook: %w", err)
	}
	return nil
}

// Webhooks returns project p's webhooks, oldest first.
func (s *Store) Webhooks(ctx context.Context, p known.ProjectID) ([]*known.Webhook, error) {
	cur, err := s.webhooks.Find(ctx, bson.M{"projectId": string(p)}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("store: listing webhooks: %w", err)
	}
	var docs []webhookDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("store: listing webhooks: %w", err)
	}
	return mapDocs(docs, (*webhookDoc).webhook), nil
}

// Webhook returns project p's webhook id and its sealed signing secret, or NotFound (also for
// another project's; p "" reads any project's).
func (s *Store) Webhook(ctx context.Context, p known.ProjectID, id known.WebhookID) (*known.Webhook, string, error) {
	var d webhookDoc
	if err := s.webhooks.FindOne(ctx, bson.M{"_id": string(id)}).Decode(&d); err != nil {
		if isNoDocuments(err) {
			return nil, "", notFound("webhook")
		}
		return nil, "", fmt.Errorf("store: finding webhook: %w", err)
	}
	if p != "" && d.ProjectID != string(p) {
		return nil, "", notFound("webhook")
	}
	return d.webhook(), d.Secret, nil
}

// WebhookUpdate changes a webhook; nil fields stay. Enabling a webhook clears its failure.
type WebhookUpdate struct {
	URL       *string
	Events    *[]known.EventType
	Enabled   *bool
	UpdatedAt time.Time
}

// UpdateWebhook applies up to project p's webhook id and returns it, or NotFound.
func (s *Store) UpdateWebhook(ctx context.Context, p known.ProjectID, id known.WebhookID, up WebhookUpdate) (*known.Webhook, error) {
	set := bson.M{"updatedAt": up.UpdatedAt}
	doc := bson.M{"$set": set}
	if up.URL != nil {
		set["url"] = *up.URL
	}
	if up.Events != nil {
		set["events"] = nonNil(strs(*up.Events))
	}
	if up.Enabled != nil {
		set["enabled"] = *up.Enabled
		if *up.Enabled {
			doc["$unset"] = bson.M{"failingSince": "", "disabledAt": "", "lastError": ""}
		}
	}
	defer s.serial.lock(s.webhooks, string(id))()
	var d webhookDoc
	err := s.webhooks.FindOneAndUpdate(ctx, bson.M{"_id": string(id), "projectId": string(p)}, doc,
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
	if isNoDocuments(err) {
		return nil, notFound("webhook")
	}
	if err != nil {
		return nil, fmt.Errorf("store: updating webhook: %w", err)
	}
	return d.webhook(), nil
}

// DeleteWebhook deletes project p's webhook id and its deliveries, or returns NotFound.
func (s *Store) DeleteWebhook(ctx context.Context, p known.ProjectID, id known.WebhookID) error {
	r, err := s.webhooks.DeleteOne(ctx, bson.M{"_id": string(id), "projectId": string(p)})
	if err != nil {
		return fmt.Errorf("store: deleting webhook: %w", err)
	}
	if r.DeletedCount == 0 {
		return notFound("webhook")
	}
	return s.deleteWebhookData(ctx, id)
}

// deleteWebhookData deletes webhook id's deliveries, then its pending set. Both scan (a filter
// on webhookId, a prefix of _id): deleting a webhook is rare.
func (s *Store) deleteWebhookData(ctx context.Context, id known.WebhookID) error {
	if _, err := s.deliveries.DeleteMany(ctx, bson.M{"webhookId": string(id)}); err != nil {
		return fmt.Errorf("store: deleting webhook deliveries: %w", err)
	}
	if _, err := s.pending().DeleteMany(ctx, bson.M{"_id": bson.M{"$regex": "^" + regexp.QuoteMeta(string(id)+"|")}}); err != nil {
		return fmt.Errorf("store: deleting webhook %s's pending set: %w", id, err)
	}
	return nil
}

// deleteProjectWebhooks deletes project p's webhooks, their deliveries and their pending sets
// (DeleteProject): a deleted project's events must not go out any more. The webhooks go last,
// so that an interrupted delete can be repeated.
func (s *Store) deleteProjectWebhooks(ctx context.Context, p known.ProjectID) error {
	hooks, err := s.Webhooks(ctx, p)
	if err != nil {
		return err
	}
	for _, h := range hooks {
		if err := s.deleteWebhookData(ctx, h.ID); err != nil {
			return err
		}
	}
	if _, err := s.webhooks.DeleteMany(ctx, bson.M{"projectId": string(p)}); err != nil {
		return fmt.Errorf("store: deleting the project's webhooks: %w", err)
	}
	return nil
}

// WebhookFailed records a failed attempt on webhook id: its last error, since when it fails,
// and, once it has failed for disableAfter, that it is disabled. It returns the webhook.
func (s *Store) WebhookFailed(ctx context.Context, id known.WebhookID, msg string, now time.Time, disableAfter time.Duration) (*known.Webhook, error) {
	defer s.serial.lock(s.webhooks, string(id))()
	var d webhookDoc
	err := s.webhooks.FindOneAndUpdate(ctx, bson.M{"_id": string(id)},
		bson.M{"$set": bson.M{"lastError": msg}, "$min": bson.M{"failingSince": now}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
	if isNoDocuments(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: recording a webhook failure: %w", err)
	}
	if d.Enabled && d.FailingSince != nil && now.Sub(*d.FailingSince) >= disableAfter {
		why := fmt.Sprintf("disabled after failing since %s: %s", d.FailingSince.UTC().Format(time.RFC3339), msg)
		err = s.webhooks.FindOneAndUpdate(ctx, bson.M{"_id": string(id), "enabled": true},
			bson.M{"$set": bson.M{"enabled": false, "disabledAt": now, "lastError": why}},
			options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
		if err != nil && !isNoDocuments(err) {
			return nil, fmt.Errorf("store: disabling a webhook: %w", err)
		}
	}
	return d.webhook(), nil
}

// WebhookSucceeded records a delivery on webhook id: it is healthy again.
func (s *Store) WebhookSucceeded(ctx context.Context, id known.WebhookID) error {
	defer s.serial.lock(s.webhooks, string(id))()
	_, err := s.webhooks.UpdateOne(ctx, bson.M{"_id": string(id), "failingSince": bson.M{"$exists": true}},
		bson.M{"$unset": bson.M{"failingSince": "", "lastError": ""}})
	if err != nil {
		return fmt.Errorf("store: recording a webhook delivery: %w", err)
	}
	return nil
}

// AddDelivery stores a new delivery; one that exists already (made by another instance, or
// before a restart) is left as it is. Its id goes into its webhook's pending set first, so that
// a delivery is never pending without being listed there: a process that stops between the two
// writes leaves an id whose delivery is missing, which PendingDeliveries skips and removes (as
// it removes the second listing of a delivery made again).
func (s *Store) AddDelivery(ctx context.Context, d *known.WebhookDelivery) error {
	in, err := s.pendingSet(d.WebhookID).add(ctx, []pendingEntry{{id: d.ID, at: d.CreatedAt}})
	if err != nil {
		return err
	}
	b := in[d.ID]
	_, err = s.deliveries.InsertOne(ctx, deliveryDoc{ID: d.ID, WebhookID: string(d.WebhookID), ProjectID: string(d.ProjectID),
		EventID: string(d.EventID), EventSeq: d.EventSeq, EventType: string(d.EventType), OrderKey: d.OrderKey,
		UserID: (*string)(d.UserID), Body: d.Body,
		Status: string(known.DeliveryPending), NextAttemptAt: d.NextAttemptAt, PendingIn: &b, CreatedAt: d.CreatedAt})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("store: adding a webhook delivery: %w", err)
	}
	return nil
}

// EnabledWebhooks returns every project's enabled webhooks, with their sealed signing
// secrets (by webhook id).
func (s *Store) EnabledWebhooks(ctx context.Context) ([]*known.Webhook, map[known.WebhookID]string, error) {
	cur, err := s.webhooks.Find(ctx, bson.M{"enabled": true})
	if err != nil {
		return nil, nil, fmt.Errorf("store: listing webhooks: %w", err)
	}
	var docs []webhookDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, nil, fmt.Errorf("store: listing webhooks: %w", err)
	}
	secrets := map[known.WebhookID]string{}
	for _, d := range docs {
		secrets[known.WebhookID(d.ID)] = d.Secret
	}
	return mapDocs(docs, (*webhookDoc).webhook), secrets, nil
}

// PendingDeliveries returns up to limit of webhook w's pending deliveries, oldest event first
// (by _id), from its pending set: the set's head, the buckets up to the limit, and the
// deliveries they list, each by _id, so that the cost follows the pending deliveries, not every
// delivery ever made. On the way it removes what the set lists in vain (a delivery finished or
// listed twice; one missing for pendingGrace after it was listed, at now) and closes the
// buckets that emptied.
func (s *Store) PendingDeliveries(ctx context.Context, w known.WebhookID, limit int, now time.Time) ([]*known.WebhookDelivery, error) {
	docs, err := s.pendingSet(w).read(ctx, limit, now)
	if err != nil {
		return nil, fmt.Errorf("store: listing pending deliveries: %w", err)
	}
	slices.SortFunc(docs, func(a, b deliveryDoc) int { return strings.Compare(a.ID, b.ID) })
	if len(docs) > limit {
		docs = docs[:limit]
	}
	return mapDocs(docs, (*deliveryDoc).delivery), nil
}

// ClaimDelivery takes the lease of pending delivery id until until, for token, if no one
// holds it (none has, or its lease ended by now), so that one instance at a time attempts a
// delivery. It reports whether it took it. One conditional write by _id (updateDeliveryIf).
func (s *Store) ClaimDelivery(ctx context.Context, id string, now, until time.Time, token string) (bool, error) {
	d, err := s.updateDeliveryIf(ctx, id,
		bson.M{"status": string(known.DeliveryPending), "$or": bson.A{bson.M{"leaseUntil": nil}, bson.M{"leaseUntil": bson.M{"$lte": now}}}},
		func(d *deliveryDoc) bool {
			return d.Status == string(known.DeliveryPending) && (d.LeaseUntil == nil || !d.LeaseUntil.After(now))
		},
		bson.M{"$set": bson.M{"leaseUntil": until, "leaseToken": token}})
	if err != nil {
		return false, fmt.Errorf("store: claiming a delivery: %w", err)
	}
	return d != nil, nil
}

// updateDeliveryIf applies update to delivery id if it meets a condition, said as the filter
// cond and as ok (updateIf), and returns the delivery as it was before (nil, changing nothing,
// when it is missing or does not meet it).
func (s *Store) updateDeliveryIf(ctx context.Context, id string, cond bson.M, ok func(*deliveryDoc) bool, update bson.M) (*deliveryDoc, error) {
	return updateIf(ctx, s, s.deliveries, id, cond, ok, update)
}

// Attempt is the outcome of one delivery attempt.
type Attempt struct {
	Delivered    bool
	Failed       bool // given up: no more attempts
	ResponseCode *int
	Error        *string
	At           time.Time
	Next         *time.Time // the next attempt, when neither delivered nor failed
}

// RecordAttempt records an attempt on delivery id under the lease token, and releases the
// lease; false, changing nothing, when the lease was lost meanwhile (another instance's
// attempt counts instead). A delivery delivered or given up leaves its webhook's pending set.
func (s *Store) RecordAttempt(ctx context.Context, id, token string, a Attempt) (bool, error) {
	set := bson.M{"status": string(known.DeliveryPending)}
	unset := bson.M{"leaseUntil": "", "leaseToken": ""}
	switch {
	case a.Delivered:
		set["status"], set["deliveredAt"], set["finishedAt"] = string(known.DeliveryDelivered), a.At, a.At
		unset["nextAttemptAt"] = ""
	case a.Failed:
		set["status"], set["finishedAt"] = string(known.DeliveryFailed), a.At
		unset["nextAttemptAt"] = ""
	default:
		set["nextAttemptAt"] = *a.Next
	}
	if a.ResponseCode != nil {
		set["lastResponseCode"] = *a.ResponseCode
	} else {
		unset["lastResponseCode"] = ""
	}
	if a.Error != nil {
		set["lastError"] = *a.Error
	} else {
		unset["lastError"] = ""
	}
	before, err := s.updateDeliveryIf(ctx, id, bson.M{"leaseToken": token},
		func(d *deliveryDoc) bool { return token != "" && d.LeaseToken == token },
		bson.M{"$set": set, "$unset": unset, "$inc": bson.M{"attempts": 1}})
	if err != nil {
		return false, fmt.Errorf("store: recording a delivery attempt: %w", err)
	}
	if before == nil {
		return false, nil
	}
	// Only once the attempt that finishes it is recorded: a process that stops before this
	// leaves the id listed, and PendingDeliveries removes it when it finds it finished.
	if (a.Delivered || a.Failed) && before.PendingIn != nil {
		if err := s.pendingSet(known.WebhookID(before.WebhookID)).remove(ctx, *before.PendingIn, []string{id}); err != nil {
			return true, err
		}
	}
	return true, nil
}

// Deliveries returns a page of webhook w's deliveries, newest event first.
func (s *Store) Deliveries(ctx context.Context, w known.WebhookID, page known.Page) ([]*known.WebhookDelivery, bool, error) {
	var docs []deliveryDoc
	more, err := s.page(ctx, s.deliveries, bson.M{"webhookId": string(w)}, page, &docs)
	return mapDocs(docs, (*deliveryDoc).delivery), more, err
}

// WebhookCursor returns the first event number webhook dispatch has not handled, starting it
// at the log's end the first time.
func (s *Store) WebhookCursor(ctx context.Context) (int64, error) {
	last, err := s.LastEventSeq(ctx)
	if err != nil {
		return 0, err
	}
	var d struct {
		Next int64 `bson:"next"`
	}
	err = s.meta().FindOneAndUpdate(ctx, bson.M{"_id": webhookCursorID}, bson.M{"$setOnInsert": bson.M{"next": last + 1}},
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)).Decode(&d)
	if err != nil {
		return 0, fmt.Errorf("store: reading the webhook dispatch position: %w", err)
	}
	return d.Next, nil
}

// SetWebhookCursor moves webhook dispatch's position forward to next (never back).
func (s *Store) SetWebhookCursor(ctx context.Context, next int64) error {
	defer s.serial.lock(s.meta(), webhookCursorID)()
	if _, err := s.meta().UpdateOne(ctx, bson.M{"_id": webhookCursorID}, bson.M{"$max": bson.M{"next": next}}); err != nil {
		return fmt.Errorf("store: saving the webhook dispatch position: %w", err)
	}
	return nil
}

// Pending sets. Each webhook keeps the ids of its pending deliveries in documents addressed by
// _id, so that the worker finds them without a query on webhook_deliveries, which the embedded
// store answers by reading every delivery ever made. A set is kept in buckets, as lists.go's
// lists are: a head {_id: "<webhook>|h", n: <positions given out>, lo: <every bucket below is
// closed>} and buckets {_id: "<webhook>|<b>", e: {"<delivery id>": <listed at>}, closed, next},
// bucket b holding the ids listed at positions b*pendingBucketSize+1 … (b+1)*pendingBucketSize.
// An id is listed by taking a position from the head ($inc) and then setting it in that
// position's bucket, and removed by unsetting it there: each write is one update by _id of a
// document of at most pendingBucketSize ids, whatever the set holds.
//
// A bucket whose positions are all given out and which lists no id is closed, and a listing
// that took a position in it and comes after is refused (it takes another position), so no id
// is ever listed where readers no longer look. Readers start at the head's lo and go past a
// run of closed buckets by the next of the open bucket before it (or lo), both set once they
// saw the run: a read visits the buckets that list pending deliveries, not every bucket a
// webhook ever had. Closed buckets stay (a few bytes each, one per pendingBucketSize
// deliveries): deleted, one could be made again by a late listing.
//
// What bounds a set: an id stays listed while its delivery is pending, and a delivery stops
// being pending when it is delivered or given up after webhook.MaxAttempts attempts (about 39
// hours); ids listed in vain (a delivery made twice, or never stored) go at the next read. So
// an enabled webhook lists about the events of the last 39 hours; a disabled one's deliveries
// wait unattempted and keep being listed until it is enabled again (or deleted), but its set
// is not read meanwhile, and no document of it grows past pendingBucketSize ids (about 6 KB),
// far from MongoDB's 16 MB.

const (
	pendingCollection = "webhook_pending"
	// pendingBucketSize is the ids a bucket lists: FerretDB rewrites a document whole at each
	// update, so a bucket stays a few kilobytes; a read of 1,000 pending deliveries reads about
	// ten.
	pendingBucketSize = 100
	// pendingGrace is how long an id stays listed while its delivery is missing: AddDelivery
	// lists it before it stores the delivery (another instance's may be between the two), and
	// one missing for longer was never stored.
	pendingGrace = 10 * time.Minute
)

func (s *Store) pending() *mongo.Collection { return s.db.Collection(pendingCollection) }

// pendingSet is webhook w's set of pending deliveries.
type pendingSet struct {
	s *Store
	w known.WebhookID
}

func (s *Store) pendingSet(w known.WebhookID) pendingSet { return pendingSet{s: s, w: w} }

func (p pendingSet) headID() string { return string(p.w) + "|h" }

func (p pendingSet) bucketID(b int64) string { return string(p.w) + "|" + strconv.FormatInt(b, 10) }

// pendingBucketOf is the bucket of position pos (positions start at 1).
func pendingBucketOf(pos int64) int64 { return (pos - 1) / pendingBucketSize }

type pendingHead struct {
	N  int64 `bson:"n"`
	Lo int64 `bson:"lo"`
}

type pendingBucket struct {
	E      map[string]time.Time `bson:"e"`
	Closed bool                 `bson:"closed"`
	Next   int64                `bson:"next"`
}

// pendingEntry is a delivery id to list, and when it was made.
type pendingEntry struct {
	id string
	at time.Time
}

// add lists entries, in their order, and returns the bucket each is listed in (by id): one
// update of the head and one of each bucket they fall in.
func (p pendingSet) add(ctx context.Context, entries []pendingEntry) (map[string]int64, error) {
	in := make(map[string]int64, len(entries))
	todo := entries
	for attempt := 0; len(todo) > 0; attempt++ {
		if attempt == 10 {
			return nil, fmt.Errorf("store: listing pending deliveries of webhook %s: the buckets kept closing", p.w)
		}
		var h pendingHead
		err := func() error {
			// In the head's turn (serial.go): FerretDB would lose one of two concurrent $inc.
			defer p.s.serial.lock(p.s.pending(), p.headID())()
			return upsertByID(ctx, p.s.pending(), p.headID(), bson.M{"$inc": bson.M{"n": int64(len(todo))}}, &h)
		}()
		if err != nil {
			return nil, fmt.Errorf("store: listing pending deliveries of webhook %s: %w", p.w, err)
		}
		first := h.N - int64(len(todo)) + 1
		var buckets []int64
		byBucket := map[int64][]pendingEntry{}
		for i, e := range todo {
			b := pendingBucketOf(first + int64(i))
			if _, ok := byBucket[b]; !ok {
				buckets = append(buckets, b)
			}
			byBucket[b] = append(byBucket[b], e)
		}
		var refused []pendingEntry
		for _, b := range buckets {
			ok, err := p.put(ctx, b, byBucket[b])
			if err != nil {
				return nil, fmt.Errorf("store: listing pending deliveries of webhook %s: %w", p.w, err)
			}
			if !ok {
				refused = append(refused, byBucket[b]...)
				continue
			}
			for _, e := range byBucket[b] {
				in[e.id] = b
			}
		}
		todo = refused
	}
	return in, nil
}

// put lists entries in bucket b and reports true, or false, listing nothing, when b is closed.
func (p pendingSet) put(ctx context.Context, b int64, entries []pendingEntry) (bool, error) {
	id, coll := p.bucketID(b), p.s.pending()
	set, unset := bson.M{}, bson.M{}
	for _, e := range entries {
		set["e."+e.id], unset["e."+e.id] = e.at, ""
	}
	defer p.s.serial.lock(coll, id)()
	if p.s.serial.on {
		// In the bucket's turn nothing closes it between this write and the look at the bucket
		// it returns: one command where a read before it would be two.
		var d pendingBucket
		if err := upsertByID(ctx, coll, id, bson.M{"$set": set}, &d); err != nil {
			return false, err
		}
		if !d.Closed {
			return true, nil
		}
		_, err := coll.UpdateOne(ctx, bson.M{"_id": id}, bson.M{"$unset": unset})
		return false, err
	}
	var err error
	for range 2 {
		// A closed bucket does not match, and the upsert then fails on its _id; so may one of
		// two concurrent upserts of a new bucket, once.
		_, err = coll.UpdateOne(ctx, bson.M{"_id": id, "closed": bson.M{"$ne": true}}, bson.M{"$set": set},
			options.UpdateOne().SetUpsert(true))
		if !mongo.IsDuplicateKeyError(err) {
			break
		}
	}
	if mongo.IsDuplicateKeyError(err) {
		return false, nil
	}
	return err == nil, err
}

// remove removes ids from bucket b: one update by _id.
func (p pendingSet) remove(ctx context.Context, b int64, ids []string) error {
	id, coll := p.bucketID(b), p.s.pending()
	unset := bson.M{}
	for _, x := range ids {
		unset["e."+x] = ""
	}
	defer p.s.serial.lock(coll, id)()
	if _, err := coll.UpdateOne(ctx, bson.M{"_id": id}, bson.M{"$unset": unset}); err != nil {
		return fmt.Errorf("store: removing pending deliveries of webhook %s: %w", p.w, err)
	}
	return nil
}

// close closes bucket b, every position of which the caller saw given out, if it lists no id,
// and reports whether it is closed.
func (p pendingSet) close(ctx context.Context, b int64) (bool, error) {
	id, coll := p.bucketID(b), p.s.pending()
	closed := bson.M{"$set": bson.M{"closed": true}}
	if p.s.serial.on {
		defer p.s.serial.lock(coll, id)()
		var d pendingBucket
		if err := coll.FindOne(ctx, bson.M{"_id": id}).Decode(&d); err != nil && !isNoDocuments(err) {
			return false, err
		}
		if d.Closed || len(d.E) > 0 {
			return d.Closed, nil
		}
		return true, upsertByID(ctx, coll, id, closed, nil)
	}
	// Empty, or never written (every listing there stopped half way): else the upsert fails on
	// the _id of the bucket that lists an id.
	_, err := coll.UpdateOne(ctx, bson.M{"_id": id, "e": bson.M{"$in": bson.A{bson.M{}, nil}}}, closed,
		options.UpdateOne().SetUpsert(true))
	if mongo.IsDuplicateKeyError(err) {
		return false, nil
	}
	return err == nil, err
}

// skip records that the buckets after from and before to are closed: as the head's lo when
// from is -1 (every bucket before to is closed), else as bucket from's next. Both only grow,
// and a closed bucket never opens, so neither ever points past an open bucket.
func (p pendingSet) skip(ctx context.Context, from, to int64) error {
	id, field := p.headID(), "lo"
	if from >= 0 {
		id, field = p.bucketID(from), "next"
	}
	defer p.s.serial.lock(p.s.pending(), id)()
	if _, err := p.s.pending().UpdateOne(ctx, bson.M{"_id": id}, bson.M{"$max": bson.M{field: to}}); err != nil {
		return fmt.Errorf("store: reading pending deliveries of webhook %s: %w", p.w, err)
	}
	return nil
}

// read returns at least limit of the pending deliveries the set lists (all of them when it
// lists fewer), in the order they were listed, each once; see PendingDeliveries.
func (p pendingSet) read(ctx context.Context, limit int, now time.Time) ([]deliveryDoc, error) {
	coll := p.s.pending()
	var h pendingHead
	if err := coll.FindOne(ctx, bson.M{"_id": p.headID()}).Decode(&h); err != nil {
		if isNoDocuments(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []deliveryDoc
	seen := map[string]bool{}
	// prev is the last open bucket read (-1: none yet, the run starts at lo); run says that
	// closed buckets followed it.
	prev, run := int64(-1), false
	b := h.Lo
	for h.N > 0 && b <= pendingBucketOf(h.N) && len(out) < limit {
		var d pendingBucket
		if err := coll.FindOne(ctx, bson.M{"_id": p.bucketID(b)}).Decode(&d); err != nil && !isNoDocuments(err) {
			return nil, err
		}
		live := 0
		if !d.Closed {
			docs, n, err := p.check(ctx, b, d.E, seen, now)
			if err != nil {
				return nil, err
			}
			out, live = append(out, docs...), n
		}
		closed := d.Closed
		if !closed && live == 0 && h.N >= (b+1)*pendingBucketSize {
			var err error
			if closed, err = p.close(ctx, b); err != nil {
				return nil, err
			}
		}
		if closed {
			run = true
			b++
			continue
		}
		if run {
			if err := p.skip(ctx, prev, b); err != nil {
				return nil, err
			}
			run = false
		}
		prev = b
		b = max(b+1, d.Next)
	}
	if run {
		if err := p.skip(ctx, prev, b); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// check reads the deliveries bucket b lists (entries) and returns the pending ones not seen
// yet, and how many entries stay listed; it removes the entries listed in vain: a delivery
// finished, listed again in another bucket (made twice), or missing past pendingGrace.
func (p pendingSet) check(ctx context.Context, b int64, entries map[string]time.Time, seen map[string]bool, now time.Time) ([]deliveryDoc, int, error) {
	if len(entries) == 0 {
		return nil, 0, nil
	}
	ids := slices.Sorted(maps.Keys(entries))
	var docs []deliveryDoc
	if err := p.s.byIDs(ctx, p.s.deliveries, ids, &docs); err != nil {
		return nil, 0, err
	}
	found := make(map[string]*deliveryDoc, len(docs))
	for i := range docs {
		found[docs[i].ID] = &docs[i]
	}
	var out []deliveryDoc
	var gone []string
	live := 0
	for _, id := range ids {
		d, ok := found[id]
		switch {
		case !ok && now.Sub(entries[id]) < pendingGrace:
			live++ // being made: listed first, stored next
		case !ok, d.Status != string(known.DeliveryPending), d.WebhookID != string(p.w), d.PendingIn != nil && *d.PendingIn != b:
			gone = append(gone, id)
		case seen[id]:
			live++ // an earlier version's delivery listed twice by an interrupted migration
		default:
			live++
			seen[id] = true
			out = append(out, *d)
		}
	}
	if len(gone) > 0 {
		if err := p.remove(ctx, b, gone); err != nil {
			return nil, 0, err
		}
	}
	return out, live, nil
}
