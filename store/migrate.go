package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// migrate brings data written by earlier versions of Known to the current shape. Each step is
// idempotent and safe to interrupt: it writes each document with a condition that holds only
// while the document is still in the old shape, so running it again (on this or another
// instance) finishes what was left and changes nothing else. Steps may scan: once a step has
// run to its end, a meta document says so (once), and later starts skip it, so that a start
// costs the same at any size (20,000 users: 12 s of scans at every start without the marks).
// Data an earlier version writes after a step ran is not migrated: stop every instance of an
// earlier version before the first instance of this one starts (README, "Upgrading").
func (s *Store) migrate(ctx context.Context) error {
	for _, step := range []struct {
		done, what string
		run        func(context.Context) error
	}{
		{"identitiesMigrated", "migrating identities", s.migrateIdentities},
		{"visitorRecordsMigrated", "migrating visitor records", s.migrateAnonymousRecords},
		{"messagesCounted", "counting messages", s.migrateMessageCounts},
		{"projectListsMigrated", "listing projects' documents", s.migrateProjectLists},
		{messagesListedID, "listing messages", s.listAllMessages},
		{"eventKeysMigrated", "keying published events", s.migrateEventKeys},
		{"lastMessagesTrimmed", "trimming conversations' last messages", s.migrateLastMessages},
		{pendingListedID, "listing pending webhook deliveries", s.migratePendingDeliveries},
		{eventsListedID, "listing users' events", s.migrateEventLists},
		{userConversationsListedID, "listing users' conversations", s.migrateUserConversationLists},
		{visitorConversationsListedID, "listing visitors' conversations", s.migrateVisitorConversationLists},
		{"outboxFieldsTrimmed", "trimming emptied outbox fields", s.migrateEmptiedOutbox},
	} {
		if err := s.once(ctx, step.done, step.run); err != nil {
			return fmt.Errorf("store: %s: %w", step.what, err)
		}
	}
	return nil
}

// once runs a migration step unless the meta document done says it ran to its end, and then
// writes that document.
func (s *Store) once(ctx context.Context, done string, run func(context.Context) error) error {
	switch err := s.meta().FindOne(ctx, bson.M{"_id": done}).Err(); {
	case err == nil:
		return nil
	case !isNoDocuments(err):
		return err
	}
	if err := run(ctx); err != nil {
		return err
	}
	if _, err := s.meta().InsertOne(ctx, bson.M{"_id": done}); err != nil && !mongo.IsDuplicateKeyError(err) {
		return err
	}
	return nil
}

// migrateEmptiedOutbox removes the outbox's fields from documents of earlier versions that
// hold no pending event (an empty map and a zero count, which publishing now removes): the
// filter holds only while the count is zero, so a document that records an event meanwhile
// keeps its fields.
func (s *Store) migrateEmptiedOutbox(ctx context.Context) error {
	for _, coll := range []*mongo.Collection{s.users, s.conversations, s.messages, s.events} {
		if _, err := coll.UpdateMany(ctx, bson.M{"pendingCount": 0}, emptied); err != nil {
			return fmt.Errorf("%s: %w", coll.Name(), err)
		}
	}
	return nil
}

// migrateLastMessages trims the copies of their last message that conversations of earlier
// versions hold to what lastMessageDoc keeps: a dashboard page reads every conversation on it,
// and on the embedded store every conversation of the collection, so their size is its cost.
// Each update only removes fields the reader fills from the conversation (its project and id)
// or that mean their absence (verified false, no pending events), so running it again, or
// while messages are added, changes nothing.
func (s *Store) migrateLastMessages(ctx context.Context) error {
	for _, u := range []struct{ filter, unset bson.M }{
		{bson.M{"last.projectId": bson.M{"$exists": true}}, bson.M{"last.projectId": "", "last.conversationId": "",
			"last.pendingEvents": "", "last.pendingCount": ""}},
		{bson.M{"last.verified": false}, bson.M{"last.verified": ""}},
	} {
		if _, err := s.conversations.UpdateMany(ctx, u.filter, bson.M{"$unset": u.unset}); err != nil {
			return err
		}
	}
	return nil
}

