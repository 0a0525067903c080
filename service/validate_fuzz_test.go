package service

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// FuzzJSONValidator: for any JSON object, the one JSON input validator either refuses it with
// exactly one INVALID or LIMIT_EXCEEDED on the input field or below it, or returns a copy
// that BSON can encode and that keeps every limit of API.md §7: keys 1 to 255 characters of
// valid UTF-8 without NUL or '.', not starting with '$' nor starting or ending with white space
// (FerretDB refuses such update paths), at every depth; at most 50 top-level
// keys; nesting at most 5; strings at most 255 characters (seed corpus in
// testdata/fuzz/FuzzJSONValidator).
func FuzzJSONValidator(f *testing.F) {
	for _, s := range []string{
		`{"plan":"pro","n":1,"f":1.5,"b":true,"z":null}`,
		`{"a\u0000b":1}`,
		`{"outer":{"inner":{"$set":1}}}`,
		`{"list":[{"x.y":1}]}`,
		`{"a":{"b":{"c":{"d":{"e":1}}}}}`,
		`{"a":{"b":{"c":{"d":{"e":{"f":1}}}}}}`,
		`{"":1}`,
		`{"\ud800":1}`,
		`{"n":1e400}`,
		`{"n":-9223372036854775809}`,
	} {
		f.Add(s)
	}
	field := []string{"input", "metadata"}
	f.Fuzz(func(t *testing.T, text string) {
		d := json.NewDecoder(strings.NewReader(text))
		d.UseNumber()
		var m map[string]any
		if d.Decode(&m) != nil || m == nil {
			return
		}
		var v validator
		out := v.jsonObject(field, m)
		if len(v.errs) > 0 {
			if len(v.errs) != 1 || out != nil {
				t.Fatalf("%d errors and output %v; want one error and no output", len(v.errs), out)
			}
			e := v.errs[0]
			if (e.Code != known.Invalid && e.Code != known.LimitExceeded) || len(e.Field) < 2 ||
				e.Field[0] != "input" || e.Field[1] != "metadata" || e.Message == "" {
				t.Fatalf("refused with %+v; want INVALID or LIMIT_EXCEEDED under input.metadata", e)
			}
			return
		}
		if len(out) > MaxJSONKeys {
			t.Fatalf("accepted %d top-level keys", len(out))
		}
		checkStorable(t, out, 1)
		raw, err := bson.Marshal(out)
		if err != nil {
			t.Fatalf("accepted %q, which BSON cannot encode: %v", text, err)
		}
		var back map[string]any
		if err := bson.Unmarshal(raw, &back); err != nil {
			t.Fatalf("the BSON of %q does not decode: %v", text, err)
		}
		if a, b := mustJSON(t, out), mustJSON(t, back); !bytes.Equal(a, b) {
			t.Fatalf("BSON does not keep the value: %s became %s", a, b)
		}
	})
}

// checkStorable fails unless x, at nesting depth depth, keeps the limits of stored JSON.
func checkStorable(t *testing.T, x any, depth int) {
	t.Helper()
	switch x := x.(type) {
	case map[string]any:
		if depth > MaxJSONDepth {
			t.Fatalf("accepted an object at depth %d", depth)
		}
		for k, v := range x {
			if k == "" || strings.ContainsRune(k, 0) || strings.Contains(k, ".") || strings.HasPrefix(k, "$") ||
				strings.TrimSpace(k) != k || !utf8.ValidString(k) || utf8.RuneCountInString(k) > MaxString {
				t.Fatalf("accepted the key %q", k)
			}
			checkStorable(t, v, depth+1)
		}
	case []any:
		if depth > MaxJSONDepth {
			t.Fatalf("accepted a list at depth %d", depth)
		}
		for _, v := range x {
			checkStorable(t, v, depth+1)
		}
	case string:
		if !utf8.ValidString(x) || utf8.RuneCountInString(x) > MaxString {
			t.Fatalf("accepted the string %q", x)
		}
	case int64, float64, bool, nil:
	default:
		t.Fatalf("accepted a value of type %T", x)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
