package service

import (
	"context"

	"github.com/knownhq/known"
	"github.com/knownhq/known/identity"
)

// The audit log (API.md §11): who merged, verified, deleted or rotated what, and when. Each
// entry is inserted after the change it records was written, by the service method that made
// it; nothing ever updates or deletes an entry but deleteProject, which erases a project with
// all it holds (its operator entry stays).

// record appends entries made by the caller of ctx to project p's audit log.
func (s *Service) record(ctx context.Context, p known.ProjectID, entries ...*known.AuditEntry) error {
	c := known.CallerFromContext(ctx)
	actor := known.Actor{Kind: known.ActorSecretKey}
	if c.Admin {
		actor.Kind = known.ActorAdmin
	}
	now := s.clock()
	for _, e := range entries {
		e.ProjectID, e.At = p, now
		if e.Actor.Kind == "" {
			e.Actor = actor
		}
	}
	return s.store.AppendAudit(ctx, entries...)
}

// auditIdentify records what an identify call carried out by plan changed on u, the user it
// landed on: each identity it proved that u did not already hold proven by that method,
// each identity it took from a user that had only claimed it, and the anonymous record it
// merged. current is the session's user as the decision read it (Facts.Current). A call that changed
// none of these (a returning session sending its proof again) records nothing and costs no
// round trip.
func (s *Service) auditIdentify(ctx context.Context, p known.ProjectID, visitor known.VisitorID, plan identity.Plan,
	current, u *known.User) error {
	before := plan.User
	if plan.Promote {
		before = current
	}
	widget := known.Actor{Kind: known.ActorWidget, VisitorID: &visitor}
	var entries []*known.AuditEntry
	for _, id := range u.Identities {
		if !id.Proven || id.Method == nil {
			continue
		}
		if before != nil {
			if was := before.Identity(id.Kind); was != nil && was.Proven && was.Value == id.Value &&
				was.Method != nil && *was.Method == *id.Method {
				continue
			}
		}
		entries = append(entries, &known.AuditEntry{Action: known.AuditIdentityProven, Actor: widget, UserID: &u.ID,
			Identity: ptrTo(id.Kind), Method: id.Method})
	}
	for _, t := range plan.Takes {
		e := &known.AuditEntry{Action: known.AuditIdentityTaken, Actor: widget, UserID: &u.ID,
			OtherUserID: &t.From.ID, Identity: ptrTo(t.Identity.Kind)}
		if id := u.Identity(t.Identity.Kind); id != nil {
			e.Method = id.Method // the proof that took it
		}
		entries = append(entries, e)
	}
	if r := plan.Merge; r != nil {
		entries = append(entries, &known.AuditEntry{Action: known.AuditUserMerged, Actor: widget, UserID: &u.ID, OtherUserID: &r.ID})
	}
	if len(entries) == 0 {
		return nil
	}
	return s.record(ctx, p, entries...)
}

// AuditLog returns a page of the audit log, newest first. With a secret key: its project's
// entries, or with user only those about that user (which need not exist any more). With the
// admin token: the operator's entries (project deletions); user is then BAD_USER_INPUT.
// Errors: UNAUTHENTICATED, BAD_USER_INPUT.
func (s *Service) AuditLog(ctx context.Context, user *known.UserID, page known.Page) ([]*known.AuditEntry, bool, error) {
	if err := checkPage(page); err != nil {
		return nil, false, err
	}
	if known.CallerFromContext(ctx).Admin {
		if user != nil {
			return nil, false, &known.Error{Code: known.BadUserInput, Field: []string{"userId"},
				Message: "the operator's log holds no user entries: read a project's with its secret key"}
		}
		return s.store.AuditLog(ctx, "", nil, page)
	}
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, false, err
	}
	return s.store.AuditLog(ctx, p, user, page)
}

func ptrTo[T any](v T) *T { return &v }
