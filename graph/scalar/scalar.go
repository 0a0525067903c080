// Package scalar marshals Known's custom GraphQL scalars. Bad values fail with BAD_USER_INPUT
// naming what was wrong, never with an internal error.
package scalar

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/knownhq/known"
)

// MarshalJSON writes a JSON object.
func MarshalJSON(m map[string]any) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		if m == nil {
			_, _ = io.WriteString(w, "null")
			return
		}
		b, err := json.Marshal(m)
		if err != nil {
			_, _ = io.WriteString(w, "null")
			return
		}
		_, _ = w.Write(b)
	})
}

// UnmarshalJSON reads a JSON object; anything else is BAD_USER_INPUT.
func UnmarshalJSON(v any) (map[string]any, error) {
	switch t := v.(type) {
	case map[string]any:
		return t, nil
	case nil:
		return nil, nil
	default:
		return nil, known.Errorf(known.BadUserInput, "a JSON value here must be an object, not %s", jsonKind(v))
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case []any:
		return "an array"
	case bool:
		return "a boolean"
	case json.Number, int, int64, float64:
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}

// MarshalDateTime writes an RFC 3339 timestamp in UTC.
func MarshalDateTime(t time.Time) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		_, _ = io.WriteString(w, `"`+t.UTC().Format(time.RFC3339Nano)+`"`)
	})
}

// UnmarshalDateTime reads an RFC 3339 timestamp.
func UnmarshalDateTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, known.Errorf(known.BadUserInput, "a DateTime must be an RFC 3339 string, not %s", jsonKind(v))
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, known.Errorf(known.BadUserInput, "%q is not an RFC 3339 timestamp like 2026-01-02T15:04:05Z", s)
	}
	return t.UTC(), nil
}
