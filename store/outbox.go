package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/sync/errgroup"
)

// The outbox (API.md §9). Without multi-document transactions, a change and its event cannot
// be written together to two collections. So the event is first written INTO the changed
// document, in the same single-document write as the change (pendingEvents.<e+id>, counted in
// pendingCount): once the change is acknowledged, so is its event. Publishing then moves it to
// the inbox_events collection under the next sequence number and removes it from the document.
// A process that dies between the two leaves the event in the document, where Sweep finds it
// (at start, and periodically) and publishes it.
//
// Sequence numbers come from one counter document ($inc, by _id), and each event is stored
// under _id: seqKey(seq), so that a reader follows the log by _id equality, the one query the
// embedded store serves from an index. The key is a string: FerretDB 1.24 pushes an _id
// equality down to SQLite only for a string or an ObjectID, and reads the whole collection for
// a number (earlier versions stored the number itself; migrateEventKeys rewrites those). A unique index on eventId makes publishing idempotent:
// publishing an event again (the sweeper racing a slow publisher, or a crash after the insert
// and before the removal) finds it there and only removes the pending copy. Such a repeat
// leaves its sequence number unused, a gap that readers skip (see events.Reader).

const eventSeqID = "eventSeq"

// changeDoc is an event, pending in its document (Seq 0, no Key) or published.
type changeDoc struct {
	Key            string         `bson:"_id,omitempty"`
	Seq            int64          `bson:"seq,omitempty"`
	EventID        string         `bson:"eventId"`
	ProjectID      string         `bson:"projectId"`
	Type           string         `bson:"type"`
	UserID         *string        `bson:"userId,omitempty"`
	VisitorID      *string        `bson:"visitorId,omitempty"`
	ConversationID *string        `bson:"conversationId,omitempty"`
	Data           map[string]any `bson:"data"`
	CreatedAt      time.Time      `bson:"createdAt"`
}

func pendingKey(id string) string { return "e" + id }

// seqKey is the _id of the event published under sequence number seq: zero-padded, so that
// keys sort as their numbers do.
func seqKey(seq int64) string { return fmt.Sprintf("%019d", seq) }

func (d *changeDoc) event() *known.InboxEvent {
	return &known.InboxEvent{ID: known.InboxEventID(d.EventID), Seq: d.Seq, ProjectID: known.ProjectID(d.ProjectID),
		Type: known.EventType(d.Type), UserID: (*known.UserID)(d.UserID), VisitorID: (*known.VisitorID)(d.VisitorID),
		ConversationID: (*known.ConversationID)(d.ConversationID), Data: plain(nonNilMap(d.Data)).(map[string]any), CreatedAt: d.CreatedAt}
}

// plain turns decoded BSON (bson.M, bson.A) into plain maps and slices, as JSON has them.
func plain(v any) any {
	switch v := v.(type) {
	case bson.M:
		return plain(map[string]any(v))
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = plain(x)
		}
		return out
	case bson.A:
		return plain([]any(v))
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = plain(x)
		}
		return out
	case bson.D:
		m := make(map[string]any, len(v))
		for _, e := range v {
			m[e.Key] = plain(e.Value)
		}
		return m
	}
	return v
}

// pending adds events to an update document: set under pendingEvents, counted in pendingCount.
func pending(update bson.M, evs []changeDoc) {
	if len(evs) == 0 {
		return
	}
	set, _ := update["$set"].(bson.M)
	if set == nil {
		set = bson.M{}
		update["$set"] = set
	}
	inc, _ := update["$inc"].(bson.M)
	if inc == nil {
		inc = bson.M{}
		update["$inc"] = inc
	}
	for _, e := range evs {
		set["pendingEvents."+pendingKey(e.EventID)] = e
	}
	inc["pendingCount"] = len(evs)
}

func pendingMap(evs []changeDoc) map[string]changeDoc {
	if len(evs) == 0 {
		return nil
	}
	m := make(map[string]changeDoc, len(evs))
	for _, e := range evs {
		m[pendingKey(e.EventID)] = e
	}
	return m
}

