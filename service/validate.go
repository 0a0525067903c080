package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/knownhq/known"
	"golang.org/x/text/unicode/norm"
)

// Limits of API.md §7.
const (
	MaxString     = 255
	MaxBody       = 10000
	MaxJSONKeys   = 50
	MaxJSONBytes  = 16 << 10
	MaxJSONDepth  = 5
	MaxOrgsOfUser = 10
)

// validator collects every problem of one input, so that a client learns of all of them at once.
type validator struct{ errs known.Errors }

func path(p ...string) []string { return p }

func (v *validator) add(field []string, code known.Code, format string, args ...any) {
	v.errs = append(v.errs, known.FieldErrorf(field, code, format, args...))
}

func (v *validator) err() error { return v.errs.Err() }

func fieldName(field []string) string { return field[len(field)-1] }

// optString trims s and checks its length; a blank string counts as not given (nil).
func (v *validator) optString(field []string, s *string) *string {
	if s == nil {
		return nil
	}
	t := strings.TrimSpace(*s)
	if t == "" {
		return nil
	}
	if n := utf8.RuneCountInString(t); n > MaxString {
		v.add(field, known.LimitExceeded, "%s is %d characters long; the limit is %d", fieldName(field), n, MaxString)
		return nil
	}
	return &t
}

// requiredString is optString for a field that must not be blank.
func (v *validator) requiredString(field []string, s string) string {
	t := v.optString(field, &s)
	if t == nil {
		if len(v.errs) == 0 || !equalPath(v.errs[len(v.errs)-1].Field, field) {
			v.add(field, known.Invalid, "%s must not be blank", fieldName(field))
		}
		return ""
	}
	return *t
}

