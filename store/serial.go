package store

import (
	"context"
	"hash/fnv"
	"maps"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// serial makes updates of one document take turns within this process, where the server does
// not isolate them. FerretDB 1.24 applies an update by reading the document, changing it in
// memory and writing it back, so two concurrent $addToSet or $set of different metadata keys
// on one user lose one of them; MongoDB applies each update atomically and needs none of this.
// The embedded store serves one Known process, so a lock in that process is enough; several
// instances need MongoDB (the README says so).
type serial struct {
	on bool
	mu [256]sync.Mutex
	// bulk is the turn of multi-statement writes (see ferretBulk); profiles, their one
	// writer, take only it.
	bulk sync.Mutex
	// userRevs are the users' revisions as this process last wrote them (userupdate.go).
	userRevs userRevs
}

// lock takes the turn of document id of collection coll, and returns the function that
// gives it back. It is a no-op on MongoDB. Callers hold at most one turn at a time.
func (s *serial) lock(coll *mongo.Collection, id string) func() {
	if !s.on {
		return func() {}
	}
	m := &s.mu[s.slot(coll, id)]
	m.Lock()
	return m.Unlock
}

func (s *serial) slot(coll *mongo.Collection, id string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(coll.Name()))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return h.Sum32() % uint32(len(s.mu))
}

// updateIf applies update to document id of coll if the document meets a condition, and
// returns the document as it was before (nil, changing nothing, when it is missing or does not
// meet it). The condition is said twice: as the filter cond, which MongoDB checks in the write
// itself, atomically; and as ok, which the embedded store checks on the document read by _id
// in its turn: FerretDB serves no other filter without reading the whole collection, and every
// update of coll's documents in this process takes that turn, so the document read is the one
// the write lands on. The caller holds no turn.
func updateIf[T any](ctx context.Context, s *Store, coll *mongo.Collection, id string, cond bson.M, ok func(*T) bool, update bson.M) (*T, error) {
	defer s.serial.lock(coll, id)()
	filter := bson.M{"_id": id}
	if s.serial.on {
		var cur T
		err := coll.FindOne(ctx, filter).Decode(&cur)
		if isNoDocuments(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if !ok(&cur) {
			return nil, nil
		}
	} else {
		maps.Copy(filter, cond)
	}
	var before T
	err := coll.FindOneAndUpdate(ctx, filter, update).Decode(&before)
	if isNoDocuments(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &before, nil
}

// isFerretDB reports whether the server is FerretDB, whose buildInfo has a ferretdbVersion.
func isFerretDB(ctx context.Context, c *mongo.Client) bool {
	var info bson.M
	if err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return false
	}
	_, ok := info["ferretdbVersion"]
	return ok
}
