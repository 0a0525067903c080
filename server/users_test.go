package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestSeed001Users walks seed 001 over HTTP: createUser with every field, its rules
// (email or phone, ALREADY_EXISTS naming the user), user(id), users pagination, searchUsers and
// deleteUser.
func TestSeed001Users(t *testing.T) {
	k := startKnown(t)
	_, key := createProject(t, k.URL, "Seed001")

	var ann gqlUser
	t.Run("CreateUserReturnsEveryField", func(t *testing.T) {
		metadata := map[string]any{"plan": "pro", "seats": float64(3), "nested": map[string]any{"beta": true}}
		ann = createUser(t, k.URL, key, map[string]any{
			"email":       "ann@x.com",
			"phoneNumber": "+14155550123",
			"firstName":   "Ann",
			"lastName":    "Lee",
			"context":     "Support",
			"source":      "webchat",
			"externalId":  123, // a JSON number: stored as the string "123"
			"fkUserId":    "fk-42",
			"metadata":    metadata,
		})
		want := map[string]string{
			"email": "ann@x.com", "phoneNumber": "+14155550123", "firstName": "Ann", "lastName": "Lee",
			"name": "Ann Lee", "context": "Support", "source": "webchat", "externalId": "123", "fkUserId": "fk-42",
		}
		got := map[string]string{
			"email": deref(ann.Email), "phoneNumber": deref(ann.PhoneNumber), "firstName": deref(ann.FirstName),
			"lastName": deref(ann.LastName), "name": deref(ann.Name), "context": deref(ann.Context),
			"source": deref(ann.Source), "externalId": deref(ann.ExternalID), "fkUserId": deref(ann.FkUserID),
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("createUser returned %v, want %v", got, want)
		}
		if !reflect.DeepEqual(ann.Metadata, metadata) {
			t.Errorf("metadata = %v, want %v", ann.Metadata, metadata)
		}
		if ann.ID == "" || ann.CreatedAt == "" || ann.UpdatedAt == "" || ann.Anonymous || ann.Verified {
			t.Errorf("createUser returned id %q createdAt %q updatedAt %q anonymous %v verified %v",
				ann.ID, ann.CreatedAt, ann.UpdatedAt, ann.Anonymous, ann.Verified)
		}
	})
	if ann.ID == "" {
		t.Fatal("no user to go on with")
	}

	t.Run("ExternalIDAsStringIsAlreadyExists", func(t *testing.T) {
		p := tryCreateUser(t, k.URL, key, map[string]any{"email": "other123@x.com", "externalId": "123"})
		if p.User != nil || len(p.UserErrors) != 1 || p.UserErrors[0].Code != "ALREADY_EXISTS" ||
			!slices.Equal(p.UserErrors[0].Field, []string{"input", "externalId"}) {
			t.Fatalf("createUser with externalId \"123\" after 123 = user %v, userErrors %+v; want ALREADY_EXISTS on [input externalId]",
				p.User, p.UserErrors)
		}
		if !strings.Contains(p.UserErrors[0].Message, ann.ID) {
			t.Errorf("message %q does not name the existing user %s", p.UserErrors[0].Message, ann.ID)
		}
	})
	t.Run("NeitherEmailNorPhoneIsInvalid", func(t *testing.T) {
		before := allUserIDs(t, k.URL, key)
		p := tryCreateUser(t, k.URL, key, map[string]any{"firstName": "Nobody", "externalId": "nobody-1"})
		if p.User != nil || len(p.UserErrors) != 1 || p.UserErrors[0].Code != "INVALID" {
			t.Fatalf("createUser without email and phone = user %v, userErrors %+v; want one INVALID", p.User, p.UserErrors)
		}
		if after := allUserIDs(t, k.URL, key); !slices.Equal(after, before) {
			t.Fatalf("a rejected createUser changed the users: %v → %v", before, after)
		}
		// The rejected externalId was not claimed either.
		createUser(t, k.URL, key, map[string]any{"email": "nobody@x.com", "externalId": "nobody-1"})
	})
	t.Run("EmailInOtherCaseIsAlreadyExists", func(t *testing.T) {
		p := tryCreateUser(t, k.URL, key, map[string]any{"email": "ANN@x.com"})
		if p.User != nil || len(p.UserErrors) != 1 || p.UserErrors[0].Code != "ALREADY_EXISTS" ||
			!slices.Equal(p.UserErrors[0].Field, []string{"input", "email"}) {
			t.Fatalf("createUser(ANN@x.com) = user %v, userErrors %+v; want ALREADY_EXISTS on [input email]", p.User, p.UserErrors)
		}
		if !strings.Contains(p.UserErrors[0].Message, ann.ID) {
			t.Errorf("message %q does not contain the existing user's global id %s", p.UserErrors[0].Message, ann.ID)
		}
	})
	t.Run("PhoneIsAlreadyExists", func(t *testing.T) {
		p := tryCreateUser(t, k.URL, key, map[string]any{"phoneNumber": "+14155550123"})
		if p.User != nil || len(p.UserErrors) != 1 || p.UserErrors[0].Code != "ALREADY_EXISTS" ||
			!slices.Equal(p.UserErrors[0].Field, []string{"input", "phoneNumber"}) ||
			!strings.Contains(p.UserErrors[0].Message, ann.ID) {
			t.Fatalf("createUser with Ann's phone = user %v, userErrors %+v; want ALREADY_EXISTS naming %s", p.User, p.UserErrors, ann.ID)
		}
	})
	t.Run("UserByID", func(t *testing.T) {
		var data struct{ User *gqlUser }
		gql(t, k.URL, key, `query($id: ID!) { user(id: $id) { `+userFields+` } }`, map[string]any{"id": ann.ID}).decode(t, &data)
		if data.User == nil || !reflect.DeepEqual(*data.User, ann) {
			t.Fatalf("user(id) = %+v, want %+v", data.User, ann)
		}
	})
	t.Run("SearchUsersReturnsUserWithConversationIDs", func(t *testing.T) {
		for _, c := range []struct{ arg, typ, value string }{
			{"email", "String", "Ann@X.com"},
			{"phoneNumber", "String", "+14155550123"},
			{"externalId", "ID", "123"},
		} {
			r := gql(t, k.URL, key, `query($v: `+c.typ+`) { searchUsers(`+c.arg+`: $v) { user { id email } conversationIds } }`,
				map[string]any{"v": c.value})
			var data struct {
				SearchUsers []struct {
					User            struct{ ID, Email string }
					ConversationIDs []string `json:"conversationIds"`
				}
			}
			r.decode(t, &data)
			if len(data.SearchUsers) != 1 || data.SearchUsers[0].User.ID != ann.ID ||
				data.SearchUsers[0].ConversationIDs == nil || len(data.SearchUsers[0].ConversationIDs) != 0 {
				t.Fatalf("searchUsers(%s: %q) = %s, want Ann with conversationIds []", c.arg, c.value, r.Body)
			}
		}
		// Several criteria naming one user give one result.
		var data struct{ SearchUsers []any }
		gql(t, k.URL, key, `{ searchUsers(email: "ann@x.com", phoneNumber: "+14155550123", externalId: 123) { user { id } } }`, nil).
			decode(t, &data)
		if len(data.SearchUsers) != 1 {
			t.Fatalf("searchUsers by three criteria of one user gave %d results, want 1", len(data.SearchUsers))
		}
	})
	t.Run("DeleteUserThenNotFoundAndEmailFree", func(t *testing.T) {
		r := gql(t, k.URL, key, `mutation($id: ID!) { deleteUser(input: {id: $id}) { deletedUserId userErrors { field code message } } }`,
			map[string]any{"id": ann.ID})
		var data struct {
			DeleteUser struct {
				DeletedUserID *string
				UserErrors    []userError
			}
		}
		r.decode(t, &data)
		if len(data.DeleteUser.UserErrors) != 0 || deref(data.DeleteUser.DeletedUserID) != ann.ID {
			t.Fatalf("deleteUser = %s, want deletedUserId %s", r.Body, ann.ID)
		}
		gql(t, k.URL, key, `query($id: ID!) { user(id: $id) { id } }`, map[string]any{"id": ann.ID}).requireCode(t, "NOT_FOUND")
		again := gql(t, k.URL, key, `mutation($id: ID!) { deleteUser(input: {id: $id}) { deletedUserId userErrors { code } } }`,
			map[string]any{"id": ann.ID})
		if !strings.Contains(again.Body, `"code":"NOT_FOUND"`) {
			t.Fatalf("deleting a deleted user = %s, want userErrors NOT_FOUND", again.Body)
		}
		var search struct{ SearchUsers []any }
		gql(t, k.URL, key, `{ searchUsers(email: "ann@x.com") { user { id } } }`, nil).decode(t, &search)
		if len(search.SearchUsers) != 0 {
			t.Fatalf("searchUsers finds a deleted user: %v", search.SearchUsers)
		}
		reborn := createUser(t, k.URL, key, map[string]any{"email": "ann@x.com", "phoneNumber": "+14155550123", "externalId": 123})
		if reborn.ID == ann.ID {
			t.Fatalf("the new user got the deleted user's id %s", ann.ID)
		}
	})
}

