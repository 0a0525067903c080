package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/knownhq/known/dataloader"
	"github.com/knownhq/known/graphiql"
	"github.com/knownhq/known/service"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/widget"
	"github.com/rs/zerolog"
	"github.com/vektah/gqlparser/v2/formatter"
)

// newServer returns Known's whole HTTP surface (API.md §2).
func newServer(log zerolog.Logger, svc *service.Service, st *store.Store, m *metrics, opts ...serverOption) http.Handler {
	gql, schema := newGraphQL(log, svc, m)
	api := allowCrossOrigin(withClient(limitBody(queriesOnGET(answerUnavailable(authenticate(svc, dataloader.Middleware(svc, answerRateLimits(gql))))))))

	mux := http.NewServeMux()
	mux.Handle("POST /graphql", api)
	mux.Handle("GET /graphql", upgrades(withClient(gql), api)) // subscriptions: events.go
	mux.Handle("OPTIONS /graphql", api)                        // CORS preflight
	ide := graphiql.Handler()
	mux.Handle("GET /{$}", ide)
	mux.Handle("GET "+graphiql.AssetPrefix, ide)
	mux.HandleFunc("GET /schema.graphql", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		formatter.NewFormatter(w, formatter.WithComments()).FormatSchema(schema)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := st.Ping(ctx); err != nil {
			if info := infoFrom(r.Context()); info != nil {
				info.fail(fmt.Errorf("the database does not answer: %w", err))
			}
			w.Header().Set("Retry-After", retryAfter)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("database not reachable\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", m.handler())
	mux.Handle("GET /widget.js", widget.Script()) // the browser SDK, API.md §8
	for _, o := range opts {
		o(mux, svc)
	}
	handleREST(mux, log, svc, m)
	return logRequests(log, m, mux)
}
