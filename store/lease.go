package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/knownhq/known/secret"
	"github.com/rs/zerolog"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// The single-instance lease. FerretDB applies an update of one document by reading it,
// changing it and writing it back, so two Known processes updating one document lose writes;
// Known's in-process lock (serial) makes one process safe, and the lease makes sure there is
// one process per database. It is a document with a fixed _id: claimed by inserting it (the
// one write FerretDB makes atomic, by its unique _id), renewed by its holder, and taken over
// when its holder stops renewing.
const leaseID = "instanceLease"

// LeaseOptions tunes ClaimLease. Zero values take the defaults.
type LeaseOptions struct {
	// TTL is how long a lease lasts after its last renewal (default 15 s).
	TTL time.Duration
	// Renew is how often the holder renews it (default TTL/3).
	Renew time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Holder describes this instance to whoever finds the lease held (host, pid).
	Holder string
	// TakeOver claims a lease that has not expired at once: for the embedded store, whose
	// data-directory lock already proves that no other process serves it.
	TakeOver bool
	// Log gets a line while a claim waits for a lease to expire.
	Log zerolog.Logger
}

func (o *LeaseOptions) defaults() {
	if o.TTL <= 0 {
		o.TTL = 15 * time.Second
	}
	if o.Renew <= 0 || o.Renew >= o.TTL {
		o.Renew = o.TTL / 3
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

type leaseDoc struct {
	ID        string    `bson:"_id"`
	Token     string    `bson:"token"` // this claim's random id
	Holder    string    `bson:"holder"`
	ClaimedAt time.Time `bson:"claimedAt"`
	RenewedAt time.Time `bson:"renewedAt"`
	ExpiresAt time.Time `bson:"expiresAt"`
}

// ErrLeaseHeld is the error of ClaimLease when another instance holds the lease and renews it.
var ErrLeaseHeld = errors.New("another instance holds the single-instance lease")

// ErrLeaseLost is the error of Lease.Keep when another instance took the lease over.
var ErrLeaseLost = errors.New("the single-instance lease was taken over by another instance")

// Lease is a claimed single-instance lease.
type Lease struct {
	client *mongo.Client
	coll   *mongo.Collection
	token  string
	o      LeaseOptions
}

// ClaimLease claims the database's single-instance lease. A lease whose holder stopped
// renewing is taken over once it expires (ClaimLease waits for that, at most its TTL); a lease
// renewed meanwhile means another instance serves the database: ClaimLease then fails with an
// error wrapping ErrLeaseHeld that names the holder. The lease uses its own small connection
// pool, so that its renewals neither wait behind requests nor show in the request metrics.
func (s *Store) ClaimLease(ctx context.Context, o LeaseOptions) (*Lease, error) {
	o.defaults()
	client, err := mongo.Connect(s.leaseOpts)
	if err != nil {
		return nil, fmt.Errorf("store: lease: %w", err)
	}
	l := &Lease{client: client, coll: client.Database(s.db.Name()).Collection(metaCollection),
		token: secret.Random(12), o: o}
	if err := l.claim(ctx); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	return l, nil
}

func (l *Lease) claim(ctx context.Context) error {
	var seen *leaseDoc // the other holder's lease as first found
	for {
		now := l.o.Now()
		_, err := l.coll.InsertOne(ctx, leaseDoc{ID: leaseID, Token: l.token, Holder: l.o.Holder,
			ClaimedAt: now, RenewedAt: now, ExpiresAt: now.Add(l.o.TTL)})
		if err == nil {
			return nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("store: claiming the single-instance lease: %w", err)
		}
		var cur leaseDoc
		if err := l.coll.FindOne(ctx, bson.M{"_id": leaseID}).Decode(&cur); err != nil {
			if isNoDocuments(err) {
				continue // released meanwhile
			}
			return fmt.Errorf("store: reading the single-instance lease: %w", err)
		}
		switch {
		case seen != nil && (cur.Token != seen.Token || !cur.RenewedAt.Equal(seen.RenewedAt)):
			return fmt.Errorf("%w (%s, renewed at %s)", ErrLeaseHeld, cur.Holder, cur.RenewedAt.Format(time.RFC3339))
		case l.o.TakeOver || !now.Before(cur.ExpiresAt):
			// Delete exactly the lease that was found; whoever inserts next holds it.
			if _, err := l.coll.DeleteOne(ctx, bson.M{"_id": leaseID, "token": cur.Token, "renewedAt": cur.RenewedAt}); err != nil {
				return fmt.Errorf("store: taking over the single-instance lease: %w", err)
			}
			continue
		}
		if seen == nil {
			seen = &cur
			l.o.Log.Warn().Str("holder", cur.Holder).Time("expires_at", cur.ExpiresAt).
				Msg("the single-instance lease is held; waiting to see whether its holder still renews it")
		}
		wait := min(cur.ExpiresAt.Sub(now), l.o.Renew)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(max(wait, time.Millisecond)):
		}
	}
}

// Keep renews the lease every Renew interval until ctx is done, then releases it and returns
// nil. It returns ErrLeaseLost as soon as a renewal finds that another instance took the lease
// over. A renewal that fails (the database is down) is logged and tried again at the next tick.
func (l *Lease) Keep(ctx context.Context, log zerolog.Logger) error {
	t := time.NewTicker(l.o.Renew)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		err := l.Renew(ctx)
		if errors.Is(err, ErrLeaseLost) {
			return err
		}
		if err != nil && ctx.Err() == nil {
			log.Warn().Err(err).Msg("renewing the single-instance lease")
		}
	}
}

// Renew extends the lease by its TTL from now; it returns ErrLeaseLost when another instance
// holds it.
func (l *Lease) Renew(ctx context.Context) error {
	now := l.o.Now()
	r, err := l.coll.UpdateOne(ctx, bson.M{"_id": leaseID, "token": l.token},
		bson.M{"$set": bson.M{"renewedAt": now, "expiresAt": now.Add(l.o.TTL)}})
	if err != nil {
		return fmt.Errorf("store: renewing the single-instance lease: %w", err)
	}
	if r.MatchedCount == 0 {
		return ErrLeaseLost
	}
	return nil
}

// Release gives the lease up, so that the next instance claims it at once, and closes the
// lease's connections.
func (l *Lease) Release(ctx context.Context) error {
	_, err := l.coll.DeleteOne(ctx, bson.M{"_id": leaseID, "token": l.token})
	if derr := l.client.Disconnect(ctx); err == nil {
		err = derr
	}
	if err != nil {
		return fmt.Errorf("store: releasing the single-instance lease: %w", err)
	}
	return nil
}
