package store

// Lists a dashboard pages through are kept as append-only lists of item ids in bucket
// documents addressed by _id (MongoDB's bucket pattern), so that a page costs what its rows
// cost, not what the collection holds: the embedded store serves only a filter of exactly
// {_id: x} from an index and reads the whole collection for any other, a sort included.
//
// A list with key k is a head document {_id: k+"|h", n: <appends so far>} and buckets
// {_id: k+"|"+b, e: {"<position>": "<item id>", ...}}, bucket b holding positions
// b*bucketSize+1 … (b+1)*bucketSize. An append takes the next position from the head ($inc)
// and then sets it in its bucket; a process that stops between the two leaves that position
// empty, and readers skip it. Items are read by their ids after their positions, so an item
// deleted since it was listed (a deleted user's conversation) is skipped too, and the page
// reads further to stay full.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

const (
	listCollection = "lists"
	// bucketSize is the number of positions a bucket holds: a page of 100 reads one or two
	// buckets, and a bucket stays a few kilobytes.
	bucketSize = 100
)

func (s *Store) lists() *mongo.Collection { return s.db.Collection(listCollection) }

// list is the append-only list with this key in the lists collection.
type list struct {
	s   *Store
	key string
}

func (l list) headID() string { return l.key + "|h" }

func (l list) bucketID(b int64) string { return l.key + "|" + strconv.FormatInt(b, 10) }

// bucketOf is the bucket holding position pos (positions start at 1).
func bucketOf(pos int64) int64 { return (pos - 1) / bucketSize }

type listHead struct {
	ID string `bson:"_id"`
	N  int64  `bson:"n"`
}

type listBucket struct {
	ID      string            `bson:"_id"`
	Entries map[string]string `bson:"e"`
}

// listEntry is an item id at its position.
type listEntry struct {
	pos int64
	id  string
}

// append adds item id at the end of the list and returns its position: two updates by _id,
// whatever the list's length (reserve, then set).
func (l list) append(ctx context.Context, id string) (int64, error) {
	pos, err := l.reserve(ctx)
	if err != nil {
		return 0, err
	}
	return pos, l.set(ctx, pos, id)
}

// reserve takes the next position of the list, and sets nothing there yet: readers skip it
// until set names its item. In the head's turn (serial.go): FerretDB would lose one of two
// concurrent $inc of the head.
func (l list) reserve(ctx context.Context) (int64, error) {
	var h listHead
	err := func() error {
		defer l.s.serial.lock(l.s.lists(), l.headID())()
		return upsertByID(ctx, l.s.lists(), l.headID(), bson.M{"$inc": bson.M{"n": int64(1)}}, &h)
	}()
	if err != nil {
		return 0, fmt.Errorf("store: appending to list %s: %w", l.key, err)
	}
	return h.N, nil
}

// set names item id at position pos, which reserve gave out: one update of its bucket by _id,
// in the bucket's turn.
func (l list) set(ctx context.Context, pos int64, id string) error {
	bucket := l.bucketID(bucketOf(pos))
	err := func() error {
		defer l.s.serial.lock(l.s.lists(), bucket)()
		return upsertByID(ctx, l.s.lists(), bucket, bson.M{"$set": bson.M{"e." + strconv.FormatInt(pos, 10): id}}, nil)
	}()
	if err != nil {
		return fmt.Errorf("store: appending to list %s: %w", l.key, err)
	}
	return nil
}

// upsertByID applies update to the document with this _id, creating it if there is none,
// and decodes the document after the update into out unless out is nil. Two upserts of a new
// _id at once may have one fail on the unique _id (MongoDB retries that itself since 4.2;
// FerretDB updates take turns here): the retry then finds the document.
func upsertByID(ctx context.Context, coll *mongo.Collection, id string, update bson.M, out any) error {
	// No projection: FerretDB 1.24 does not implement one in findAndModify.
	opts := options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)
	var err error
	for range 2 {
		r := coll.FindOneAndUpdate(ctx, bson.M{"_id": id}, update, opts)
		if out != nil {
			err = r.Decode(out)
		} else {
			err = r.Err()
		}
		if !mongo.IsDuplicateKeyError(err) {
			break
		}
	}
	return err
}

// ErrUnlisted says that a new document was stored but naming its place in its list failed:
// the document exists (its identity keys name it) but a reader of the list does not show it.
// The call reports the failure, so that a client tries again; a caller must not undo what
// the document holds (a new user's identity keys), or the next try would make it twice. The
// call has recorded a repair, and the list repairer lists the document later (listrepair.go).
var ErrUnlisted = errors.New("store: stored, but not listed")

