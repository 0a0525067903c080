package service

import (
	"context"
	"errors"

	"github.com/knownhq/known"
	"github.com/knownhq/known/store"
)

// CreateUserInput is seed 001's "create a conversation user".
type CreateUserInput struct {
	Email       *string
	PhoneNumber *string
	FirstName   *string
	LastName    *string
	Context     *string
	Source      *string
	ExternalID  *string
	FkUserID    *string
	Metadata    map[string]any
}

// CreateUser makes a user of the caller's project. Email or phone number is required; the email
// must be a valid address and the phone E.164. An email (case-insensitively), phone or
// externalId that already names a user of the project gives ALREADY_EXISTS naming that user.
// Errors: UNAUTHENTICATED; user errors INVALID, LIMIT_EXCEEDED, ALREADY_EXISTS.
func (s *Service) CreateUser(ctx context.Context, in CreateUserInput) (*known.User, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, err
	}
	var v validator
	email, emailKey := v.email(path("input", "email"), in.Email)
	phone := v.phone(path("input", "phoneNumber"), in.PhoneNumber)
	ext := v.optString(path("input", "externalId"), in.ExternalID)
	u := &known.User{
		ProjectID:   p,
		ExternalID:  (*known.ExternalID)(ext),
		FkUserID:    v.optString(path("input", "fkUserId"), in.FkUserID),
		Email:       email,
		PhoneNumber: phone,
		FirstName:   v.optString(path("input", "firstName"), in.FirstName),
		LastName:    v.optString(path("input", "lastName"), in.LastName),
		Context:     v.optString(path("input", "context"), in.Context),
		Source:      v.optString(path("input", "source"), in.Source),
		Metadata:    v.jsonObject(path("input", "metadata"), in.Metadata),
		VisitorIDs:  []known.VisitorID{},
	}
	if len(v.errs) == 0 && email == nil && phone == nil {
		v.add(path("input"), known.Invalid, "email or phoneNumber is required")
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	if u.Metadata == nil {
		u.Metadata = map[string]any{}
	}
	u.Name = joinName(u.FirstName, u.LastName)
	now := s.clock()
	u.ID = known.UserID(store.NewID())
	u.CreatedAt, u.UpdatedAt = now, now

	for _, id := range []struct {
		kind  known.IdentityKind
		value *string
	}{{known.IdentityExternalID, ext}, {known.IdentityEmail, emailKey}, {known.IdentityPhone, phone}} {
		if id.value != nil {
			// Written by the customer's backend: a claim, but the record a proof of it lands on.
			u.Identities = append(u.Identities, known.Identity{Kind: id.kind, Value: *id.value, Source: known.SourceAPI, At: now})
		}
	}
	if err := s.store.CreateUser(ctx, u); err != nil {
		var taken *store.KeyTakenError
		if errors.As(err, &taken) {
			return nil, alreadyExists(taken)
		}
		return nil, err
	}
	return u, nil
}

func alreadyExists(t *store.KeyTakenError) error {
	field := map[store.KeyKind]string{store.KeyExternalID: "externalId", store.KeyEmail: "email", store.KeyPhone: "phoneNumber"}[t.Key.Kind]
	return known.FieldErrorf(path("input", field), known.AlreadyExists,
		"a user with this %s already exists: %s", field, known.GlobalID(known.KindUser, t.OwnerID))
}

func joinName(first, last *string) *string {
	switch {
	case first != nil && last != nil:
		n := *first + " " + *last
		return &n
	case first != nil:
		return first
	case last != nil:
		return last
	}
	return nil
}

// User returns a user of the caller's project, or NOT_FOUND (also for another project's user).
func (s *Service) User(ctx context.Context, id known.UserID) (*known.User, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, err
	}
	return s.store.User(ctx, p, id)
}

// UserFilter selects users in Users; every set condition must hold.
type UserFilter struct {
	Email       *string
	PhoneNumber *string
	ExternalID  *string
	Anonymous   *bool
	Verified    *bool
}

