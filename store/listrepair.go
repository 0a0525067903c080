package store

// The list repairer. An item is stored first and listed after (lists.go): should naming its
// place fail (a database hiccup), the item exists but no list shows it, and a client's retry
// finds it (by its identity keys) or stores another (a second message), so that nothing would
// ever list the first. The failing call records a repair instead: the list's key, the position
// it reserved (0 when it reserved none), and the item's id, in memory; the repairer, in the
// background, first writes it as a small document of list_repairs, so that a restart does not
// lose it, then names the item at that position, or appends it when no position was reserved,
// and then deletes the repair. Nothing of this runs on a successful write, and a failing call
// does not wait for it.

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

const repairCollection = "list_repairs"

func (s *Store) repairsColl() *mongo.Collection { return s.db.Collection(repairCollection) }

// listRepair is an item stored but not listed: its document in list_repairs, and the
// repairer's copy in memory.
type listRepair struct {
	// ID is Key, " ", and Item: a repeated record of one item's repair is one document.
	ID string `bson:"_id"`
	// Key is the list's key.
	Key string `bson:"key"`
	// Coll is the collection holding the item: a repair of an item deleted since is dropped.
	Coll string `bson:"coll"`
	// Item is the id of the item to list.
	Item string `bson:"item"`
	// Pos is the position reserved for the item, 0 when none was. A repair that appends
	// reserves a position and writes it here before it names the item there, so that a repair
	// run again (after a failure or a restart, or by another instance) names that same
	// position rather than appending the item a second time.
	Pos int64 `bson:"pos"`
	// saved says that the document is written (memory only).
	saved bool
}

// repairs is the repairer's state, shared by a store and its background copy.
type repairs struct {
	mu sync.Mutex
	// m holds the repairs known to this process, by _id.
	m map[string]*listRepair
	// loaded says that the documents of list_repairs were read into m (once, at start).
	loaded bool
	// run makes passes take turns: the loop's and a test's.
	run sync.Mutex
	// wake is signalled when a repair is recorded.
	wake chan struct{}
	// stop is closed by Close; done is closed when the loop has ended.
	stop, done chan struct{}
	// started says that the loop runs (Open got that far); stopped that Close stopped it.
	started, stopped bool
}

