package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/knownhq/known"
)

// FuzzIdentifyInput sends any identify input through the HTTP handler: no input gives a 5xx
// status or INTERNAL_SERVER_ERROR; an identify that is refused (a GraphQL error or
// userErrors) writes nothing; one that succeeds leaves its user's and company's metadata
// within the limits of stored JSON (seed corpus in testdata/fuzz/FuzzIdentifyInput).
func FuzzIdentifyInput(f *testing.F) {
	for _, s := range []string{
		`{"userId":"u-1","email":"jane@example.com","metadata":{"plan":"pro"}}`,
		`{"userId":"u-1","metadata":{"a\u0000b":1}}`,
		`{"email":"x@example.com","company":{"id":"acme","name":"Acme","metadata":{"nul\u0000":1}}}`,
		`{"metadata":{"outer":{"$set":{"x.y":1}}}}`,
		`{"userId":"u-2","company":{"id":"c","metadata":{"a":{"b":{"c":{"d":{"e":{"f":1}}}}}}}}`,
		`{"userId":"\u0000","email":"a\u0000@example.com","name":"\u0000","phoneNumber":"+14155550123"}`,
		`{"userId":"u-3","companyIds":["a","a",""," "],"stageMode":"OVERWRITE"}`,
		`{"userId":"u-4","avatarUrl":"https://\u0000/x","userHash":"00"}`,
		`{"userId":"u-5","metadata":{"k":"\ud800"}}`,
		`{"visitorId":"v_x","metadata":{"":1}}`,
	} {
		f.Add(s)
	}
	k := startInProcess(f, nil)
	appID, _ := createProject(f, k.URL, "Fuzz")
	ctx := context.Background()

	f.Fuzz(func(t *testing.T, text string) {
		var input map[string]any
		if json.Unmarshal([]byte(text), &input) != nil || input == nil {
			return
		}
		input["appId"] = appID
		before := k.counts(t, appID)
		r, _ := widgetCall(t, k.URL, "", "", `mutation($input: IdentifyInput!) { identify(input: $input) {
			session { userId } userErrors { field code message } } }`, map[string]any{"input": input})
		if r.Status >= 500 || strings.Contains(r.Body, "INTERNAL_SERVER_ERROR") {
			t.Fatalf("identify(%s) answered %d: %s", text, r.Status, r.Body)
		}
		var data struct {
			Identify *struct {
				Session    *struct{ UserID *string }
				UserErrors []userError
			}
		}
		if len(r.Data) > 0 {
			if err := json.Unmarshal(r.Data, &data); err != nil {
				t.Fatalf("data %s: %v", r.Data, err)
			}
		}
		if len(r.Errors) > 0 || data.Identify == nil || len(data.Identify.UserErrors) > 0 {
			if after := k.counts(t, appID); !sameCounts(before, after) {
				t.Fatalf("refused identify(%s) wrote: %v before, %v after; answer %s", text, before, after, r.Body)
			}
			return
		}
		if s := data.Identify.Session; s != nil && s.UserID != nil {
			kind, raw, ok := known.ParseGlobalID(*s.UserID)
			if !ok || kind != known.KindUser {
				t.Fatalf("session userId %q", *s.UserID)
			}
			u, err := k.store.User(ctx, known.ProjectID(appID), known.UserID(raw))
			if err != nil {
				t.Fatalf("reading the identified user: %v", err)
			}
			if len(u.Metadata) > 50 {
				t.Fatalf("the user has %d metadata keys", len(u.Metadata))
			}
			checkStoredJSON(t, u.Metadata, 1)
			if u.ActiveCompanyID != nil {
				c, err := k.store.Company(ctx, known.ProjectID(appID), *u.ActiveCompanyID)
				if err != nil {
					t.Fatalf("reading the user's company: %v", err)
				}
				checkStoredJSON(t, c.Metadata, 1)
			}
		}
	})
}

func sameCounts(a, b map[string]int64) bool {
	for k, n := range a {
		if b[k] != n {
			return false
		}
	}
	return len(a) == len(b)
}

// checkStoredJSON fails unless stored JSON x, at depth, keeps the limits of API.md §7.
func checkStoredJSON(t *testing.T, x any, depth int) {
	t.Helper()
	switch x := x.(type) {
	case map[string]any:
		if depth > 5 {
			t.Fatalf("stored an object at depth %d", depth)
		}
		for k, v := range x {
			if k == "" || strings.ContainsRune(k, 0) || strings.Contains(k, ".") || strings.HasPrefix(k, "$") ||
				strings.TrimSpace(k) != k || utf8.RuneCountInString(k) > 255 {
				t.Fatalf("stored the key %q", k)
			}
			checkStoredJSON(t, v, depth+1)
		}
	case []any:
		for _, v := range x {
			checkStoredJSON(t, v, depth+1)
		}
	case string:
		if utf8.RuneCountInString(x) > 255 {
			t.Fatalf("stored a string of %d characters", utf8.RuneCountInString(x))
		}
	}
}
