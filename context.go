package known

import (
	"context"
	"sync"
	"sync/atomic"
)

type callerKey struct{}

// NewContextWithCaller returns a copy of ctx that carries the request's caller.
func NewContextWithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFromContext returns the caller carried by ctx, or the zero Caller (no credential).
func CallerFromContext(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey{}).(Caller)
	return c
}

// ProjectFromContext returns the project whose secret key authenticated the request.
// It returns an Unauthenticated error when there was no key or a bad one.
func ProjectFromContext(ctx context.Context) (ProjectID, error) {
	c := CallerFromContext(ctx)
	if c.BadCredential {
		return "", Errorf(Unauthenticated, "the secret key is not valid")
	}
	if c.ProjectID == "" {
		return "", Errorf(Unauthenticated, "this operation needs the project's secret key in the Agent-Secret-Key header or as Authorization: Bearer <key>")
	}
	return c.ProjectID, nil
}

// Client is what the HTTP layer knows of the browser or program that sent a request.
type Client struct {
	// IP is the client's address, as the rate limits key it.
	IP string
	// Origin is the request's Origin header ("" when none): a project's allowedOrigins are
	// checked against it.
	Origin string
	// WidgetToken is the X-Widget-Session header: the widget session token, or "".
	WidgetToken string
	// OnProject, when set, is told the project a widget call turned out to be for (the
	// request's log line reports it).
	OnProject func(ProjectID)
	// Memo, when set, keeps what one request has worked out already (such as its widget
	// session), so that fields resolved later in the request do not repeat it.
	Memo *Memo
}

// Memo is a request's scratch space, safe for concurrent use.
type Memo struct {
	mu sync.Mutex
	m  map[string]any
}

// Load returns the value stored under key, or nil.
func (m *Memo) Load(key string) any {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m[key]
}

// LoadOrStore returns the value stored under key, storing v there first when there is none.
func (m *Memo) LoadOrStore(key string, v any) any {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.m[key]; ok {
		return old
	}
	if m.m == nil {
		m.m = map[string]any{}
	}
	m.m[key] = v
	return v
}

// Store keeps v under key.
func (m *Memo) Store(key string, v any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]any{}
	}
	m.m[key] = v
}

type clientKey struct{}

// NewContextWithClient returns a copy of ctx that carries the request's client.
func NewContextWithClient(ctx context.Context, c Client) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

// ClientFromContext returns the client carried by ctx, or the zero Client.
func ClientFromContext(ctx context.Context) Client {
	c, _ := ctx.Value(clientKey{}).(Client)
	return c
}

// Operation is one operation of a request: a root field of its GraphQL document, such as one
// of several aliased mutations. The widget rate limit counts operations, not HTTP requests.
type Operation struct{ charged atomic.Bool }

// FirstCharge reports whether the operation had not been counted against a rate limit yet,
// and marks it counted: the fields inside one operation share its one charge.
func (o *Operation) FirstCharge() bool { return o.charged.CompareAndSwap(false, true) }

type operationKey struct{}

// NewContextWithOperation returns a copy of ctx for a new operation of the request.
func NewContextWithOperation(ctx context.Context) context.Context {
	return context.WithValue(ctx, operationKey{}, &Operation{})
}

// OperationFromContext returns the operation ctx belongs to, or nil outside one.
func OperationFromContext(ctx context.Context) *Operation {
	o, _ := ctx.Value(operationKey{}).(*Operation)
	return o
}
