package main

import (
	"net/http"
	"slices"
	"testing"
)

// TestAuthentication shows who may call what: secret-key operations need a valid key in either
// header, and createProject needs the admin token.
func TestAuthentication(t *testing.T) {
	k := startKnown(t)
	appID, key := createProject(t, k.URL, "Auth")

	secretKeyOps := map[string]string{
		"project":    `{ project { id } }`,
		"users":      `{ users { nodes { id } } }`,
		"createUser": `mutation { createUser(input: {email: "nokey@example.com"}) { user { id } userErrors { code } } }`,
	}
	for _, op := range []string{"project", "users", "createUser"} {
		t.Run("NoKeyIsUnauthenticated/"+op, func(t *testing.T) {
			gql(t, k.URL, "", secretKeyOps[op], nil).requireCode(t, "UNAUTHENTICATED")
		})
		t.Run("WrongKeyIsUnauthenticated/"+op, func(t *testing.T) {
			gql(t, k.URL, "sk_not-a-key-of-any-project", secretKeyOps[op], nil).requireCode(t, "UNAUTHENTICATED")
		})
		t.Run("WrongBearerIsUnauthenticated/"+op, func(t *testing.T) {
			h := http.Header{"Authorization": {"Bearer sk_not-a-key-of-any-project"}}
			gqlHeaders(t, k.URL, h, secretKeyOps[op], nil).requireCode(t, "UNAUTHENTICATED")
		})
	}
	t.Run("NoKeyCreatesNothing", func(t *testing.T) {
		r := gql(t, k.URL, key, `{ searchUsers(email: "nokey@example.com") { user { id } } }`, nil)
		var data struct{ SearchUsers []any }
		r.decode(t, &data)
		if len(data.SearchUsers) != 0 {
			t.Fatalf("createUser without a key created a user: %s", r.Body)
		}
	})

	projectQuery := `{ project { appId name } }`
	checkProject := func(t *testing.T, r response) {
		t.Helper()
		var data struct{ Project struct{ AppID, Name string } }
		r.decode(t, &data)
		if data.Project.AppID != appID || data.Project.Name != "Auth" {
			t.Fatalf("project = %+v, want appId %q name Auth", data.Project, appID)
		}
	}
	t.Run("AgentSecretKeyHeaderWorks", func(t *testing.T) {
		h := http.Header{"Agent-Secret-Key": {key}}
		checkProject(t, gqlHeaders(t, k.URL, h, projectQuery, nil))
	})
	t.Run("AuthorizationBearerWorks", func(t *testing.T) {
		h := http.Header{"Authorization": {"Bearer " + key}}
		checkProject(t, gqlHeaders(t, k.URL, h, projectQuery, nil))
	})
	t.Run("AdminTokenIsNotAProjectKey", func(t *testing.T) {
		h := http.Header{"Authorization": {"Bearer " + testAdminToken}}
		gqlHeaders(t, k.URL, h, projectQuery, nil).requireCode(t, "UNAUTHENTICATED")
	})

	createProjectOp := `mutation { createProject(input: {name: "Other"}) {
		project { id appId name } secretKey identitySecret userErrors { field code message } } }`
	t.Run("CreateProjectWithoutCredentialIsUnauthenticated", func(t *testing.T) {
		gql(t, k.URL, "", createProjectOp, nil).requireCode(t, "UNAUTHENTICATED")
	})
	t.Run("CreateProjectWithProjectKeyIsForbidden", func(t *testing.T) {
		gql(t, k.URL, key, createProjectOp, nil).requireCode(t, "FORBIDDEN")
		h := http.Header{"Authorization": {"Bearer " + key}}
		gqlHeaders(t, k.URL, h, createProjectOp, nil).requireCode(t, "FORBIDDEN")
	})
	t.Run("CreateProjectWithAdminToken", func(t *testing.T) {
		h := http.Header{"Authorization": {"Bearer " + testAdminToken}}
		r := gqlHeaders(t, k.URL, h, createProjectOp, nil)
		var data struct {
			CreateProject struct {
				Project *struct {
					ID, AppID, Name string
				}
				SecretKey      *string
				IdentitySecret *string
				UserErrors     []userError
			}
		}
		r.decode(t, &data)
		p := data.CreateProject
		if len(p.UserErrors) != 0 || p.Project == nil || p.SecretKey == nil || p.IdentitySecret == nil {
			t.Fatalf("createProject with the admin token: %s", r.Body)
		}
		if p.Project.ID == "" || p.Project.AppID == "" || p.Project.AppID == appID || p.Project.Name != "Other" {
			t.Fatalf("createProject returned project %+v", *p.Project)
		}
		if *p.SecretKey == "" || *p.IdentitySecret == "" || *p.SecretKey == *p.IdentitySecret {
			t.Fatalf("createProject returned secretKey %q identitySecret %q", *p.SecretKey, *p.IdentitySecret)
		}
		var got struct {
			Project struct{ ID, AppID, Name string }
		}
		gql(t, k.URL, *p.SecretKey, `{ project { id appId name } }`, nil).decode(t, &got)
		if got.Project.ID != p.Project.ID || got.Project.AppID != p.Project.AppID || got.Project.Name != "Other" {
			t.Fatalf("the new secret key reads project %+v, want %+v", got.Project, *p.Project)
		}
	})
}

