package main

import (
	"maps"

	"github.com/vektah/gqlparser/v2/ast"
)

// withoutDefer returns schema without the @defer directive that the GraphQL library's prelude
// declares. Known serves no incremental transport (multipart/mixed), so a deferred field would
// silently come back null, a deferred non-null one breaking its parent; unadvertised, @defer is
// refused by validation with a message that names it. The schema is copied, not changed: the
// generated code shares it.
func withoutDefer(schema *ast.Schema) *ast.Schema {
	s := *schema
	s.Directives = maps.Clone(schema.Directives)
	delete(s.Directives, "defer")
	return &s
}
