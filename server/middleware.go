package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/secret"
	"github.com/knownhq/known/service"
	"github.com/rs/cors"
	"github.com/rs/zerolog"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// maxBody is the largest request body accepted (API.md §7).
const maxBody = 1 << 20

// requestInfo gathers what the request's log line reports, as the request runs.
type requestInfo struct {
	id string

	mu        sync.Mutex
	operation string
	route     bool // operation is a REST route
	project   known.ProjectID
	errors    []string
	cause     error // why the request failed with a 5xx status, for its log line
	limited   bool
	retry     time.Duration // the longest Retry-After of its rate-limited operations
}

// rateLimited records that an operation of the request was refused by a rate limit, which may
// be retried after wait: the request is answered 429 with Retry-After.
func (i *requestInfo) rateLimited(wait time.Duration) {
	i.mu.Lock()
	i.limited, i.retry = true, max(i.retry, wait)
	i.mu.Unlock()
}

// retryAfter reports whether the request was rate-limited, and its Retry-After in whole
// seconds (at least 1).
func (i *requestInfo) retryAfter() (bool, int64) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.limited, max(1, int64(math.Ceil(i.retry.Seconds())))
}

// fail records err as the cause of the request's 5xx answer: the request's log line, written
// at level error for a 5xx status, carries it, so that each such answer is logged once with
// its request id and its cause. The first cause wins.
func (i *requestInfo) fail(err error) {
	i.mu.Lock()
	if i.cause == nil {
		i.cause = err
	}
	i.mu.Unlock()
}

func (i *requestInfo) setOperation(op string) {
	i.mu.Lock()
	i.operation = op
	i.mu.Unlock()
}

// setRoute names the REST route that serves the request as its operation.
func (i *requestInfo) setRoute(pattern string) {
	i.mu.Lock()
	i.operation, i.route = pattern, true
	i.mu.Unlock()
}

func (i *requestInfo) setProject(p known.ProjectID) {
	i.mu.Lock()
	i.project = p
	i.mu.Unlock()
}

func (i *requestInfo) addError(code string) {
	i.mu.Lock()
	if len(i.errors) < 10 {
		i.errors = append(i.errors, code)
	}
	i.mu.Unlock()
}

type infoKey struct{}

func infoFrom(ctx context.Context) *requestInfo {
	i, _ := ctx.Value(infoKey{}).(*requestInfo)
	return i
}

func requestIDFrom(ctx context.Context) string {
	if i := infoFrom(ctx); i != nil {
		return i.id
	}
	return ""
}

var sane = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// logRequests gives each request an id (a sane X-Request-Id from the client, or a new one) and
// writes one log line when it ends: id, operation, project, status and duration. It never logs
// headers or bodies, which carry secrets and messages.
func logRequests(log zerolog.Logger, m *metrics, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !sane.MatchString(id) {
			id = secret.Random(12)
		}
		info := &requestInfo{id: id}
		w.Header().Set("X-Request-Id", id)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), infoKey{}, info)))
		elapsed := time.Since(start)

		info.mu.Lock()
		defer info.mu.Unlock()
		graphql := r.URL.Path == "/graphql"
		switch {
		case graphql:
			m.observeRequest(info.operation, elapsed)
		case info.route:
			m.observeRoute(info.operation, rec.status, elapsed)
		}
		ev := log.Debug()
		gone := r.Context().Err() != nil // the client went away before the answer
		switch {
		case rec.status >= 500 && gone:
			ev = log.Warn().Bool("client_gone", true)
		case rec.status >= 500:
			ev = log.Error()
		case graphql || info.route:
			ev = log.Info()
		}
		if info.cause != nil {
			ev = ev.AnErr("error", info.cause)
		}
		ev.Str("request_id", id).Str("method", r.Method).Str("path", r.URL.Path).
			Str("operation", info.operation).Str("project", string(info.project)).Str("client_ip", clientIP(r)).
			Int("status", rec.status).Dur("duration", elapsed).Strs("error_codes", info.errors).
			Msg("request")
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// answerRateLimits answers 429 Too Many Requests, with Retry-After, to a request of which an
// operation was rate-limited (API.md §11); the body is still GraphQL's, with RATE_LIMITED.
// GraphQL answers a request as a whole once its operations have run, so the status can be
// chosen when the answer starts.
func answerRateLimits(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := infoFrom(r.Context())
		if info == nil {
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(&rateLimitWriter{ResponseWriter: w, info: info}, r)
	})
}

type rateLimitWriter struct {
	http.ResponseWriter
	info  *requestInfo
	wrote bool
}

