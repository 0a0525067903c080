package main

import (
	"context"
	"net/http"
	"sync/atomic"
)

// While the database is down, an operation fails after the store's short server selection
// timeout, and the client gets HTTP 503 with Retry-After: the one answer a client can act on
// (try again shortly), the same as /readyz gives. The GraphQL error keeps the contract's code
// INTERNAL_SERVER_ERROR, with the message "the database is not reachable; try again" and the
// request id, and is logged once with the cause.

// unavailableMessage is what a client reads when the database could not be reached.
const unavailableMessage = "the database is not reachable; try again"

// retryAfter is the Retry-After of a 503, in seconds.
const retryAfter = "1"

type unavailableKey struct{}

// markUnavailable records that the request failed because the database could not be reached.
func markUnavailable(ctx context.Context) {
	if f, ok := ctx.Value(unavailableKey{}).(*atomic.Bool); ok {
		f.Store(true)
	}
}

// answerUnavailable makes a GraphQL response whose operation hit an unreachable database an
// HTTP 503 with Retry-After, however much of it succeeded: the client must retry it. Every 503
// below it (authenticate's) gets Retry-After too.
func answerUnavailable(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := &atomic.Bool{}
		next.ServeHTTP(&unavailableWriter{ResponseWriter: w, down: f}, r.WithContext(context.WithValue(r.Context(), unavailableKey{}, f)))
	})
}

type unavailableWriter struct {
	http.ResponseWriter
	down  *atomic.Bool
	wrote bool
}

func (u *unavailableWriter) WriteHeader(code int) {
	if !u.wrote {
		u.wrote = true
		if code == http.StatusOK && u.down.Load() {
			code = http.StatusServiceUnavailable
		}
		if code == http.StatusServiceUnavailable && u.Header().Get("Retry-After") == "" {
			u.Header().Set("Retry-After", retryAfter)
		}
	}
	u.ResponseWriter.WriteHeader(code)
}

func (u *unavailableWriter) Write(b []byte) (int, error) {
	if !u.wrote {
		u.WriteHeader(http.StatusOK)
	}
	return u.ResponseWriter.Write(b)
}

func (u *unavailableWriter) Unwrap() http.ResponseWriter { return u.ResponseWriter }