// migrateEventKeys rewrites the published events that earlier versions stored under their
// sequence number as _id (a number, which the embedded store looks up by reading the whole
// collection) under seqKey, with the number in seq. eventId is unique, so each event is first
// copied under its new key with a marked eventId, then removed under its old key, then its
// copy unmarked: a start interrupted anywhere loses no event, and the next start finishes the
// work (a copy made already is refused by its key; a marked copy is unmarked). It runs before
// the event readers start.
func (s *Store) migrateEventKeys(ctx context.Context) error {
	const moving = "|moving"
	for {
		cur, err := s.changes.Find(ctx, bson.M{"_id": bson.M{"$type": "number"}}, options.Find().SetLimit(500))
		if err != nil {
			return err
		}
		var docs []bson.M
		if err := cur.All(ctx, &docs); err != nil {
			return err
		}
		if len(docs) == 0 {
			break
		}
		copies := make([]any, 0, len(docs))
		old := make([]any, 0, len(docs))
		for _, d := range docs {
			seq, ok := asInt64(d["_id"])
			id, _ := d["eventId"].(string)
			if !ok || id == "" {
				return fmt.Errorf("an event with _id %v and eventId %v", d["_id"], d["eventId"])
			}
			c := bson.M{}
			for k, v := range d {
				c[k] = v
			}
			c["_id"], c["seq"], c["eventId"] = seqKey(seq), seq, id+moving
			copies = append(copies, c)
			old = append(old, d["_id"])
		}
		if _, err := s.changes.InsertMany(ctx, copies, options.InsertMany().SetOrdered(false)); err != nil && !onlyDuplicates(err) {
			return err
		}
		if _, err := s.changes.DeleteMany(ctx, bson.M{"_id": bson.M{"$in": old}}); err != nil {
			return err
		}
	}
	cur, err := s.changes.Find(ctx, bson.M{"eventId": bson.M{"$regex": `\|moving$`}})
	if err != nil {
		return err
	}
	var marked []struct {
		Key     string `bson:"_id"`
		EventID string `bson:"eventId"`
	}
	if err := cur.All(ctx, &marked); err != nil {
		return err
	}
	for _, m := range marked {
		if err := s.changes.FindOneAndUpdate(ctx, bson.M{"_id": m.Key},
			bson.M{"$set": bson.M{"eventId": strings.TrimSuffix(m.EventID, moving)}}).Err(); err != nil && !isNoDocuments(err) {
			return err
		}
	}
	return nil
}

// asInt64 is a BSON number as an int64.
func asInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int32:
		return int64(n), true
	case float64:
		return int64(n), n == float64(int64(n))
	}
	return 0, false
}

// onlyDuplicates reports whether every error of an unordered insert is a duplicate key.
func onlyDuplicates(err error) bool {
	var bw mongo.BulkWriteException
	if !errors.As(err, &bw) || bw.WriteConcernError != nil {
		return false
	}
	for _, we := range bw.WriteErrors {
		if !mongo.IsDuplicateKeyError(we) {
			return false
		}
	}
	return true
}

// migrateProjectLists gives each project every list it has none of yet (lists.go; versions
// before a list kept none): the project's documents of the list's collection in the order of
// their ids, the order the queries of those versions listed them in (for conversations and
// for users, companies and organizations of random ids, the order they were made in). A
// list is written whole, its head last (list.write), so a start interrupted half way writes
// it again from scratch, at the same positions, and a list with a head is done. One query per
// kind of list reads the documents of every project still to do. No instance of this version
// may write such documents meanwhile (they would take the positions this writes): on FerretDB
// one instance runs at a time; on MongoDB, start the first instance of this version alone.
func (s *Store) migrateProjectLists(ctx context.Context) error {
	cur, err := s.projects.Find(ctx, bson.M{}, options.Find().SetProjection(bson.M{"_id": 1}).SetBatchSize(bigBatch))
	if err != nil {
		return err
	}
	var projects []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &projects); err != nil {
		return err
	}
	for _, name := range []string{listConversations, listUsers, listCompanies, listOrganizations} {
		if err := s.migrateProjectList(ctx, name, projects); err != nil {
			return fmt.Errorf("listing %s: %w", name, err)
		}
	}
	return nil
}

