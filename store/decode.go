package store

import (
	"context"
	"reflect"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Decoding documents. The driver (v2.9.3) decodes each document of a reply through a new
// streaming reader with a 4 KB buffer; bson.Unmarshal reads the bytes in place through a pooled
// reader: for a user document about 40 allocations and 5 KB less, which a dashboard page pays
// five times a row. bson.Unmarshal cannot be told what the client is told
// (options.BSONOptions.DefaultDocumentM): it decodes an embedded document held in an `any` as a
// bson.D, where the store's readers expect a bson.M. So only document types that say where they
// hold `any` (a normalizer, which turns those bson.D back into bson.M) are decoded this way; the
// others go through the driver.

// normalizer is a document type whose `any` values normalize makes what the driver decodes.
type normalizer interface{ normalize() }

var normalizerType = reflect.TypeFor[normalizer]()

// decodeAll decodes every document of cur into out, a pointer to a slice of documents, and
// closes cur: as cur.All does, faster for normalizer documents. A context without a deadline
// gets one of timeout (the client's operation timeout) for the whole reply: without one, the
// driver bounds each cur.Next by that timeout itself, with a timer per document.
func decodeAll(ctx context.Context, cur *mongo.Cursor, out any, timeout time.Duration) error {
	slice := reflect.ValueOf(out).Elem()
	elem := slice.Type().Elem()
	if !reflect.PointerTo(elem).Implements(normalizerType) {
		return cur.All(ctx, out)
	}
	defer cur.Close(context.Background())
	if _, ok := ctx.Deadline(); !ok && timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	slice.SetLen(0)
	for cur.Next(ctx) {
		v := reflect.New(elem)
		if err := bson.Unmarshal(cur.Current, v.Interface()); err != nil {
			return err
		}
		v.Interface().(normalizer).normalize()
		slice.Set(reflect.Append(slice, v.Elem()))
	}
	return cur.Err()
}

// decodeOne decodes the document of r into out (a pointer to a document): as r.Decode does,
// faster for normalizer documents.
func decodeOne(r *mongo.SingleResult, out any) error {
	n, ok := out.(normalizer)
	if !ok {
		return r.Decode(out)
	}
	raw, err := r.Raw()
	if err != nil {
		return err
	}
	if err := bson.Unmarshal(raw, out); err != nil {
		return err
	}
	n.normalize()
	return nil
}

// asM is v with every embedded document a bson.M, as the driver decodes them for this store.
func asM(v any) any {
	switch x := v.(type) {
	case bson.D:
		m := make(bson.M, len(x))
		for _, e := range x {
			m[e.Key] = asM(e.Value)
		}
		return m
	case bson.M:
		normalizeMap(x)
	case map[string]any:
		normalizeMap(x)
	case bson.A:
		for i, y := range x {
			x[i] = asM(y)
		}
	}
	return v
}

// normalizeMap makes the embedded documents of m's values bson.M, in place.
func normalizeMap(m map[string]any) {
	for k, v := range m {
		switch v.(type) {
		case bson.D, bson.M, map[string]any, bson.A:
			m[k] = asM(v)
		}
	}
}

// normalizePending normalizes the data of the events pending in a document.
func normalizePending(p map[string]changeDoc) {
	for k, e := range p {
		normalizeMap(e.Data)
		p[k] = e
	}
}

func (d *userDoc) normalize() {
	normalizeMap(d.Metadata)
	normalizePending(d.Pending)
}

func (d *companyDoc) normalize()      { normalizeMap(d.Metadata) }
func (d *organizationDoc) normalize() { normalizeMap(d.Attrs) }
func (d *profileDoc) normalize()      { normalizeMap(d.Metadata) }
func (d *eventDoc) normalize()        { normalizeMap(d.Properties) }
func (d *conversationDoc) normalize() { normalizePending(d.Pending) }
func (d *messageDoc) normalize()      { normalizePending(d.Pending) }
