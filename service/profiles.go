package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/identity"
	"github.com/knownhq/known/profile"
	"github.com/knownhq/known/store"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"
)

// profiler fetches external profiles: at most perProject fetches at once per project, one
// fetch per user at a time however many requests want it (they share it).
type profiler struct {
	client     *profile.Client
	maxAge     time.Duration
	perProject int
	flights    singleflight.Group
	mu         sync.Mutex
	sems       map[known.ProjectID]chan struct{}
	background sync.WaitGroup
}

func (pf *profiler) acquire(ctx context.Context, p known.ProjectID) (func(), error) {
	pf.mu.Lock()
	sem := pf.sems[p]
	if sem == nil {
		sem = make(chan struct{}, pf.perProject)
		pf.sems[p] = sem
	}
	pf.mu.Unlock()
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// EndpointInput is updateProject's userDataEndpoint (seed 000).
type EndpointInput struct {
	Enabled     bool
	URL         string
	IDPlacement string // PATH or QUERY
	QueryParam  *string
	// Headers, when non-nil, replaces the stored headers; nil keeps them.
	Headers []known.Header
}

// Endpoint limits.
const (
	MaxHeaders     = 20
	MaxHeaderValue = 4096
	MaxURL         = 2048
)

var headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")

// endpointUpdate checks a userDataEndpoint input and seals its header values.
func (s *Service) endpointUpdate(v *validator, p known.ProjectID, in *EndpointInput) *store.EndpointUpdate {
	at := func(name ...string) []string { return append(path("input", "userDataEndpoint"), name...) }
	up := &store.EndpointUpdate{Enabled: in.Enabled, URL: strings.TrimSpace(in.URL), IDPlacement: in.IDPlacement, QueryParam: "id"}
	if up.IDPlacement != "PATH" && up.IDPlacement != "QUERY" {
		v.add(at("idPlacement"), known.Invalid, "idPlacement must be PATH or QUERY")
	}
	u, err := url.Parse(up.URL)
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || len(up.URL) > MaxURL:
		v.add(at("url"), known.Invalid, "url must be an http(s) URL like https://api.example.com/users/{id}")
	case up.IDPlacement == "PATH" && !strings.Contains(up.URL, "{id}"):
		v.add(at("url"), known.Invalid, "with idPlacement PATH the url must contain {id}")
	}
	if in.QueryParam != nil {
		qp := strings.TrimSpace(*in.QueryParam)
		if qp == "" || len(qp) > 64 || qp != url.QueryEscape(qp) {
			v.add(at("queryParam"), known.Invalid, "queryParam must be a plain query parameter name like id")
		}
		up.QueryParam = qp
	}
	if in.Headers != nil {
		if len(in.Headers) > MaxHeaders {
			v.add(at("headers"), known.LimitExceeded, "%d headers; the limit is %d", len(in.Headers), MaxHeaders)
		}
		up.Headers = []store.SealedHeader{}
		for i, h := range in.Headers {
			name := http.CanonicalHeaderKey(strings.TrimSpace(h.Name))
			switch {
			case !headerName.MatchString(name):
				v.add(at("headers", strconv.Itoa(i), "name"), known.Invalid, "not an HTTP header name")
			case strings.ContainsAny(h.Value, "\r\n\x00") || len(h.Value) > MaxHeaderValue:
				v.add(at("headers", strconv.Itoa(i), "value"), known.Invalid, "a header value is one line of at most %d bytes", MaxHeaderValue)
			}
			up.Headers = append(up.Headers, store.SealedHeader{Name: name, Value: s.box.Seal([]byte(h.Value), headerContext(p, name))})
		}
	}
	return up
}

func headerContext(p known.ProjectID, name string) string { return string(p) + "|header|" + name }

