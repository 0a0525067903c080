// Command userapi is a fake customer user API (seed 000) on loopback for the benchmark in
// ../run.sh: GET /users/{id} answers 200 with a small profile for every id, at once, so that
// Known and the peers pay the same (nil) latency for it. The profile of "d-7" is User 7, the
// name the seeds give that user, so that Known (which names a user after a fetched profile)
// shows the same page as the peers.
//
//	userapi -addr 127.0.0.1:9999
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address, on loopback")
	flag.Parse()
	var served atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		id := r.PathValue("id")
		last := id[strings.LastIndexByte(id, '-')+1:]
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"first_name": "User",
			"last_name":  last,
			"metadata":   map[string]any{"subscription_plan": "Pro"},
		})
	})
	// how many profiles were fetched: run.sh reads it to see that the measured rounds fetched none
	mux.HandleFunc("GET /served", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, served.Load())
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "userapi:", err)
		os.Exit(1)
	}
	fmt.Printf("ready http://%s/\n", ln.Addr())
	if err := http.Serve(ln, mux); err != nil {
		fmt.Fprintln(os.Stderr, "userapi:", err)
		os.Exit(1)
	}
}
