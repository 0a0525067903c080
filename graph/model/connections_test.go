package model

import (
	"fmt"
	"testing"

	"github.com/knownhq/known"
)

// TestPageInfo: the start and end cursors are those of the page's first and last items, nil
// on an empty page; a cursor is made only when asked for.
func TestPageInfo(t *testing.T) {
	for _, n := range []int{0, 1, 3} {
		t.Run(fmt.Sprintf("Items%d", n), func(t *testing.T) {
			var made []int
			p := NewPageInfo(n, true, func(i int) string {
				made = append(made, i)
				return fmt.Sprintf("cursor-%d", i)
			})
			if len(made) != 0 {
				t.Fatalf("cursors %v made before any was asked for", made)
			}
			if !p.HasNextPage || p.HasPreviousPage {
				t.Errorf("hasNextPage %v, hasPreviousPage %v; want true, false", p.HasNextPage, p.HasPreviousPage)
			}
			start, end := p.StartCursor(), p.EndCursor()
			if n == 0 {
				if start != nil || end != nil {
					t.Fatalf("empty page: startCursor %v, endCursor %v; want nil", start, end)
				}
				return
			}
			if start == nil || *start != "cursor-0" {
				t.Errorf("startCursor %v, want cursor-0", start)
			}
			if want := fmt.Sprintf("cursor-%d", n-1); end == nil || *end != want {
				t.Errorf("endCursor %v, want %s", end, want)
			}
		})
	}
}

// TestConnectionEdges: a connection's edges pair each node, in order, with its cursor.
func TestConnectionEdges(t *testing.T) {
	nodes := []*known.Company{{ID: "a"}, {ID: "b"}}
	c := &CompanyConnection{Nodes: nodes, PageInfo: NewPageInfo(len(nodes), false, func(i int) string {
		return "after-" + string(nodes[i].ID)
	})}
	edges := c.Edges()
	if len(edges) != len(nodes) {
		t.Fatalf("%d edges for %d nodes", len(edges), len(nodes))
	}
	for i, e := range edges {
		if e.Node != nodes[i] || e.Cursor != "after-"+string(nodes[i].ID) {
			t.Errorf("edge %d: node %v cursor %q; want node %v cursor after-%s", i, e.Node, e.Cursor, nodes[i], nodes[i].ID)
		}
	}
}