// endpoint returns project p's user-data endpoint ready to call, or nil when it has none or it
// is disabled: as read at most CacheTTL ago.
func (s *Service) endpoint(ctx context.Context, p known.ProjectID) (*profile.Endpoint, error) {
	if ep, ok := s.endpoints.get(p); ok {
		return ep, nil
	}
	ep, err := s.readEndpoint(ctx, p)
	if err == nil {
		s.endpoints.put(p, ep)
	}
	return ep, err
}

func (s *Service) readEndpoint(ctx context.Context, p known.ProjectID) (*profile.Endpoint, error) {
	e, sealed, err := s.store.EndpointHeaders(ctx, p)
	if err != nil || e == nil || !e.Enabled {
		return nil, err
	}
	ep := &profile.Endpoint{URL: e.URL, IDPlacement: e.IDPlacement, QueryParam: e.QueryParam}
	for _, h := range sealed {
		v, err := s.box.Open(h.Value, headerContext(p, h.Name))
		if err != nil {
			return nil, err
		}
		ep.Headers = append(ep.Headers, known.Header{Name: h.Name, Value: string(v)})
	}
	return ep, nil
}

// stale reports whether a stored profile should be fetched again.
func (s *Service) stale(pr *known.Profile, now time.Time) bool {
	return pr == nil || now.Sub(pr.CheckedAt) > s.prof.maxAge
}

// profileWant is a user whose profile is due: its externalId and the profile stored, if any.
type profileWant struct {
	user known.UserID
	ext  string
	prev *known.Profile
}

// fetchProfile asks the user API for one user's profile: at most perProject fetches at once
// per project; concurrent callers for one user share one fetch.
func (s *Service) fetchProfile(ctx context.Context, p known.ProjectID, ep *profile.Endpoint, w profileWant) (profile.Result, error) {
	v, err, _ := s.prof.flights.Do(string(p)+"|"+string(w.user), func() (any, error) {
		ctx := context.WithoutCancel(ctx) // shared: one caller giving up must not fail the others
		release, err := s.prof.acquire(ctx, p)
		if err != nil {
			return nil, err
		}
		defer release()
		return s.prof.client.Fetch(ctx, *ep, w.ext), nil
	})
	if err != nil {
		return profile.Result{}, err
	}
	return v.(profile.Result), nil
}