func newChange(t known.EventType, p known.ProjectID, user *string, data map[string]any, now time.Time) changeDoc {
	return changeDoc{EventID: NewID(), ProjectID: string(p), Type: string(t), UserID: user, Data: data, CreatedAt: now.UTC()}
}

// Published returns a new channel that receives (without blocking the publisher; one value
// may stand for many) each time this process published events: a local reader wakes at once
// instead of at its next poll. Each reader asks once and keeps its channel.
func (s *Store) Published() <-chan struct{} {
	c := make(chan struct{}, 1)
	s.wake.mu.Lock()
	s.wake.chans = append(s.wake.chans, c)
	s.wake.mu.Unlock()
	return c
}

// wakers are the channels of Published.
type wakers struct {
	mu    sync.Mutex
	chans []chan struct{}
}

func (w *wakers) signal() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.chans {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// publishJob is the events one change left in document id of coll.
type publishJob struct {
	coll *mongo.Collection
	id   string
	evs  []changeDoc
}

// outbox publishes in the background, so that a request pays for its change only: one
// publisher per process takes the queued events in batches (one $inc for all their numbers,
// one insert, one removal per document), in the order the changes were made.
type outbox struct {
	mu     sync.Mutex
	closed bool
	queue  chan publishJob
	wg     sync.WaitGroup // queued jobs not yet published
	done   chan struct{}
	// owed counts the sweeps due because this process left events pending (SweepDue).
	owed atomic.Int32
	// swept is when the last Sweep began (Unix nanoseconds), or the outbox started.
	swept atomic.Int64
}

// sweepsOwed is how many periodic sweeps a failure to publish makes due: the first may come
// before the events left pending are old enough to be swept (Sweep's minAge).
const sweepsOwed = 3

// leftPending records that this process left events pending in their documents.
func (s *Store) leftPending() { s.out.owed.Store(sweepsOwed) }

// sweepAtLeastEvery is how long FerretDB goes without a sweep at most: a write whose change
// landed but whose reply did not arrive (a cancelled request, a timeout) leaves its events
// pending without this process knowing.
const sweepAtLeastEvery = 15 * time.Minute

// SweepDue reports whether a periodic Sweep may find events left pending. On MongoDB always:
// another instance may have died with events pending, and the sweeper's query is served by an
// index. On FerretDB, which one process serves at a time (API.md §11), after this process
// failed to publish some, and otherwise every sweepAtLeastEvery: the sweep at start covers a
// process that died, and a sweep there reads and decodes the users, conversations and messages
// collections whole.
func (s *Store) SweepDue() bool {
	if !s.FerretDB() || time.Since(time.Unix(0, s.out.swept.Load())) >= sweepAtLeastEvery {
		return true
	}
	for {
		n := s.out.owed.Load()
		if n <= 0 {
			return false
		}
		if s.out.owed.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

func (s *Store) startOutbox() {
	s.out.swept.Store(time.Now().UnixNano())
	s.out.queue = make(chan publishJob, 4096)
	s.out.done = make(chan struct{})
	go func() {
		defer close(s.out.done)
		for job := range s.out.queue {
			batch := []publishJob{job}
		more:
			for len(batch) < 256 {
				select {
				case j, ok := <-s.out.queue:
					if !ok {
						break more
					}
					batch = append(batch, j)
				default:
					break more
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			s.bg.publishNow(ctx, batch)
			cancel()
			for range batch {
				s.out.wg.Done()
			}
		}
	}()
}

// stopOutbox publishes what is queued and stops the publisher; what it cannot publish by ctx's
// deadline stays pending in its documents for the next start's sweep.
func (s *Store) stopOutbox(ctx context.Context) {
	s.out.mu.Lock()
	if s.out.closed || s.out.queue == nil {
		s.out.mu.Unlock()
		return
	}
	s.out.closed = true
	close(s.out.queue)
	s.out.mu.Unlock()
	select {
	case <-s.out.done:
	case <-ctx.Done():
	}
}

// WaitPublished waits until the events of the changes made so far in this process are
// published (or left pending after a failure): for tests, and before reading the log.
func (s *Store) WaitPublished() { s.out.wg.Wait() }

// publish queues the events a change left in document id of coll. It never fails the change,
// which is acknowledged already: an event that cannot be moved stays pending and the sweeper
// moves it later.
func (s *Store) publish(_ context.Context, coll *mongo.Collection, id string, evs []changeDoc) {
	if len(evs) == 0 {
		return
	}
	if h := s.BeforePublish; h != nil && h(coll.Name(), id) {
		return // the test's process died here
	}
	s.out.mu.Lock()
	defer s.out.mu.Unlock()
	if s.out.closed {
		return // stopping: the next start's sweep publishes them
	}
	s.out.wg.Add(1)
	s.out.queue <- publishJob{coll: coll, id: id, evs: evs}
}

// publishNow moves the events of jobs to inbox_events, oldest first, and removes them from
// their documents.
func (s *Store) publishNow(ctx context.Context, jobs []publishJob) {
	var evs []*changeDoc
	for i := range jobs {
		for k := range jobs[i].evs {
			evs = append(evs, &jobs[i].evs[k])
		}
	}
	if len(evs) == 0 {
		return
	}
	// Event ids are ObjectIDs: made in this process, they sort in the order they were made.
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].EventID < evs[j].EventID })
	last, err := s.takeSeqs(ctx, len(evs))
	if err != nil {
		s.log.Warn().Err(err).Msg("publishing events; the sweeper will")
		s.leftPending()
		return
	}
	docs := make([]any, len(evs))
	for i, e := range evs {
		e.Seq = last - int64(len(evs)) + 1 + int64(i)
		e.Key = seqKey(e.Seq)
		docs[i] = e
	}
	stored := make([]bool, len(evs))
	for i := range stored {
		stored[i] = true
	}
	if _, err := s.changes.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false)); err != nil {
		var bw mongo.BulkWriteException
		if !errors.As(err, &bw) {
			s.log.Warn().Err(err).Msg("publishing events; the sweeper will")
			s.leftPending()
			return
		}
		for _, we := range bw.WriteErrors {
			if we.Index < 0 || we.Index >= len(evs) {
				continue
			}
			// A duplicate eventId: published already (by the sweeper, or before a crash).
			// A duplicate number (two processes on one FerretDB): left for the sweeper.
			var at changeDoc
			e := evs[we.Index]
			ferr := s.changes.FindOne(ctx, bson.M{"_id": e.Key}).Decode(&at)
			stored[we.Index] = mongo.IsDuplicateKeyError(we) && (isNoDocuments(ferr) || (ferr == nil && at.EventID == e.EventID))
			if !stored[we.Index] {
				s.leftPending()
			}
		}
	}
	s.wake.signal()
	published := map[string]bool{}
	for i, e := range evs {
		if stored[i] {
			published[e.EventID] = true
		}
	}
	var g errgroup.Group
	g.SetLimit(8)
	for _, j := range jobs {
		var keys []string
		for _, e := range j.evs {
			if published[e.EventID] {
				keys = append(keys, e.EventID)
			}
		}
		if len(keys) > 0 {
			// On this store's own client: a request's store queued it with its collection.
			coll := s.db.Collection(j.coll.Name())
			g.Go(func() error { return s.unpend(ctx, coll, j.id, keys) })
		}
	}
	if err := g.Wait(); err != nil {
		s.log.Warn().Err(err).Msg("removing published events from their documents")
		s.leftPending()
	}
}