// Users lists the caller's project's users that f selects, newest first by id (ProjectUsers
// lists all of them at a constant cost per page). BAD_USER_INPUT for a bad page or filter.
func (s *Service) Users(ctx context.Context, f UserFilter, page known.Page) ([]*known.User, bool, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, false, err
	}
	if err := checkPage(page); err != nil {
		return nil, false, err
	}
	var v validator
	_, emailKey := v.email(path("filter", "email"), f.Email)
	sf := store.UserFilter{
		EmailKey:    emailKey,
		PhoneNumber: v.phone(path("filter", "phoneNumber"), f.PhoneNumber),
		ExternalID:  (*known.ExternalID)(v.optString(path("filter", "externalId"), f.ExternalID)),
		Anonymous:   f.Anonymous,
		Verified:    f.Verified,
	}
	if err := badInput(v.err()); err != nil {
		return nil, false, err
	}
	return s.store.Users(ctx, p, sf, page)
}

// ProjectUsers lists all of the caller's project's users (no filter), newest first, from the
// project's list, each with the page.After that continues after it: a page costs what its users
// cost, however many the project holds. BAD_USER_INPUT for a bad page, or a page.After that is
// not such a value (field after).
func (s *Service) ProjectUsers(ctx context.Context, page known.Page) (us []*known.User, after []string, more bool, err error) {
	p, err := listing(ctx, page)
	if err != nil {
		return nil, nil, false, err
	}
	return s.store.ProjectUsers(ctx, p, page)
}

// badInput turns validation errors of a query's arguments into one BAD_USER_INPUT error:
// queries have no userErrors.
func badInput(err error) error {
	var es known.Errors
	if !errors.As(err, &es) {
		return err
	}
	return &known.Error{Code: known.BadUserInput, Message: es[0].Message, Field: es[0].Field}
}

// UserMatch is one result of SearchUsers.
type UserMatch struct {
	User            *known.User
	ConversationIDs []known.ConversationID
}

// SearchUsers finds the caller's project's users by email (case-insensitive), phone number or
// externalId (seed 001): each given criterion is looked up, and the distinct users found are
// returned with their conversation ids. At least one criterion is required (BAD_USER_INPUT).
func (s *Service) SearchUsers(ctx context.Context, email, phone, externalID *string) ([]UserMatch, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, err
	}
	var v validator
	_, emailKey := v.email(path("email"), email)
	ph := v.phone(path("phoneNumber"), phone)
	ext := v.optString(path("externalId"), externalID)
	if err := badInput(v.err()); err != nil {
		return nil, err
	}
	var keys []store.IdentityKey
	for _, k := range []struct {
		kind  known.IdentityKind
		value *string
	}{{known.IdentityExternalID, ext}, {known.IdentityEmail, emailKey}, {known.IdentityPhone, ph}} {
		if k.value != nil {
			keys = append(keys, store.KeyOf(k.kind, *k.value))
		}
	}
	if len(keys) == 0 {
		return nil, known.Errorf(known.BadUserInput, "searchUsers needs email, phoneNumber or externalId")
	}
	matches := []UserMatch{}
	var found []known.UserID
	for _, k := range keys {
		u, err := s.store.UserByKey(ctx, p, k)
		if known.ErrorCode(err) == known.NotFound {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !containsID(found, u.ID) {
			found = append(found, u.ID)
			matches = append(matches, UserMatch{User: u})
		}
	}
	ids, err := s.ConversationIDsOfUsers(ctx, found) // reads by _id for every match
	if err != nil {
		return nil, err
	}
	for i := range matches {
		matches[i].ConversationIDs = ids[i]
	}
	return matches, nil
}

// DeleteUser erases a user of the caller's project with its identity keys, events,
// conversations and messages. Errors: UNAUTHENTICATED; user error NOT_FOUND.
func (s *Service) DeleteUser(ctx context.Context, id known.UserID) error {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return err
	}
	err = s.store.DeleteUser(ctx, p, id)
	if known.ErrorCode(err) == known.NotFound {
		return known.FieldErrorf(path("input", "id"), known.NotFound, "no user with this id")
	}
	if err != nil {
		return err
	}
	return s.record(ctx, p, &known.AuditEntry{Action: known.AuditUserDeleted, UserID: &id})
}

// ConversationIDs returns the ids of a user's conversations, newest first. The user must have
// been read through the caller's project already.
func (s *Service) ConversationIDs(ctx context.Context, u known.UserID) ([]known.ConversationID, error) {
	ids, err := s.ConversationIDsOfUsers(ctx, []known.UserID{u})
	if err != nil {
		return nil, err
	}
	return ids[0], nil
}
