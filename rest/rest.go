// Package rest serves the seed vendors' own REST APIs (API.md §10), so that an integration
// written for one of them moves to Known by changing its base URL. Each route decodes the
// seed's payload, calls the same service method as its GraphQL twin and encodes the seed's
// answer; the rules stay in package service. Credentials, body limits, CORS and the request
// log are the server's middleware, shared with /graphql.
package rest

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"github.com/knownhq/known"
	"github.com/knownhq/known/service"
	"github.com/knownhq/known/store"
)

// API serves the REST routes on a Service.
type API struct {
	Service *service.Service
	// OnError, when set, is told of every error a route answers with, before the answer is
	// written: the server logs internal errors (once, with the request id) and counts codes.
	OnError func(ctx context.Context, code known.Code, err error)
}

// Route is one REST route.
type Route struct {
	// Pattern is the http.ServeMux pattern, e.g. "POST /api/widget/identify". The request log
	// and the metrics name the route by it.
	Pattern string
	// Widget marks a route that browsers call (with the public app id and a widget session):
	// the server lets pages of other origins call it.
	Widget bool
	// Handler serves the route. It expects the server's middleware around it: the caller
	// (secret key) and the client (address, Origin, widget session) in the request's context.
	Handler http.Handler
}

// Routes returns every REST route.
func (a *API) Routes() []Route {
	return []Route{
		{"POST /api/widget/identify", true, a.serve(widgetFields, a.identify)},
		{"POST /api/widget/set-properties", true, a.serve(widgetFields, a.setProperties)},
		{"POST /api/widget/track", true, a.serve(widgetFields, a.track)},
		{"POST /api/widget/set-stage", true, a.serve(widgetFields, a.setStage)},
		{"POST /api/widget/set-deal", true, a.serve(widgetFields, a.setDeal)},
		{"POST /external/users", false, a.serve(userFields, secretKey(a.createUser))},
		{"GET /external/users/search", false, a.serve(userFields, secretKey(a.searchUsers))},
		{"GET /external/users/{id}", false, a.serve(userFields, secretKey(a.user))},
		{"DELETE /external/users/{id}", false, a.serve(userFields, secretKey(a.deleteUser))},
		{"POST /conversations/v3/visitor-identification/tokens/create", false, a.serve(sameFields, secretKey(a.createToken))},
	}
}

// secretKey refuses a request without the project's secret key (UNAUTHENTICATED) before its
// input is read, so that a caller without one learns nothing of what the route takes.
func secretKey(work func(r *http.Request) (answer, error)) func(r *http.Request) (answer, error) {
	return func(r *http.Request) (answer, error) {
		if _, err := known.ProjectFromContext(r.Context()); err != nil {
			return answer{}, err
		}
		return work(r)
	}
}

// answer is a route's success: its status, body (nil for none) and, for a creation, the
// route of what it made.
type answer struct {
	status   int
	body     any
	location string
}

func ok(body any) (answer, error) { return answer{status: http.StatusOK, body: body}, nil }

// serve turns a route's work into a handler: it writes the answer, or the error with the
// field named the way the route's seed names it.
func (a *API) serve(fields fieldNames, work func(r *http.Request) (answer, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, err := work(r)
		if err != nil {
			a.fail(w, r, fields, err)
			return
		}
		if res.location != "" {
			w.Header().Set("Location", res.location)
		}
		if res.body == nil {
			w.WriteHeader(res.status)
			return
		}
		writeJSON(w, res.status, res.body)
	})
}

// ErrorBody is the answer to a request that failed: {"error": {"code", "message", "field"}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what failed: Code is one of Known's error codes (API.md §2), Field the
// request field at fault in the seed's own naming (nil when no one field is).
type ErrorDetail struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Field   *string `json:"field"`
}