// migrateProjectList writes the list name of each of projects that has none.
func (s *Store) migrateProjectList(ctx context.Context, name string, projects []struct {
	ID string `bson:"_id"`
}) error {
	owners := make([]string, len(projects))
	for i, p := range projects {
		owners[i] = p.ID
	}
	return s.listMissing(ctx, owners, func(p string) list { return s.projectList(known.ProjectID(p), name) },
		s.db.Collection(name), "projectId")
}

// listMissing writes the list of each owner whose list (listOf) has no head: the ids of coll's
// documents whose field names that owner, in the order of their ids. A list is written whole,
// its head last (list.write). One read of the heads by _id, one query of coll for every owner
// still to do.
func (s *Store) listMissing(ctx context.Context, owners []string, listOf func(owner string) list, coll *mongo.Collection, field string) error {
	ls := make([]list, len(owners))
	for i, o := range owners {
		ls[i] = listOf(o)
	}
	listed, err := s.headed(ctx, ls)
	if err != nil {
		return err
	}
	var todo []string
	for i, o := range owners {
		if !listed[ls[i].key] {
			todo = append(todo, o)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	cur, err := coll.Find(ctx, bson.M{field: bson.M{"$in": todo}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetProjection(bson.M{"_id": 1, field: 1}).SetBatchSize(bigBatch))
	if err != nil {
		return err
	}
	var docs []bson.M
	if err := cur.All(ctx, &docs); err != nil {
		return err
	}
	ids := map[string][]string{}
	for _, d := range docs {
		id, _ := d["_id"].(string)
		o, _ := d[field].(string)
		ids[o] = append(ids[o], id)
	}
	for _, o := range todo {
		// An owner without such documents gets its head too (n: 0), so that later starts
		// skip it.
		if err := listOf(o).write(ctx, ids[o]); err != nil {
			return err
		}
	}
	return nil
}

// headed returns the keys of the lists of ls that have a head (a list written whole has one):
// one read of their heads by _id.
func (s *Store) headed(ctx context.Context, ls []list) (map[string]bool, error) {
	heads := make([]string, len(ls))
	key := make(map[string]string, len(ls))
	for i, l := range ls {
		heads[i] = l.headID()
		key[heads[i]] = l.key
	}
	var have []listHead
	if err := s.byIDs(ctx, s.lists(), heads, &have); err != nil {
		return nil, err
	}
	listed := make(map[string]bool, len(have))
	for _, h := range have {
		listed[key[h.ID]] = true
	}
	return listed, nil
}

// messagesListedID is the _id of the meta document that says every conversation's messages
// are listed (listAllMessages).
const messagesListedID = "messagesListed"

// listAllMessages gives each conversation that has no list of its messages yet (versions
// before it kept none) that list: its messages in the order of their ids, the order they
// were added in; as migrateProjectLists does, head last, so that it is idempotent. One query
// reads every conversation's id, then the heads by _id, then the messages of the
// conversations still to do. A conversation made since has its list, or, with no message yet,
// needs none (a list without a head is empty), so the step runs once (migrate).
func (s *Store) listAllMessages(ctx context.Context) error {
	cur, err := s.conversations.Find(ctx, bson.M{}, options.Find().SetProjection(bson.M{"_id": 1, "projectId": 1}).SetBatchSize(bigBatch))
	if err != nil {
		return err
	}
	var convs []struct {
		ID        string `bson:"_id"`
		ProjectID string `bson:"projectId"`
	}
	if err := cur.All(ctx, &convs); err != nil {
		return err
	}
	project := make(map[string]known.ProjectID, len(convs))
	owners := make([]string, len(convs))
	for i, c := range convs {
		project[c.ID], owners[i] = known.ProjectID(c.ProjectID), c.ID
	}
	return s.listMissing(ctx, owners, func(c string) list { return s.messageList(project[c], known.ConversationID(c)) },
		s.messages, "conversationId")
}

// eventsListedID and userConversationsListedID are the _ids of the meta documents that say
// every user's tracked events, and every user's conversations, are listed
// (migrateEventLists, migrateUserConversationLists).
const (
	eventsListedID            = "userEventsListed"
	userConversationsListedID = "userConversationsListed"
)

// migrateEventLists gives each user that has no list of its tracked events yet (versions
// before it kept none) that list: its events in the order of their ids, the order they were
// tracked in. It runs after migrateAnonymousRecords, which moves events to the records it
// makes. See listUsers.
func (s *Store) migrateEventLists(ctx context.Context) error {
	return s.listUsers(ctx, s.eventList, s.events)
}

// migrateUserConversationLists gives each user that has no list of its conversations yet
// (versions before it kept none) that list: its conversations in the order of their ids, the
// order they started in. See listUsers.
func (s *Store) migrateUserConversationLists(ctx context.Context) error {
	return s.listUsers(ctx, s.userConversationList, s.conversations)
}

// listUsers writes, for each user that has none, its list listOf of coll's documents that name
// it in userId, in the order of their ids; as listAllMessages does, head last, so that it is
// idempotent and an interrupted start is finished by the next. One query reads every user's
// id, then the heads by _id, then the documents of the users still to do. A user made since
// lists each document as it is made, and one with none needs no list (a list without a head is
// empty), so each such step runs once (migrate).
func (s *Store) listUsers(ctx context.Context, listOf func(known.ProjectID, known.UserID) list, coll *mongo.Collection) error {
	cur, err := s.users.Find(ctx, bson.M{}, options.Find().SetProjection(bson.M{"_id": 1, "projectId": 1}).SetBatchSize(bigBatch))
	if err != nil {
		return err
	}
	var users []struct {
		ID        string `bson:"_id"`
		ProjectID string `bson:"projectId"`
	}
	if err := cur.All(ctx, &users); err != nil {
		return err
	}
	project := make(map[string]known.ProjectID, len(users))
	owners := make([]string, len(users))
	for i, u := range users {
		project[u.ID], owners[i] = known.ProjectID(u.ProjectID), u.ID
	}
	return s.listMissing(ctx, owners, func(u string) list { return listOf(project[u], known.UserID(u)) }, coll, "userId")
}

// visitorConversationsListedID is the _id of the meta document that says every visitor's
// conversations are listed (migrateVisitorConversationLists).
const visitorConversationsListedID = "visitorConversationsListed"

// migrateVisitorConversationLists gives each visitor that has no list of its conversations yet
// (versions before it kept none) that list: its conversations in the order of their ids, the
// order they started in. Visitors have no documents of their own, so one query reads every
// conversation's id, project and visitor, in the order of their ids; then the heads by _id;
// then each list still to do is written whole, head last (list.write), as listUsers writes a
// user's: a start interrupted half way writes the lists without a head again from scratch, at
// the same places, and a list with a head is done. A visitor's conversation started since has
// its place in its list, so the step runs once (migrate). A conversation keeps its visitor for
// life, so the project of a visitor's list is its conversations' own.
func (s *Store) migrateVisitorConversationLists(ctx context.Context) error {
	cur, err := s.conversations.Find(ctx, bson.M{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).
		SetProjection(bson.M{"_id": 1, "projectId": 1, "visitorId": 1}).SetBatchSize(bigBatch))
	if err != nil {
		return err
	}
	var convs []struct {
		ID        string `bson:"_id"`
		ProjectID string `bson:"projectId"`
		VisitorID string `bson:"visitorId"`
	}
	if err := cur.All(ctx, &convs); err != nil {
		return err
	}
	var ls []list
	ids := map[string][]string{}
	for _, c := range convs {
		l := s.visitorConversationList(known.ProjectID(c.ProjectID), known.VisitorID(c.VisitorID))
		if _, seen := ids[l.key]; !seen {
			ls = append(ls, l)
		}
		ids[l.key] = append(ids[l.key], c.ID)
	}
	listed, err := s.headed(ctx, ls)
	if err != nil {
		return err
	}
	for _, l := range ls {
		if !listed[l.key] {
			if err := l.write(ctx, ids[l.key]); err != nil {
				return err
			}
		}
	}
	return nil
}

// migrateIdentities gives every user written before identities had provenance its list of
// identities: the ones its recorded proof covered become proven (by that method, at its time),
// the rest claimed. A user with no visitor was made by the customer's backend (createUser).
func (s *Store) migrateIdentities(ctx context.Context) error {
	cur, err := s.users.Find(ctx, bson.M{"identities": bson.M{"$exists": false}})
	if err != nil {
		return err
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var d userDoc
		if err := cur.Decode(&d); err != nil {
			return err
		}
		ids := legacyIdentities(&d)
		u := known.User{Identities: ids}
		u.Derive()
		_, err := s.users.UpdateOne(ctx, bson.M{"_id": d.ID, "identities": bson.M{"$exists": false}},
			bson.M{"$set": bson.M{"identities": identityDocs(ids), "verified": u.Verified}, "$inc": bson.M{"rev": 1}})
		if err != nil {
			return err
		}
	}
	return cur.Err()
}

// legacyIdentities are the identities of a user document without an identities field.
func legacyIdentities(d *userDoc) []known.Identity {
	source := known.SourceWidget
	if len(d.VisitorIDs) == 0 {
		source = known.SourceAPI
	}
	var method *known.VerificationMethod
	if d.Verified && d.VerificationMethod != nil {
		m := known.VerificationMethod(*d.VerificationMethod)
		method = &m
	}
	provenAt := d.CreatedAt
	if d.VerifiedAt != nil {
		provenAt = *d.VerifiedAt
	}
	email := d.EmailKey
	if email == nil && d.Email != nil {
		k := strings.ToLower(*d.Email)
		email = &k
	}
	var ids []known.Identity
	for _, x := range []struct {
		kind  known.IdentityKind
		value *string
	}{{known.IdentityExternalID, d.ExternalID}, {known.IdentityEmail, email}, {known.IdentityPhone, d.PhoneNumber}} {
		if x.value == nil {
			continue
		}
		id := known.Identity{Kind: x.kind, Value: *x.value, Source: source, At: d.CreatedAt}
		if method != nil && method.Covers(x.kind, d.ExternalID != nil) {
			id.Proven, id.Method, id.At = true, method, provenAt
		}
		ids = append(ids, id)
	}
	return ids
}

// migrateAnonymousRecords moves each anonymous visitor record stored under a random id to the
// id derived from its visitor (AnonymousUserID), where sessions now find it: copy, move its
// conversations and events, then delete the old one and its visitor key.
func (s *Store) migrateAnonymousRecords(ctx context.Context) error {
	cur, err := s.users.Find(ctx, bson.M{"anonymous": true})
	if err != nil {
		return err
	}
	var docs []userDoc
	if err := cur.All(ctx, &docs); err != nil {
		return err
	}
	for _, d := range docs {
		if len(d.VisitorIDs) != 1 {
			continue
		}
		p, v := known.ProjectID(d.ProjectID), known.VisitorID(d.VisitorIDs[0])
		to := AnonymousUserID(p, v)
		if string(to) == d.ID {
			continue
		}
		from := known.UserID(d.ID)
		copied := d
		copied.ID = string(to)
		_, err := s.users.InsertOne(ctx, copied)
		if err != nil && !mongo.IsDuplicateKeyError(err) {
			return err
		}
		if err == nil {
			if err := s.listMovedUser(ctx, p, to); err != nil {
				return err
			}
		}
		if err := s.MoveUserData(ctx, from, to); err != nil {
			return err
		}
		if _, err := s.users.DeleteOne(ctx, bson.M{"_id": d.ID}); err != nil {
			return err
		}
		if err := s.ReleaseKeys(ctx, p, []IdentityKey{{KeyVisitor, string(v)}}, from); err != nil {
			return err
		}
	}
	return nil
}

// listMovedUser lists the copy of an anonymous record that migrateAnonymousRecords made, when
// the project's list of users is written already (else migrateProjectLists, which runs after,
// lists it with the rest); the old record's entry names a deleted user, which readers skip.
func (s *Store) listMovedUser(ctx context.Context, p known.ProjectID, id known.UserID) error {
	l := s.projectList(p, listUsers)
	err := s.lists().FindOne(ctx, bson.M{"_id": l.headID()}).Err()
	if isNoDocuments(err) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = l.append(ctx, string(id))
	return err
}

// migrateMessageCounts counts the messages of each conversation written before conversations
// counted them, where the count is still missing. (A message that another instance adds while
// this one counts starts the count itself and is not added to it: the count then says too
// few, which only the first page's hasNextPage reads.)
func (s *Store) migrateMessageCounts(ctx context.Context) error {
	cur, err := s.conversations.Find(ctx, bson.M{"messages": bson.M{"$exists": false}})
	if err != nil {
		return err
	}
	var docs []conversationDoc
	if err := cur.All(ctx, &docs); err != nil {
		return err
	}
	for _, d := range docs {
		n, err := s.messages.CountDocuments(ctx, bson.M{"conversationId": d.ID})
		if err != nil {
			return err
		}
		if _, err := s.conversations.UpdateOne(ctx, bson.M{"_id": d.ID, "messages": bson.M{"$exists": false}},
			bson.M{"$set": bson.M{"messages": n}}); err != nil {
			return err
		}
	}
	return nil
}

// pendingListedID is the _id of the meta document that says the pending deliveries of earlier
// versions are listed in their webhooks' pending sets (migratePendingDeliveries).
const pendingListedID = "pendingDeliveriesListed"

// migratePendingDeliveries lists the pending webhook deliveries of earlier versions, which kept
// no pending sets, in their webhooks' sets (webhooks.go), where the worker now finds them: in
// the order of their ids, a bucket's worth at a time, each then marked with its bucket
// (pendingIn) by _id. A start interrupted half way lists again only the unmarked ones (an id
// listed twice is read once, and removed with its delivery); the step runs once (migrate).
func (s *Store) migratePendingDeliveries(ctx context.Context) error {
	cur, err := s.deliveries.Find(ctx, bson.M{"status": string(known.DeliveryPending), "pendingIn": bson.M{"$exists": false}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).
			SetProjection(bson.M{"_id": 1, "webhookId": 1, "createdAt": 1}).SetBatchSize(bigBatch))
	if err != nil {
		return err
	}
	var docs []deliveryDoc
	if err := cur.All(ctx, &docs); err != nil {
		return err
	}
	for len(docs) > 0 {
		// A run of one webhook's deliveries, at most a bucket's worth.
		n := 1
		for n < len(docs) && n < pendingBucketSize && docs[n].WebhookID == docs[0].WebhookID {
			n++
		}
		entries := make([]pendingEntry, n)
		for i, d := range docs[:n] {
			entries[i] = pendingEntry{id: d.ID, at: d.CreatedAt}
		}
		in, err := s.pendingSet(known.WebhookID(docs[0].WebhookID)).add(ctx, entries)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := s.markListed(ctx, e.id, in[e.id]); err != nil {
				return err
			}
		}
		docs = docs[n:]
	}
	return nil
}

// markListed records on delivery id that bucket b of its pending set lists it: one update by
// _id, in the delivery's turn.
func (s *Store) markListed(ctx context.Context, id string, b int64) error {
	defer s.serial.lock(s.deliveries, id)()
	_, err := s.deliveries.UpdateOne(ctx, bson.M{"_id": id}, bson.M{"$set": bson.M{"pendingIn": b}})
	return err
}