// length returns the number of positions the list has given out (0 for a list never
// appended to).
func (l list) length(ctx context.Context) (int64, error) {
	var h listHead
	if err := l.s.lists().FindOne(ctx, bson.M{"_id": l.headID()}).Decode(&h); err != nil {
		if isNoDocuments(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("store: reading list %s: %w", l.key, err)
	}
	return h.N, nil
}

// listReader reads a list's entries newest first, a bucket at a time.
type listReader struct {
	l list
	// next is the highest position not read yet; 0 once the list is read to its start.
	next int64
	// buf holds entries read and not taken yet, in descending position.
	buf []listEntry
}

// read returns the next n entries, fewer only when the list's start is reached. Empty
// positions (an append that stopped half way) are skipped.
func (r *listReader) read(ctx context.Context, n int) ([]listEntry, error) {
	var out []listEntry
	for len(out) < n {
		if len(r.buf) == 0 {
			if r.next < 1 {
				break
			}
			if err := r.fill(ctx); err != nil {
				return nil, err
			}
			continue
		}
		k := min(n-len(out), len(r.buf))
		out = append(out, r.buf[:k]...)
		r.buf = r.buf[k:]
	}
	return out, nil
}

// fill reads the bucket holding position next: its entries up to next, descending.
func (r *listReader) fill(ctx context.Context) error {
	b := bucketOf(r.next)
	var d listBucket
	if err := r.l.s.lists().FindOne(ctx, bson.M{"_id": r.l.bucketID(b)}).Decode(&d); err != nil && !isNoDocuments(err) {
		return fmt.Errorf("store: reading list %s: %w", r.l.key, err)
	}
	for k, id := range d.Entries {
		// Positions above next are not part of this read: past a cursor, or written by a
		// migration that was interrupted before its head (migrate.go).
		if pos, err := strconv.ParseInt(k, 10, 64); err == nil && pos <= r.next && bucketOf(pos) == b {
			r.buf = append(r.buf, listEntry{pos: pos, id: id})
		}
	}
	slices.SortFunc(r.buf, func(a, b listEntry) int { return cmp.Compare(b.pos, a.pos) })
	r.next = b * bucketSize
	return nil
}

// listedAt is implemented by items that know the position their document was listed at (0
// when unknown: listed by the migration, or by a version before this was kept). pageList
// skips such an item at any other position, so that an id listed twice, which happens when a
// document with a derived id (an anonymous user's) is deleted and made again, shows once.
type listedAt interface{ listedAt() int64 }

// pageList returns page of list l, newest first: the items that find finds for the listed
// ids (a map by id; ids it leaves out are skipped), each with the value of page.After that
// continues after it, and whether more follow. page.After is "" (from the newest) or such a
// value; anything else is BAD_USER_INPUT on after. It reads the head, the buckets the page
// spans, and calls find once, or again for as many items as were gone.
func pageList[T any](ctx context.Context, l list, page known.Page, find func(ctx context.Context, ids []string) (map[string]T, error)) ([]T, []string, bool, error) {
	n, err := l.length(ctx)
	if err != nil {
		return nil, nil, false, err
	}
	start := n
	if page.After != "" {
		pos, err := strconv.ParseInt(page.After, 10, 64)
		if err != nil || pos < 1 {
			return nil, nil, false, &known.Error{Code: known.BadUserInput, Message: "after is not a cursor of this list", Field: []string{"after"}}
		}
		// A position past the end names no item of this list: start from its end rather
		// than walk empty buckets.
		start = min(pos-1, n)
	}
	r := &listReader{l: l, next: start}
	want := page.First + 1
	var items []T
	var afters []string
	for len(items) < want {
		es, err := r.read(ctx, want-len(items))
		if err != nil {
			return nil, nil, false, err
		}
		if len(es) == 0 {
			break
		}
		ids := make([]string, len(es))
		for i, e := range es {
			ids[i] = e.id
		}
		found, err := find(ctx, ids)
		if err != nil {
			return nil, nil, false, err
		}
		for _, e := range es {
			it, ok := found[e.id]
			if a, listed := any(it).(listedAt); ok && listed && a.listedAt() != 0 && a.listedAt() != e.pos {
				// An id listed again since (a document deleted and made anew under the same
				// id): only its newest position names it.
				ok = false
			}
			if ok {
				items = append(items, it)
				afters = append(afters, strconv.FormatInt(e.pos, 10))
			}
		}
	}
	more := len(items) > page.First
	if more {
		items, afters = items[:page.First], afters[:page.First]
	}
	return items, afters, more, nil
}

// docs are the documents of a list of ids at positions 1…len(ids): its buckets, then its
// head.
func (l list) docs(ids []string) []bson.M {
	var out []bson.M
	for b := int64(0); b*bucketSize < int64(len(ids)); b++ {
		e := bson.M{}
		for i := b * bucketSize; i < min((b+1)*bucketSize, int64(len(ids))); i++ {
			e[strconv.FormatInt(i+1, 10)] = ids[i]
		}
		out = append(out, bson.M{"_id": l.bucketID(b), "e": e})
	}
	return append(out, bson.M{"_id": l.headID(), "n": int64(len(ids))})
}

// write sets the list to ids, at positions 1…len(ids): each bucket replaced whole (so that a
// repeated write leaves nothing of an earlier one), then the head last. For the migration:
// the list must not be appended to meanwhile.
func (l list) write(ctx context.Context, ids []string) error {
	for _, d := range l.docs(ids) {
		id := d["_id"].(string)
		err := func() error {
			defer l.s.serial.lock(l.s.lists(), id)()
			_, err := l.s.lists().ReplaceOne(ctx, bson.M{"_id": id}, d, options.Replace().SetUpsert(true))
			return err
		}()
		if err != nil {
			return fmt.Errorf("store: writing list %s: %w", l.key, err)
		}
	}
	return nil
}

// deleteLists deletes every list whose key starts with prefix: a scan of the lists
// collection (a regular expression on _id), for rare deletes such as a project's.
func (s *Store) deleteLists(ctx context.Context, prefix string) error {
	if _, err := s.lists().DeleteMany(ctx, bson.M{"_id": bson.M{"$regex": "^" + regexp.QuoteMeta(prefix)}}); err != nil {
		return fmt.Errorf("store: deleting lists %s: %w", prefix, err)
	}
	return nil
}

// The lists each project keeps, named after the collection whose documents they list: a
// list's key is projectListPrefix(p) + its name.
const (
	listConversations = "conversations"
	listUsers         = "users"
	listCompanies     = "companies"
	listOrganizations = "organizations"
	// listMessages begins the name of a conversation's list of its messages (messageList).
	listMessages = "messages|"
	// listUserEvents begins the name of a user's list of its tracked events (eventList).
	listUserEvents = "events|"
	// listUserConversations begins the name of a user's list of its conversations
	// (userConversationList).
	listUserConversations = "userConversations|"
	// listVisitorConversations begins the name of a visitor's list of its conversations
	// (visitorConversationList).
	listVisitorConversations = "visitorConversations|"
)

// projectList is project p's list of the documents of collection name (one of the list…
// names), in the order they were made.
func (s *Store) projectList(p known.ProjectID, name string) list {
	return list{s: s, key: projectListPrefix(p) + name}
}

// projectListPrefix begins the key of every list of project p: DeleteProject deletes them by
// it. Project ids hold no "|".
func projectListPrefix(p known.ProjectID) string { return string(p) + "|" }

// pageProjectList is pageDocs for project p's list of coll's documents.
func pageProjectList[D any, T any](ctx context.Context, s *Store, p known.ProjectID, coll *mongo.Collection, page known.Page,
	key func(*D) (id, project string), conv func(*D) T) ([]T, []string, bool, error) {
	return pageDocs(ctx, s.projectList(p, coll.Name()), p, coll, nil, page, key, conv)
}

// pageDocs is pageList for list l of project p's documents of coll, decoded as D: the page's
// documents are read by their ids (byIDsWhere, with also), another project's are skipped, and
// conv makes each item.
func pageDocs[D any, T any](ctx context.Context, l list, p known.ProjectID, coll *mongo.Collection, also bson.M, page known.Page,
	key func(*D) (id, project string), conv func(*D) T) ([]T, []string, bool, error) {
	return pageList(ctx, l, page, func(ctx context.Context, ids []string) (map[string]T, error) {
		var docs []D
		if err := l.s.byIDsWhere(ctx, coll, ids, also, &docs); err != nil {
			return nil, err
		}
		out := make(map[string]T, len(docs))
		for i := range docs {
			if id, project := key(&docs[i]); project == string(p) {
				out[id] = conv(&docs[i])
			}
		}
		return out, nil
	})
}

// delete deletes the list: its buckets, then its head, each by _id (for a list whose owner
// is deleted: a conversation's messages). A list never appended to has nothing to delete.
func (l list) delete(ctx context.Context) error {
	n, err := l.length(ctx)
	if err != nil {
		return err
	}
	for b := int64(0); b*bucketSize < n; b++ {
		if _, err := l.s.lists().DeleteOne(ctx, bson.M{"_id": l.bucketID(b)}); err != nil {
			return fmt.Errorf("store: deleting list %s: %w", l.key, err)
		}
	}
	if _, err := l.s.lists().DeleteOne(ctx, bson.M{"_id": l.headID()}); err != nil {
		return fmt.Errorf("store: deleting list %s: %w", l.key, err)
	}
	return nil
}
