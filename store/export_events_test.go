package store

import (
	"context"

	"github.com/knownhq/known"
)

// CopyEventList copies user from's list of events onto into's, as a merge does before it moves
// the events, and stops there, as a merge interrupted after the copy would.
func (s *Store) CopyEventList(ctx context.Context, p known.ProjectID, from, into known.UserID) error {
	_, err := s.copyEventList(ctx, p, from, into)
	return err
}

// DeleteEventList deletes user u's list of events alone, as a merge interrupted after deleting
// the merged user's list, before the record of its move, would leave it.
func (s *Store) DeleteEventList(ctx context.Context, p known.ProjectID, u known.UserID) error {
	return s.eventList(p, u).delete(ctx)
}
