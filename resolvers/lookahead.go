package resolvers

import (
	"context"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/knownhq/known"
	"github.com/knownhq/known/dataloader"
	"github.com/knownhq/known/service"
	"github.com/vektah/gqlparser/v2/ast"
)

// A list's items resolve concurrently, each asking the request's loaders for its related
// objects; how many of those asks land in one batch would depend on timing. So a list field
// looks ahead at what the query selects below it and loads the related objects of the whole
// page first, one query per kind: the items then find them cached, and the round trips of a
// query do not grow with the length of its lists.

// selects reports whether the selection of the field being resolved reaches the field path,
// through fragments of any type (preloading something unused costs one query; missing
// something needed costs one per item).
func selects(ctx context.Context, path ...string) bool {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || fc.Field.Field == nil {
		return false
	}
	return reaches(graphql.GetOperationContext(ctx), fc.Field.Selections, path, 0)
}

func reaches(oc *graphql.OperationContext, set ast.SelectionSet, path []string, depth int) bool {
	if len(path) == 0 {
		return true
	}
	if depth > 32 { // fragments cannot cycle (validation refuses it); this is only a guard
		return false
	}
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			if sel.Name == path[0] && reaches(oc, sel.SelectionSet, path[1:], depth+1) {
				return true
			}
		case *ast.InlineFragment:
			if reaches(oc, sel.SelectionSet, path, depth+1) {
				return true
			}
		case *ast.FragmentSpread:
			if f := oc.Doc.Fragments.ForName(sel.Name); f != nil && reaches(oc, f.SelectionSet, path, depth+1) {
				return true
			}
		}
	}
	return false
}

// PreloadFields are the schema fields the look-ahead names, as "Type.field": a list's items
// are preloaded by these names, so a field renamed in the schema but not here would silently
// bring one query per item back. A test checks every one exists (server/lookahead_test.go).
var PreloadFields = []string{
	"ConversationConnection.nodes", "ConversationConnection.edges", "ConversationEdge.node",
	"UserConnection.nodes", "UserConnection.edges", "UserEdge.node",
	"Conversation." + fieldUser,
	"User." + fieldCompanies, "User." + fieldActiveCompany, "User." + fieldOrganizations,
	"User." + fieldConversationIDs, "User." + fieldExternalProfile,
}

// The fields named by the look-ahead (see PreloadFields).
const (
	fieldUser            = "user"
	fieldCompanies       = "companies"
	fieldActiveCompany   = "activeCompany"
	fieldOrganizations   = "organizations"
	fieldConversationIDs = "conversationIds"
	fieldExternalProfile = "externalProfile"
)

// selectsItem reports whether a connection's items (nodes, or edges.node) select path.
func selectsItem(ctx context.Context, path ...string) bool {
	return selects(ctx, append([]string{"nodes"}, path...)...) || selects(ctx, append([]string{"edges", "node"}, path...)...)
}

// preloadConversations loads, for a page of conversations, the users and the users' related
// objects that the query selects.
func (r *Resolver) preloadConversations(ctx context.Context, cs []*known.Conversation) {
	if !selectsItem(ctx, fieldUser) {
		return
	}
	var ids []known.UserID
	for _, c := range cs {
		if c.UserID != nil {
			ids = append(ids, *c.UserID)
		}
	}
	users, err := dataloader.For(ctx, r.Service).Users.LoadAll(ctx, ids)
	if err != nil {
		return // each item's own load reports it
	}
	r.preloadUsers(ctx, present(users), fieldUser)
}

// preloadUsers loads, for a list of users, the related objects the query selects below the
// list's items (prefix is the path from an item to a user, if the items are not users).
func (r *Resolver) preloadUsers(ctx context.Context, users []*known.User, prefix ...string) {
	l := dataloader.For(ctx, r.Service)
	wants := func(field string) bool { return selectsItem(ctx, append(prefix, field)...) }
	var companies []known.CompanyID
	var orgs []known.OrganizationID
	ids := make([]known.UserID, len(users))
	for i, u := range users {
		ids[i] = u.ID
		companies = append(companies, u.CompanyIDs...)
		orgs = append(orgs, u.OrganizationIDs...)
	}
	// The kinds load at once: one round trip for all of them, not one after another.
	var wg sync.WaitGroup
	if wants(fieldCompanies) || wants(fieldActiveCompany) {
		wg.Go(func() { _, _ = l.Companies.LoadAll(ctx, companies) })
	}
	if wants(fieldOrganizations) {
		wg.Go(func() { _, _ = l.Organizations.LoadAll(ctx, orgs) })
	}
	if wants(fieldConversationIDs) {
		wg.Go(func() { _, _ = l.ConversationIDs.LoadAll(ctx, ids) })
	}
	if wants(fieldExternalProfile) {
		wg.Go(func() { _, _ = l.ExternalProfiles.LoadAll(ctx, service.ProfileKeys(users...)) })
	}
	wg.Wait()
}