// takeSeqs takes n sequence numbers and returns the last.
func (s *Store) takeSeqs(ctx context.Context, n int) (int64, error) {
	defer s.serial.lock(s.meta(), eventSeqID)()
	var d struct {
		Seq int64 `bson:"seq"`
	}
	err := s.meta().FindOneAndUpdate(ctx, bson.M{"_id": eventSeqID}, bson.M{"$inc": bson.M{"seq": int64(n)}},
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)).Decode(&d)
	if err != nil {
		return 0, fmt.Errorf("store: taking event sequence numbers: %w", err)
	}
	return d.Seq, nil
}

// emptied is the update that removes a document's outbox fields once it holds no pending
// event: a document read on every dashboard page carries neither an empty map nor a zero count
// (the embedded store decodes each field of each document a batch read passes over).
var emptied = bson.M{"$unset": bson.M{"pendingEvents": "", "pendingCount": ""}}

// unpend removes published events from their document, each once: in one write when it
// still holds them all (removing the outbox fields when they were all it held), else one by
// one.
func (s *Store) unpend(ctx context.Context, coll *mongo.Collection, id string, eventIDs []string) error {
	defer s.serial.lock(coll, id)()
	if s.serial.on {
		return s.unpendTurn(ctx, coll, id, eventIDs)
	}
	// As a rule the document holds just these: one write removes the outbox's fields.
	filter := bson.M{"_id": id, "pendingCount": len(eventIDs)}
	for _, e := range eventIDs {
		filter["pendingEvents."+pendingKey(e)] = bson.M{"$exists": true}
	}
	switch err := coll.FindOneAndUpdate(ctx, filter, emptied).Err(); {
	case err == nil:
		return nil
	case !isNoDocuments(err):
		return err
	}
	try := func(ids []string) (bool, error) {
		filter, unset := bson.M{"_id": id}, bson.M{}
		for _, e := range ids {
			k := "pendingEvents." + pendingKey(e)
			filter[k] = bson.M{"$exists": true}
			unset[k] = ""
		}
		err := coll.FindOneAndUpdate(ctx, filter, bson.M{"$unset": unset, "$inc": bson.M{"pendingCount": -len(ids)}}).Err()
		if isNoDocuments(err) {
			return false, nil
		}
		return err == nil, err
	}
	if ok, err := try(eventIDs); ok || err != nil || len(eventIDs) == 1 {
		return err
	}
	for _, e := range eventIDs {
		if _, err := try([]string{e}); err != nil {
			return err
		}
	}
	return nil
}

