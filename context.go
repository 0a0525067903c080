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
