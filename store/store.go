// Package store keeps Known's data in MongoDB (or the embedded FerretDB). It writes only what
// both support: no multi-document transactions, no $lookup, no TTL or partial indexes. Unique
// identities (a user's externalId, email, phone) are claimed as documents whose _id is the
// normalized key, and hot paths find documents by _id, the one filter the embedded store serves
// from an index.
package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/store/embedded"
	"github.com/rs/zerolog"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Config says which database to use.
type Config struct {
	// URI of a MongoDB deployment; empty starts the embedded store in DataDir.
	URI string
	// DataDir holds the embedded store's files.
	DataDir string
	// Database is the database name; empty means "known".
	Database string
	// Monitor, when set, observes every command sent (metrics, tests that count round trips).
	Monitor *event.CommandMonitor
	// ConnectTimeout bounds the first connection; zero means 10 s.
	ConnectTimeout time.Duration
	// ServerSelectionTimeout bounds how long an operation waits for a database server that
	// answers; zero means 2 s. While the database is down, each operation fails after this long
	// (with an error Unavailable recognizes) rather than holding its request.
	ServerSelectionTimeout time.Duration
	// OperationTimeout bounds each operation that has no earlier deadline, also on a server
	// that accepts connections but does not answer; zero means 30 s.
	OperationTimeout time.Duration
	Log              zerolog.Logger
}

// Store is a connection to Known's database.
type Store struct {
	client   *mongo.Client
	db       *mongo.Database
	embedded *embedded.Server
	// files is the embedded FerretDB whose SQLite files this process can read: its own, or the
	// one this process runs behind cfg.URI (the tests' shared one; Close leaves it running);
	// nil on MongoDB or a FerretDB of another process.
	files *embedded.Server
	sizes *sizes
	// opTimeout is the client's bound of an operation without an earlier deadline.
	opTimeout time.Duration

	projects      *mongo.Collection
	projectKeys   *mongo.Collection
	users         *mongo.Collection
	identityKeys  *mongo.Collection
	organizations *mongo.Collection
	companies     *mongo.Collection
	conversations *mongo.Collection
	messages      *mongo.Collection
	events        *mongo.Collection
	sessions      *mongo.Collection
	jwtIDs        *mongo.Collection
	idTokens      *mongo.Collection
	profiles      *mongo.Collection
	// changes is the published change events (outbox.go).
	changes *mongo.Collection
	// webhooks and their deliveries (webhooks.go).
	webhooks, deliveries *mongo.Collection

	// published wakes this process's event reader (Published).
	wake *wakers
	// BeforePublish, when set, runs after a change and its pending events are written and
	// before they are queued for publishing; returning true drops them there, as if the
	// process died between the two writes (tests).
	BeforePublish func(collection, id string) bool
	out           *outbox
	// bg is this store on its own small connection pool, without the command monitor: for
	// the work outside requests (publishing, following the event log, webhooks, sweeping),
	// which then neither waits behind requests nor shows in their metrics. bg.bg is bg.
	bg       *Store
	bgClient *mongo.Client
	log      zerolog.Logger

	serial *serial
	// rep holds the lists' repairs: items stored but not listed (listrepair.go).
	rep *repairs
	// leaseOpts connect the lease's own client (see lease.go).
	leaseOpts *options.ClientOptions
}

