package main

import (
	"slices"
	"strings"
	"testing"
)

// TestJSONInputKeysAreCheckedBeforeAnyWrite: every JSON input of the API (identify's metadata and
// company metadata, setUser's attrs and organizations' attrs, setProperties, track's
// properties, createUser's metadata) refuses a key with a NUL byte, a '.', a leading '$' or white
// space around it, at
// the top or nested, with INVALID naming the field path, and writes nothing: no anonymous
// user, identity key, company, organization or event is left behind (issue 9, point 1).
func TestJSONInputKeysAreCheckedBeforeAnyWrite(t *testing.T) {
	k := startInProcess(t, nil)
	appID, key := createProject(t, k.URL, "Keys")
	anon := mustIdentify(t, k.URL, "", map[string]any{"appId": appID})

	// A key with white space around it is refused by FerretDB in an update path.
	badKeys := map[string]string{"NUL": "a\x00b", "Dot": "a.b", "Dollar": "$set", "TrailingSpace": "a\t"}
	// nest puts {bad: 1} at the top, or two levels down under "outer"."inner".
	nest := func(bad string, nested bool) (obj map[string]any, at []string) {
		if !nested {
			return map[string]any{"fine": 1, bad: 1}, nil
		}
		return map[string]any{"fine": 1, "outer": map[string]any{"inner": map[string]any{bad: 1}}}, []string{"outer", "inner"}
	}
	type path struct {
		name  string
		field []string // the input field holding the JSON object
		call  func(t *testing.T, obj map[string]any) []userError
	}
	payload := func(t *testing.T, r response, name string) []userError {
		t.Helper()
		var data map[string]struct{ UserErrors []userError }
		r.decode(t, &data)
		return data[name].UserErrors
	}
	paths := []path{
		{"IdentifyMetadata", []string{"input", "metadata"}, func(t *testing.T, obj map[string]any) []userError {
			return tryIdentify(t, k.URL, anon.Token, map[string]any{"appId": appID, "userId": "u-1", "email": "u1@example.com",
				"company": map[string]any{"id": "acme", "name": "Acme"}, "metadata": obj}).UserErrors
		}},
		{"IdentifyCompanyMetadata", []string{"input", "company", "metadata"}, func(t *testing.T, obj map[string]any) []userError {
			return tryIdentify(t, k.URL, anon.Token, map[string]any{"appId": appID, "userId": "u-1",
				"company": map[string]any{"id": "acme", "name": "Acme", "metadata": obj}}).UserErrors
		}},
		{"AnonymousIdentifyMetadata", []string{"input", "metadata"}, func(t *testing.T, obj map[string]any) []userError {
			return tryIdentify(t, k.URL, anon.Token, map[string]any{"appId": appID, "metadata": obj}).UserErrors
		}},
		{"SetUserAttrs", []string{"input", "attrs"}, func(t *testing.T, obj map[string]any) []userError {
			return trySetUser(t, k.URL, anon.Token, map[string]any{"appId": appID, "id": "u-2", "attrs": obj}).UserErrors
		}},
		{"SetUserOrganizationAttrs", []string{"input", "organizations", "0", "attrs"}, func(t *testing.T, obj map[string]any) []userError {
			return trySetUser(t, k.URL, anon.Token, map[string]any{"appId": appID, "id": "u-2",
				"organizations": []any{map[string]any{"id": "org-1", "name": "Org", "attrs": obj}}}).UserErrors
		}},
		{"SetProperties", []string{"input", "properties"}, func(t *testing.T, obj map[string]any) []userError {
			return payload(t, widgetGQL(t, k.URL, anon.Token, `mutation($p: JSON!) { setProperties(input: {properties: $p}) {
				session { token } userErrors { field code message } } }`, map[string]any{"p": obj}), "setProperties")
		}},
		{"TrackProperties", []string{"input", "properties"}, func(t *testing.T, obj map[string]any) []userError {
			return payload(t, widgetGQL(t, k.URL, anon.Token, `mutation($p: JSON) { track(input: {event: "signed-up", properties: $p}) {
				event { id } userErrors { field code message } } }`, map[string]any{"p": obj}), "track")
		}},
		{"CreateUserMetadata", []string{"input", "metadata"}, func(t *testing.T, obj map[string]any) []userError {
			return tryCreateUser(t, k.URL, key, map[string]any{"email": "created@example.com", "metadata": obj}).UserErrors
		}},
	}
	for _, p := range paths {
		for what, bad := range badKeys {
			for _, nested := range []bool{false, true} {
				name := p.name + "/" + what
				if nested {
					name += "Nested"
				}
				t.Run(name, func(t *testing.T) {
					obj, at := nest(bad, nested)
					ues := p.call(t, obj)
					want := append(slices.Clone(p.field), at...)
					if len(ues) != 1 || ues[0].Code != "INVALID" || !slices.Equal(ues[0].Field, want) {
						t.Fatalf("userErrors = %+v, want one INVALID on %v", ues, want)
					}
					if !strings.Contains(ues[0].Message, "key") {
						t.Errorf("the message %q does not say that a key is wrong", ues[0].Message)
					}
					for coll, n := range k.counts(t, appID) {
						if n != 0 {
							t.Errorf("%d %s written", n, coll)
						}
					}
				})
			}
		}
	}
}
