package service

import (
	"context"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/knownhq/known"
	"github.com/knownhq/known/secret"
	"github.com/knownhq/known/store"
)

// NewProject is a project just made, with the two secrets shown to its owner this once.
type NewProject struct {
	Project        *known.Project
	SecretKey      string
	IdentitySecret string
}

// CreateProject makes a project. Only the operator may (the admin token): without a credential
// it fails with UNAUTHENTICATED, with another one with FORBIDDEN, and when no admin token is
// configured with FORBIDDEN. A blank or over-long name is an INVALID user error.
func (s *Service) CreateProject(ctx context.Context, name string) (*NewProject, error) {
	if err := s.requireAdmin(ctx, "createProject"); err != nil {
		return nil, err
	}
	var v validator
	name = v.requiredString(path("input", "name"), name)
	if err := v.err(); err != nil {
		return nil, err
	}
	return s.createProject(ctx, name)
}

func (s *Service) createProject(ctx context.Context, name string) (*NewProject, error) {
	now := s.clock()
	p := &known.Project{
		ID:             known.ProjectID("app_" + strings.ToLower(secret.Random(12))),
		Name:           name,
		StageMode:      known.StageOverwrite,
		AllowedOrigins: []string{},
		CreatedAt:      now,
		UpdatedAt:      now,
	}
	key := secret.NewSecretKey()
	identity := secret.NewIdentitySecret()
	sealed := s.box.Seal([]byte(identity), string(p.ID))
	if err := s.store.CreateProject(ctx, p, secret.HashKey(key), sealed); err != nil {
		return nil, err
	}
	return &NewProject{Project: p, SecretKey: key, IdentitySecret: identity}, nil
}

// EnsureDemoProject makes a project named "Demo" when the store has no project at all, so that
// a first `go run ./server` can be tried at once; it returns nil when projects exist.
func (s *Service) EnsureDemoProject(ctx context.Context) (*NewProject, error) {
	n, err := s.store.ProjectCount(ctx, 1)
	if err != nil || n > 0 {
		return nil, err
	}
	return s.createProject(ctx, "Demo")
}

// Project returns the caller's project; UNAUTHENTICATED without a valid secret key.
func (s *Service) Project(ctx context.Context) (*known.Project, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, err
	}
	return s.store.Project(ctx, p)
}

// UpdateProjectInput changes project settings; nil fields stay as they are.
type UpdateProjectInput struct {
	Name                *string
	RequireVerification *bool
	StageMode           *known.StageMode
	// AllowedOrigins replaces the origins widget calls may come from (empty: any origin).
	AllowedOrigins []string
	// UserDataEndpoint replaces the user API settings (seed 000).
	UserDataEndpoint *EndpointInput
}

// MaxAllowedOrigins bounds a project's allowedOrigins.
const MaxAllowedOrigins = 50

// UpdateProject changes the caller's project. Each allowed origin must be an origin as
// browsers send it (scheme://host[:port], no path). User errors: INVALID, LIMIT_EXCEEDED.
func (s *Service) UpdateProject(ctx context.Context, in UpdateProjectInput) (*known.Project, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, err
	}
	var v validator
	up := store.ProjectUpdate{RequireVerification: in.RequireVerification, StageMode: in.StageMode, UpdatedAt: s.clock()}
	if in.Name != nil {
		name := v.requiredString(path("input", "name"), *in.Name)
		up.Name = &name
	}
	if in.AllowedOrigins != nil {
		origins := []string{}
		for i, o := range in.AllowedOrigins {
			field := path("input", "allowedOrigins", strconv.Itoa(i))
			if origin, ok := canonicalOrigin(o); ok {
				if !slices.Contains(origins, origin) {
					origins = append(origins, origin)
				}
			} else {
				v.add(field, known.Invalid, "%q is not an origin like https://shop.example.com", truncate(o))
			}
		}
		if len(origins) > MaxAllowedOrigins {
			v.add(path("input", "allowedOrigins"), known.LimitExceeded, "%d origins; the limit is %d", len(origins), MaxAllowedOrigins)
		}
		up.AllowedOrigins = &origins
	}
	if in.UserDataEndpoint != nil {
		up.UserDataEndpoint = s.endpointUpdate(&v, p, in.UserDataEndpoint)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	defer s.endpoints.forget(p) // this instance sees the change at once; others within CacheTTL
	return s.store.UpdateProject(ctx, p, up)
}

// canonicalOrigin returns o as browsers send it in the Origin header: lowercase scheme and
// host, no default port, no path.
func canonicalOrigin(o string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(o))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || len(o) > MaxString {
		return "", false
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	if port != "" {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return u.Scheme + "://" + host, true
}