// refreshProfiles fetches these users' profiles now (seed 000), then, in a number of commands
// that does not grow with their number: reads the users again (a user deleted meanwhile keeps
// nothing), stores the profiles in one bulk write and records the endpoint's status once. A
// found profile whose data changed since it was last applied is applied to its user through
// the identity pipeline, one user at a time: 200 updates names, email, phone and metadata; 404
// keeps the user as a new profile; 401/403 change no user; errors and timeouts keep the earlier
// data. The result maps each user to its new profile; deleted users are absent.
//
// Each user's apply stands alone: one that fails (its write refused by the database, say)
// neither cancels nor undoes the others, whose profiles are stored, and the endpoint's status
// is recorded. The failed user's profile is returned as fetched but not stored, so that the
// next read fetches and applies it again; its error is logged here, because a page that lists
// many users should not fail for one user's profile, and a batch has no way to fail one key
// alone (the loader gives a batch's error to every key).
func (s *Service) refreshProfiles(ctx context.Context, p known.ProjectID, ep *profile.Endpoint, want []profileWant) (map[known.UserID]*known.Profile, error) {
	results := make([]profile.Result, len(want))
	var g errgroup.Group
	for i, w := range want {
		g.Go(func() (err error) {
			results[i], err = s.fetchProfile(ctx, p, ep, w)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	ids := make([]known.UserID, len(want))
	for i, w := range want {
		ids[i] = w.user
	}
	found, err := s.store.UsersByIDs(ctx, p, ids)
	if err != nil {
		return nil, err
	}
	users := make(map[known.UserID]*known.User, len(found))
	for _, u := range found {
		users[u.ID] = u
	}
	now := s.clock()
	out := make(map[known.UserID]*known.Profile, len(want))
	var save []*known.Profile
	var saveAt []int          // the index in want of each of save
	var check *profile.Result // the one the endpoint's status shows: the first with an error, else the last
	// Not errgroup.WithContext: one failed apply must not cancel the others mid-write.
	var apply errgroup.Group
	apply.SetLimit(s.prof.perProject)
	failed := make([]error, len(want))
	for i, w := range want {
		r := results[i] // a copy per iteration: check may keep its address
		u := users[w.user]
		if u == nil {
			continue // deleted while we asked: keep nothing of theirs
		}
		if r.Status == known.ProfileFound {
			r.Data, r.Error = s.storable(p, w.user, r.Data, r.Error)
		}
		if check == nil || check.Error == "" {
			check = &r
		}
		pr := &known.Profile{UserID: w.user, ProjectID: p, Status: r.Status, CheckedAt: now}
		if w.prev != nil {
			pr.Applied = w.prev.Applied
		}
		switch r.Status {
		case known.ProfileFound:
			d := r.Data
			pr.FirstName, pr.LastName, pr.Email, pr.PhoneNumber, pr.Metadata, pr.FetchedAt = d.FirstName, d.LastName, d.Email, d.PhoneNumber, d.Metadata, &now
			if h := dataHash(d); h == "" || h != pr.Applied {
				pr.Applied = h
				apply.Go(func() error {
					failed[i] = s.applyProfile(ctx, u, d, now)
					return nil
				})
			}
		case known.ProfileNotFound:
			pr.FetchedAt = &now
		default:
			if prev := w.prev; prev != nil {
				pr.FirstName, pr.LastName, pr.Email, pr.PhoneNumber, pr.Metadata, pr.FetchedAt = prev.FirstName, prev.LastName, prev.Email, prev.PhoneNumber, prev.Metadata, prev.FetchedAt
			}
		}
		out[w.user] = pr
		save, saveAt = append(save, pr), append(saveAt, i)
	}
	// Profiles are stored after they were applied: a failed apply leaves the old profile, so
	// that the next read fetches and applies it again.
	_ = apply.Wait() // the applies return nil; their errors are in failed
	if err := ctx.Err(); err != nil {
		return nil, err // the caller gave up: what failed for that reason is no fault to log
	}
	kept := save[:0]
	for j, pr := range save {
		if err := failed[saveAt[j]]; err != nil {
			s.log.Error().Err(err).Str("project", string(p)).Str("user", string(pr.UserID)).
				Msg("a fetched profile could not be applied to its user; the next read fetches it again")
			continue
		}
		kept = append(kept, pr)
	}
	if err := s.store.SaveProfiles(ctx, kept...); err != nil {
		return nil, err
	}
	if check != nil {
		var msg *string
		if check.Error != "" {
			msg = &check.Error
		}
		if err := s.store.RecordEndpointCheck(ctx, p, check.Status, msg, now); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// storable returns a found profile's data without the metadata keys a database cannot hold,
// so that the rest is stored and the customer's API is not asked again on every read; the
// error then names them.
func (s *Service) storable(p known.ProjectID, u known.UserID, d *profile.Data, errMsg string) (*profile.Data, string) {
	c := *d
	var dropped []string
	c.Metadata, dropped = storableMetadata(d.Metadata)
	if len(dropped) > 0 {
		errMsg = droppedKeysError(dropped)
		s.log.Warn().Str("project", string(p)).Str("user", string(u)).Strs("dropped_keys", dropped).
			Msg("the user API's profile has metadata keys Known cannot store; they were left out")
	}
	return &c, errMsg
}

// dataHash identifies a found profile's data: JSON with sorted keys, hashed.
func dataHash(d *profile.Data) string {
	b, err := json.Marshal(d)
	if err != nil {
		return "" // never applied as unchanged
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// applyProfile writes a found profile to its user through the identity pipeline, as a claim
// about that user (source PROFILE). An email or phone that belongs to another user, or that
// would replace one the user proved, is left out rather than guessed; so is any field that is
// not valid, one by one.
//
// u is the user as last read; a write that finds it changed reads it again and starts over.
func (s *Service) applyProfile(ctx context.Context, u *known.User, d *profile.Data, now time.Time) error {
	at := func(name string) []string { return path(name) }
	drop := map[string]bool{}
	p := u.ProjectID
	for attempt := range 4 {
		if attempt > 0 {
			var err error
			if u, err = s.store.User(ctx, p, u.ID); known.ErrorCode(err) == known.NotFound {
				return nil // deleted meanwhile
			} else if err != nil {
				return err
			}
		}
		var v validator
		f := claimFields{source: known.SourceProfile, at: at, emailField: "email", phoneField: "phone_number",
			firstField: "first_name", lastField: "last_name", metaField: "metadata"}
		for name, dst := range map[string]**string{"email": &f.email, "phone_number": &f.phone, "first_name": &f.first, "last_name": &f.last} {
			if !drop[name] {
				*dst = map[string]*string{"email": d.Email, "phone_number": d.PhoneNumber, "first_name": d.FirstName, "last_name": d.LastName}[name]
			}
		}
		if !drop["metadata"] {
			f.meta = d.Metadata
		}
		c := newClaim(&v, f)
		if len(v.errs) > 0 {
			// Bad values are dropped one by one rather than refusing the whole profile.
			for _, e := range v.errs {
				drop[e.Field[0]] = true
			}
			continue
		}
		c.fixed = u
		wc := &widgetCall{project: &known.Project{ID: p, StageMode: known.StageOverwrite}, now: now}
		fs, err := s.gather(ctx, wc, c)
		if err == nil {
			var plan identity.Plan
			plan, err = identity.Decide(c.Claim, fs.Facts, now)
			if err != nil {
				err = s.giveBack(ctx, p, fs, err)
			} else {
				_, err = s.write(ctx, wc, c, fs, plan, userOf(p, c, fs, plan, ""), "")
			}
		}
		var e *known.Error
		switch {
		case errors.Is(err, errStale):
			continue
		case errors.As(err, &e) && len(e.Field) > 0 && e.Code != known.Internal:
			drop[e.Field[len(e.Field)-1]] = true // another user's email or phone, or too many keys
			continue
		}
		return err
	}
	return nil
}

// maxProfileDepth bounds how deep a profile's metadata may nest: MongoDB refuses documents
// nested more than 100 levels, and no profile needs more than this.
const maxProfileDepth = 20

// storableMetadata returns a copy of a fetched profile's metadata without the keys a database
// cannot hold (keyProblem: NUL, '.', a leading '$', white space around it, empty or too long), at any depth and inside
// lists, and without values nested deeper than maxProfileDepth; dropped names what was left
// out, sorted.
func storableMetadata(m map[string]any) (clean map[string]any, dropped []string) {
	if m == nil {
		return nil, nil
	}
	var walk func(x any, depth int, at string) any
	walk = func(x any, depth int, at string) any {
		switch t := x.(type) {
		case map[string]any:
			out := make(map[string]any, len(t))
			for k, val := range t {
				name := at + strconv.Quote(k)
				if keyProblem(k) != "" || depth >= maxProfileDepth {
					dropped = append(dropped, name)
					continue
				}
				out[k] = walk(val, depth+1, name+".")
			}
			return out
		case []any:
			out := make([]any, 0, len(t))
			for i, val := range t {
				name := strings.TrimSuffix(at, ".") + "[" + strconv.Itoa(i) + "]"
				if depth >= maxProfileDepth {
					dropped = append(dropped, name)
					continue
				}
				out = append(out, walk(val, depth+1, name+"."))
			}
			return out
		}
		return x
	}
	clean = walk(m, 0, "").(map[string]any)
	sort.Strings(dropped)
	return clean, dropped
}

// droppedKeysError is the endpoint's lastError after a profile lost metadata keys: it names
// them (the first 10).
func droppedKeysError(dropped []string) string {
	const most = 10
	list := strings.Join(dropped[:min(len(dropped), most)], ", ")
	if len(dropped) > most {
		list += fmt.Sprintf(" and %d more", len(dropped)-most)
	}
	return "the profile was stored without metadata keys Known cannot store (keys with NUL or '.', starting with '$', " +
		"starting or ending with white space, empty or over 255 characters, or nested too deep): " + list
}

// refreshLater fetches a user's profile in the background when it is missing or stale, so
// that the widget's response never waits for the customer's API.
func (s *Service) refreshLater(p known.ProjectID, u known.UserID, ext string) {
	s.prof.background.Add(1)
	go func() {
		defer s.prof.background.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 2*profile.DefaultTimeout)
		defer cancel()
		// No request waits for this work, so its errors are logged here or nowhere.
		fail := func(err error) {
			s.log.Error().Err(err).Str("project", string(p)).Str("user", string(u)).Msg("background profile refresh failed")
		}
		ep, err := s.endpoint(ctx, p)
		if err != nil {
			fail(err)
			return
		}
		if ep == nil {
			return
		}
		stored, err := s.store.ProfilesOf(ctx, p, []known.UserID{u})
		if err != nil {
			fail(err)
			return
		}
		if !s.stale(stored[u], s.clock()) {
			return
		}
		if _, err := s.refreshProfiles(ctx, p, ep, []profileWant{{user: u, ext: ext, prev: stored[u]}}); err != nil {
			fail(err)
		}
	}()
}

// Wait waits until background profile fetches end, or ctx does.
func (s *Service) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.prof.background.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ProfileKey names a user whose external profile is wanted: its id and externalId ("" for
// none). A value, so that a per-request loader sees one key per user however many copies of
// the user the request holds.
type ProfileKey struct {
	User       known.UserID
	ExternalID string
}

// ProfileKeys returns the ProfileKey of each user.
func ProfileKeys(users ...*known.User) []ProfileKey {
	keys := make([]ProfileKey, len(users))
	for i, u := range users {
		keys[i] = ProfileKey{User: u.ID}
		if u.ExternalID != nil {
			keys[i].ExternalID = string(*u.ExternalID)
		}
	}
	return keys
}

// ExternalProfiles returns the external profiles of users of the caller's project, in order
// (nil for a user without externalId, or without a profile when the endpoint is off): stored
// profiles are read in one query, and missing or stale ones are fetched, each once, at most
// KNOWN_PROFILE_CONCURRENCY at a time per project, then stored together. For a per-request
// dataloader.
func (s *Service) ExternalProfiles(ctx context.Context, users []ProfileKey) ([]*known.Profile, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]known.UserID, len(users))
	for i, u := range users {
		ids[i] = u.User
	}
	stored, err := s.store.ProfilesOf(ctx, p, ids)
	if err != nil {
		return nil, err
	}
	out := make([]*known.Profile, len(users))
	ep, err := s.endpoint(ctx, p)
	if err != nil {
		return nil, err
	}
	now := s.clock()
	var due []profileWant
	at := map[known.UserID][]int{}
	for i, u := range users {
		out[i] = stored[u.User]
		if ep == nil || u.ExternalID == "" || !s.stale(out[i], now) {
			continue
		}
		if at[u.User] == nil {
			due = append(due, profileWant{user: u.User, ext: u.ExternalID, prev: stored[u.User]})
		}
		at[u.User] = append(at[u.User], i)
	}
	if len(due) == 0 {
		return out, nil
	}
	fresh, err := s.refreshProfiles(ctx, p, ep, due)
	if err != nil {
		return nil, err
	}
	for id, is := range at {
		for _, i := range is {
			out[i] = fresh[id]
		}
	}
	return out, nil
}
