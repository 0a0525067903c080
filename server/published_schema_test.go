package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateSchema = flag.Bool("update", false, "TestPublishedSchema: write the served schema to ../schema.graphql")

// publishedSchema is the committed, published schema: clients generate code from it, and CI
// checks each change to it for breaking changes (.ci/run, CHANGELOG.md).
var publishedSchema = filepath.Join("..", "schema.graphql")

// TestPublishedSchema shows that the schema Known serves (GET /schema.graphql, which is what
// introspection describes) is the committed schema.graphql, so that no change to the API
// escapes review as a change to that file.
func TestPublishedSchema(t *testing.T) {
	k := startKnown(t)
	status, _, served := httpGet(t, k.URL, "/schema.graphql")
	if status != 200 || !strings.Contains(served, "type Query") {
		t.Fatalf("GET /schema.graphql = %d %.200q", status, served)
	}
	if *updateSchema {
		if err := os.WriteFile(publishedSchema, []byte(served), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", publishedSchema)
		return
	}
	committed, err := os.ReadFile(publishedSchema)
	if err != nil {
		t.Fatalf("reading the published schema: %v\nwrite it with: go test ./server -run TestPublishedSchema -update", err)
	}
	if string(committed) == served {
		return
	}
	want, got := strings.Split(string(committed), "\n"), strings.Split(served, "\n")
	line := 0
	for line < len(want) && line < len(got) && want[line] == got[line] {
		line++
	}
	at := func(lines []string) string {
		if line < len(lines) {
			return lines[line]
		}
		return "(end of file)"
	}
	t.Fatalf("the served schema differs from the published schema.graphql, first at line %d:\n"+
		"  schema.graphql: %q\n  served:         %q\n"+
		"If the change is meant: go test ./server -run TestPublishedSchema -update, commit schema.graphql, "+
		"and name every breaking change in CHANGELOG.md (see its top).", line+1, at(want), at(got))
}

// TestDeferIsNotAdvertised shows that introspection lists no @defer directive, and that a query
// using it is refused by name: Known has no incremental transport, so a deferred field would
// otherwise come back null.
func TestDeferIsNotAdvertised(t *testing.T) {
	k := startKnown(t)
	_, key := createProject(t, k.URL, "Defer")
	var data struct {
		Schema struct{ Directives []struct{ Name string } } `json:"__schema"`
	}
	gql(t, k.URL, key, `{ __schema { directives { name } } }`, nil).decode(t, &data)
	var names []string
	for _, d := range data.Schema.Directives {
		names = append(names, d.Name)
	}
	if strings.Contains(","+strings.Join(names, ",")+",", ",defer,") || !strings.Contains(strings.Join(names, ","), "skip") {
		t.Errorf("introspection lists directives %q, want skip and include but not defer", names)
	}
	r := gql(t, k.URL, key, `{ project { id ... @defer { name } } }`, nil)
	r.requireCode(t, "GRAPHQL_VALIDATION_FAILED")
	if !strings.Contains(r.Errors[0].Message, "defer") {
		t.Errorf("the error %q does not name @defer", r.Errors[0].Message)
	}
	if len(r.Data) > 0 && string(r.Data) != "null" {
		t.Errorf("a query using @defer ran: data %s", r.Data)
	}
}