// Status returns the HTTP status of an error code (API.md §10).
func Status(code known.Code) int {
	switch code {
	case known.BadUserInput, known.Invalid, known.LimitExceeded:
		return http.StatusBadRequest
	case known.Unauthenticated:
		return http.StatusUnauthorized
	case known.Forbidden:
		return http.StatusForbidden
	case known.NotFound:
		return http.StatusNotFound
	case known.AlreadyExists, known.IdentityConflict:
		return http.StatusConflict
	case known.VerificationFailed, known.VerificationRequired, known.CompanyRequired:
		// The request is well formed, but what it asks cannot be done as things stand.
		return http.StatusUnprocessableEntity
	case known.RateLimited:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

// fail answers err: Known's error code, its HTTP status and the field at fault. Anything that
// is not a Known error is INTERNAL_SERVER_ERROR without detail (OnError logs it).
func (a *API) fail(w http.ResponseWriter, r *http.Request, fields fieldNames, err error) {
	var e *known.Error
	var es known.Errors
	var re requestError
	switch {
	case r.Context().Err() != nil:
		// The client went away before the answer: nobody reads it.
		writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: ErrorDetail{Code: string(known.Internal),
			Message: "the request was cancelled"}})
		return
	case store.Unavailable(err):
		// The database did not answer: 503 and Retry-After, the answer a client can act on.
		if a.OnError != nil {
			a.OnError(r.Context(), known.Internal, err)
		}
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: ErrorDetail{Code: string(known.Internal),
			Message: "the database is not reachable; try again"}})
		return
	case errors.As(err, &re):
		e, fields = re.err, sameFields
	case errors.As(err, &es) && len(es) > 0:
		e = es[0] // validation errors come together; the first decides the status
	case errors.As(err, &e):
	default:
		e = &known.Error{Code: known.Internal, Message: "internal server error"}
	}
	if a.OnError != nil {
		a.OnError(r.Context(), e.Code, err)
	}
	status := Status(e.Code)
	if status == http.StatusTooManyRequests {
		// Whole seconds until the limiter has a call again, at least 1.
		w.Header().Set("Retry-After", strconv.FormatInt(max(1, int64(math.Ceil(e.RetryAfter.Seconds()))), 10))
	}
	d := ErrorDetail{Code: string(e.Code), Message: e.Message}
	if f := fields.of(e.Field); f != "" {
		d.Field = &f
	}
	writeJSON(w, status, ErrorBody{Error: d})
}

// WriteError answers with the REST error body: for the server's middleware, which refuses
// some requests (too large, not JSON, database down) before a route runs.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// requestError is an error a route found in the request itself, before the service: its
// field is already the seed's name.
type requestError struct{ err *known.Error }

func (e requestError) Error() string { return e.err.Error() }
func (e requestError) Unwrap() error { return e.err }

// badInput returns a BAD_USER_INPUT requestError naming field ("" for none).
func badInput(field string, format string, args ...any) error {
	e := known.Errorf(known.BadUserInput, format, args...)
	if field != "" {
		e.Field = []string{field}
	}
	return requestError{e}
}

// fieldNames maps the service's name of an input field (GraphQL's) to the seed's.
type fieldNames func(string) string

// of renders a field path of the service, such as [input company id] or [input companyIds 2],
// in the seed's naming: "company.id", "company_ids[2]".
func (names fieldNames) of(path []string) string {
	if len(path) > 0 && path[0] == "input" {
		path = path[1:]
	}
	var b strings.Builder
	for _, p := range path {
		if _, err := strconv.Atoi(p); err == nil {
			b.WriteString("[" + p + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(names(p))
	}
	return b.String()
}

// widgetFields names fields as seed 002 does: snake_case (userId is user_id).
func widgetFields(name string) string {
	var b strings.Builder
	for _, r := range name {
		if unicode.IsUpper(r) {
			b.WriteByte('_')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// userFields names fields as seed 001 does: camelCase, with fkId for Known's externalId.
func userFields(name string) string {
	if name == "externalId" {
		return "fkId"
	}
	return name
}

// sameFields is for seeds whose names are GraphQL's (seed 004).
func sameFields(name string) string { return name }
