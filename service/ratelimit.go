package service

import (
	"context"
	"math"
	"time"

	"github.com/knownhq/known"
)

// charge counts one widget call of client for project against the rate limit (RATE_LIMITED
// with RetryAfter when it is spent). Inside a GraphQL request every operation is one call,
// charged by whichever of its fields first needs the caller; a call outside any operation (a
// direct service call) is charged when it authenticates (authenticating set), and a request's
// later fields outside an operation share that charge.
func (s *Service) charge(ctx context.Context, client known.Client, project string, authenticating bool) error {
	if s.limiter == nil {
		return nil
	}
	op := known.OperationFromContext(ctx)
	switch {
	case op != nil && !op.FirstCharge():
		return nil
	case op == nil && !authenticating:
		return nil
	}
	ok, wait := s.limiter.Take(truncate(project) + "|" + client.IP)
	if ok {
		return nil
	}
	secs := int64(math.Ceil(wait.Seconds()))
	return &known.Error{Code: known.RateLimited, RetryAfter: wait,
		Message: "too many widget calls from this address; retry in " + (time.Duration(max(secs, 1)) * time.Second).String()}
}
