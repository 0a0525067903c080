// Package dataloader batches the reads one GraphQL request makes, so that a list of N
// objects and their related objects costs a fixed number of database round trips instead of
// one per object (the N+1 problem). Loaders are made per request: their caches never outlive
// it, and they act with that request's caller.
package dataloader

import (
	"context"
	"net/http"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/service"
	"github.com/vikstrous/dataloadgen"
)

// Loaders are one request's loaders.
type Loaders struct {
	Users            *dataloadgen.Loader[known.UserID, *known.User]
	Companies        *dataloadgen.Loader[known.CompanyID, *known.Company]
	Organizations    *dataloadgen.Loader[known.OrganizationID, *known.Organization]
	ConversationIDs  *dataloadgen.Loader[known.UserID, []known.ConversationID]
	ExternalProfiles *dataloadgen.Loader[service.ProfileKey, *known.Profile]
	// CompanyUsers loads the first page of a company's users.
	CompanyUsers *dataloadgen.Loader[service.CompanyPage, service.UserPage]
}

// wait is how long a loader gathers keys before it queries: resolvers of one list run
// concurrently, so a short wait collects the whole list.
const wait = 2 * time.Millisecond

// New returns fresh loaders over svc.
func New(svc *service.Service) *Loaders {
	opts := []dataloadgen.Option{dataloadgen.WithWait(wait), dataloadgen.WithBatchCapacity(1000)}
	return &Loaders{
		Users:            dataloadgen.NewLoader(each(svc.UsersByIDs), opts...),
		Companies:        dataloadgen.NewLoader(each(svc.CompaniesByIDs), opts...),
		Organizations:    dataloadgen.NewLoader(each(svc.OrganizationsByIDs), opts...),
		ConversationIDs:  dataloadgen.NewLoader(each(svc.ConversationIDsOfUsers), opts...),
		ExternalProfiles: dataloadgen.NewLoader(each(svc.ExternalProfiles), opts...),
		CompanyUsers:     dataloadgen.NewLoader(each(svc.CompanyUsersFirstPages), opts...),
	}
}

// each adapts a batch function that fails as a whole to dataloadgen's per-key errors.
func each[K any, V any](f func(context.Context, []K) ([]V, error)) func(context.Context, []K) ([]V, []error) {
	return func(ctx context.Context, keys []K) ([]V, []error) {
		vs, err := f(ctx, keys)
		if err != nil {
			return nil, []error{err}
		}
		return vs, nil
	}
}

type key struct{}

// Middleware gives every request fresh loaders.
func Middleware(svc *service.Service, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), key{}, New(svc))))
	})
}

// For returns the request's loaders; a context without them (a test calling resolvers
// directly) gets fresh ones that live as long as the call.
func For(ctx context.Context, svc *service.Service) *Loaders {
	if l, ok := ctx.Value(key{}).(*Loaders); ok {
		return l
	}
	return New(svc)
}