func newRepairs() *repairs {
	return &repairs{m: map[string]*listRepair{}, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// unlisted records that item id of coll is stored but not listed in l: pos is the position
// reserved for it, 0 when none was. It keeps the repair in memory and wakes the repairer, which
// writes the repair's document before it tries the repair: the failing call, whose database
// may be down, returns at once (a process that stops in the moment between loses the repair).
func (s *Store) unlisted(_ context.Context, l list, coll *mongo.Collection, pos int64, id string) {
	r := &listRepair{ID: l.key + " " + id, Key: l.key, Coll: coll.Name(), Item: id, Pos: pos}
	rep := s.rep
	rep.mu.Lock()
	// A repair of the item already known stands: it may have taken a position since.
	if _, ok := rep.m[r.ID]; !ok {
		rep.m[r.ID] = r
	}
	rep.mu.Unlock()
	select {
	case rep.wake <- struct{}{}:
	default:
	}
}

// saveRepair writes r's document. A repair recorded again for one item keeps the position a
// first record or repair took.
func (s *Store) saveRepair(ctx context.Context, r *listRepair) error {
	defer s.serial.lock(s.repairsColl(), r.ID)()
	set := bson.M{"key": r.Key, "coll": r.Coll, "item": r.Item}
	update := bson.M{"$set": set, "$setOnInsert": bson.M{"pos": r.Pos}}
	if r.Pos != 0 {
		set["pos"] = r.Pos
		update = bson.M{"$set": set}
	}
	_, err := s.repairsColl().UpdateOne(ctx, bson.M{"_id": r.ID}, update, options.UpdateOne().SetUpsert(true))
	return err
}

// RepairLists lists the items recorded as stored but not listed (see unlisted), those of
// list_repairs included, and returns how many it listed and the first failure. The repairs
// not done stay for the next call. The background loop calls it; tests call it
// directly.
func (s *Store) RepairLists(ctx context.Context) (int, error) {
	s = s.bg
	rep := s.rep
	rep.run.Lock()
	defer rep.run.Unlock()
	if err := s.loadRepairs(ctx); err != nil {
		return 0, err
	}
	rep.mu.Lock()
	todo := make([]*listRepair, 0, len(rep.m))
	for _, r := range rep.m {
		todo = append(todo, r)
	}
	rep.mu.Unlock()
	n := 0
	var first error
	for _, r := range todo {
		// Repairs touch only their own list and document: one that fails (its list's bucket
		// unwritable) does not hold up the others.
		listed, err := s.repair(ctx, r)
		if err != nil {
			if first == nil {
				first = fmt.Errorf("store: repairing list %s: %w", r.Key, err)
			}
			continue
		}
		if listed {
			n++
		}
		rep.mu.Lock()
		if rep.m[r.ID] == r {
			delete(rep.m, r.ID)
		}
		rep.mu.Unlock()
	}
	return n, first
}

// loadRepairs reads the documents of list_repairs into memory, once: a read of a collection
// that is empty but for the repairs of failures, at start.
func (s *Store) loadRepairs(ctx context.Context) error {
	rep := s.rep
	rep.mu.Lock()
	loaded := rep.loaded
	rep.mu.Unlock()
	if loaded {
		return nil
	}
	cur, err := s.repairsColl().Find(ctx, bson.M{})
	if err != nil {
		return fmt.Errorf("store: reading list repairs: %w", err)
	}
	var docs []*listRepair
	if err := cur.All(ctx, &docs); err != nil {
		return fmt.Errorf("store: reading list repairs: %w", err)
	}
	rep.mu.Lock()
	defer rep.mu.Unlock()
	for _, d := range docs {
		d.saved = true
		if _, ok := rep.m[d.ID]; !ok { // this process's own copy is as new
			rep.m[d.ID] = d
		}
	}
	rep.loaded = true
	return nil
}

// repair lists r's item and deletes r's document, and reports whether it named the item (false
// for an item gone since). Naming the reserved position again is harmless, appending is not:
// a repair without a position first takes one and writes it into its document (claim), so
// that every later run names that one.
func (s *Store) repair(ctx context.Context, r *listRepair) (bool, error) {
	l := list{s: s, key: r.Key}
	if !r.saved {
		// Recorded in memory only (unlisted): written first, so that a restart finds it
		// should this repair fail.
		if err := s.saveRepair(ctx, r); err != nil {
			return false, err
		}
		r.saved = true
	}
	var exists struct {
		ID string `bson:"_id"`
	}
	err := s.db.Collection(r.Coll).FindOne(ctx, bson.M{"_id": r.Item}).Decode(&exists)
	if isNoDocuments(err) {
		// Deleted since: a list would name nothing, or, should a document of that id be
		// made again, name it a second time.
		return false, s.deleteRepair(ctx, r)
	}
	if err != nil {
		return false, err
	}
	if r.Pos == 0 {
		pos, err := s.claimPosition(ctx, l, r)
		if err != nil {
			return false, err
		}
		if pos == 0 { // done by another run, which deleted the repair
			return false, nil
		}
		r.Pos = pos
	}
	if err := l.set(ctx, r.Pos, r.Item); err != nil {
		return false, err
	}
	return true, s.deleteRepair(ctx, r)
}

// claimPosition reserves a position of l for r and writes it into r's document unless the
// document names one already (another run's, which it returns instead; the reserved position
// then stays empty, which readers skip). It returns 0 when r's document is gone: another run
// listed the item and deleted it. A position reserved here and not written (a failure, a
// crash) stays empty too.
func (s *Store) claimPosition(ctx context.Context, l list, r *listRepair) (int64, error) {
	pos, err := l.reserve(ctx)
	if err != nil {
		return 0, err
	}
	defer s.serial.lock(s.repairsColl(), r.ID)()
	var d listRepair
	// The filter is more than {_id}: a read of list_repairs whole on the embedded store, which
	// holds the repairs of failures only.
	err = s.repairsColl().FindOneAndUpdate(ctx, bson.M{"_id": r.ID, "pos": int64(0)}, bson.M{"$set": bson.M{"pos": pos}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
	if isNoDocuments(err) {
		err = s.repairsColl().FindOne(ctx, bson.M{"_id": r.ID}).Decode(&d)
		if isNoDocuments(err) {
			return 0, nil
		}
	}
	if err != nil {
		return 0, err
	}
	return d.Pos, nil
}

func (s *Store) deleteRepair(ctx context.Context, r *listRepair) error {
	defer s.serial.lock(s.repairsColl(), r.ID)()
	_, err := s.repairsColl().DeleteOne(ctx, bson.M{"_id": r.ID})
	return err
}

// Repair backoff: the repairer retries a failed pass after repairMinBackoff, doubling up to
// repairMaxBackoff while the database stays down.
const (
	repairMinBackoff = time.Second
	repairMaxBackoff = time.Minute
)

// startRepairer runs RepairLists at start (the repairs a process left in list_repairs), after
// each recorded repair, and again with backoff while a pass fails. It never blocks a request:
// a request only records a repair and signals the loop.
func (s *Store) startRepairer() {
	rep := s.rep
	rep.mu.Lock()
	rep.started = true
	rep.mu.Unlock()
	go func() {
		defer close(rep.done)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-rep.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		backoff := repairMinBackoff
		for {
			pctx, pcancel := context.WithTimeout(ctx, time.Minute)
			_, err := s.RepairLists(pctx)
			pcancel()
			var retry <-chan time.Time
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				s.log.Warn().Err(err).Dur("retry", backoff).Msg("store: repairing lists")
				retry = time.After(backoff)
				backoff = min(2*backoff, repairMaxBackoff)
			} else {
				backoff = repairMinBackoff
			}
			select {
			case <-rep.stop:
				return
			case <-rep.wake:
			case <-retry:
			}
		}
	}()
}

// stopRepairer stops the loop, waiting for a pass under way as far as ctx allows; the repairs
// not done stay in list_repairs for the next start.
func (s *Store) stopRepairer(ctx context.Context) {
	rep := s.rep
	if rep == nil {
		return
	}
	rep.mu.Lock()
	started, stopped := rep.started, rep.stopped
	rep.stopped = true
	rep.mu.Unlock()
	if !started || stopped {
		return
	}
	close(rep.stop)
	select {
	case <-rep.done:
	case <-ctx.Done():
	}
}
