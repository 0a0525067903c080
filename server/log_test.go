package main

import (
	"strings"
	"testing"
)

// TestRequestLog: each GraphQL request writes exactly one log line with its request id,
// operation, project, status and duration, and no log line ever holds a secret: the admin
// token, a secret key, an identity secret, a widget session token, a user-API header value or
// a message body.
func TestRequestLog(t *testing.T) {
	env := testEnv(t)
	env["KNOWN_WIDGET_RATE_LIMIT"] = "0"
	k := startRun(t, env)
	appID, key, identitySecret := createProjectWithIdentitySecret(t, k.URL, "Logs")
	const headerValue = "Bearer header-secret-3f9a"
	const body = "my card number is 4111-1111-1111-1111"

	requests := 1 // createProject
	gql(t, k.URL, key, `query DashboardProject { project { name } }`, nil).decode(t, &struct{}{})
	requests++
	gql(t, k.URL, key, `mutation SetEndpoint($v: String!) { updateProject(input: {userDataEndpoint: {enabled: false,
		url: "https://api.example.com/users/{id}", headers: [{name: "Authorization", value: $v}]}}) { userErrors { code } } }`,
		map[string]any{"v": headerValue}).decode(t, &struct{}{})
	requests++
	var rotated struct {
		RotateIdentitySecret struct{ IdentitySecret string }
	}
	gql(t, k.URL, key, `mutation { rotateIdentitySecret { identitySecret } }`, nil).decode(t, &rotated)
	requests++
	var id struct {
		Identify struct{ Session struct{ Token string } }
	}
	widgetGQL(t, k.URL, "", `mutation Identify($a: ID!) { identify(input: {appId: $a, userId: "log-1"}) { session { token } } }`,
		map[string]any{"a": appID}).decode(t, &id)
	requests++
	token := id.Identify.Session.Token
	widgetGQL(t, k.URL, token, `mutation Start($b: String!) { startConversation(input: {body: $b}) { conversation { id } } }`,
		map[string]any{"b": body}).decode(t, &struct{}{})
	requests++

	secrets := map[string]string{
		"admin token": testAdminToken, "secret key": key, "identity secret": identitySecret,
		"rotated identity secret": rotated.RotateIdentitySecret.IdentitySecret, "widget token": token,
		"header value": headerValue, "message body": body,
	}
	for _, out := range []*syncBuffer{k.Stdout, k.Stderr} {
		text := out.String()
		for what, s := range secrets {
			if s == "" {
				t.Fatalf("the test has no %s to look for", what)
			}
			if strings.Contains(text, s) {
				t.Errorf("the log holds the %s", what)
			}
		}
	}

	var lines []map[string]any
	for _, l := range k.Stdout.logLines(t) {
		if l["message"] == "request" && l["path"] == "/graphql" {
			lines = append(lines, l)
		}
	}
	if len(lines) != requests {
		t.Fatalf("%d request log lines for %d GraphQL requests", len(lines), requests)
	}
	byOp := map[string]map[string]any{}
	for _, l := range lines {
		for _, f := range []string{"request_id", "status", "duration", "project", "operation"} {
			if _, ok := l[f]; !ok {
				t.Errorf("a request line has no %s: %v", f, l)
			}
		}
		byOp[l["operation"].(string)] = l
	}
	for op, project := range map[string]string{"DashboardProject": appID, "SetEndpoint": appID, "Identify": appID, "Start": appID} {
		l := byOp[op]
		if l == nil {
			t.Errorf("no request line for operation %s", op)
			continue
		}
		if l["project"] != project || l["status"] != float64(200) {
			t.Errorf("%s: project %v, status %v; want %s and 200", op, l["project"], l["status"], project)
		}
	}
}
