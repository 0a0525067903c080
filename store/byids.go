package store

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/sync/errgroup"
)

// A batch of documents by _id (a page's users, their companies, their profiles) is one $in
// query on MongoDB, served by the _id index. The embedded FerretDB cannot serve $in from an
// index: it reads and decodes the whole collection, while one find by _id costs the same at
// every size (store/embedded). Measured on an external FerretDB, in its own CPU: a find by _id
// 0.37 ms; a $in over 1,000 documents of 350 bytes 53 ms, about 0.05 ms per document it
// decodes (more for larger ones); each command also costs Known's CPU (the driver, about a
// third of the store's) and a round trip. So on the embedded store a batch is one $in while
// the collection is small, and one find by _id per id (concurrently) once the collection holds
// more than perIDFactor documents per id asked, past where the finds cost less in all: the
// cost of a page then follows its rows, not the collection.
const perIDFactor = 20

// sizesTTL is how long a collection's size is taken as known.
const sizesTTL = 10 * time.Second

// perIDConcurrency bounds the finds by _id of one batch in flight at once.
const perIDConcurrency = 16

// sizes remembers how many documents the embedded store's collections hold, for byIDs.
type sizes struct {
	mu sync.Mutex
	n  map[string]sized
}

type sized struct {
	n  int64
	at time.Time
}

// sizeOf returns how many documents coll holds, as counted at most sizesTTL ago.
func (s *Store) sizeOf(ctx context.Context, coll *mongo.Collection) (int64, error) {
	z := s.sizes
	z.mu.Lock()
	v, ok := z.n[coll.Name()]
	z.mu.Unlock()
	if ok && time.Since(v.at) < sizesTTL {
		return v.n, nil
	}
	n, err := s.files.Count(ctx, s.db.Name(), coll.Name())
	if err != nil {
		return 0, err
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.n == nil {
		z.n = map[string]sized{}
	}
	z.n[coll.Name()] = sized{n: n, at: time.Now()}
	return n, nil
}

// byIDs decodes the documents of coll whose _id is in ids into out (a pointer to a slice), in
// no particular order: one find by _id for one id; for more, one $in query on MongoDB and on a
// small embedded collection, else one find by _id per distinct id.
func (s *Store) byIDs(ctx context.Context, coll *mongo.Collection, ids []string, out any) error {
	return s.byIDsWhere(ctx, coll, ids, nil, out)
}

// byIDsWhere is byIDs whose one query also names the conditions of also (all of which the
// documents meet): the shard key of a collection not sharded by _id (a conversation's
// messages), so that MongoDB sends it to one shard. The finds by _id name nothing else: the
// embedded store serves only {_id: x} from an index.
func (s *Store) byIDsWhere(ctx context.Context, coll *mongo.Collection, ids []string, also bson.M, out any) error {
	if len(ids) == 0 {
		return nil
	}
	distinct := slices.Compact(slices.Sorted(slices.Values(ids)))
	if len(distinct) == 1 && len(also) == 0 {
		// One command either way, and a find by _id is served from the index on every store
		// (a collection sharded by another key names it, in also, to target one shard).
		return s.eachByID(ctx, coll, distinct, out)
	}
	if s.files != nil {
		n, err := s.sizeOf(ctx, coll)
		if err != nil {
			return err
		}
		if n > perIDFactor*int64(len(distinct)) {
			return s.eachByID(ctx, coll, distinct, out)
		}
	}
	filter := bson.D{{Key: "_id", Value: bson.M{"$in": ids}}}
	for _, k := range slices.Sorted(maps.Keys(also)) {
		filter = append(filter, bson.E{Key: k, Value: also[k]})
	}
	cur, err := coll.Find(ctx, filter, options.Find().SetBatchSize(bigBatch))
	if err != nil {
		return fmt.Errorf("store: finding %s by id: %w", coll.Name(), err)
	}
	if err := decodeAll(ctx, cur, out, s.opTimeout); err != nil {
		return fmt.Errorf("store: finding %s by id: %w", coll.Name(), err)
	}
	return nil
}

// eachByID is byIDs as one find by _id per id.
func (s *Store) eachByID(ctx context.Context, coll *mongo.Collection, ids []string, out any) error {
	slice := reflect.ValueOf(out).Elem()
	docs := make([]reflect.Value, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(perIDConcurrency)
	for i, id := range ids {
		g.Go(func() error {
			d := reflect.New(slice.Type().Elem())
			err := decodeOne(coll.FindOne(gctx, bson.M{"_id": id}), d.Interface())
			if isNoDocuments(err) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("store: finding %s by id: %w", coll.Name(), err)
			}
			docs[i] = d.Elem()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for _, d := range docs {
		if d.IsValid() {
			slice.Set(reflect.Append(slice, d))
		}
	}
	return nil
}
