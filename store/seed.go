package store

import (
	"context"
	"fmt"
	"slices"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Seed is data to store in bulk with SeedBulk: for benchmarks and tests only.
type Seed struct {
	// Users are stored with the identity keys of their identities, as CreateUser and identify
	// leave them, and without pending events (as if published).
	Users []*known.User
	// Companies and Organizations are stored with their keys (the customer's ids).
	Companies     []*known.Company
	Organizations []*known.Organization
	// Conversations are stored with their last message (Last, when set) also as a message,
	// and listed in their user's list of conversations.
	Conversations []*known.Conversation
}

// seedChunk is how many documents one insert of SeedBulk carries.
const seedChunk = 1000

// SeedBulk inserts seed's documents, shaped exactly like those the store writes, in unordered
// inserts of 1,000, and lists (lists.go) each project's users, companies, organizations and
// conversations in the order of their ids, and each conversation's message: for benchmarks
// and tests only, which need many users quickly. It records no events and checks nothing (an
// existing id or key fails the call, part-way; so does a project whose list of one of them is
// not empty).
func (s *Store) SeedBulk(ctx context.Context, seed Seed) error {
	var users, keys, companies, orgs, convs, msgs, msgLists []any
	for _, u := range seed.Users {
		d := newUserDoc(u)
		users = append(users, d)
		for _, id := range u.Identities {
			keys = append(keys, identityKeyDoc{ID: keyID(u.ProjectID, KeyOf(id.Kind, id.Value)), ProjectID: string(u.ProjectID),
				OwnerID: string(u.ID), CreatedAt: u.CreatedAt})
		}
	}
	for _, c := range seed.Companies {
		companies = append(companies, companyDoc{ID: string(c.ID), ProjectID: string(c.ProjectID), ExternalID: c.ExternalID,
			Name: c.Name, Stage: c.Stage, Metadata: nonNilMap(c.Metadata), Rev: 1, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt})
		keys = append(keys, identityKeyDoc{ID: keyID(c.ProjectID, IdentityKey{KeyCompany, c.ExternalID}), ProjectID: string(c.ProjectID),
			OwnerID: string(c.ID), CreatedAt: c.CreatedAt})
	}
	for _, o := range seed.Organizations {
		orgs = append(orgs, organizationDoc{ID: string(o.ID), ProjectID: string(o.ProjectID), ExternalID: o.ExternalID,
			Name: o.Name, Attrs: o.Attrs, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt})
		keys = append(keys, identityKeyDoc{ID: keyID(o.ProjectID, IdentityKey{KeyOrganization, o.ExternalID}), ProjectID: string(o.ProjectID),
			OwnerID: string(o.ID), CreatedAt: o.CreatedAt})
	}
	for _, c := range seed.Conversations {
		n := 0
		d := conversationDoc{ID: string(c.ID), ProjectID: string(c.ProjectID), UserID: (*string)(c.UserID),
			VisitorID: string(c.VisitorID), Status: string(c.Status), Messages: &n, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
		if m := c.Last; m != nil {
			n = 1
			md := messageDoc{ID: string(m.ID), ProjectID: string(m.ProjectID), ConversationID: string(m.ConversationID),
				Body: m.Body, Author: string(m.Author), Verified: m.Verified, CreatedAt: m.CreatedAt}
			d.Last = lastOf(&md)
			msgs = append(msgs, md)
		}
		convs = append(convs, d)
		// Its list of messages (its one message, or none), inserted with the rest: its
		// conversation is new, so the list is too.
		var listed []string
		if c.Last != nil {
			listed = append(listed, string(c.Last.ID))
		}
		for _, d := range s.messageList(c.ProjectID, c.ID).docs(listed) {
			msgLists = append(msgLists, d)
		}
	}
	for _, part := range []struct {
		coll *mongo.Collection
		docs []any
	}{{s.identityKeys, keys}, {s.companies, companies}, {s.organizations, orgs}, {s.users, users},
		{s.conversations, convs}, {s.messages, msgs}} {
		if err := s.insertChunks(ctx, part.coll, part.docs); err != nil {
			return err
		}
	}
	// Each project's users, companies, organizations and conversations are listed, oldest
	// first by id, as the start-up migration lists those of earlier versions: the project's
	// lists of them must be empty.
	lists := map[string]map[known.ProjectID][]string{}
	add := func(name string, p known.ProjectID, id string) {
		if lists[name] == nil {
			lists[name] = map[known.ProjectID][]string{}
		}
		lists[name][p] = append(lists[name][p], id)
	}
	for _, u := range seed.Users {
		add(listUsers, u.ProjectID, string(u.ID))
	}
	for _, c := range seed.Companies {
		add(listCompanies, c.ProjectID, string(c.ID))
	}
	for _, o := range seed.Organizations {
		add(listOrganizations, o.ProjectID, string(o.ID))
	}
	// And each user's conversations in its list of them (userConversationList), oldest first
	// by id: the users are new, so their lists are too.
	type owner struct {
		p known.ProjectID
		u known.UserID
	}
	byUser := map[owner][]string{}
	// And each visitor's in its list of them (visitorConversationList), the same way.
	type visitor struct {
		p known.ProjectID
		v known.VisitorID
	}
	byVisitor := map[visitor][]string{}
	for _, c := range seed.Conversations {
		add(listConversations, c.ProjectID, string(c.ID))
		if c.UserID != nil {
			o := owner{c.ProjectID, *c.UserID}
			byUser[o] = append(byUser[o], string(c.ID))
		}
		v := visitor{c.ProjectID, c.VisitorID}
		byVisitor[v] = append(byVisitor[v], string(c.ID))
	}
	for o, ids := range byUser {
		slices.Sort(ids)
		for _, d := range s.userConversationList(o.p, o.u).docs(ids) {
			msgLists = append(msgLists, d)
		}
	}
	for v, ids := range byVisitor {
		slices.Sort(ids)
		for _, d := range s.visitorConversationList(v.p, v.v).docs(ids) {
			msgLists = append(msgLists, d)
		}
	}
	if err := s.insertChunks(ctx, s.lists(), msgLists); err != nil {
		return err
	}
	for name, byProject := range lists {
		for p, ids := range byProject {
			l := s.projectList(p, name)
			if n, err := l.length(ctx); err != nil {
				return err
			} else if n > 0 {
				return fmt.Errorf("store: seeding project %s: its list of %s is not empty", p, name)
			}
			slices.Sort(ids)
			if err := l.write(ctx, ids); err != nil {
				return err
			}
		}
	}
	return nil
}

// insertChunks inserts docs into coll in unordered inserts of seedChunk.
func (s *Store) insertChunks(ctx context.Context, coll *mongo.Collection, docs []any) error {
	for i := 0; i < len(docs); i += seedChunk {
		chunk := docs[i:min(i+seedChunk, len(docs))]
		if _, err := coll.InsertMany(ctx, chunk, options.InsertMany().SetOrdered(false)); err != nil {
			return fmt.Errorf("store: seeding %s: %w", coll.Name(), err)
		}
	}
	return nil
}