func (w *rateLimitWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		if limited, secs := w.info.retryAfter(); limited && code == http.StatusOK {
			w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
			code = http.StatusTooManyRequests
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *rateLimitWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *rateLimitWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// failFunc answers a request that middleware refuses before its handler runs, in the
// endpoint's own error format: writeError for /graphql, rest.WriteError for the REST routes.
type failFunc func(w http.ResponseWriter, status int, code, msg string)

// limitBody answers 413 to a request body over maxBody and 400 to a POST body that is not
// JSON, before anything parses it.
func limitBody(next http.Handler) http.Handler { return limitBodyWith(writeError, next) }

// limitBodyWith is limitBody answering refusals with fail.
func limitBodyWith(fail failFunc, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxBody {
			fail(w, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE", "the request body is larger than 1 MiB")
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil {
			fail(w, http.StatusBadRequest, string(known.BadUserInput), "the request body could not be read")
			return
		}
		if len(body) > maxBody {
			fail(w, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE", "the request body is larger than 1 MiB")
			return
		}
		if r.Method == http.MethodPost && !json.Valid(body) {
			fail(w, http.StatusBadRequest, "BAD_REQUEST", "the request body is not valid JSON")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// authenticate reads the credential (Agent-Secret-Key, or Authorization: Bearer) and puts the
// caller into the request's context. A bad credential is not refused here: operations that
// need one refuse it, and public (widget) ones ignore it.
func authenticate(svc *service.Service, next http.Handler) http.Handler {
	return authenticateWith(writeError, svc, next)
}

// authenticateWith is authenticate answering a database failure with fail.
func authenticateWith(fail failFunc, svc *service.Service, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cred := strings.TrimSpace(r.Header.Get("Agent-Secret-Key"))
		if cred == "" {
			auth := r.Header.Get("Authorization")
			if len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
				cred = strings.TrimSpace(auth[7:])
			}
		}
		caller, err := svc.Authenticate(r.Context(), cred)
		if err != nil {
			if info := infoFrom(r.Context()); info != nil {
				info.fail(fmt.Errorf("authenticating the request's credential: %w", err))
			}
			fail(w, http.StatusServiceUnavailable, string(known.Internal), "the database is not reachable; try again")
			return
		}
		if info := infoFrom(r.Context()); info != nil {
			info.setProject(caller.ProjectID)
		}
		next.ServeHTTP(w, r.WithContext(known.NewContextWithCaller(r.Context(), caller)))
	})
}

// withClient puts the request's known.Client (address, Origin, widget session token) into its
// context, for the widget rate limit and the project's allowedOrigins.
func withClient(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := known.Client{
			// X-Forwarded-For counts only from a trusted proxy (proxies.go): any caller can
			// write that header, and the rate limit would then key on whatever it chose.
			IP:          clientIP(r),
			Origin:      r.Header.Get("Origin"),
			WidgetToken: strings.TrimSpace(r.Header.Get("X-Widget-Session")),
			Memo:        &known.Memo{},
		}
		if info := infoFrom(r.Context()); info != nil {
			c.OnProject = info.setProject
		}
		next.ServeHTTP(w, r.WithContext(known.NewContextWithClient(r.Context(), c)))
	})
}

// allowCrossOrigin lets a page of any origin call the API, and answers CORS preflights (204)
// itself. A preflight carries no project, so a project's allowedOrigins cannot be checked
// here: the service checks them against Client.Origin. No credentials (cookies) are allowed:
// widget sessions and secret keys travel in headers.
func allowCrossOrigin(next http.Handler) http.Handler {
	return cors.New(cors.Options{
		// Every origin, echoed back (with Vary: Origin) rather than "*".
		AllowOriginFunc: func(string) bool { return true },
		AllowedMethods:  []string{http.MethodGet, http.MethodPost, http.MethodOptions},
		AllowedHeaders: []string{"Content-Type", "X-Widget-Session", "Authorization",
			"Agent-Secret-Key", "X-Request-Id"},
		ExposedHeaders:   []string{"X-Request-Id"},
		AllowCredentials: false,
		MaxAge:           600,
	}).Handler(next)
}

// writeError answers with a GraphQL-shaped error for failures before GraphQL runs.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"errors": []map[string]any{{"message": msg, "extensions": map[string]any{"code": code}}},
	})
}

// queriesOnGET answers 405 to a GET request whose operation is not a query: GET requests must
// not change anything (a link or a prefetch could run them), so mutations go by POST. A
// request that does not parse is left to the GraphQL handler, which names the problem.
func queriesOnGET(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			q := r.URL.Query()
			doc, err := parser.ParseQuery(&ast.Source{Input: q.Get("query")})
			if err == nil {
				if op := doc.Operations.ForName(q.Get("operationName")); op != nil && op.Operation != ast.Query {
					w.Header().Set("Allow", "POST")
					writeError(w, http.StatusMethodNotAllowed, "BAD_REQUEST", "GET requests may only run queries: send "+string(op.Operation)+"s with POST")
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}
