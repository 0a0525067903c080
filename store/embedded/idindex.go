package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // the SQLite driver FerretDB itself uses
)

// FerretDB 1.24 on SQLite keeps each collection in a table with one JSON column, and looks a
// document up by _id with `WHERE _ferretdb_sjson->'$._id' = ?`; but the unique index it makes
// for _id is on `_ferretdb_sjson->"_id"`, and SQLite uses an index on an expression only for
// the same expression, written the same way. So every find, update and delete by _id reads
// the table until it finds the document: measured through FerretDB at 8,000 documents of 400
// bytes, a find by _id of a document near the end took 15 ms (0.2 ms near the start, or with
// the index below), and every update by _id 15 ms (0.2 ms with it). IndexIDs adds the index
// FerretDB's own queries can use. FerretDB neither lists nor needs it; dropping a collection
// drops its table and the index with it.

// idIndexSuffix ends the name of the index IndexIDs adds to a table.
const idIndexSuffix = "_known_id"

// IndexIDs gives every collection of database db the _id index FerretDB's lookups by _id can
// use. It is idempotent; call it after collections are created (a collection created later has
// no such index until the next call). Only db's file is opened: another database of the server
// may be dropped meanwhile (tests), its file deleted under a reader.
func (s *Server) IndexIDs(ctx context.Context, db string) error {
	f := filepath.Join(s.dir, db+".sqlite")
	if err := indexFile(ctx, f); err != nil {
		return fmt.Errorf("embedded store: indexing _id in %s: %w", filepath.Base(f), err)
	}
	return nil
}

// IndexIDs is Server.IndexIDs for every database in dir, for a FerretDB run by another process
// on them (the benchmark's), whose databases are not dropped meanwhile.
func IndexIDs(ctx context.Context, dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.sqlite"))
	if err != nil {
		return fmt.Errorf("embedded store: %w", err)
	}
	for _, f := range files {
		if err := indexFile(ctx, f); err != nil {
			return fmt.Errorf("embedded store: indexing _id in %s: %w", filepath.Base(f), err)
		}
	}
	return nil
}

func indexFile(ctx context.Context, file string) error {
	// FerretDB writes to the file meanwhile: wait for its locks rather than fail.
	db, err := sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	tables, err := tablesOf(ctx, db)
	if err != nil {
		return err
	}
	for _, t := range tables {
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`, t+idIndexSuffix, t)
		if _, err := db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// tablesOf lists the collection tables of a FerretDB database file.
func tablesOf(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM _ferretdb_collections`)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return nil, nil // a database FerretDB has not set up yet
		}
		return nil, err
	}
	defer rows.Close()
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, err
		}
		tables = append(tables, t)
	}
	return tables, rows.Err()
}

// Unindexed lists, as "database.table", the collection tables of dir's databases where SQLite
// would answer FerretDB's lookup by _id by reading the table rather than an index: what
// IndexIDs leaves empty.
func Unindexed(ctx context.Context, dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.sqlite"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range files {
		db, err := sql.Open("sqlite", "file:"+f+"?_pragma=busy_timeout(10000)")
		if err != nil {
			return nil, err
		}
		tables, err := tablesOf(ctx, db)
		for _, t := range tables {
			var plan []string
			plan, err = queryPlan(ctx, db, fmt.Sprintf(`SELECT _ferretdb_sjson FROM %q WHERE _ferretdb_sjson->'$._id' = ?`, t))
			if err != nil {
				break
			}
			if !strings.Contains(strings.Join(plan, "\n"), "USING INDEX "+t+idIndexSuffix) {
				out = append(out, strings.TrimSuffix(filepath.Base(f), ".sqlite")+"."+t)
			}
		}
		db.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func queryPlan(ctx context.Context, db *sql.DB, q string) ([]string, error) {
	rows, err := db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q, `"x"`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			return nil, err
		}
		plan = append(plan, detail)
	}
	return plan, rows.Err()
}

// Count returns how many documents collection coll of database db holds, from SQLite's count
// of the table's rows (which reads an index, not the documents; a FerretDB count command
// decodes every document). 0 for a collection that does not exist.
func (s *Server) Count(ctx context.Context, db, coll string) (int64, error) {
	conn, err := s.sqlite(db)
	if err != nil {
		return 0, err
	}
	var table string
	err = conn.QueryRowContext(ctx, `SELECT table_name FROM _ferretdb_collections WHERE name = ?`, coll).Scan(&table)
	if errors.Is(err, sql.ErrNoRows) || (err != nil && strings.Contains(err.Error(), "no such table")) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("embedded store: counting %s: %w", coll, err)
	}
	var n int64
	if err := conn.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(*) FROM %q`, table)).Scan(&n); err != nil {
		return 0, fmt.Errorf("embedded store: counting %s: %w", coll, err)
	}
	return n, nil
}

// sqlite returns this process's own read connection to database db's file, opened once.
func (s *Server) sqlite(db string) (*sql.DB, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.files[db]; c != nil {
		return c, nil
	}
	c, err := sql.Open("sqlite", "file:"+filepath.Join(s.dir, db+".sqlite")+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, fmt.Errorf("embedded store: %w", err)
	}
	c.SetMaxOpenConns(2)
	if s.files == nil {
		s.files = map[string]*sql.DB{}
	}
	s.files[db] = c
	return c, nil
}