// Open connects to the database (starting the embedded one when cfg.URI is empty), checks that
// it answers, and creates the indexes. It fails within ConnectTimeout when the database cannot
// be reached.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	s := &Store{wake: &wakers{}, log: cfg.Log, serial: &serial{}, out: &outbox{}, files: embedded.Running(cfg.URI), sizes: &sizes{},
		rep: newRepairs()}
	uri := cfg.URI
	if uri == "" {
		srv, err := embedded.Start(cfg.DataDir, "", cfg.Log)
		if err != nil {
			return nil, err
		}
		s.embedded, s.files = srv, srv
		uri = srv.URI()
	}
	timeout := cfg.ConnectTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	selection := cfg.ServerSelectionTimeout
	if selection == 0 {
		selection = 2 * time.Second
	}
	opTimeout := cfg.OperationTimeout
	if opTimeout == 0 {
		opTimeout = 30 * time.Second
	}
	s.opTimeout = opTimeout
	clientOpts := func() *options.ClientOptions {
		return options.Client().ApplyURI(uri).
			SetServerSelectionTimeout(selection).
			SetConnectTimeout(min(timeout, selection)).
			SetTimeout(opTimeout).
			// The pool grows fast under a burst: a checkout waits at most the short server
			// selection timeout, and should not spend it on connections opened two at a time.
			SetMaxConnecting(16).
			SetAppName("known").
			// Nested documents (metadata) decode as maps, which marshal to JSON objects.
			SetBSONOptions(&options.BSONOptions{DefaultDocumentM: true})
	}
	opts := clientOpts()
	s.leaseOpts = clientOpts().SetMaxPoolSize(2)
	if cfg.Monitor != nil {
		opts.SetMonitor(cfg.Monitor)
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		s.stopEmbedded()
		return nil, fmt.Errorf("store: %w", err)
	}
	s.client = client
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Each ping gives up after the short server selection timeout; the first connection may
	// take longer (a database starting beside Known), so ping until the connect timeout.
	for {
		err := client.Ping(pctx, nil)
		if err == nil {
			break
		}
		if pctx.Err() != nil || ctx.Err() != nil {
			_ = s.Close(context.Background())
			return nil, fmt.Errorf("store: database not reachable: %w", err)
		}
		select {
		case <-pctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	s.serial.on = isFerretDB(pctx, client)
	name := cfg.Database
	if name == "" {
		name = "known"
	}
	s.use(client.Database(name))
	bgClient, err := mongo.Connect(clientOpts().SetMaxPoolSize(8))
	if err != nil {
		_ = s.Close(context.Background())
		return nil, fmt.Errorf("store: %w", err)
	}
	s.bgClient = bgClient
	bg := *s
	bg.use(bgClient.Database(name))
	bg.bg = &bg
	s.bg = &bg
	s.startOutbox() // the migration's changes publish events too
	ictx, cancel2 := context.WithTimeout(ctx, 30*time.Second)
	defer cancel2()
	if err := s.createIndexes(ictx); err != nil {
		_ = s.Close(context.Background())
		return nil, err
	}
	if s.files != nil {
		if err := s.indexIDs(ictx); err != nil {
			_ = s.Close(context.Background())
			return nil, err
		}
	}
	if err := s.migrate(ctx); err != nil {
		_ = s.Close(context.Background())
		return nil, err
	}
	// The repairs an earlier process left are done in the background, not before Open
	// returns: the database may be down for them.
	s.startRepairer()
	return s, nil
}

// indexIDs creates every collection of the store that does not exist yet, then gives each
// table of the embedded store the _id index FerretDB's lookups can use (see store/embedded).
func (s *Store) indexIDs(ctx context.Context) error {
	have, err := s.db.ListCollectionNames(ctx, bson.M{})
	if err != nil {
		return fmt.Errorf("store: listing collections: %w", err)
	}
	for _, c := range s.collections() {
		if !slices.Contains(have, c.Name()) {
			if err := s.db.CreateCollection(ctx, c.Name()); err != nil && !isNamespaceExists(err) {
				return fmt.Errorf("store: creating collection %s: %w", c.Name(), err)
			}
		}
	}
	return s.files.IndexIDs(ctx, s.db.Name())
}

// isNamespaceExists reports a createCollection of a collection that exists (code 48).
func isNamespaceExists(err error) bool {
	var ce mongo.CommandError
	return errors.As(err, &ce) && ce.Code == 48
}

// collections lists the store's collections.
func (s *Store) collections() []*mongo.Collection {
	return []*mongo.Collection{s.projects, s.projectKeys, s.users, s.identityKeys, s.organizations, s.companies,
		s.conversations, s.messages, s.events, s.sessions, s.jwtIDs, s.idTokens, s.profiles, s.changes, s.webhooks,
		s.deliveries, s.meta(), s.auditLog(), s.lists(), s.pending(), s.repairsColl()}
}

// use points the store's collections into db.
func (s *Store) use(db *mongo.Database) {
	s.db = db
	s.projects = s.db.Collection("projects")
	s.projectKeys = s.db.Collection("project_keys")
	s.users = s.db.Collection("users")
	s.identityKeys = s.db.Collection("identity_keys")
	s.organizations = s.db.Collection("organizations")
	s.companies = s.db.Collection("companies")
	s.conversations = s.db.Collection("conversations")
	s.messages = s.db.Collection("messages")
	s.events = s.db.Collection("events")
	s.sessions = s.db.Collection("widget_sessions")
	s.jwtIDs = s.db.Collection("jwt_ids")
	s.idTokens = s.db.Collection("identification_tokens")
	s.profiles = s.db.Collection("profiles")
	s.changes = s.db.Collection("inbox_events")
	s.webhooks = s.db.Collection("webhooks")
	s.deliveries = s.db.Collection("webhook_deliveries")
}

// Background returns this store on its own connection pool, whose commands do not show in
// the command monitor: for work outside requests (the event reader, webhooks, sweeps).
func (s *Store) Background() *Store { return s.bg }

// FerretDB reports whether the database is FerretDB (the embedded store, or one behind a URI),
// which does not apply concurrent updates of one document atomically.
func (s *Store) FerretDB() bool { return s.serial.on }

// Embedded reports whether the store runs the embedded database.
func (s *Store) Embedded() bool { return s.embedded != nil }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.client.Ping(ctx, nil)
}