func equalPath(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// email checks an optional email address and returns it trimmed with its matching key
// (lowercased: matching is case-insensitive).
func (v *validator) email(field []string, s *string) (email, key *string) {
	e := v.optString(field, s)
	if e == nil {
		return nil, nil
	}
	if !validEmail(*e) {
		v.add(field, known.Invalid, "%q is not a valid email address", *e)
		return nil, nil
	}
	if norm.NFKC.String(*e) != *e {
		// Two spellings that normalize alike (KELVIN SIGN and K, fullwidth letters) would
		// share a key after case folding: refuse them, so that two mailboxes never do.
		v.add(field, known.Invalid, "%q has characters that Unicode NFKC normalization changes (such as U+212A KELVIN SIGN or fullwidth letters): send the address in its normalized form", *e)
		return nil, nil
	}
	k := strings.ToLower(*e)
	return e, &k
}

func validEmail(e string) bool {
	a, err := mail.ParseAddress(e)
	if err != nil || a.Name != "" || a.Address != e {
		return false
	}
	at := strings.LastIndexByte(e, '@')
	domain := e[at+1:]
	return at > 0 && strings.Contains(domain, ".") && !strings.HasSuffix(domain, ".") &&
		!strings.HasPrefix(domain, ".") && !strings.Contains(domain, "..")
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// phone checks an optional phone number, which must be in E.164 form.
func (v *validator) phone(field []string, s *string) *string {
	p := v.optString(field, s)
	if p == nil {
		return nil
	}
	if !e164.MatchString(*p) {
		v.add(field, known.Invalid, "%q is not an E.164 phone number (a + then 7 to 15 digits, like +14155550123)", *p)
		return nil
	}
	return p
}

// jsonObject checks a JSON object against the limits of §7 and returns a copy fit for storage:
// numbers as int64 or float64, keys usable as MongoDB field names at every depth (see
// keyProblem). It is the one check of every JSON input (metadata, attrs, properties), made
// before anything is written; a bad key is INVALID on the path of the object that holds it.
func (v *validator) jsonObject(field []string, m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	name := fieldName(field)
	if len(m) > MaxJSONKeys {
		v.add(field, known.LimitExceeded, "%s has %d keys; the limit is %d", name, len(m), MaxJSONKeys)
		return nil
	}
	raw, err := json.Marshal(m)
	if err != nil {
		v.add(field, known.Invalid, "%s is not a JSON object", name)
		return nil
	}
	if len(raw) > MaxJSONBytes {
		v.add(field, known.LimitExceeded, "%s is %d bytes as JSON; the limit is %d", name, len(raw), MaxJSONBytes)
		return nil
	}
	out, err := normalizeJSON(m, 1, nil)
	if err != nil {
		var je *jsonError
		if errors.As(err, &je) {
			where := name
			if len(je.at) > 0 {
				where = name + "." + strings.Join(je.at, ".")
			}
			at := field
			if je.key {
				// A bad key is named by the path of the object that holds it.
				at = append(slices.Clone(field), je.at...)
			}
			v.add(at, known.Invalid, "%s: %s", where, je.msg)
			return nil
		}
		v.add(field, known.Invalid, "%s: %v", name, err)
		return nil
	}
	return out.(map[string]any)
}

// jsonError is a problem inside a JSON value, at the path (keys and list indexes) of the
// object or list that holds it; key marks a bad key.
type jsonError struct {
	at  []string
	msg string
	key bool
}

func (e *jsonError) Error() string { return e.msg }

// keyProblem says why k cannot be a key of stored JSON, or "" when it can: MongoDB (and
// FerretDB) refuse a NUL byte in a field name and read '.' as a path and a leading '$' as an
// operator; FerretDB refuses an update path whose element starts or ends with white space;
// a key must also be valid UTF-8 and 1 to MaxString characters long.
func keyProblem(k string) string {
	switch {
	case k == "":
		return "an empty key is not allowed"
	case strings.IndexByte(k, 0) >= 0:
		return fmt.Sprintf("key %q contains a NUL character, which is not allowed", truncate(k))
	case !utf8.ValidString(k):
		return fmt.Sprintf("key %q is not valid UTF-8", truncate(k))
	case strings.HasPrefix(k, "$"):
		return fmt.Sprintf("key %q starts with '$', which is not allowed", truncate(k))
	case strings.Contains(k, "."):
		return fmt.Sprintf("key %q contains '.', which is not allowed", truncate(k))
	case strings.TrimSpace(k) != k:
		return fmt.Sprintf("key %q starts or ends with white space, which is not allowed", truncate(k))
	case utf8.RuneCountInString(k) > MaxString:
		return fmt.Sprintf("key %q is %d characters long; the limit is %d", truncate(k), utf8.RuneCountInString(k), MaxString)
	}
	return ""
}

// normalizeJSON checks x, found at path at, at nesting depth depth, and returns its storable
// copy. Problems are *jsonError.
func normalizeJSON(x any, depth int, at []string) (any, error) {
	fail := func(format string, args ...any) error {
		return &jsonError{at: slices.Clone(at), msg: fmt.Sprintf(format, args...)}
	}
	switch t := x.(type) {
	case map[string]any:
		if depth > MaxJSONDepth {
			return nil, fail("nesting is deeper than %d levels", MaxJSONDepth)
		}
		// Keys in order, so that of several bad keys the same one is named every time.
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if p := keyProblem(k); p != "" {
				return nil, &jsonError{at: slices.Clone(at), key: true,
					msg: fmt.Sprintf("%s (keys are 1 to %d characters, without NUL or '.', do not start with '$' and do not start or end with white space)", p, MaxString)}
			}
		}
		out := make(map[string]any, len(t))
		for _, k := range keys {
			n, err := normalizeJSON(t[k], depth+1, append(at, k))
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	case []any:
		if depth > MaxJSONDepth {
			return nil, fail("nesting is deeper than %d levels", MaxJSONDepth)
		}
		out := make([]any, len(t))
		for i, val := range t {
			n, err := normalizeJSON(val, depth+1, append(at, strconv.Itoa(i)))
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case string:
		if !utf8.ValidString(t) {
			return nil, fail("a string value is not valid UTF-8")
		}
		if utf8.RuneCountInString(t) > MaxString {
			return nil, fail("a string value is %d characters long; the limit is %d", utf8.RuneCountInString(t), MaxString)
		}
		return t, nil
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i, nil
		}
		f, err := t.Float64()
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fail("%s is not a number Known can store", truncate(string(t)))
		}
		return f, nil
	case int:
		return int64(t), nil
	case float64:
		if math.IsInf(t, 0) || math.IsNaN(t) {
			return nil, fail("%v is not a number Known can store", t)
		}
		return t, nil
	case int64, bool, nil:
		return t, nil
	case int32:
		return int64(t), nil
	case float32:
		return float64(t), nil
	default:
		return nil, fail("a value of type %T is not JSON", x)
	}
}

func truncate(s string) string {
	if utf8.RuneCountInString(s) <= 40 {
		return s
	}
	return string([]rune(s)[:40]) + "…"
}

// page checks a page request (first 1–100).
func checkPage(p known.Page) error {
	if p.First < 1 || p.First > 100 {
		return &known.Error{Code: known.BadUserInput, Message: fmt.Sprintf("first must be between 1 and 100, not %d", p.First), Field: []string{"first"}}
	}
	return nil
}

// MaxCompanyIDs bounds identify's companyIds.
const MaxCompanyIDs = 50

func lower(s string) string { return strings.ToLower(s) }

// httpsURL checks an optional URL that must be absolute https (API.md §7: avatarUrl).
func (v *validator) httpsURL(field []string, s *string) *string {
	u := v.optString(field, s)
	if u == nil {
		return nil
	}
	parsed, err := url.Parse(*u)
	if err != nil || parsed.Scheme != "https" || parsed.Host == "" || parsed.User != nil {
		v.add(field, known.Invalid, "%s must be an https:// URL", fieldName(field))
		return nil
	}
	return u
}

// jsonPatch checks a JSON object that is merged into stored metadata: keys with null values
// are removed (unset), the others set. The limits of §7 apply to the object as sent.
func (v *validator) jsonPatch(field []string, m map[string]any) (set map[string]any, unset []string) {
	obj := v.jsonObject(field, m)
	for k, val := range obj {
		if val == nil {
			unset = append(unset, k)
			continue
		}
		if set == nil {
			set = map[string]any{}
		}
		set[k] = val
	}
	sort.Strings(unset)
	return set, unset
}

// idList checks a list of the customer's ids: each non-blank and at most MaxString long,
// duplicates dropped, at most max of them.
func (v *validator) idList(field []string, ids []string, max int) []string {
	var out []string
	seen := map[string]bool{}
	for i, id := range ids {
		t := v.optString(append(slices.Clone(field), strconv.Itoa(i)), &id)
		if t == nil {
			if len(v.errs) == 0 || !equalPath(v.errs[len(v.errs)-1].Field, append(slices.Clone(field), strconv.Itoa(i))) {
				v.add(append(slices.Clone(field), strconv.Itoa(i)), known.Invalid, "an id must not be blank")
			}
			continue
		}
		if !seen[*t] {
			seen[*t] = true
			out = append(out, *t)
		}
	}
	if len(out) > max {
		v.add(field, known.LimitExceeded, "%s has %d ids; the limit is %d", fieldName(field), len(out), max)
		return nil
	}
	return out
}

// organizations checks setUser's organizations: each with an id and a name, attrs within the
// limits; deduplicated by id (the last entry for an id wins, in the place of its first);
// at most MaxOrgsOfUser.
func (v *validator) organizations(field []string, orgs []OrganizationInput) []OrganizationInput {
	out := []OrganizationInput{}
	index := map[string]int{}
	for i, o := range orgs {
		at := append(slices.Clone(field), strconv.Itoa(i))
		id := v.requiredString(append(slices.Clone(at), "id"), o.ID)
		name := v.requiredString(append(slices.Clone(at), "name"), o.Name)
		attrs := v.jsonObject(append(slices.Clone(at), "attrs"), o.Attrs)
		if id == "" {
			continue
		}
		clean := OrganizationInput{ID: id, Name: name, Attrs: attrs}
		if j, ok := index[id]; ok {
			out[j] = clean
			continue
		}
		index[id] = len(out)
		out = append(out, clean)
	}
	if len(out) > MaxOrgsOfUser {
		v.add(field, known.LimitExceeded, "%d organizations; a user belongs to at most %d", len(out), MaxOrgsOfUser)
		return nil
	}
	return out
}