// TestUsersPagination shows that users(first, after) pages newest first with hasNextPage and
// endCursor, across three pages.
func TestUsersPagination(t *testing.T) {
	k := startKnown(t)
	_, key := createProject(t, k.URL, "Pages")
	var created []string
	for i := range 7 {
		u := createUser(t, k.URL, key, map[string]any{"email": fmt.Sprintf("page%d@example.com", i)})
		created = append(created, u.ID)
	}
	newestFirst := slices.Clone(created)
	slices.Reverse(newestFirst)

	var got []string
	var after any
	wantSizes := []int{3, 3, 1}
	wantMore := []bool{true, true, false}
	for page := range 3 {
		r := gql(t, k.URL, key, `query($after: String) {
			users(first: 3, after: $after) {
				edges { cursor node { id } }
				nodes { id }
				pageInfo { hasNextPage endCursor }
			}
		}`, map[string]any{"after": after})
		var data struct {
			Users struct {
				Edges []struct {
					Cursor string
					Node   struct{ ID string }
				}
				Nodes    []struct{ ID string }
				PageInfo struct {
					HasNextPage bool
					EndCursor   *string
				}
			}
		}
		r.decode(t, &data)
		u := data.Users
		if len(u.Nodes) != wantSizes[page] || len(u.Edges) != wantSizes[page] || u.PageInfo.HasNextPage != wantMore[page] {
			t.Fatalf("page %d: %d nodes, %d edges, hasNextPage %v; want %d, %d, %v",
				page+1, len(u.Nodes), len(u.Edges), u.PageInfo.HasNextPage, wantSizes[page], wantSizes[page], wantMore[page])
		}
		if u.PageInfo.EndCursor == nil || *u.PageInfo.EndCursor != u.Edges[len(u.Edges)-1].Cursor {
			t.Fatalf("page %d: endCursor %v is not the last edge's cursor", page+1, u.PageInfo.EndCursor)
		}
		for i, n := range u.Nodes {
			if u.Edges[i].Node.ID != n.ID {
				t.Fatalf("page %d: edges and nodes disagree", page+1)
			}
			got = append(got, n.ID)
		}
		after = *u.PageInfo.EndCursor
	}
	if !slices.Equal(got, newestFirst) {
		t.Fatalf("users over three pages = %v, want newest first %v", got, newestFirst)
	}
	gql(t, k.URL, key, `{ users(first: 3, after: "not-a-cursor") { nodes { id } } }`, nil).requireCode(t, "BAD_USER_INPUT")
}

