package known

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Code classifies an error for programs; the message is for people. The set is small and
// append-only: clients switch on these values. Codes up to Internal stop an operation and reach
// clients as GraphQL errors with extensions.code; the others are user errors, reported inside a
// mutation's payload (userErrors) because the input, not the call, was wrong.
type Code string

// Codes that stop an operation (GraphQL errors).
const (
	Unauthenticated Code = "UNAUTHENTICATED"
	Forbidden       Code = "FORBIDDEN"
	NotFound        Code = "NOT_FOUND"
	BadUserInput    Code = "BAD_USER_INPUT"
	RateLimited     Code = "RATE_LIMITED"
	Internal        Code = "INTERNAL_SERVER_ERROR"
)

// Codes of user errors (API.md §2). NotFound is shared: a query for a missing object fails with
// it, a mutation naming a missing object reports it as a user error.
const (
	Invalid              Code = "INVALID"
	LimitExceeded        Code = "LIMIT_EXCEEDED"
	AlreadyExists        Code = "ALREADY_EXISTS"
	IdentityConflict     Code = "IDENTITY_CONFLICT"
	VerificationRequired Code = "VERIFICATION_REQUIRED"
	VerificationFailed   Code = "VERIFICATION_FAILED"
	CompanyRequired      Code = "COMPANY_REQUIRED"
)

// Error is Known's one error type. Field is the path of the input field at fault, such as
// ["input", "email"], when there is one.
type Error struct {
	Code    Code
	Message string
	Field   []string
	// RetryAfter, for RateLimited, is how long until the call may succeed.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if len(e.Field) > 0 {
		return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, strings.Join(e.Field, "."))
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an *Error about one input field, named by its path.
func FieldErrorf(field []string, code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Field: field}
}

// Errors is a list of user errors found together, so that a client learns of every bad field
// in one round trip. It is returned only when it holds at least one error.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Err returns es as an error, or nil when it is empty.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// ErrorCode returns the code of err: the code of a Known error (the first one of Errors),
// Internal for any other non-nil error, and "" for nil.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	var es Errors
	if errors.As(err, &es) && len(es) > 0 {
		return es[0].Code
	}
	return Internal
}

// IsUserError reports whether code belongs in a mutation payload's userErrors.
func IsUserError(code Code) bool {
	switch code {
	case Invalid, LimitExceeded, AlreadyExists, NotFound, IdentityConflict,
		VerificationRequired, VerificationFailed, CompanyRequired:
		return true
	}
	return false
}

// UserErrors splits err for a mutation payload: the user errors it holds, or, when err is
// anything else, that error to fail the operation with.
func UserErrors(err error) (Errors, error) {
	if err == nil {
		return nil, nil
	}
	var es Errors
	if errors.As(err, &es) {
		return es, nil
	}
	var e *Error
	if errors.As(err, &e) && IsUserError(e.Code) {
		return Errors{e}, nil
	}
	return nil, err
}
