package service

import (
	"context"
	"strings"

	"github.com/knownhq/known"
	"github.com/knownhq/known/secret"
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
	c := known.CallerFromContext(ctx)
	switch {
	case c.Admin:
	case s.adminToken == "":
		return nil, known.Errorf(known.Forbidden, "createProject is disabled: the operator has not set KNOWN_ADMIN_TOKEN")
	case c.ProjectID == "" && !c.BadCredential:
		return nil, known.Errorf(known.Unauthenticated, "createProject needs the admin token as Authorization: Bearer <token>")
	default:
		return nil, known.Errorf(known.Forbidden, "createProject needs the admin token, not a project key")
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
