// Package service holds Known's rules: who may do what, what input is valid, and how users,
// projects and identities behave. It is called by the GraphQL resolvers and tested directly
// against the embedded store, without HTTP.
package service

import (
	"context"
	"crypto/subtle"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/profile"
	"github.com/knownhq/known/secret"
	"github.com/knownhq/known/session"
	"github.com/knownhq/known/store"
	"github.com/rs/zerolog"
)

// Options configures a Service.
type Options struct {
	// Secret is KNOWN_SECRET: it derives the key that seals stored secrets.
	Secret []byte
	// AdminToken is KNOWN_ADMIN_TOKEN; empty disables createProject.
	AdminToken string
	// Now returns the current time; nil means time.Now. Tests inject a clock.
	Now func() time.Time
	// WidgetLimiter rate-limits widget calls by the key "<appId>|<client IP>", one call per
	// operation (known.Operation) however many of its fields need the caller; nil is no limit.
	WidgetLimiter Limiter
	// Profiles fetches from customers' user APIs; nil means profile.New with its defaults
	// (private networks refused).
	Profiles *profile.Client
	// ProfileMaxAge is how old a stored profile may be before it is fetched again (default 5m).
	ProfileMaxAge time.Duration
	// ProfileConcurrency bounds fetches at once per project (default 8).
	ProfileConcurrency int
	// Events is this instance's live change events (subscriptions); nil refuses them.
	Events EventSource
	// SessionCheck is how often an idle widget sessionEvents stream checks that its session
	// still lives (default DefaultSessionCheck); tests shorten it.
	SessionCheck time.Duration
	// Log receives what happens outside a request (background profile fetches) and what a
	// request's error cannot carry (metadata keys dropped from a profile); the zero Logger
	// writes nothing.
	Log zerolog.Logger
}

// Limiter allows or refuses one more call for a key.
type Limiter interface {
	// Take takes one call from key's allowance and reports whether there was one; for a
	// refused call, wait is how long until there is (the answer's Retry-After).
	Take(key string) (ok bool, wait time.Duration)
}

// Service carries out Known's operations on a store.
type Service struct {
	store      *store.Store
	box        *secret.Box
	adminToken string
	now        func() time.Time
	limiter    Limiter
	signer     *session.Signer
	prof       *profiler
	// keyProjects and endpoints keep what was read for CacheTTL (service/cache.go).
	keyProjects  *ttlCache[string, keyProject]
	endpoints    *ttlCache[known.ProjectID, *profile.Endpoint]
	events       EventSource
	sessionCheck time.Duration
	log          zerolog.Logger
}

// New returns a Service on st.
func New(st *store.Store, opts Options) *Service {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	pf := &profiler{client: opts.Profiles, maxAge: opts.ProfileMaxAge, perProject: opts.ProfileConcurrency,
		sems: map[known.ProjectID]chan struct{}{}}
	if pf.client == nil {
		pf.client = profile.New(profile.Options{})
	}
	if pf.maxAge == 0 {
		pf.maxAge = 5 * time.Minute
	}
	if pf.perProject < 1 {
		pf.perProject = 8
	}
	if opts.SessionCheck <= 0 {
		opts.SessionCheck = DefaultSessionCheck
	}
	return &Service{store: st, box: secret.NewBox(opts.Secret), adminToken: opts.AdminToken, now: now, limiter: opts.WidgetLimiter,
		signer: session.NewSigner(opts.Secret), prof: pf, events: opts.Events, sessionCheck: opts.SessionCheck, log: opts.Log,
		keyProjects: newTTLCache[string, keyProject](CacheTTL, 10000, now),
		endpoints:   newTTLCache[known.ProjectID, *profile.Endpoint](CacheTTL, 10000, now)}
}

func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

// Authenticate turns the credential a request carried (a secret key or the admin token; "" for
// none) into its Caller. A credential that matches nothing gives a Caller with BadCredential,
// so that operations needing one fail with UNAUTHENTICATED while public ones still work.
func (s *Service) Authenticate(ctx context.Context, credential string) (known.Caller, error) {
	if credential == "" {
		return known.Caller{}, nil
	}
	if s.adminToken != "" && subtle.ConstantTimeCompare([]byte(credential), []byte(s.adminToken)) == 1 {
		return known.Caller{Admin: true}, nil
	}
	hash := secret.HashKey(credential)
	kp, err := s.projectOfKey(ctx, hash)
	if err != nil {
		return known.Caller{}, err
	}
	if !kp.found {
		return known.Caller{BadCredential: true}, nil
	}
	return known.Caller{ProjectID: kp.project, KeyHash: hash}, nil
}

// projectOfKey is what the secret key of this hash names, as this instance last read it
// (CacheTTL).
func (s *Service) projectOfKey(ctx context.Context, hash string) (keyProject, error) {
	kp, ok := s.keyProjects.get(hash)
	if !ok {
		p, err := s.store.ProjectIDByKeyHash(ctx, hash, s.now())
		if err != nil && known.ErrorCode(err) != known.NotFound {
			return keyProject{}, err
		}
		kp = keyProject{project: p, found: err == nil}
		s.keyProjects.put(hash, kp)
	}
	return kp, nil
}

// keyProject is what a secret key's hash names: a project, or nothing.
type keyProject struct {
	project known.ProjectID
	found   bool
}