// unpendTurn is unpend on FerretDB, where this process holds the document's turn (serial):
// what a read finds pending stays so until this write, and the write filters by _id alone,
// which FerretDB serves from an index (a filter on pendingEvents too would read the whole
// collection on every published change).
func (s *Store) unpendTurn(ctx context.Context, coll *mongo.Collection, id string, eventIDs []string) error {
	var d struct {
		Pending map[string]bson.Raw `bson:"pendingEvents"`
	}
	err := coll.FindOne(ctx, bson.M{"_id": id}, options.FindOne().SetProjection(bson.M{"pendingEvents": 1})).Decode(&d)
	if isNoDocuments(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: unpending events: %w", err)
	}
	unset := bson.M{}
	for _, e := range eventIDs {
		if _, ok := d.Pending[pendingKey(e)]; ok {
			unset["pendingEvents."+pendingKey(e)] = ""
		}
	}
	if len(unset) == 0 {
		return nil
	}
	update := bson.M{"$unset": unset, "$inc": bson.M{"pendingCount": -len(unset)}}
	if len(unset) == len(d.Pending) {
		update = emptied
	}
	err = coll.FindOneAndUpdate(ctx, bson.M{"_id": id}, update).Err()
	if err != nil && !isNoDocuments(err) {
		return fmt.Errorf("store: unpending events: %w", err)
	}
	return nil
}

// flush publishes whatever events document id of coll still holds that are older than
// minAge; it reports how many.
func (s *Store) flush(ctx context.Context, coll *mongo.Collection, id string, minAge time.Duration) (int, error) {
	var d struct {
		Pending map[string]changeDoc `bson:"pendingEvents"`
	}
	err := coll.FindOne(ctx, bson.M{"_id": id}, options.FindOne().SetProjection(bson.M{"pendingEvents": 1})).Decode(&d)
	if isNoDocuments(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: reading pending events: %w", err)
	}
	var evs []changeDoc
	cutoff := time.Now().Add(-minAge)
	for _, e := range d.Pending {
		if e.CreatedAt.Before(cutoff) || minAge == 0 {
			evs = append(evs, e)
		}
	}
	if len(evs) > 0 {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		s.publishNow(pctx, []publishJob{{coll: coll, id: id, evs: evs}})
	}
	return len(evs), nil
}

