package main

import (
	"context"
	"net/http"
	"strings"

	"github.com/knownhq/known"
	"github.com/knownhq/known/rest"
	"github.com/knownhq/known/service"
	"github.com/rs/zerolog"
)

// handleREST adds the seeds' REST routes (API.md §10) and GET /openapi.json to mux. They go
// through the GraphQL endpoint's middleware: the request log (with the route as the
// operation) and metrics, the body limit, the caller's credential and the client's address,
// Origin and widget session, which the service checks (rate limit, allowedOrigins). Only the
// widget routes, which browsers call, allow other origins; the secret-key routes are for
// servers.
func handleREST(mux *http.ServeMux, log zerolog.Logger, svc *service.Service, m *metrics) {
	api := &rest.API{Service: svc, OnError: func(ctx context.Context, code known.Code, err error) {
		info := infoFrom(ctx)
		switch {
		case code == known.Internal && info != nil:
			info.fail(err) // the request's own error line carries the cause: one line
		case code == known.Internal:
			log.Error().Err(err).Str("request_id", requestIDFrom(ctx)).Msg("internal error")
		}
		m.routeErrors.WithLabelValues(string(code)).Inc()
		if info != nil {
			info.addError(string(code))
		}
	}}
	for _, rt := range api.Routes() {
		h := withClient(limitBodyWith(rest.WriteError, authenticateWith(rest.WriteError, svc, rt.Handler)))
		if rt.Widget {
			h = allowCrossOrigin(h)
			// CORS preflights are answered by allowCrossOrigin; any other OPTIONS request
			// learns the methods, and never reaches the route.
			method, path, _ := strings.Cut(rt.Pattern, " ")
			options := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Allow", method+", OPTIONS")
				w.WriteHeader(http.StatusNoContent)
			})
			mux.Handle("OPTIONS "+path, named("OPTIONS "+path, allowCrossOrigin(options)))
		}
		mux.Handle(rt.Pattern, named(rt.Pattern, h))
	}
	mux.Handle("GET /openapi.json", rest.OpenAPI())
}

// named makes route the operation of the request's log line and metrics.
func named(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info := infoFrom(r.Context()); info != nil {
			info.setRoute(route)
		}
		next.ServeHTTP(w, r)
	})
}
