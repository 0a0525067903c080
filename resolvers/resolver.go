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

// Root returns the resolver root to serve: a Resolver whose resolvers of conversations and
// users are made once. gqlgen asks the root for a type's resolver at every field of that type
// it resolves, and the generated getters make a new one each time: five per row of an inbox
// page (issue 10).
func Root(svc *service.Service) graph.ResolverRoot {
	r := &Resolver{Service: svc}
	return &root{Resolver: r, conversation: r.Conversation(), user: r.User()}
}

type root struct {
	*Resolver
	conversation graph.ConversationResolver
	user         graph.UserResolver
}

func (r *root) Conversation() graph.ConversationResolver { return r.conversation }
func (r *root) User() graph.UserResolver                 { return r.user }
