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
	// Conversations are stored with their last message (Last, when set) also as a message.
	Conversations []*known.Conversation
}

// seedChunk is how many documents one insert of SeedBulk carries.
const seedChunk = 1000

// SeedBulk inserts seed's documents, shaped exactly like those the store writes, in unordered
// inserts of 1,000: for benchmarks and tests only, which need many users quickly. It records
// no events and checks nothing (an existing id or key fails the call, part-way).
func (s *Store) SeedBulk(ctx context.Context, seed Seed) error {
	var users, keys, companies, orgs, convs, msgs []any
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
			d.Last = &messageDoc{ID: string(m.ID), ProjectID: string(m.ProjectID), ConversationID: string(m.ConversationID),
				Body: m.Body, Author: string(m.Author), Verified: m.Verified, CreatedAt: m.CreatedAt}
			msgs = append(msgs, *d.Last)
		}
		convs = append(convs, d)
	}
	for _, part := range []struct {
		coll *mongo.Collection
		docs []any
	}{{s.identityKeys, keys}, {s.companies, companies}, {s.organizations, orgs}, {s.users, users},
		{s.conversations, convs}, {s.messages, msgs}} {
		for i := 0; i < len(part.docs); i += seedChunk {
			chunk := part.docs[i:min(i+seedChunk, len(part.docs))]
			if _, err := part.coll.InsertMany(ctx, chunk, options.InsertMany().SetOrdered(false)); err != nil {
				return fmt.Errorf("store: seeding %s: %w", part.coll.Name(), err)
			}
		}
	}
	// Each project's conversations are listed, oldest first, as the start-up migration lists
	// those of earlier versions: its list must be empty.
	byProject := map[known.ProjectID][]string{}
	for _, c := range seed.Conversations {
		byProject[c.ProjectID] = append(byProject[c.ProjectID], string(c.ID))
	}
	for p, ids := range byProject {
		l := s.conversationList(p)
		if n, err := l.length(ctx); err != nil {
			return err
		} else if n > 0 {
			return fmt.Errorf("store: seeding project %s: its conversation list is not empty", p)
		}
		slices.Sort(ids)
		if err := l.write(ctx, ids); err != nil {
			return err
		}
	}
	return nil
}
