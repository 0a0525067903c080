// Command ferretdb serves an external FerretDB (on SQLite files, through Known's store/embedded
// package) on a loopback address, as a process of its own: the benchmark in ../run.sh puts Known
// and the reference peers on it, so that the store's CPU is counted for neither server.
//
//	ferretdb -dir /tmp/x -addr 127.0.0.1:27018
//
// It prints "ready mongodb://…/" once it accepts connections and stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/knownhq/known/store/embedded"
	"github.com/rs/zerolog"
)

func main() {
	dir := flag.String("dir", "", "directory of the SQLite files (required)")
	addr := flag.String("addr", "127.0.0.1:0", "listen address, on loopback")
	pprofAddr := flag.String("pprof", "", "a loopback address to serve net/http/pprof on (where the store's CPU goes)")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "ferretdb: -dir is required")
		os.Exit(2)
	}
	log := zerolog.New(os.Stderr).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	s, err := embedded.Start(*dir, *addr, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
	if *pprofAddr != "" {
		go func() { log.Warn().Err(http.ListenAndServe(*pprofAddr, nil)).Msg("pprof") }()
	}
	fmt.Println("ready", s.URI())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	// The servers on it create their collections after they connect: give each new one the
	// _id index FerretDB's lookups use (store/embedded.IndexIDs), as Known's own embedded
	// store does at start, so that every server measured on it gets the same store.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-sig:
			s.Stop()
			return
		case <-tick.C:
			if err := embedded.IndexIDs(context.Background(), *dir); err != nil {
				log.Warn().Err(err).Msg("indexing _id")
			}
		}
	}
}
