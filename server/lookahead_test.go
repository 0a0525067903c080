package main

import (
	"strings"
	"testing"

	"github.com/knownhq/known/resolvers"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

// TestPreloadFieldsExist: every schema field the resolvers' look-ahead preloads by name exists
// in the served schema, so that renaming one cannot silently bring one query per list item back.
func TestPreloadFieldsExist(t *testing.T) {
	schema := servedSchema(t)
	for _, tf := range resolvers.PreloadFields {
		typ, field, _ := strings.Cut(tf, ".")
		def := schema.Types[typ]
		if def == nil || def.Fields.ForName(field) == nil {
			t.Errorf("the look-ahead preloads %s, which the schema does not have", tf)
		}
	}
	if len(resolvers.PreloadFields) < 10 {
		t.Fatalf("only %d preload fields listed", len(resolvers.PreloadFields))
	}
}

func servedSchema(t *testing.T) *ast.Schema {
	t.Helper()
	k := startKnown(t)
	_, _, sdl := httpGet(t, k.URL, "/schema.graphql")
	s, err := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphql", Input: sdl})
	if err != nil {
		t.Fatalf("parsing the served schema: %v", err)
	}
	return s
}
