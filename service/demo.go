package service

import (
	"context"

	"github.com/knownhq/known"
)

// DemoName is the name of the project that EnsureDemoProject makes and the demo page shows.
const DemoName = "Demo"

// DemoProject returns the oldest project named DemoName, for the demo page (KNOWN_DEMO), or
// NOT_FOUND when there is none. It needs no credential: the page shows only the project's
// public app id.
func (s *Service) DemoProject(ctx context.Context) (*known.Project, error) {
	return s.store.OldestProjectNamed(ctx, DemoName)
}