// Sweep publishes the events that changed documents still hold: those a process left when it
// died between a change and the event's move, or could not move. It skips events younger than
// minAge, which their own request is likely still publishing (publishing twice is harmless,
// but leaves a gap). It returns how many events it published.
func (s *Store) Sweep(ctx context.Context, minAge time.Duration) (int, error) {
	s.out.swept.Store(time.Now().UnixNano())
	n := 0
	for _, coll := range []*mongo.Collection{s.users, s.conversations, s.messages} {
		cur, err := coll.Find(ctx, bson.M{"pendingCount": bson.M{"$gt": 0}}, options.Find().SetProjection(bson.M{"_id": 1}))
		if err != nil {
			return n, fmt.Errorf("store: sweeping %s: %w", coll.Name(), err)
		}
		var ids []struct {
			ID string `bson:"_id"`
		}
		if err := cur.All(ctx, &ids); err != nil {
			return n, fmt.Errorf("store: sweeping %s: %w", coll.Name(), err)
		}
		for _, d := range ids {
			k, err := s.flush(ctx, coll, d.ID, minAge)
			n += k
			if err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// EventAt returns the event published under sequence number seq, or nil when there is none
// (not yet, or never: see the package comment on gaps).
func (s *Store) EventAt(ctx context.Context, seq int64) (*known.InboxEvent, error) {
	var d changeDoc
	err := s.changes.FindOne(ctx, bson.M{"_id": seqKey(seq)}).Decode(&d)
	if isNoDocuments(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: reading event %d: %w", seq, err)
	}
	return d.event(), nil
}

// LastEventSeq returns the last sequence number handed out (0 before the first event). Every
// number up to it is either published, about to be, or a gap.
func (s *Store) LastEventSeq(ctx context.Context) (int64, error) {
	var d struct {
		Seq int64 `bson:"seq"`
	}
	err := s.meta().FindOne(ctx, bson.M{"_id": eventSeqID}).Decode(&d)
	if isNoDocuments(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: reading the event sequence: %w", err)
	}
	return d.Seq, nil
}

// EventsOfProject returns project p's published events, newest first (at most limit): for
// tests and for an operator looking into a delivery.
func (s *Store) EventsOfProject(ctx context.Context, p known.ProjectID, limit int) ([]*known.InboxEvent, error) {
	cur, err := s.changes.Find(ctx, bson.M{"projectId": string(p)}, options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("store: listing events: %w", err)
	}
	var docs []changeDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("store: listing events: %w", err)
	}
	return mapDocs(docs, (*changeDoc).event), nil
}

// Payloads. Each is what a webhook receiver gets as `data`: global ids, times as RFC 3339
// strings, and nothing of another user.

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func optString[T ~string](p *T) any {
	if p == nil {
		return nil
	}
	return string(*p)
}

func globalIDs[T ~string](k known.Kind, ids []T) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = known.GlobalID(k, string(id))
	}
	return out
}

// userSnapshot is a user's public fields as an event shows them.
func userSnapshot(u *known.User) map[string]any {
	var method any
	if u.VerificationMethod != nil {
		method = string(*u.VerificationMethod)
	}
	var active any
	if u.ActiveCompanyID != nil {
		active = known.GlobalID(known.KindCompany, string(*u.ActiveCompanyID))
	}
	return map[string]any{
		"id": u.GlobalID(), "externalId": optString(u.ExternalID), "email": optString(u.Email),
		"phoneNumber": optString(u.PhoneNumber), "name": optString(u.Name), "firstName": optString(u.FirstName),
		"lastName": optString(u.LastName), "avatarUrl": optString(u.AvatarURL), "anonymous": u.Anonymous(),
		"verified": u.Verified, "verificationMethod": method, "metadata": nonNilMap(u.Metadata),
		"companyIds": globalIDs(known.KindCompany, u.CompanyIDs), "activeCompanyId": active,
		"organizationIds": globalIDs(known.KindOrganization, u.OrganizationIDs),
		"createdAt":       rfc3339(u.CreatedAt), "updatedAt": rfc3339(u.UpdatedAt),
	}
}

