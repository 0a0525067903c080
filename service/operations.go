package service

import (
	"context"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/secret"
)

// Operator operations (API.md §11): the project lifecycle with the admin token, and the
// secret key's own rotation.

// requireAdmin refuses a caller without the operator's admin token: UNAUTHENTICATED without a
// credential, FORBIDDEN with a project key or when no admin token is configured.
func (s *Service) requireAdmin(ctx context.Context, op string) error {
	c := known.CallerFromContext(ctx)
	switch {
	case c.Admin:
		return nil
	case s.adminToken == "":
		return known.Errorf(known.Forbidden, "%s is disabled: the operator has not set KNOWN_ADMIN_TOKEN", op)
	case c.ProjectID == "" && !c.BadCredential:
		return known.Errorf(known.Unauthenticated, "%s needs the admin token as Authorization: Bearer <token>", op)
	default:
		return known.Errorf(known.Forbidden, "%s needs the admin token, not a project key", op)
	}
}

// Projects returns a page of every project, for the operator. Errors: UNAUTHENTICATED,
// FORBIDDEN, BAD_USER_INPUT (first outside 1–100).
func (s *Service) Projects(ctx context.Context, page known.Page) ([]*known.Project, bool, error) {
	if err := s.requireAdmin(ctx, "projects"); err != nil {
		return nil, false, err
	}
	if err := checkPage(page); err != nil {
		return nil, false, err
	}
	return s.store.Projects(ctx, page)
}

// DeleteProject erases a project and everything it holds, for the operator, and records it
// in the operator's audit log. Errors: UNAUTHENTICATED, FORBIDDEN; user error NOT_FOUND.
func (s *Service) DeleteProject(ctx context.Context, p known.ProjectID) error {
	if err := s.requireAdmin(ctx, "deleteProject"); err != nil {
		return err
	}
	err := s.store.DeleteProject(ctx, p)
	// This instance forgets the project's key at once; the others within CacheTTL.
	s.keyProjects.clear()
	s.endpoints.forget(p)
	if known.ErrorCode(err) == known.NotFound {
		return known.FieldErrorf(path("input", "id"), known.NotFound, "no project with this id")
	}
	if err != nil {
		return err
	}
	appID := string(p)
	return s.record(ctx, "", &known.AuditEntry{Action: known.AuditProjectDeleted, Subject: &appID})
}

// MaxKeyGrace is the longest a replaced secret key may keep working after rotateSecretKey.
const MaxKeyGrace = 7 * 24 * time.Hour

// RotatedKey is a new secret key, shown this once.
type RotatedKey struct {
	SecretKey string
	// PreviousKeyExpiresAt is when the caller's earlier keys stop authenticating (now, for no
	// grace period).
	PreviousKeyExpiresAt time.Time
}

// RotateSecretKey makes a new secret key for the caller's project. Every other key of the
// project stops authenticating after graceMinutes (nil or 0: at once; at most MaxKeyGrace);
// a key already due to expire sooner keeps its time. Errors: UNAUTHENTICATED; user errors
// INVALID (negative), LIMIT_EXCEEDED (over 7 days).
func (s *Service) RotateSecretKey(ctx context.Context, graceMinutes *int) (*RotatedKey, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, err
	}
	grace := time.Duration(0)
	if graceMinutes != nil {
		field := path("input", "graceMinutes")
		switch g := time.Duration(*graceMinutes) * time.Minute; {
		case *graceMinutes < 0:
			return nil, known.FieldErrorf(field, known.Invalid, "graceMinutes must be 0 or more, not %d", *graceMinutes)
		case *graceMinutes > int(MaxKeyGrace/time.Minute):
			return nil, known.FieldErrorf(field, known.LimitExceeded, "graceMinutes is at most %d (7 days), not %d", int(MaxKeyGrace/time.Minute), *graceMinutes)
		default:
			grace = g
		}
	}
	now := s.clock()
	key := secret.NewSecretKey()
	hash := secret.HashKey(key)
	// The new key first: a failure after it leaves two working keys, never none.
	if err := s.store.AddProjectKey(ctx, p, hash, now); err != nil {
		return nil, err
	}
	until := now.Add(grace)
	if err := s.store.ExpireProjectKeys(ctx, p, hash, now, until); err != nil {
		return nil, err
	}
	// This instance stops honouring the old keys at once; the others within CacheTTL.
	s.keyProjects.clear()
	if err := s.record(ctx, p, &known.AuditEntry{Action: known.AuditSecretKeyRotated}); err != nil {
		return nil, err
	}
	return &RotatedKey{SecretKey: key, PreviousKeyExpiresAt: until}, nil
}
