package main

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestOperationsOverGraphQL: the operator lists and deletes projects with the admin token; a
// key holder rotates its key (the old one is refused at once), exports a user as one JSON
// object and reads the audit log, through the HTTP API.
func TestOperationsOverGraphQL(t *testing.T) {
	k := startInProcess(t, nil)
	appID, key, secret := createProjectWithIdentitySecret(t, k.URL, "Ops")
	admin := http.Header{}
	admin.Set("Authorization", "Bearer "+testAdminToken)

	var listed struct {
		Projects struct {
			Nodes    []struct{ ID, AppID, Name string }
			PageInfo struct{ HasNextPage bool }
		}
	}
	gqlHeaders(t, k.URL, admin, `{ projects(first: 10) { nodes { id appId name } pageInfo { hasNextPage } } }`, nil).decode(t, &listed)
	if len(listed.Projects.Nodes) != 1 || listed.Projects.Nodes[0].AppID != appID {
		t.Fatalf("projects = %+v, want the one project", listed.Projects)
	}
	projectID := listed.Projects.Nodes[0].ID
	gql(t, k.URL, key, `{ projects { nodes { id } } }`, nil).requireCode(t, "FORBIDDEN")

	var id struct {
		Identify struct {
			Session struct{ Token, UserID string }
		}
	}
	widgetGQL(t, k.URL, "", `mutation($a: ID!, $h: String!) { identify(input: {appId: $a, userId: "ops-1", email: "ops@example.com", userHash: $h}) { session { token userId } } }`,
		map[string]any{"a": appID, "h": userHashOf(secret, "ops-1")}).decode(t, &id)
	userID := id.Identify.Session.UserID

	var rotated struct {
		RotateSecretKey struct {
			SecretKey  *string
			UserErrors []userError
		}
	}
	gql(t, k.URL, key, `mutation { rotateSecretKey(input: {graceMinutes: 0}) { secretKey previousKeyExpiresAt userErrors { field code message } } }`, nil).decode(t, &rotated)
	if rotated.RotateSecretKey.SecretKey == nil {
		t.Fatalf("rotateSecretKey: %+v", rotated.RotateSecretKey)
	}
	gql(t, k.URL, key, `{ project { name } }`, nil).requireCode(t, "UNAUTHENTICATED")
	key = *rotated.RotateSecretKey.SecretKey

	var export struct{ ExportUser map[string]any }
	gql(t, k.URL, key, `query($id: ID!) { exportUser(id: $id) }`, map[string]any{"id": userID}).decode(t, &export)
	user, _ := export.ExportUser["user"].(map[string]any)
	if user["id"] != userID || user["email"] != "ops@example.com" {
		t.Fatalf("exportUser = %v", export.ExportUser)
	}

	var audit struct {
		AuditLog struct {
			Nodes []struct {
				Action string
				Actor  struct{ Kind string }
				UserID *string
			}
		}
	}
	gql(t, k.URL, key, `query($u: ID) { auditLog(first: 10, userId: $u) { nodes { action actor { kind } userId } } }`,
		map[string]any{"u": userID}).decode(t, &audit)
	if n := audit.AuditLog.Nodes; len(n) != 1 || n[0].Action != "IDENTITY_PROVEN" || n[0].Actor.Kind != "WIDGET" || n[0].UserID == nil || *n[0].UserID != userID {
		t.Fatalf("auditLog = %+v, want the proof", n)
	}

	var deleted struct {
		DeleteProject struct {
			DeletedProjectID *string
			UserErrors       []userError
		}
	}
	del := `mutation($id: ID!) { deleteProject(input: {id: $id}) { deletedProjectId userErrors { field code message } } }`
	gql(t, k.URL, key, del, map[string]any{"id": projectID}).requireCode(t, "FORBIDDEN")
	gqlHeaders(t, k.URL, admin, del, map[string]any{"id": projectID}).decode(t, &deleted)
	if deleted.DeleteProject.DeletedProjectID == nil || *deleted.DeleteProject.DeletedProjectID != projectID {
		t.Fatalf("deleteProject = %+v", deleted.DeleteProject)
	}
	gql(t, k.URL, key, `{ project { name } }`, nil).requireCode(t, "UNAUTHENTICATED")
	gqlHeaders(t, k.URL, admin, del, map[string]any{"id": projectID}).decode(t, &deleted)
	if es := deleted.DeleteProject.UserErrors; len(es) != 1 || es[0].Code != "NOT_FOUND" {
		t.Fatalf("a second deleteProject: %+v, want NOT_FOUND", es)
	}
}

// TestDemoProjectLogShowsIdentitySecret: the first run's Demo log line carries the identity
// secret too, and a userHash made with it verifies.
func TestDemoProjectLogShowsIdentitySecret(t *testing.T) {
	k := startRun(t, map[string]string{"KNOWN_MONGODB_URI": "", "KNOWN_DATA_DIR": filepath.Join(t.TempDir(), "data"),
		"KNOWN_ADDR": freeAddr(t), "KNOWN_LOG_LEVEL": "info"})
	demos := k.Stdout.linesWithMessagePrefix(t, demoMessage)
	if len(demos) != 1 {
		t.Fatalf("%d Demo log lines", len(demos))
	}
	appID, _ := demos[0]["app_id"].(string)
	secret, _ := demos[0]["identity_secret"].(string)
	if secret == "" || !strings.Contains(demos[0]["message"].(string), "identity secret") {
		t.Fatalf("the Demo log line lacks the identity secret: %v", demos[0])
	}
	var id struct {
		Identify struct{ Session struct{ Verified bool } }
	}
	widgetGQL(t, k.URL, "", `mutation($a: ID!, $h: String!) { identify(input: {appId: $a, userId: "demo-1", userHash: $h}) { session { verified } } }`,
		map[string]any{"a": appID, "h": userHashOf(secret, "demo-1")}).decode(t, &id)
	if !id.Identify.Session.Verified {
		t.Fatal("a userHash made with the logged identity secret does not verify")
	}
}