// userChanges is user.updated's `changes`: each public field that differs, as {from, to}.
// For metadata, from and to hold only the keys that changed (a removed key is null in to, a
// new one null in from). Times that change on every call (updatedAt, lastSeenAt) are no
// change. (Field names with dots cannot be stored, hence no "metadata.plan".)
func userChanges(before, after *known.User) map[string]any {
	b, a := userSnapshot(before), userSnapshot(after)
	out := map[string]any{}
	for k, to := range a {
		if k == "updatedAt" || k == "metadata" || k == "createdAt" || k == "id" {
			continue
		}
		if from := b[k]; !reflect.DeepEqual(from, to) {
			out[k] = map[string]any{"from": from, "to": to}
		}
	}
	bm, am := nonNilMap(before.Metadata), nonNilMap(after.Metadata)
	keys := slices.Collect(maps.Keys(am))
	for k := range bm {
		if _, ok := am[k]; !ok {
			keys = append(keys, k)
		}
	}
	from, to := map[string]any{}, map[string]any{}
	for _, k := range keys {
		if !reflect.DeepEqual(bm[k], am[k]) {
			from[k], to[k] = bm[k], am[k]
		}
	}
	if len(from) > 0 {
		out["metadata"] = map[string]any{"from": from, "to": to}
	}
	return out
}

// userEvents are the events of a user's change from before (nil: created) to after.
// identified names the visitor a widget identified as the user (nil for other writes);
// mergedFrom the record merged into it.
func userEvents(before, after *known.User, identified, mergedFrom *string, now time.Time) []changeDoc {
	id := string(after.ID)
	snap := userSnapshot(after)
	var out []changeDoc
	add := func(t known.EventType, extra map[string]any) {
		data := map[string]any{"user": snap}
		maps.Copy(data, extra)
		out = append(out, newChange(t, after.ProjectID, &id, data, now))
	}
	if before == nil {
		add(known.UserCreated, nil)
	} else if ch := userChanges(before, after); len(ch) > 0 {
		add(known.UserUpdated, map[string]any{"changes": ch})
	}
	if identified != nil && !after.Anonymous() &&
		(before == nil || before.Anonymous() || !slices.Contains(before.VisitorIDs, known.VisitorID(*identified))) {
		add(known.UserIdentified, map[string]any{"visitorId": *identified})
	}
	if after.Verified && (before == nil || !before.Verified) {
		add(known.UserVerified, map[string]any{"method": snap["verificationMethod"]})
	}
	if mergedFrom != nil {
		add(known.UserMerged, map[string]any{"mergedUserId": known.GlobalID(known.KindUser, *mergedFrom)})
	}
	return out
}

// userDeletedEventID is the id of a user's user.deleted event: derived, so that a delete
// tried again after a failure records and publishes it once.
func userDeletedEventID(id known.UserID) string {
	h := sha256.Sum256([]byte("user.deleted|" + string(id)))
	return "d" + hex.EncodeToString(h[:12])
}

func conversationSnapshot(c *known.Conversation) map[string]any {
	var user any
	if c.UserID != nil {
		user = known.GlobalID(known.KindUser, string(*c.UserID))
	}
	return map[string]any{"id": c.GlobalID(), "userId": user, "status": string(c.Status), "createdAt": rfc3339(c.CreatedAt)}
}

func messageSnapshot(m *known.Message) map[string]any {
	return map[string]any{"id": m.GlobalID(), "conversationId": known.GlobalID(known.KindConversation, string(m.ConversationID)),
		"body": m.Body, "author": string(m.Author), "verified": m.Verified, "createdAt": rfc3339(m.CreatedAt)}
}

// conversationChange is an event of conversation c, routed to its user and visitor.
func conversationChange(t known.EventType, c *known.Conversation, data map[string]any, now time.Time) changeDoc {
	e := newChange(t, c.ProjectID, (*string)(c.UserID), data, now)
	v, cid := string(c.VisitorID), string(c.ID)
	e.VisitorID, e.ConversationID = &v, &cid
	return e
}