// Close publishes the events queued in this process (as far as ctx allows; the rest stay
// pending for the next start), stops the list repairer (its repairs not done stay in
// list_repairs for the next start), disconnects, then stops the embedded database if there is one.
func (s *Store) Close(ctx context.Context) error {
	s.stopOutbox(ctx)
	s.stopRepairer(ctx)
	var err error
	if s.bgClient != nil {
		err = s.bgClient.Disconnect(ctx)
	}
	if s.client != nil {
		if cerr := s.client.Disconnect(ctx); err == nil {
			err = cerr
		}
	}
	s.stopEmbedded()
	return err
}

func (s *Store) stopEmbedded() {
	if s.embedded != nil {
		s.embedded.Stop()
		s.embedded = nil
	}
}

// createIndexes makes the indexes that serve list and foreign-key queries on MongoDB; the
// embedded store accepts them too. Creating an index that exists is a no-op, so this runs at
// every start.
func (s *Store) createIndexes(ctx context.Context) error {
	byProjectNewest := mongo.IndexModel{Keys: bson.D{{Key: "projectId", Value: 1}, {Key: "_id", Value: -1}}}
	// The sweeper's query: documents that still hold an event to publish.
	pendingEvents := mongo.IndexModel{Keys: bson.D{{Key: "pendingCount", Value: 1}}}
	specs := map[*mongo.Collection][]mongo.IndexModel{
		s.changes: {
			{Keys: bson.D{{Key: "eventId", Value: 1}}, Options: options.Index().SetUnique(true)},
			byProjectNewest,
		},
		s.webhooks:   {{Keys: bson.D{{Key: "projectId", Value: 1}}}},
		s.deliveries: {{Keys: bson.D{{Key: "webhookId", Value: 1}, {Key: "_id", Value: -1}}}, {Keys: bson.D{{Key: "status", Value: 1}}}},
		s.users: {
			pendingEvents,
			byProjectNewest,
			{Keys: bson.D{{Key: "companyIds", Value: 1}}},
			{Keys: bson.D{{Key: "organizationIds", Value: 1}}},
		},
		s.identityKeys:  {{Keys: bson.D{{Key: "ownerId", Value: 1}}}},
		s.organizations: {byProjectNewest},
		s.companies:     {byProjectNewest},
		s.conversations: {
			pendingEvents,
			byProjectNewest,
			{Keys: bson.D{{Key: "userId", Value: 1}, {Key: "_id", Value: -1}}},
			{Keys: bson.D{{Key: "visitorId", Value: 1}, {Key: "_id", Value: -1}}},
		},
		s.messages: {pendingEvents, {Keys: bson.D{{Key: "conversationId", Value: 1}, {Key: "_id", Value: -1}}}},
		s.events: {
			{Keys: bson.D{{Key: "userId", Value: 1}, {Key: "_id", Value: -1}}},
			{Keys: bson.D{{Key: "companyId", Value: 1}, {Key: "_id", Value: -1}}},
		},
		s.sessions: {{Keys: bson.D{{Key: "expiresAt", Value: 1}}}},
		s.jwtIDs:   {{Keys: bson.D{{Key: "expiresAt", Value: 1}}}},
		s.idTokens: {{Keys: bson.D{{Key: "expiresAt", Value: 1}}}},

		s.auditLog(): auditIndexes,
	}
	for coll, models := range specs {
		// One at a time: FerretDB 1.24 panics when createIndexes names several indexes of
		// which some exist already, which is every start but the first.
		for _, model := range models {
			if _, err := coll.Indexes().CreateOne(ctx, model); err != nil {
				return fmt.Errorf("store: creating indexes on %s: %w", coll.Name(), err)
			}
		}
	}
	return nil
}

// NewID returns a new document id: unique, and ordered by creation time, so that sorting by
// _id lists newest first.
func NewID() string { return bson.NewObjectID().Hex() }

// notFound is the error for an object that does not exist or belongs to another project:
// the two must look the same to the caller.
func notFound(what string) error { return known.Errorf(known.NotFound, "%s not found", what) }

func isNoDocuments(err error) bool { return errors.Is(err, mongo.ErrNoDocuments) }
