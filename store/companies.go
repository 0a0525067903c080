package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

type organizationDoc struct {
	ID         string         `bson:"_id"`
	ProjectID  string         `bson:"projectId"`
	ExternalID string         `bson:"externalId"`
	Name       string         `bson:"name"`
	Attrs      map[string]any `bson:"attrs"`
	CreatedAt  time.Time      `bson:"createdAt"`
	UpdatedAt  time.Time      `bson:"updatedAt"`
}

func (d *organizationDoc) organization() *known.Organization {
	return &known.Organization{ID: known.OrganizationID(d.ID), ProjectID: known.ProjectID(d.ProjectID),
		ExternalID: d.ExternalID, Name: d.Name, Attrs: nonNilMap(d.Attrs), CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
}

type dealDoc struct {
	Name      *string   `bson:"name,omitempty"`
	Amount    *float64  `bson:"amount,omitempty"`
	Currency  *string   `bson:"currency,omitempty"`
	Stage     *string   `bson:"stage,omitempty"`
	Status    *string   `bson:"status,omitempty"`
	UpdatedAt time.Time `bson:"updatedAt"`
}

type companyDoc struct {
	ID         string         `bson:"_id"`
	ProjectID  string         `bson:"projectId"`
	ExternalID string         `bson:"externalId"`
	Name       *string        `bson:"name,omitempty"`
	Stage      *string        `bson:"stage,omitempty"`
	Metadata   map[string]any `bson:"metadata"`
	Deal       *dealDoc       `bson:"deal,omitempty"`
	Rev        int64          `bson:"rev"`
	CreatedAt  time.Time      `bson:"createdAt"`
	UpdatedAt  time.Time      `bson:"updatedAt"`
}

func (d *companyDoc) company() *known.Company {
	c := &known.Company{ID: known.CompanyID(d.ID), ProjectID: known.ProjectID(d.ProjectID), ExternalID: d.ExternalID,
		Name: d.Name, Stage: d.Stage, Metadata: nonNilMap(d.Metadata), CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
	if d.Deal != nil {
		c.Deal = &known.Deal{Name: d.Deal.Name, Amount: d.Deal.Amount, Currency: d.Deal.Currency, Stage: d.Deal.Stage,
			Status: (*known.DealStatus)(d.Deal.Status), UpdatedAt: d.Deal.UpdatedAt}
	}
	return c
}

func nonNilMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// upsertByID applies update to the document id of coll (made with ext as its externalId when
// it does not exist yet) and decodes it into out. A document it makes is appended to the
// project's list of coll's documents (lists.go).
func (s *Store) upsertByID(ctx context.Context, coll *mongo.Collection, p known.ProjectID, id Keyed, ext string, now time.Time, update bson.M, out any) error {
	return s.upsertListed(ctx, coll, p, id, func() (bool, error) {
		defer s.serial.lock(coll, id.ID)()
		inserted, err := s.upsertByIDLocked(ctx, coll, p, bson.M{"_id": id.ID}, ext, now, update, out)
		if mongo.IsDuplicateKeyError(err) {
			// Two upserts of one new document both inserted; the loser now finds it.
			inserted, err = s.upsertByIDLocked(ctx, coll, p, bson.M{"_id": id.ID}, ext, now, update, out)
		}
		if err != nil {
			return false, fmt.Errorf("store: writing %s: %w", coll.Name(), err)
		}
		return inserted, nil
	})
}

// upsertListed runs write, which upserts document id of coll and reports whether it inserted
// it, and then appends a document it inserted to project p's list of coll's documents: after
// the write, so that the list never names a document that is not there. For an id the caller
// made just now (id.Made), the list's place is taken alongside the write, so that a new
// company costs identify one round trip more, not two; should the write find the document
// after all, the place stays empty, and readers skip it. Should naming the place fail, the
// document exists but is missing from the project's list: the error wraps ErrUnlisted.
func (s *Store) upsertListed(ctx context.Context, coll *mongo.Collection, p known.ProjectID, id Keyed, write func() (bool, error)) error {
	l := s.projectList(p, coll.Name())
	var pos int64
	var reserved error
	var wg sync.WaitGroup
	if id.Made {
		wg.Go(func() { pos, reserved = l.reserve(ctx) })
	}
	inserted, err := write()
	wg.Wait()
	switch {
	case err != nil || !inserted:
		return err
	case !id.Made:
		pos, reserved = l.reserve(ctx)
	}
	if reserved == nil {
		reserved = l.set(ctx, pos, id.ID)
	}
	if reserved != nil {
		// Repaired in the background (listrepair.go): at the reserved place, or at a new one
		// when reserving failed (a failed reserve gives position 0).
		s.unlisted(ctx, l, coll, pos, id.ID)
		return fmt.Errorf("%w: %s %s: %w", ErrUnlisted, coll.Name(), id.ID, reserved)
	}
	return nil
}

// upsertByIDLocked is upsertByID's write, with the caller's filter and turn. It reports
// whether the write made the document: the document's insertedBy is set on insert to a value
// of this call's own, so that of two upserts of one new document (two instances on MongoDB)
// only the one whose insert landed says so, and an update of a document made before this
// field was written (none) never does.
func (s *Store) upsertByIDLocked(ctx context.Context, coll *mongo.Collection, p known.ProjectID, filter bson.M, ext string, now time.Time, update bson.M, out any) (bool, error) {
	token := NewID()
	setOnInsert := bson.M{"projectId": string(p), "externalId": ext, "createdAt": now, "insertedBy": token}
	set, _ := update["$set"].(bson.M)
	if set == nil {
		set = bson.M{}
		update["$set"] = set
	}
	set["updatedAt"] = now
	for f := range setOnInsert {
		delete(set, f)
	}
	update["$setOnInsert"] = setOnInsert
	update["$inc"] = bson.M{"rev": 1}
	opts := options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)
	raw, err := coll.FindOneAndUpdate(ctx, filter, update, opts).Raw()
	if err != nil {
		return false, err
	}
	if err := bson.Unmarshal(raw, out); err != nil {
		return false, err
	}
	by, ok := raw.Lookup("insertedBy").StringValueOK()
	return ok && by == token, nil
}

// TooManyKeysError says that a write would leave a document's metadata with Keys keys, more
// than its limit: nothing was written.
type TooManyKeysError struct{ Keys, Limit int }

func (e *TooManyKeysError) Error() string {
	return fmt.Sprintf("store: metadata would have %d keys; the limit is %d", e.Keys, e.Limit)
}

// upsertCompanyChecked is upsertByID for a write that adds metadata keys: the company is read
// and written in one turn (serial), and only onto the revision read, so that the metadata holds
// at most limit keys after any number of concurrent writes (*TooManyKeysError otherwise).
func (s *Store) upsertCompanyChecked(ctx context.Context, p known.ProjectID, key Keyed, ext string, now time.Time, update bson.M, meta map[string]any, limit int, out *companyDoc) error {
	id := key.ID
	return s.upsertListed(ctx, s.companies, p, key, func() (bool, error) {
		for attempt := 0; ; attempt++ {
			var inserted bool
			err := func() error {
				defer s.serial.lock(s.companies, id)()
				var cur companyDoc
				filter := bson.M{"_id": id, "rev": bson.M{"$exists": false}} // absent: only an insert may land
				switch err := s.companies.FindOne(ctx, bson.M{"_id": id}).Decode(&cur); {
				case err == nil && cur.Rev == 0:
					filter = bson.M{"_id": id, "rev": bson.M{"$in": bson.A{nil, int64(0)}}}
				case err == nil:
					filter = bson.M{"_id": id, "rev": cur.Rev}
				case !isNoDocuments(err):
					return err
				}
				if s.serial.on {
					// FerretDB reads and decodes the whole collection for any filter but {_id}.
					// Every write of a company in this process holds its turn (serial), so the
					// revision just read is the one the write lands on: _id alone says as much.
					filter = bson.M{"_id": id}
				}
				n := len(cur.Metadata)
				for k := range meta {
					if _, ok := cur.Metadata[k]; !ok {
						n++
					}
				}
				if n > limit {
					return &TooManyKeysError{Keys: n, Limit: limit}
				}
				var err error
				inserted, err = s.upsertByIDLocked(ctx, s.companies, p, filter, ext, now, update, out)
				return err
			}()
			if !mongo.IsDuplicateKeyError(err) || attempt >= 50 {
				if err != nil {
					var tm *TooManyKeysError
					if errors.As(err, &tm) {
						return false, err
					}
					return false, fmt.Errorf("store: writing companies: %w", err)
				}
				return inserted, nil
			}
			// Another write came in between (the filter missed, so the upsert tried to insert).
		}
	})
}

// UpsertOrganization makes or updates project p's organization with the customer's id ext.
// attrs, when non-nil, replaces its attributes.
func (s *Store) UpsertOrganization(ctx context.Context, p known.ProjectID, ext, name string, attrs map[string]any, now time.Time) (*known.Organization, error) {
	k := IdentityKey{KeyOrganization, ext}
	ids, err := s.KeyedIDs(ctx, p, []IdentityKey{k})
	if err != nil {
		return nil, err
	}
	return s.UpdateOrganization(ctx, p, ids[k], ext, name, attrs, now)
}

// UpdateOrganization makes or updates project p's organization id, whose customer's id is ext.
func (s *Store) UpdateOrganization(ctx context.Context, p known.ProjectID, id Keyed, ext, name string, attrs map[string]any, now time.Time) (*known.Organization, error) {
	set := bson.M{"name": name}
	if attrs != nil {
		set["attrs"] = attrs
	}
	var d organizationDoc
	if err := s.upsertByID(ctx, s.organizations, p, id, ext, now, bson.M{"$set": set}, &d); err != nil {
		return nil, err
	}
	return d.organization(), nil
}

// CompanyUpdate changes a company; nil fields stay as they are.
type CompanyUpdate struct {
	Name *string
	// Metadata sets these keys of the company's metadata.
	Metadata map[string]any
	Stage    *string
	// StageIfEmpty sets Stage only when the company has no stage (IF_EMPTY).
	StageIfEmpty bool
	// MaxMetadataKeys, when positive, is how many keys the metadata may hold after the write:
	// more is a *TooManyKeysError and writes nothing.
	MaxMetadataKeys int
	Deal            *known.Deal
}

// UpsertCompany makes or updates project p's company with the customer's id ext.
func (s *Store) UpsertCompany(ctx context.Context, p known.ProjectID, ext string, up CompanyUpdate, now time.Time) (*known.Company, error) {
	k := IdentityKey{KeyCompany, ext}
	ids, err := s.KeyedIDs(ctx, p, []IdentityKey{k})
	if err != nil {
		return nil, err
	}
	return s.UpdateCompany(ctx, p, ids[k], ext, up, now)
}

// UpdateCompany makes or updates project p's company id, whose customer's id is ext (its id
// from KeyedIDs).
func (s *Store) UpdateCompany(ctx context.Context, p known.ProjectID, id Keyed, ext string, up CompanyUpdate, now time.Time) (*known.Company, error) {
	set := bson.M{}
	if up.Name != nil {
		set["name"] = *up.Name
	}
	for k, v := range up.Metadata {
		set["metadata."+k] = v
	}
	if up.Stage != nil && !up.StageIfEmpty {
		set["stage"] = *up.Stage
	}
	if d := up.Deal; d != nil {
		for f, v := range map[string]any{"name": d.Name, "amount": d.Amount, "currency": d.Currency, "stage": d.Stage, "status": d.Status} {
			if !isNilPtr(v) {
				set["deal."+f] = v
			}
		}
		set["deal.updatedAt"] = now
	}
	var d companyDoc
	update := bson.M{"$set": set}
	if len(up.Metadata) == 0 {
		update["$setOnInsert"] = bson.M{"metadata": bson.M{}}
	}
	var err error
	if len(up.Metadata) > 0 && up.MaxMetadataKeys > 0 {
		err = s.upsertCompanyChecked(ctx, p, id, ext, now, update, up.Metadata, up.MaxMetadataKeys, &d)
	} else {
		err = s.upsertByID(ctx, s.companies, p, id, ext, now, update, &d)
	}
	if err != nil {
		return nil, err
	}
	if up.Stage != nil && up.StageIfEmpty && d.Stage == nil {
		before, err := updateIf(ctx, s, s.companies, d.ID, bson.M{"stage": nil},
			func(c *companyDoc) bool { return c.Stage == nil }, bson.M{"$set": bson.M{"stage": *up.Stage}})
		if err != nil {
			return nil, fmt.Errorf("store: setting company stage: %w", err)
		}
		if before == nil { // another call set a stage first: IF_EMPTY keeps it
			return s.Company(ctx, p, known.CompanyID(d.ID))
		}
		d = *before
		d.Stage = up.Stage
	}
	return d.company(), nil
}

func isNilPtr(v any) bool {
	switch t := v.(type) {
	case *string:
		return t == nil
	case *float64:
		return t == nil
	case *known.DealStatus:
		return t == nil
	}
	return v == nil
}

// CompanyIDByExternalID returns the id of project p's company with the customer's id ext, or
// NotFound.
func (s *Store) CompanyIDByExternalID(ctx context.Context, p known.ProjectID, ext string) (known.CompanyID, error) {
	id, err := s.KeyOwner(ctx, p, IdentityKey{KeyCompany, ext})
	return known.CompanyID(id), err
}

// Company returns project p's company with this id, or NotFound.
func (s *Store) Company(ctx context.Context, p known.ProjectID, id known.CompanyID) (*known.Company, error) {
	var d companyDoc
	if err := s.findInProject(ctx, s.companies, p, string(id), &d, &d.ProjectID); err != nil {
		return nil, err
	}
	return d.company(), nil
}

// Organization returns project p's organization with this id, or NotFound.
func (s *Store) Organization(ctx context.Context, p known.ProjectID, id known.OrganizationID) (*known.Organization, error) {
	var d organizationDoc
	if err := s.findInProject(ctx, s.organizations, p, string(id), &d, &d.ProjectID); err != nil {
		return nil, err
	}
	return d.organization(), nil
}

// findInProject decodes the document of coll with this _id into out, or returns NotFound
// when there is none or it belongs to another project (*project is the decoded projectId).
func (s *Store) findInProject(ctx context.Context, coll *mongo.Collection, p known.ProjectID, id string, out any, project *string) error {
	if err := coll.FindOne(ctx, bson.M{"_id": id}).Decode(out); err != nil {
		if isNoDocuments(err) {
			return notFound(singular(coll.Name()))
		}
		return fmt.Errorf("store: finding %s: %w", coll.Name(), err)
	}
	if *project != string(p) {
		return notFound(singular(coll.Name()))
	}
	return nil
}

func singular(collection string) string {
	switch collection {
	case "companies":
		return "company"
	case "identity_keys":
		return "identity key"
	}
	return collection[:len(collection)-1]
}

// ProjectCompanies returns a page of project p's companies, newest first, from the project's
// list (lists.go): a few reads by _id and one read of the page's companies, however many the
// project or the store holds. after[i] is the page.After that continues after cs[i];
// page.After is "" or such a value, anything else is BAD_USER_INPUT (field after).
func (s *Store) ProjectCompanies(ctx context.Context, p known.ProjectID, page known.Page) (cs []*known.Company, after []string, more bool, err error) {
	return pageProjectList(ctx, s, p, s.companies, page,
		func(d *companyDoc) (string, string) { return d.ID, d.ProjectID }, (*companyDoc).company)
}

// ProjectOrganizations is ProjectCompanies for the project's organizations.
func (s *Store) ProjectOrganizations(ctx context.Context, p known.ProjectID, page known.Page) (os []*known.Organization, after []string, more bool, err error) {
	return pageProjectList(ctx, s, p, s.organizations, page,
		func(d *organizationDoc) (string, string) { return d.ID, d.ProjectID }, (*organizationDoc).organization)
}

// Companies returns a page of project p's companies, newest first by id: a query of the
// collection, which the embedded store answers by reading all of it (ProjectCompanies reads
// the project's list; this serves cursors by id made before it).
func (s *Store) Companies(ctx context.Context, p known.ProjectID, page known.Page) ([]*known.Company, bool, error) {
	var docs []companyDoc
	more, err := s.page(ctx, s.companies, bson.M{"projectId": string(p)}, page, &docs)
	return mapDocs(docs, (*companyDoc).company), more, err
}

// Organizations returns a page of project p's organizations, newest first by id: a query of
// the collection (ProjectOrganizations reads the project's list; this serves cursors by id
// made before it).
func (s *Store) Organizations(ctx context.Context, p known.ProjectID, page known.Page) ([]*known.Organization, bool, error) {
	var docs []organizationDoc
	more, err := s.page(ctx, s.organizations, bson.M{"projectId": string(p)}, page, &docs)
	return mapDocs(docs, (*organizationDoc).organization), more, err
}

// CompaniesByIDs returns project p's companies with these ids (one query; missing ones left out).
func (s *Store) CompaniesByIDs(ctx context.Context, p known.ProjectID, ids []known.CompanyID) ([]*known.Company, error) {
	var docs []companyDoc
	if err := s.byIDs(ctx, s.companies, strs(ids), &docs); err != nil {
		return nil, err
	}
	return inProject(mapDocs(docs, (*companyDoc).company), p, func(c *known.Company) known.ProjectID { return c.ProjectID }), nil
}

// OrganizationsByIDs returns project p's organizations with these ids (one query).
func (s *Store) OrganizationsByIDs(ctx context.Context, p known.ProjectID, ids []known.OrganizationID) ([]*known.Organization, error) {
	var docs []organizationDoc
	if err := s.byIDs(ctx, s.organizations, strs(ids), &docs); err != nil {
		return nil, err
	}
	return inProject(mapDocs(docs, (*organizationDoc).organization), p, func(o *known.Organization) known.ProjectID { return o.ProjectID }), nil
}

func mapDocs[D any, T any](docs []D, conv func(*D) T) []T {
	out := make([]T, len(docs))
	for i := range docs {
		out[i] = conv(&docs[i])
	}
	return out
}

func inProject[T any](items []T, p known.ProjectID, project func(T) known.ProjectID) []T {
	out := items[:0]
	for _, it := range items {
		if project(it) == p {
			out = append(out, it)
		}
	}
	return out
}
