package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/knownhq/known"
	"github.com/knownhq/known/graph"
	"github.com/knownhq/known/graph/model"
	"github.com/knownhq/known/resolvers"
	"github.com/knownhq/known/service"
	"github.com/knownhq/known/store"
	"github.com/rs/zerolog"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Limits on the shape of an operation, checked before it runs.
const (
	maxComplexity  = 20000 // a list field costs first × its selection
	maxDepth       = 15    // GraphiQL's introspection query is 13 deep
	maxAliases     = 50
	maxTokens      = 15000
	defaultListLen = 20
)

// newGraphQL returns the GraphQL handler and the schema it serves.
func newGraphQL(log zerolog.Logger, svc *service.Service, m *metrics) (*handler.Server, *ast.Schema) {
	es := graph.NewExecutableSchema(graph.Config{
		Schema:     withoutDefer(graph.NewExecutableSchema(graph.Config{}).Schema()),
		Resolvers:  resolvers.Root(svc),
		Complexity: complexity(),
	})
	srv := handler.New(es)
	srv.AddTransport(websocketTransport(svc)) // first: GET would take the upgrade request
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.SetParserTokenLimit(maxTokens)
	srv.Use(extension.Introspection{})
	srv.Use(extension.FixedComplexityLimit(maxComplexity))
	srv.Use(shapeLimit{maxDepth: maxDepth, maxAliases: maxAliases})
	srv.AroundOperations(func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		if info := infoFrom(ctx); info != nil {
			oc := graphql.GetOperationContext(ctx)
			name := oc.OperationName
			if name == "" && oc.Operation != nil {
				name = oc.Operation.Name
			}
			info.setOperation(name)
		}
		return next(ctx)
	})
	// Each root field is an operation of its own: the widget rate limit counts them, so that
	// 50 aliased mutations in one request cost 50 calls.
	srv.AroundRootFields(func(ctx context.Context, next graphql.RootResolver) graphql.Marshaler {
		return next(known.NewContextWithOperation(ctx))
	})
	srv.SetErrorPresenter(presentError(log, m))
	srv.SetRecoverFunc(func(ctx context.Context, v any) error {
		// The presenter logs it, once, as every internal error.
		return &panicError{value: fmt.Sprint(v), stack: debug.Stack()}
	})
	return srv, es.Schema()
}

// panicError is a resolver's panic, with the stack where it happened.
type panicError struct {
	value string
	stack []byte
}

func (p *panicError) Error() string { return "resolver panicked: " + p.value }

// presentError turns Known's error codes into extensions.code and anything unknown, or
// INTERNAL_SERVER_ERROR itself, into INTERNAL_SERVER_ERROR with no detail but the request id:
// the one place such an error is logged, once, with that id and its cause.
func presentError(log zerolog.Logger, m *metrics) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gerr := graphql.DefaultErrorPresenter(ctx, err)
		var ke *known.Error
		var kes known.Errors
		if errors.As(err, &kes) && len(kes) > 0 {
			ke = kes[0]
		}
		if ke == nil {
			errors.As(err, &ke)
		}
		switch {
		case ke != nil && ke.Code != known.Internal:
			gerr.Message = ke.Message
			gerr.Extensions = map[string]any{"code": string(ke.Code)}
			if len(ke.Field) > 0 {
				gerr.Extensions["field"] = ke.Field
			}
			if info := infoFrom(ctx); info != nil && ke.Code == known.RateLimited {
				info.rateLimited(ke.RetryAfter)
			}
		case gerr.Extensions["code"] != nil:
			// Parser, validation and limit errors of the GraphQL library keep their codes.
		case isRequestError(err):
			gerr.Extensions = map[string]any{"code": "BAD_REQUEST"}
		case ctx.Err() != nil:
			// The client went away (or gave up) before the answer: nobody reads it, and it is
			// no fault of Known's or of the database; the request's log line says so.
			gerr.Message = "the request was cancelled"
			gerr.Extensions = map[string]any{"code": string(known.Internal), "requestId": requestIDFrom(ctx)}
		case store.Unavailable(err):
			id := requestIDFrom(ctx)
			if info := infoFrom(ctx); info != nil {
				// The request's own 503 line carries the cause: one line. (A copy: gerr is
				// err itself when err is a GraphQL error, and its message changes below.)
				info.fail(errors.New(err.Error()))
			} else {
				log.Error().Err(err).Str("request_id", id).Msg("database not reachable")
			}
			markUnavailable(ctx)
			gerr.Message = unavailableMessage
			gerr.Extensions = map[string]any{"code": string(known.Internal), "requestId": id}
		default:
			id := requestIDFrom(ctx)
			ev := log.Error().Err(err).Str("request_id", id)
			var p *panicError
			if errors.As(err, &p) {
				ev = ev.Str("panic", p.value).Bytes("stack", p.stack)
			}
			if len(gerr.Path) > 0 {
				ev = ev.Str("path", gerr.Path.String())
			}
			ev.Msg("internal error")
			gerr.Message = "internal server error"
			gerr.Extensions = map[string]any{"code": string(known.Internal), "requestId": id}
		}
		code := fmt.Sprint(gerr.Extensions["code"])
		m.errors.WithLabelValues(code).Inc()
		if info := infoFrom(ctx); info != nil {
			info.addError(code)
		}
		return gerr
	}
}

