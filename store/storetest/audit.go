package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
)

// The command-shape auditor. FerretDB 1.24 on SQLite (the embedded store) pushes a filter down
// to SQLite only when the filter is exactly {_id: <string or ObjectID>}: any other filter, and
// any sort, makes it read and decode the whole collection in Go (FerretDB v1.24.2,
// internal/backends/sqlite/collection.go, Query). A command of the second kind costs in
// proportion to the collection, so a path that sends one slows down as the data grows. The
// auditor sorts the commands a store sends into the two kinds by that rule.

// Command is one database command as the auditor saw it.
type Command struct {
	// Name is the command (find, insert, update, delete, findAndModify, aggregate, …).
	Name string
	// Collection is the collection it names.
	Collection string
	// Filters are the filter keys of each of its queries (one for find and findAndModify, one
	// per statement for update and delete), sorted, with "sort" added when it sorts.
	Filters [][]string
	// Constant says that FerretDB serves every query of the command from the _id index.
	Constant bool
}

// String is "find users {_id}" or "update users {_id,rev}".
func (c Command) String() string {
	var fs []string
	for _, f := range c.Filters {
		fs = append(fs, "{"+strings.Join(f, ",")+"}")
	}
	return strings.TrimSpace(c.Name + " " + c.Collection + " " + strings.Join(fs, " "))
}

// Auditor records the commands sent through a store opened with its Monitor.
type Auditor struct {
	mu   sync.Mutex
	cmds []Command
}

// ignored are the commands that read or write no collection's documents: the driver's own
// (handshakes, cursors, sessions) and schema work done when a store opens.
var ignored = []string{"getMore", "killCursors", "endSessions", "ping", "hello", "isMaster", "ismaster",
	"buildInfo", "buildinfo", "saslStart", "saslContinue", "createIndexes", "listIndexes", "listCollections",
	"listDatabases", "drop", "dropDatabase", "create", "getParameter", "dropIndexes"}

// Monitor returns the command monitor to pass to Open (or store.Config.Monitor).
func (a *Auditor) Monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if slices.Contains(ignored, e.CommandName) {
			return
		}
		c := Classify(e.CommandName, e.Command)
		a.mu.Lock()
		a.cmds = append(a.cmds, c)
		a.mu.Unlock()
	}}
}

// Reset forgets the commands recorded so far.
func (a *Auditor) Reset() {
	a.mu.Lock()
	a.cmds = nil
	a.mu.Unlock()
}

// Commands returns the commands recorded since the last Reset, in the order they started.
func (a *Auditor) Commands() []Command {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.cmds)
}

// Scans returns the recorded commands that are not constant-cost.
func (a *Auditor) Scans() []Command {
	var out []Command
	for _, c := range a.Commands() {
		if !c.Constant {
			out = append(out, c)
		}
	}
	return out
}

// Classify sorts one command by the FerretDB rule: an insert is constant; a find or
// findAndModify is constant when its filter is exactly {_id: <string or ObjectID>} and it does
// not sort; an update or delete is constant when each of its statements' q is; everything
// else (aggregate, count, distinct, …) scans.
func Classify(name string, cmd bson.Raw) Command {
	c := Command{Name: name}
	if first, err := cmd.IndexErr(0); err == nil {
		c.Collection, _ = first.Value().StringValueOK()
	}
	switch name {
	case "insert":
		c.Constant = true
	case "find":
		c.Constant = c.query(cmd.Lookup("filter"), cmd.Lookup("sort"))
	case "findAndModify":
		c.Constant = c.query(cmd.Lookup("query"), cmd.Lookup("sort"))
	case "update", "delete":
		list := "updates"
		if name == "delete" {
			list = "deletes"
		}
		stmts, ok := cmd.Lookup(list).ArrayOK()
		vals, err := stmts.Values()
		c.Constant = ok && err == nil && len(vals) > 0
		for _, v := range vals {
			doc, ok := v.DocumentOK()
			if !ok {
				c.Constant = false
				continue
			}
			if !c.query(doc.Lookup("q"), bson.RawValue{}) {
				c.Constant = false
			}
		}
	default:
		c.Filters = append(c.Filters, []string{"?"})
	}
	return c
}

// query records one query's filter keys and reports whether FerretDB serves it by _id.
func (c *Command) query(filter, sort bson.RawValue) bool {
	var keys []string
	constant := false
	if doc, ok := filter.DocumentOK(); ok {
		elems, _ := doc.Elements()
		for _, e := range elems {
			keys = append(keys, e.Key())
		}
		if len(elems) == 1 && elems[0].Key() == "_id" {
			t := elems[0].Value().Type
			constant = t == bson.TypeString || t == bson.TypeObjectID
		}
	}
	slices.Sort(keys)
	if s, ok := sort.DocumentOK(); ok {
		if elems, _ := s.Elements(); len(elems) > 0 {
			keys = append(keys, "sort")
			constant = false
		}
	}
	if keys == nil {
		keys = []string{}
	}
	c.Filters = append(c.Filters, keys)
	return constant
}

// Summary is the commands, one a line, each marked SCAN or const.
func Summary(cmds []Command) string {
	var b strings.Builder
	for _, c := range cmds {
		kind := "const"
		if !c.Constant {
			kind = "SCAN"
		}
		fmt.Fprintf(&b, "%-5s %s\n", kind, c)
	}
	return b.String()
}