// TestProjectIsolation shows that project B's key cannot see or change project A's users: to
// it they do not exist.
func TestProjectIsolation(t *testing.T) {
	k := startKnown(t)
	_, keyA := createProject(t, k.URL, "A")
	_, keyB := createProject(t, k.URL, "B")
	a := createUser(t, k.URL, keyA, map[string]any{
		"email": "ann@a.example.com", "phoneNumber": "+14155550101", "externalId": "a-ext-1", "firstName": "Ann",
	})
	b := createUser(t, k.URL, keyB, map[string]any{"email": "bob@b.example.com"})

	t.Run("UserOfOtherProjectIsNotFound", func(t *testing.T) {
		r := gql(t, k.URL, keyB, `query($id: ID!) { user(id: $id) { id email } }`, map[string]any{"id": a.ID})
		r.requireCode(t, "NOT_FOUND")
		if string(r.Data) != `{"user":null}` {
			t.Fatalf("data = %s, want user null", r.Data)
		}
	})
	t.Run("NodeOfOtherProjectIsNotFound", func(t *testing.T) {
		r := gql(t, k.URL, keyB, `query($id: ID!) { node(id: $id) { id ... on User { email } } }`, map[string]any{"id": a.ID})
		r.requireCode(t, "NOT_FOUND")
		if string(r.Data) != `{"node":null}` {
			t.Fatalf("data = %s, want node null", r.Data)
		}
	})
	t.Run("UsersListsOnlyOwnProject", func(t *testing.T) {
		ids := allUserIDs(t, k.URL, keyB)
		if !slices.Equal(ids, []string{b.ID}) {
			t.Fatalf("B's users = %v, want only %v (A's user is %s)", ids, b.ID, a.ID)
		}
	})
	for _, c := range []struct{ name, arg, value string }{
		{"SearchByEmailFindsNothing", "email", "ann@a.example.com"},
		{"SearchByPhoneFindsNothing", "phoneNumber", "+14155550101"},
		{"SearchByExternalIDFindsNothing", "externalId", "a-ext-1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := `query($v: ` + map[string]string{"email": "String", "phoneNumber": "String", "externalId": "ID"}[c.arg] +
				`) { searchUsers(` + c.arg + `: $v) { user { id } } }`
			var data struct{ SearchUsers []any }
			r := gql(t, k.URL, keyB, q, map[string]any{"v": c.value})
			r.decode(t, &data)
			if len(data.SearchUsers) != 0 {
				t.Fatalf("B's searchUsers(%s) found %s", c.arg, r.Body)
			}
			// The same search with A's key finds A's user, so the empty answer above means isolation.
			var own struct {
				SearchUsers []struct{ User struct{ ID string } }
			}
			gql(t, k.URL, keyA, q, map[string]any{"v": c.value}).decode(t, &own)
			if len(own.SearchUsers) != 1 || own.SearchUsers[0].User.ID != a.ID {
				t.Fatalf("A's searchUsers(%s) = %+v, want A's user", c.arg, own.SearchUsers)
			}
		})
	}
	t.Run("DeleteUserOfOtherProjectIsNotFound", func(t *testing.T) {
		r := gql(t, k.URL, keyB, `mutation($id: ID!) { deleteUser(input: {id: $id}) { deletedUserId userErrors { field code message } } }`,
			map[string]any{"id": a.ID})
		var data struct {
			DeleteUser struct {
				DeletedUserID *string
				UserErrors    []userError
			}
		}
		r.decode(t, &data)
		ues := data.DeleteUser.UserErrors
		if data.DeleteUser.DeletedUserID != nil || len(ues) != 1 || ues[0].Code != "NOT_FOUND" ||
			!slices.Equal(ues[0].Field, []string{"input", "id"}) {
			t.Fatalf("B's deleteUser(A's user) = %s, want userErrors [{field [input id], code NOT_FOUND}]", r.Body)
		}
		var still struct{ User *struct{ ID, Email string } }
		gql(t, k.URL, keyA, `query($id: ID!) { user(id: $id) { id email } }`, map[string]any{"id": a.ID}).decode(t, &still)
		if still.User == nil || still.User.ID != a.ID || still.User.Email != "ann@a.example.com" {
			t.Fatalf("A's user after B's deleteUser = %+v, want it unchanged", still.User)
		}
	})
}