// isRequestError reports whether err is the GraphQL library's complaint about the request
// itself (no operation, a bad content type): made by the library, not wrapping a resolver's
// error, and not on a field's path.
func isRequestError(err error) bool {
	var gerr *gqlerror.Error
	return errors.As(err, &gerr) && gerr.Err == nil && len(gerr.Path) == 0
}

// shapeLimit refuses operations nested deeper than maxDepth or with more than maxAliases
// aliased fields (an alias makes a field run again, and costs nothing to write).
type shapeLimit struct{ maxDepth, maxAliases int }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = shapeLimit{}

func (shapeLimit) ExtensionName() string                   { return "ShapeLimit" }
func (shapeLimit) Validate(graphql.ExecutableSchema) error { return nil }

func (l shapeLimit) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation == nil {
		return nil
	}
	s := shape{fragments: oc.Doc.Fragments, depths: map[string]int{}, aliases: map[string]int{}}
	depth, aliases := s.measure(oc.Operation.SelectionSet)
	if depth > l.maxDepth {
		err := gqlerror.Errorf("the operation is %d levels deep; the limit is %d", depth, l.maxDepth)
		errcode.Set(err, "DEPTH_LIMIT_EXCEEDED")
		return err
	}
	if aliases > l.maxAliases {
		err := gqlerror.Errorf("the operation has %d aliased fields; the limit is %d", aliases, l.maxAliases)
		errcode.Set(err, "ALIAS_LIMIT_EXCEEDED")
		return err
	}
	return nil
}

// shape measures a selection set's depth and aliases, each fragment once (validation has
// already refused fragment cycles).
type shape struct {
	fragments ast.FragmentDefinitionList
	depths    map[string]int
	aliases   map[string]int
}

func (s *shape) measure(set ast.SelectionSet) (depth, aliases int) {
	for _, sel := range set {
		var d, a int
		switch sel := sel.(type) {
		case *ast.Field:
			d, a = s.measure(sel.SelectionSet)
			d++
			if sel.Alias != "" && sel.Alias != sel.Name {
				a++
			}
		case *ast.InlineFragment:
			d, a = s.measure(sel.SelectionSet)
		case *ast.FragmentSpread:
			if _, done := s.depths[sel.Name]; !done {
				s.depths[sel.Name] = 0
				if f := s.fragments.ForName(sel.Name); f != nil {
					s.depths[sel.Name], s.aliases[sel.Name] = s.measure(f.SelectionSet)
				}
			}
			d, a = s.depths[sel.Name], s.aliases[sel.Name]
		}
		depth = max(depth, d)
		aliases += a
	}
	return depth, aliases
}

// complexity makes each list field cost first × its selection, so that the complexity limit
// bounds the work a query can ask for.
func complexity() graph.ComplexityRoot {
	var c graph.ComplexityRoot
	list := func(child int, first *int) int {
		n := defaultListLen
		if first != nil {
			n = min(max(*first, 1), 100) // out of range is refused by the resolver, by name
		}
		if child > (math.MaxInt-1)/n {
			return math.MaxInt // saturate: a wrapped product would let any query through
		}
		return 1 + n*child
	}
	page := func(child int, first *int, _ *string) int { return list(child, first) }
	c.Company.Events = page
	c.Company.Users = page
	c.Conversation.Messages = page
	c.Organization.Users = page
	c.Query.Companies = page
	c.Query.Organizations = page
	c.User.Companies = page
	c.User.Conversations = page
	c.User.Events = page
	c.User.Organizations = page
	c.WidgetSession.Conversations = page
	c.Webhook.Deliveries = page
	c.Query.Users = func(child int, first *int, _ *string, _ *model.UserFilter) int { return list(child, first) }
	c.Query.Conversations = func(child int, first *int, _ *string, _ *model.ConversationFilter) int {
		return list(child, first)
	}
	return c
}
