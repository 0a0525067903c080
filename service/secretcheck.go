package service

import (
	"context"
	"errors"
	"fmt"

	"github.com/knownhq/known/secret"
	"github.com/knownhq/known/store"
)

// checkContext binds the check value to its one use.
const checkContext = "known/secret-check"

// SecretReport says what CheckSecret found and did.
type SecretReport struct {
	// Created: the database had no check value, and now has one sealed with KNOWN_SECRET.
	Created bool
	// Resealed counts the values sealed with the previous secret that are now sealed with
	// KNOWN_SECRET.
	Resealed int
	// Unopened counts stored values that open with neither secret (they were unusable before).
	Unopened int
	// PreviousUnused: a previous secret was given, but nothing is sealed with it any more.
	PreviousUnused bool
}

// ErrWrongSecret is the error of CheckSecret when the database's values were sealed with
// another secret than KNOWN_SECRET.
var ErrWrongSecret = errors.New("KNOWN_SECRET is not the secret this database was set up with: " +
	"the check value sealed with that secret does not open. Start with the secret the database was set up with; " +
	"to change the secret, set KNOWN_SECRET to the new one and KNOWN_SECRET_PREVIOUS to the old one")

// CheckSecret makes sure that the values this database holds sealed (identity secrets, user-API
// header values) open with KNOWN_SECRET, before anything is served: a database keeps a check
// value sealed with its secret, and a start with a secret that does not open it fails with
// ErrWrongSecret. previous (KNOWN_SECRET_PREVIOUS, or nil) rotates the secret: the values sealed
// with it are sealed again with KNOWN_SECRET, each in one conditional update, and the check value
// last, so that an interrupted rotation is completed by the next start with both secrets, and a
// second run changes nothing.
func (s *Service) CheckSecret(ctx context.Context, previous []byte) (SecretReport, error) {
	var rep SecretReport
	var old *secret.Box
	if previous != nil {
		old = secret.NewBox(previous)
	}
	for range 5 {
		check, err := s.store.SecretCheck(ctx)
		if err != nil {
			return rep, err
		}
		switch {
		case check == "":
			// A database from before the check value, or a new one: its sealed values say which
			// secret it was set up with.
			if err := s.reseal(ctx, old, &rep); err != nil {
				return rep, err
			}
			created, err := s.store.CreateSecretCheck(ctx, s.box.Seal(nil, checkContext))
			if err != nil {
				return rep, err
			}
			if !created {
				continue // another instance stored one first: check against it
			}
			rep.Created = true
			return rep, nil
		case opens(s.box, check, checkContext):
			rep.PreviousUnused = old != nil
			return rep, nil
		case old != nil && opens(old, check, checkContext):
			if err := s.reseal(ctx, old, &rep); err != nil {
				return rep, err
			}
			replaced, err := s.store.ReplaceSecretCheck(ctx, check, s.box.Seal(nil, checkContext))
			if err != nil {
				return rep, err
			}
			if replaced {
				return rep, nil
			}
			// Another instance finished the rotation first: check against its value.
		default:
			if old != nil {
				return rep, fmt.Errorf("neither KNOWN_SECRET nor KNOWN_SECRET_PREVIOUS opens this database's check value: %w", ErrWrongSecret)
			}
			return rep, ErrWrongSecret
		}
	}
	return rep, errors.New("the secret check value kept changing while Known started")
}

// reseal seals every stored value that opens with old (nil: none) again with KNOWN_SECRET. It
// fails with ErrWrongSecret when values are stored and not one opens with KNOWN_SECRET or old:
// the database was set up with another secret.
func (s *Service) reseal(ctx context.Context, old *secret.Box, rep *SecretReport) error {
	for range 5 {
		values, err := s.store.SealedValues(ctx)
		if err != nil {
			return err
		}
		opened, unopened, resealed, raced := 0, 0, 0, false
		for _, v := range values {
			c := sealContext(v)
			if opens(s.box, v.Value, c) {
				opened++
				continue
			}
			plain, err := openWith(old, v.Value, c)
			if err != nil {
				unopened++
				continue
			}
			ok, err := s.store.ReplaceSealed(ctx, v, s.box.Seal(plain, c), s.clock())
			if err != nil {
				return err
			}
			if !ok {
				raced = true // changed since it was read (another instance resealed it): read again
				continue
			}
			opened++
			resealed++
		}
		rep.Resealed += resealed
		rep.Unopened = unopened
		if raced {
			continue
		}
		if opened == 0 && unopened > 0 {
			return ErrWrongSecret
		}
		return nil
	}
	return errors.New("sealed values kept changing while Known started")
}

// sealContext is the context v was sealed with (see createProject and endpointUpdate).
func sealContext(v store.SealedValue) string {
	if v.Kind == store.SealedEndpointHeader {
		return headerContext(v.ProjectID, v.HeaderName)
	}
	return string(v.ProjectID)
}

func opens(b *secret.Box, sealed, context string) bool {
	_, err := b.Open(sealed, context)
	return err == nil
}

func openWith(b *secret.Box, sealed, context string) ([]byte, error) {
	if b == nil {
		return nil, secret.ErrSealed
	}
	return b.Open(sealed, context)
}
