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
	LeaseUntil       *time.Time `bson:"leaseUntil,omitempty"`
	LeaseToken       string     `bson:"leaseToken,omitempty"`
	CreatedAt        time.Time  `bson:"createdAt"`
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
	if _, err := s.deliveries.DeleteMany(ctx, bson.M{"webhookId": string(id)}); err != nil {
		return fmt.Errorf("store: deleting webhook deliveries: %w", err)
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
// before a restart) is left as it is.
func (s *Store) AddDelivery(ctx context.Context, d *known.WebhookDelivery) error {
	_, err := s.deliveries.InsertOne(ctx, deliveryDoc{ID: d.ID, WebhookID: string(d.WebhookID), ProjectID: string(d.ProjectID),
		EventID: string(d.EventID), EventSeq: d.EventSeq, EventType: string(d.EventType), OrderKey: d.OrderKey,
		UserID: (*string)(d.UserID), Body: d.Body,
		Status: string(known.DeliveryPending), NextAttemptAt: d.NextAttemptAt, CreatedAt: d.CreatedAt})
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
// (by _id, which the index on webhookId and _id serves).
func (s *Store) PendingDeliveries(ctx context.Context, w known.WebhookID, limit int) ([]*known.WebhookDelivery, error) {
	cur, err := s.deliveries.Find(ctx, bson.M{"webhookId": string(w), "status": string(known.DeliveryPending)},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("store: listing pending deliveries: %w", err)
	}
	var docs []deliveryDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("store: listing pending deliveries: %w", err)
	}
	return mapDocs(docs, (*deliveryDoc).delivery), nil
}

// ClaimDelivery takes the lease of pending delivery id until until, for token, if no one
// holds it: a conditional single-document update (atomic on MongoDB), so that one instance
// at a time attempts a delivery. It reports whether it took it.
func (s *Store) ClaimDelivery(ctx context.Context, id string, now, until time.Time, token string) (bool, error) {
	defer s.serial.lock(s.deliveries, id)()
	err := s.deliveries.FindOneAndUpdate(ctx, bson.M{"_id": id, "status": string(known.DeliveryPending),
		"$or": bson.A{bson.M{"leaseUntil": nil}, bson.M{"leaseUntil": bson.M{"$lte": now}}}},
		bson.M{"$set": bson.M{"leaseUntil": until, "leaseToken": token}}).Err()
	if isNoDocuments(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: claiming a delivery: %w", err)
	}
	return true, nil
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
// lease; false when the lease was lost meanwhile (another instance's attempt counts instead).
func (s *Store) RecordAttempt(ctx context.Context, id, token string, a Attempt) (bool, error) {
	set := bson.M{"status": string(known.DeliveryPending)}
	unset := bson.M{"leaseUntil": "", "leaseToken": ""}
	switch {
	case a.Delivered:
		set["status"], set["deliveredAt"] = string(known.DeliveryDelivered), a.At
		unset["nextAttemptAt"] = ""
	case a.Failed:
		set["status"] = string(known.DeliveryFailed)
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
	defer s.serial.lock(s.deliveries, id)()
	err := s.deliveries.FindOneAndUpdate(ctx, bson.M{"_id": id, "leaseToken": token},
		bson.M{"$set": set, "$unset": unset, "$inc": bson.M{"attempts": 1}}).Err()
	if isNoDocuments(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: recording a delivery attempt: %w", err)
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