// TestConcurrentCreateUserOneEmail shows that 50 concurrent createUser calls with one email
// over HTTP make exactly one user; the other 49 get ALREADY_EXISTS.
func TestConcurrentCreateUserOneEmail(t *testing.T) {
	k := startKnown(t)
	_, key := createProject(t, k.URL, "Race")
	const n = 50
	body, err := json.Marshal(map[string]any{
		"query":     createUserMutation,
		"variables": map[string]any{"input": map[string]any{"email": "same@example.com"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		p   createUserPayload
		err string
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			req, err := http.NewRequest(http.MethodPost, k.URL+"/graphql", bytes.NewReader(body))
			if err != nil {
				results[i].err = err.Error()
				return
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Agent-Secret-Key", key)
			res, err := httpClient.Do(req)
			if err != nil {
				results[i].err = err.Error()
				return
			}
			defer res.Body.Close()
			var out struct {
				Data struct {
					CreateUser createUserPayload `json:"createUser"`
				} `json:"data"`
				Errors []gqlError `json:"errors"`
			}
			if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
				results[i].err = err.Error()
				return
			}
			if len(out.Errors) > 0 {
				results[i].err = out.Errors[0].Extensions.Code + ": " + out.Errors[0].Message
				return
			}
			results[i].p = out.Data.CreateUser
		})
	}
	close(start)
	wg.Wait()

	var created []string
	alreadyExists := 0
	for i, r := range results {
		switch {
		case r.err != "":
			t.Errorf("request %d failed: %s", i, r.err)
		case r.p.User != nil && len(r.p.UserErrors) == 0:
			created = append(created, r.p.User.ID)
		case r.p.User == nil && len(r.p.UserErrors) == 1 && r.p.UserErrors[0].Code == "ALREADY_EXISTS":
			alreadyExists++
		default:
			t.Errorf("request %d answered user %v, userErrors %+v", i, r.p.User, r.p.UserErrors)
		}
	}
	if len(created) != 1 || alreadyExists != n-1 {
		t.Fatalf("%d users created and %d ALREADY_EXISTS, want 1 and %d", len(created), alreadyExists, n-1)
	}
	if ids := allUserIDs(t, k.URL, key); !slices.Equal(ids, created) {
		t.Fatalf("the project has users %v, want only %v", ids, created)
	}
	for i, r := range results {
		if r.p.User == nil && !strings.Contains(r.p.UserErrors[0].Message, created[0]) {
			t.Errorf("request %d: ALREADY_EXISTS message %q does not name %s", i, r.p.UserErrors[0].Message, created[0])
		}
	}
}

// TestCreateUserWithoutMetadata shows that createUser with only an email (metadata left out,
// as seed 001 allows) answers the user with metadata {} rather than an error, and that a
// retry then gets ALREADY_EXISTS because the first call did create the user.
func TestCreateUserWithoutMetadata(t *testing.T) {
	k := startKnown(t)
	_, key := createProject(t, k.URL, "NoMetadata")
	r := gql(t, k.URL, key, createUserMutation, map[string]any{"input": map[string]any{"email": "plain@example.com"}})
	if len(r.Errors) != 0 {
		t.Errorf("createUser without metadata answered errors: %s", r.Body)
	}
	var data struct {
		CreateUser createUserPayload `json:"createUser"`
	}
	if err := json.Unmarshal(r.Data, &data); err != nil {
		t.Fatalf("decoding %s: %v", r.Body, err)
	}
	if u := data.CreateUser.User; u == nil || deref(u.Email) != "plain@example.com" || u.Metadata == nil || len(u.Metadata) != 0 {
		t.Errorf("createUser without metadata returned user %+v, want the user with metadata {}; body %s", u, r.Body)
	}
	var search struct {
		SearchUsers []struct {
			User struct {
				ID       string
				Metadata map[string]any
			}
		}
	}
	gql(t, k.URL, key, `{ searchUsers(email: "plain@example.com") { user { id metadata } } }`, nil).decode(t, &search)
	if len(search.SearchUsers) != 1 || search.SearchUsers[0].User.Metadata == nil {
		t.Fatalf("after createUser, searchUsers = %+v, want the one user with metadata {}", search.SearchUsers)
	}
	if u := data.CreateUser.User; u != nil && u.ID != search.SearchUsers[0].User.ID {
		t.Fatalf("createUser returned id %s, the stored user is %s", u.ID, search.SearchUsers[0].User.ID)
	}
}
