package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/knownhq/known/secret"
	"github.com/knownhq/known/store"
	"github.com/rs/zerolog"
)

// TestStartRefusesAnotherSecretAndRotatesFromThePrevious shows that Known refuses to start with
// a KNOWN_SECRET other than the one its database was set up with (naming KNOWN_SECRET), and that
// with KNOWN_SECRET_PREVIOUS it seals the stored secrets again, so that userHash verification
// and the user-API headers keep working, and the new secret alone starts afterwards.
func TestStartRefusesAnotherSecretAndRotatesFromThePrevious(t *testing.T) {
	const newSecret = "a-new-secret-that-is-at-least-32-bytes-long!"
	env := widgetEnv(t)
	first := startRun(t, env)
	h := http.Header{}
	h.Set("Authorization", "Bearer "+testAdminToken)
	var created struct {
		CreateProject struct {
			Project        struct{ AppID string }
			SecretKey      string
			IdentitySecret string
		}
	}
	gqlHeaders(t, first.URL, h, `mutation { createProject(input: {name: "Rotated"}) { project { appId } secretKey identitySecret } }`, nil).decode(t, &created)
	cp := created.CreateProject
	var updated struct {
		UpdateProject struct{ UserErrors []userError }
	}
	gql(t, first.URL, cp.SecretKey, `mutation { updateProject(input: {userDataEndpoint: {enabled: false,
		url: "https://api.example.com/users/{id}", headers: [{name: "Authorization", value: "Bearer customer-token"}]}}) { userErrors { field code message } } }`,
		nil).decode(t, &updated)
	if len(updated.UpdateProject.UserErrors) > 0 {
		t.Fatalf("updateProject: %+v", updated.UpdateProject.UserErrors)
	}
	verifiedIdentify := func(k *knownServer) {
		t.Helper()
		p := tryIdentify(t, k.URL, "", map[string]any{"appId": cp.Project.AppID, "userId": "42",
			"userHash": userHashOf(cp.IdentitySecret, "42")})
		if s := requireSession(t, "identify with a userHash", p); !s.Verified {
			t.Fatalf("identify with a good userHash gave an unverified session")
		}
	}
	verifiedIdentify(first)
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}

	env["KNOWN_ADDR"] = freeAddr(t)
	env["KNOWN_SECRET"] = newSecret
	start := time.Now()
	err := runBriefly(t, env)
	if err == nil || !strings.Contains(err.Error(), "KNOWN_SECRET") {
		t.Fatalf("run with another KNOWN_SECRET = %v, want an error naming KNOWN_SECRET", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the refusal took %v", d)
	}

	env["KNOWN_SECRET_PREVIOUS"] = testSecret
	rotated := startRun(t, env)
	if n := len(rotated.Stdout.linesWithMessagePrefix(t, "sealed the stored secrets again")); n != 1 {
		t.Errorf("the rotating start logged %d rotation lines, want 1; stdout:\n%s", n, rotated.Stdout)
	}
	verifiedIdentify(rotated)
	if err := rotated.Stop(); err != nil {
		t.Fatal(err)
	}

	delete(env, "KNOWN_SECRET_PREVIOUS")
	env["KNOWN_ADDR"] = freeAddr(t)
	again := startRun(t, env)
	verifiedIdentify(again)

	// The header value opens with the new secret (it is never returned through the API).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Config{URI: env["KNOWN_MONGODB_URI"], Database: env["KNOWN_DATABASE"], Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	values, err := st.SealedValues(ctx)
	if err != nil {
		t.Fatal(err)
	}
	headers := 0
	for _, v := range values {
		if v.Kind != store.SealedEndpointHeader {
			continue
		}
		headers++
		plain, err := secret.NewBox([]byte(newSecret)).Open(v.Value, string(v.ProjectID)+"|header|"+v.HeaderName)
		if err != nil || string(plain) != "Bearer customer-token" {
			t.Fatalf("the header value after rotation opens as %q, %v", plain, err)
		}
	}
	if headers != 1 {
		t.Fatalf("found %d sealed headers, want 1", headers)
	}
}
