package rest

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"regexp"
	"strings"
)

// decode reads the request's JSON body into v (a pointer to a struct). A field v does not
// have, a value of the wrong type, or a body that is not a JSON object is BAD_USER_INPUT
// naming the field: like GraphQL's input types, a request never passes with a field ignored
// (a misspelt user_hash must not quietly make an unverified identity). Numbers inside JSON
// objects stay json.Number, as the GraphQL transport gives them to the service.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	dec.UseNumber()
	err := dec.Decode(v)
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return badInput("", "the body must be a JSON object, not %s", typeErr.Value)
		}
		return badInput(typeErr.Field, "%s must be %s, not %s", typeErr.Field, kindOf(typeErr.Type), typeErr.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return badInput(name, "%.40s is not a field of this request", name)
	}
	return badInput("", "the body is not a JSON object")
}

// kindOf names the JSON a Go type of a request field holds.
func kindOf(t reflect.Type) string {
	if t == reflect.TypeFor[customerID]() {
		return "a string or an integer"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return kindOf(t.Elem())
	case reflect.String:
		return "a string"
	case reflect.Float64, reflect.Int, reflect.Int64:
		return "a number"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(kindOf(t.Elem()), "a "), "an ") + "s"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}

// customerID is one of the customer's ids: a JSON string, or an integer, which is kept as its
// decimal string (GraphQL's ID: 123 and "123" are one user).
type customerID string

var integer = regexp.MustCompile(`^-?[0-9]+$`)

// UnmarshalJSON accepts a string or an integer.
func (id *customerID) UnmarshalJSON(b []byte) error {
	s := string(b)
	switch {
	case strings.HasPrefix(s, `"`):
		return json.Unmarshal(b, (*string)(id))
	case integer.MatchString(s):
		*id = customerID(s)
		return nil
	}
	value := "a number"
	switch {
	case s == "true" || s == "false":
		value = "a boolean"
	case strings.HasPrefix(s, "{"):
		value = "an object"
	case strings.HasPrefix(s, "["):
		value = "an array"
	}
	return &json.UnmarshalTypeError{Value: value, Type: reflect.TypeFor[customerID]()}
}

// str returns the id as the service takes it (nil when not given).
func (id *customerID) str() *string { return (*string)(id) }

// required is BAD_USER_INPUT unless a required field was given (GraphQL's non-null).
func required(field string, given bool) error {
	if given {
		return nil
	}
	return badInput(field, "%s is required", field)
}

// enum returns s as one of values, or BAD_USER_INPUT naming field (GraphQL's enum types).
func enum[T ~string](field string, s *string, values ...T) (*T, error) {
	if s == nil {
		return nil, nil
	}
	for _, v := range values {
		if string(v) == *s {
			return &v, nil
		}
	}
	names := make([]string, len(values))
	for i, v := range values {
		names[i] = string(v)
	}
	return nil, badInput(field, "%s must be one of %s, not %.40q", field, strings.Join(names, ", "), *s)
}
