package service

import (
	"context"

	"github.com/knownhq/known/store"
)

// Retain deletes, as of the service's clock, the published events, finished webhook
// deliveries and audit entries that r lets go (store.Retain says which and why that is safe).
// The server runs it in the background; tests call it with an injected clock.
func (s *Service) Retain(ctx context.Context, r store.Retention) (store.Retained, error) {
	return s.store.Retain(ctx, s.clock(), r)
}
