// Package embedded runs FerretDB, a MongoDB-compatible server on SQLite files, inside the Known
// process: the default store for development and small installs.
package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"github.com/gofrs/flock"
	"github.com/rs/zerolog"
)

// Server is a running embedded FerretDB.
type Server struct {
	mu     sync.Mutex
	files  map[string]*sql.DB // read connections to the databases' files (Count)
	dir    string
	uri    string
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
	lock   *flock.Flock
}

// LockFile is the file in the data directory that a running embedded store holds locked.
const LockFile = "known.lock"

// Start starts FerretDB keeping its SQLite files in dir, listening on addr (host:port; port 0
// picks a free one). FerretDB's own logging goes to log at warn level and above.
//
// The directory is locked (an flock(2) on dir/known.lock, released by Stop or when the process
// ends, however it ends) for as long as the server runs: two processes writing one set of
// SQLite files through two FerretDBs each apply their own updates over the other's, so a
// second Start on a locked directory fails at once with an error naming it.
func Start(dir, addr string, log zerolog.Logger) (*Server, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("embedded store: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded store: %w", err)
	}
	lock := flock.New(filepath.Join(dir, LockFile))
	locked, err := lock.TryLock()
	if err != nil {
		return nil, fmt.Errorf("embedded store: locking the data directory %s: %w", dir, err)
	}
	if !locked {
		return nil, fmt.Errorf("embedded store: the data directory %s is in use by another process (it holds %s locked); "+
			"stop that process, or give this one another data directory", dir, lock.Path())
	}
	started := false
	defer func() {
		if !started {
			_ = lock.Unlock()
		}
	}()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if _, port, _ := net.SplitHostPort(addr); port == "0" {
		// FerretDB cannot report the port it picked before Run, so pick one here.
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("embedded store: %w", err)
		}
		addr = l.Addr().String()
		l.Close()
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
		Logger:    slog.New(&slogHandler{log: log.With().Str("component", "ferretdb").Logger()}),
	})
	if err != nil {
		return nil, fmt.Errorf("embedded store: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{dir: dir, addr: addr, cancel: cancel, done: make(chan struct{}), lock: lock}
	go func() {
		defer close(s.done)
		_ = f.Run(ctx)
	}()
	s.uri = "mongodb://" + addr + "/"
	running.Store(s.uri, s)
	// Wait until it accepts connections, so that callers may connect at once.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			started = true
			return s, nil
		}
		if time.Now().After(deadline) {
			started = true // Stop unlocks
			s.Stop()
			return nil, fmt.Errorf("embedded store: not listening on %s: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// running maps the URI of each server this process runs to it (Running).
var running sync.Map

// Running returns the server this process runs at uri, or nil: a store that connects by URI
// to a FerretDB of its own process (the tests' shared one) can then read its files.
func Running(uri string) *Server {
	if s, ok := running.Load(uri); ok {
		return s.(*Server)
	}
	return nil
}

// URI is the MongoDB connection string of the server.
func (s *Server) URI() string { return s.uri }

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.addr }

// Stop stops the server and closes its files; it returns once they are closed, and then
// unlocks the directory.
func (s *Server) Stop() {
	running.Delete(s.uri)
	s.mu.Lock()
	for _, c := range s.files {
		_ = c.Close()
	}
	s.files = nil
	s.mu.Unlock()
	s.cancel()
	<-s.done
	_ = s.lock.Unlock()
}
