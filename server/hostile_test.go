package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// deepQuery returns a query whose selection is depth fields deep and valid against the
// schema: users → nodes → organizations → nodes → users → … with first: 1 on each list, so
// that only the depth limit can refuse it.
func deepQuery(depth int) string {
	cycle := []string{"users(first: 1)", "nodes", "organizations(first: 1)", "nodes"}
	var b strings.Builder
	b.WriteString("{ ")
	for i := range depth - 1 {
		b.WriteString(cycle[i%len(cycle)])
		b.WriteString(" { ")
	}
	b.WriteString("__typename")
	b.WriteString(strings.Repeat(" }", depth-1))
	b.WriteString(" }")
	return b.String()
}

// aliasQuery returns a query of n aliased project fields.
func aliasQuery(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, " a%d: project { id }", i)
	}
	b.WriteString(" }")
	return b.String()
}

// TestHostileInput shows that malformed, oversized, too deep, too wide or invalid requests get
// a clear error with an exact code, and change nothing.
func TestHostileInput(t *testing.T) {
	k := startKnown(t)
	_, key := createProject(t, k.URL, "Hostile")
	createUser(t, k.URL, key, map[string]any{"email": "first@example.com"})
	createUser(t, k.URL, key, map[string]any{"phoneNumber": "+14155550199"})
	before := allUserIDs(t, k.URL, key)
	if len(before) != 2 {
		t.Fatalf("set up %d users, want 2", len(before))
	}
	keyHeader := http.Header{"Agent-Secret-Key": {key}}

	requireUserError := func(t *testing.T, p createUserPayload, field []string, code string) {
		t.Helper()
		if p.User != nil {
			t.Fatalf("createUser returned user %+v with a bad input", *p.User)
		}
		if len(p.UserErrors) != 1 || p.UserErrors[0].Code != code || !slices.Equal(p.UserErrors[0].Field, field) {
			t.Fatalf("userErrors = %+v, want [{field %v code %s}]", p.UserErrors, field, code)
		}
		if p.UserErrors[0].Message == "" {
			t.Fatalf("userErrors[0].message is empty")
		}
	}

	// A User global id of an id that exists nowhere.
	unknownUserID := base64.RawURLEncoding.EncodeToString([]byte("User:ffffffffffffffffffffffff"))

	cases := []struct {
		name string
		test func(t *testing.T)
	}{
		{"MalformedJSONIsBadRequest", func(t *testing.T) {
			r := postRaw(t, k.URL, keyHeader, []byte(`{"query": "mutation { createUser(input: {email: \"json@example.com\"}) { user { id } } }"`))
			if r.Status != http.StatusBadRequest {
				t.Fatalf("status = %d, want 400; body %s", r.Status, r.Body)
			}
			r.requireCode(t, "BAD_REQUEST")
		}},
		{"OversizedBodyIsPayloadTooLarge", func(t *testing.T) {
			body := []byte(`{"query": "{ project { id } }", "variables": {"pad": "` +
				strings.Repeat("x", 2<<20) + `"}}`)
			r := postRaw(t, k.URL, keyHeader, body)
			if r.Status != http.StatusRequestEntityTooLarge {
				t.Fatalf("status = %d, want 413; body %.300s", r.Status, r.Body)
			}
			r.requireCode(t, "PAYLOAD_TOO_LARGE")
		}},
		{"OversizedChunkedBodyIsPayloadTooLarge", func(t *testing.T) {
			body := []byte(`{"query": "{ project { id } }", "variables": {"pad": "` +
				strings.Repeat("x", 2<<20) + `"}}`)
			// An io.Reader that is not a *bytes.Reader: the request has no Content-Length.
			req, err := http.NewRequest(http.MethodPost, k.URL+"/graphql", struct{ *bytes.Buffer }{bytes.NewBuffer(body)})
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Agent-Secret-Key", key)
			r := doGraphQL(t, req)
			if r.Status != http.StatusRequestEntityTooLarge {
				t.Fatalf("status = %d, want 413; body %.300s", r.Status, r.Body)
			}
			r.requireCode(t, "PAYLOAD_TOO_LARGE")
		}},
		{"DeepQueryIsDepthLimitExceeded", func(t *testing.T) {
			gql(t, k.URL, key, deepQuery(50), nil).requireCode(t, "DEPTH_LIMIT_EXCEEDED")
		}},
		{"DeepQueryWithDefaultPageSizesIsRefused", func(t *testing.T) {
			// The brief's shape without first: arguments. Whichever limit refuses it, it must not run.
			q := strings.ReplaceAll(deepQuery(50), "(first: 1)", "")
			r := gql(t, k.URL, key, q, nil)
			if c := r.code(); c != "DEPTH_LIMIT_EXCEEDED" && c != "COMPLEXITY_LIMIT_EXCEEDED" {
				t.Fatalf("code = %q, want DEPTH_LIMIT_EXCEEDED or COMPLEXITY_LIMIT_EXCEEDED; body %.500s", c, r.Body)
			}
		}},
		{"QueryAtDepthLimitRuns", func(t *testing.T) {
			// The limit is 15: the same shape 15 deep is answered.
			r := gql(t, k.URL, key, deepQuery(15), nil)
			if len(r.Errors) != 0 {
				t.Fatalf("a 15-deep query failed: %s", r.Body)
			}
		}},
		{"FirstOverLimitIsBadUserInput", func(t *testing.T) {
			r := gql(t, k.URL, key, `{ users(first: 1000) { nodes { id } } }`, nil)
			r.requireCode(t, "BAD_USER_INPUT")
			if f := r.Errors[0].Extensions.Field; !slices.Equal(f, []string{"first"}) {
				t.Fatalf("extensions.field = %v, want [first]", f)
			}
		}},
		{"FirstZeroIsBadUserInput", func(t *testing.T) {
			r := gql(t, k.URL, key, `{ users(first: 0) { nodes { id } } }`, nil)
			r.requireCode(t, "BAD_USER_INPUT")
			if f := r.Errors[0].Extensions.Field; !slices.Equal(f, []string{"first"}) {
				t.Fatalf("extensions.field = %v, want [first]", f)
			}
		}},
		{"ManyAliasesIsAliasLimitExceeded", func(t *testing.T) {
			gql(t, k.URL, key, aliasQuery(500), nil).requireCode(t, "ALIAS_LIMIT_EXCEEDED")
		}},
		{"BadEmailIsInvalid", func(t *testing.T) {
			p := tryCreateUser(t, k.URL, key, map[string]any{"email": "not-an-email"})
			requireUserError(t, p, []string{"input", "email"}, "INVALID")
		}},
		{"BadPhoneIsInvalid/TooShort", func(t *testing.T) {
			p := tryCreateUser(t, k.URL, key, map[string]any{"phoneNumber": "12345"})
			requireUserError(t, p, []string{"input", "phoneNumber"}, "INVALID")
		}},
		{"BadPhoneIsInvalid/LeadingZero", func(t *testing.T) {
			p := tryCreateUser(t, k.URL, key, map[string]any{"phoneNumber": "+0123456789"})
			requireUserError(t, p, []string{"input", "phoneNumber"}, "INVALID")
		}},
		{"BadPhoneIsInvalid/Spaces", func(t *testing.T) {
			p := tryCreateUser(t, k.URL, key, map[string]any{"phoneNumber": "+1 415 555"})
			requireUserError(t, p, []string{"input", "phoneNumber"}, "INVALID")
		}},
		{"BadPhoneWithGoodEmailCreatesNothing", func(t *testing.T) {
			p := tryCreateUser(t, k.URL, key, map[string]any{"email": "goodmail@example.com", "phoneNumber": "12345"})
			requireUserError(t, p, []string{"input", "phoneNumber"}, "INVALID")
			var data struct{ SearchUsers []any }
			gql(t, k.URL, key, `{ searchUsers(email: "goodmail@example.com") { user { id } } }`, nil).decode(t, &data)
			if len(data.SearchUsers) != 0 {
				t.Fatalf("a rejected createUser left its email behind: %v", data.SearchUsers)
			}
		}},
		{"UnknownGlobalIDIsNotFound/user", func(t *testing.T) {
			gql(t, k.URL, key, `query($id: ID!) { user(id: $id) { id } }`, map[string]any{"id": unknownUserID}).
				requireCode(t, "NOT_FOUND")
		}},
		{"UnknownGlobalIDIsNotFound/node", func(t *testing.T) {
			gql(t, k.URL, key, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": unknownUserID}).
				requireCode(t, "NOT_FOUND")
		}},
		{"UnknownGlobalIDIsNotFound/deleteUser", func(t *testing.T) {
			r := gql(t, k.URL, key, `mutation($id: ID!) { deleteUser(input: {id: $id}) { deletedUserId userErrors { field code message } } }`,
				map[string]any{"id": unknownUserID})
			var data struct {
				DeleteUser struct {
					DeletedUserID *string
					UserErrors    []userError
				}
			}
			r.decode(t, &data)
			ues := data.DeleteUser.UserErrors
			if data.DeleteUser.DeletedUserID != nil || len(ues) != 1 || ues[0].Code != "NOT_FOUND" {
				t.Fatalf("deleteUser(unknown id) = %s, want userErrors [NOT_FOUND]", r.Body)
			}
		}},
		{"NotAGlobalIDIsBadUserInput/user", func(t *testing.T) {
			r := gql(t, k.URL, key, `{ user(id: "definitely not an id!") { id } }`, nil)
			r.requireCode(t, "BAD_USER_INPUT")
			if f := r.Errors[0].Extensions.Field; !slices.Equal(f, []string{"id"}) {
				t.Fatalf("extensions.field = %v, want [id]", f)
			}
		}},
		{"NotAGlobalIDIsBadUserInput/node", func(t *testing.T) {
			gql(t, k.URL, key, `{ node(id: "definitely not an id!") { id } }`, nil).requireCode(t, "BAD_USER_INPUT")
		}},
		{"GetQueryIsAnswered", func(t *testing.T) {
			r := getGraphQL(t, k.URL, key, `{ project { name } }`)
			var data struct{ Project struct{ Name string } }
			r.decode(t, &data)
			if r.Status != http.StatusOK || data.Project.Name != "Hostile" {
				t.Fatalf("GET query = %d %s", r.Status, r.Body)
			}
		}},
		{"GetMutationIsRefused", func(t *testing.T) {
			r := getGraphQL(t, k.URL, key, `mutation { createUser(input: {email: "viaget@example.com"}) { user { id } userErrors { code } } }`)
			if r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "POST" {
				t.Fatalf("status = %d, Allow %q; want 405 and POST; body %s", r.Status, r.Header.Get("Allow"), r.Body)
			}
			if len(r.Errors) == 0 || r.Errors[0].Extensions.Code != "BAD_REQUEST" {
				t.Fatalf("a refused GET mutation answered %s, want code BAD_REQUEST", r.Body)
			}
			if len(r.Errors) == 0 || r.Errors[0].Message == "" || (string(r.Data) != "" && string(r.Data) != "null") {
				t.Fatalf("a refused GET mutation answered %s, want errors and no data", r.Body)
			}
			var data struct{ SearchUsers []any }
			gql(t, k.URL, key, `{ searchUsers(email: "viaget@example.com") { user { id } } }`, nil).decode(t, &data)
			if len(data.SearchUsers) != 0 {
				t.Fatalf("a GET mutation created a user: %v", data.SearchUsers)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, c.test)
	}

	if after := allUserIDs(t, k.URL, key); !slices.Equal(after, before) {
		t.Fatalf("the users changed: before %v, after %v", before, after)
	}
}

// wrappingQuery returns a query, 15 deep and without aliases, whose cost under Known's
// complexity rule (a list costs 1 + first × its selection) is 2^64 + 1, and the cost
// that the rule reaches when its products are computed in int64 (which wrap around).
// Fragments spread several times multiply the cost without multiplying the text.
func wrappingQuery(t *testing.T) (query string, trueCost *big.Int) {
	t.Helper()
	// Selection levels L0 (User, depth 3) … L6 (User, depth 15); each level spreads a hop
	// fragment w times (User.organizations or Organization.users, first: 100) and adds d id
	// fields, so cost(L) = w·(1 + 100·(1 + cost(L+1))) + d. Choose cost(L0) = 2^58 − 1: then
	// users(first: 64) { nodes { ...L0 } } costs 1 + 64·2^58 = 2^64 + 1.
	ws := []uint64{7, 9, 9, 6, 6, 7}
	x := uint64(1)<<58 - 1
	var ds []uint64
	for _, w := range ws {
		c := (x - w*101) / (100 * w)
		d := x - w*(1+100*(1+c))
		ds = append(ds, d)
		x = c
	}
	ds = append(ds, x) // L6: only id fields
	if x < 1 {
		t.Fatalf("bad plan: the deepest level has no fields")
	}

	// The cost as arbitrary-precision arithmetic.
	cost := new(big.Int).SetUint64(ds[6])
	for l := 5; l >= 0; l-- {
		hop := new(big.Int).Add(cost, big.NewInt(1))
		hop.Mul(hop, big.NewInt(100)).Add(hop, big.NewInt(1))
		cost = hop.Mul(hop, new(big.Int).SetUint64(ws[l])).Add(hop, new(big.Int).SetUint64(ds[l]))
	}
	total := new(big.Int).Add(cost, big.NewInt(1))
	total.Mul(total, big.NewInt(64)).Add(total, big.NewInt(1))

	types := []string{"User", "Organization"}
	hops := []string{"organizations(first: 100)", "users(first: 100)"}
	var b strings.Builder
	b.WriteString("query Wrap { users(first: 64) { nodes { ...L0 } } }\n")
	for l := 0; l <= 6; l++ {
		fmt.Fprintf(&b, "fragment L%d on %s {", l, types[l%2])
		if l < 6 {
			b.WriteString(strings.Repeat(fmt.Sprintf(" ...H%d", l), int(ws[l])))
		}
		b.WriteString(strings.Repeat(" id", int(ds[l])))
		b.WriteString(" }\n")
		if l < 6 {
			fmt.Fprintf(&b, "fragment H%d on %s { %s { nodes { ...L%d } } }\n", l, types[l%2], hops[l%2], l+1)
		}
	}
	return b.String(), total
}

// TestComplexityLimit shows that an operation that asks for too much work is refused with
// COMPLEXITY_LIMIT_EXCEEDED, also when its cost does not fit in 64 bits.
func TestComplexityLimit(t *testing.T) {
	k := startKnown(t)
	_, key := createProject(t, k.URL, "Complexity")
	t.Run("NestedListsAreComplexityLimitExceeded", func(t *testing.T) {
		q := `{ users(first: 100) { nodes { organizations(first: 100) { nodes { users(first: 100) { nodes { id } } } } } } }`
		gql(t, k.URL, key, q, nil).requireCode(t, "COMPLEXITY_LIMIT_EXCEEDED")
	})
	t.Run("CostBeyond64BitsIsComplexityLimitExceeded", func(t *testing.T) {
		q, cost := wrappingQuery(t)
		if cost.Cmp(big.NewInt(maxComplexity)) <= 0 {
			t.Fatalf("the query costs %v, not more than the limit", cost)
		}
		r := gql(t, k.URL, key, q, nil)
		if r.code() != "COMPLEXITY_LIMIT_EXCEEDED" {
			t.Fatalf("a query costing %v (over 2^64) answered %.300s, want COMPLEXITY_LIMIT_EXCEEDED", cost, r.Body)
		}
	})
}
