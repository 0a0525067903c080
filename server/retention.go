package main

import (
	"context"
	"time"

	"github.com/knownhq/known/service"
	"github.com/knownhq/known/store"
	"github.com/rs/zerolog"
)

// The retention pass's schedule: once shortly after start (not at once, so that it does not
// compete with the start's own work), then every hour.
const (
	retainFirstAfter = time.Minute
	retainEvery      = time.Hour
)

// retainOld deletes what r lets go (service.Retain) shortly after start and then every hour,
// until ctx is done, which also stops a pass half way (the next start's pass finishes it). A
// pass runs in this goroutine and deletes one document per command, so requests go on
// meanwhile.
func retainOld(ctx context.Context, log zerolog.Logger, svc *service.Service, r store.Retention) {
	if r == (store.Retention{}) {
		return // everything is kept forever
	}
	t := time.NewTimer(retainFirstAfter)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := svc.Retain(ctx, r)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn().Err(err).Msg("deleting events, webhook deliveries or audit entries past their retention")
		case n != (store.Retained{}):
			log.Info().Int64("events", n.Events).Int64("deliveries", n.Deliveries).Int64("audit", n.Audit).
				Msg("deleted what was past its retention")
		}
		t.Reset(retainEvery)
	}
}
