// Package resolvers answers GraphQL operations: each resolver decodes its arguments, calls one
// service method and maps the result. Rules live in package service, not here.
package resolvers

import (
	"github.com/knownhq/known/graph"
	"github.com/knownhq/known/service"
)

// Resolver is the root of every resolver.
type Resolver struct {
	Service *service.Service
}

var _ graph.ResolverRoot = &Resolver{}
