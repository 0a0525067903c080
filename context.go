package known

import "context"

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
