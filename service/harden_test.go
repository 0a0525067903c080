package service_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/profile"
	"github.com/knownhq/known/service"
	"github.com/rs/zerolog"
)

// logBuffer is a log the service writes and the test reads, safe for both at once.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines decodes the JSON lines written so far at level (all levels for "").
func (b *logBuffer) lines(t *testing.T, level string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	text := b.buf.String()
	b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		if level == "" || m["level"] == level {
			out = append(out, m)
		}
	}
	return out
}

// newLoggedProfileEnv is newProfileEnv with the service's log kept for the test.
func newLoggedProfileEnv(t *testing.T) (*env, *logBuffer) {
	t.Helper()
	e := newEnv(t)
	log := &logBuffer{}
	svc := service.New(e.store, service.Options{Secret: testSecret, AdminToken: adminToken,
		Profiles:      profile.New(profile.Options{AllowPrivate: true, Timeout: 5 * time.Second}),
		ProfileMaxAge: testMaxAge, Log: zerolog.New(log)})
	e.svc = svc
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := svc.Wait(ctx); err != nil {
			t.Errorf("background profile fetches did not end: %v", err)
		}
	})
	return e, log
}

// TestProfileMetadataKeysKnownCannotStoreAreDropped: a user API whose metadata has keys with
// '.', a leading '$' or NUL, at any depth, gives a FOUND profile with the other keys and names,
// stored once (a second read does not ask the API again) and applied to the user; the
// endpoint's lastError names the dropped keys, and one warning is logged (issue 9, point 2).
func TestProfileMetadataKeysKnownCannotStoreAreDropped(t *testing.T) {
	e, log := newLoggedProfileEnv(t)
	api := newUserAPI(t)
	api.set("bad-keys", apiAnswer{status: 200, body: `{"first_name":"Ada","metadata":{"plan":"Pro","a.b":1,"$where":"x",
		"nul\u0000key":2,"trailing ":3,"nested":{"ok":1,"x.y":2,"list":[{"$in":1,"fine":true}]}}}`})
	setEndpoint(t, e, service.EndpointInput{Enabled: true, URL: api.pathURL(), IDPlacement: "PATH"})
	u := newExtUser(t, e, "bad-keys")

	prs, err := e.svc.ExternalProfiles(e.ctx, service.ProfileKeys(u))
	if err != nil {
		t.Fatalf("ExternalProfiles: %v", err)
	}
	pr := prs[0]
	if pr == nil || pr.Status != known.ProfileFound || pr.FirstName == nil || *pr.FirstName != "Ada" {
		t.Fatalf("profile = %+v, want FOUND with first name Ada", pr)
	}
	want := map[string]any{"plan": "Pro", "nested": map[string]any{"ok": 1, "list": []any{map[string]any{"fine": true}}}}
	if !jsonEqual(t, pr.Metadata, want) {
		t.Fatalf("profile metadata = %v, want %v", pr.Metadata, want)
	}
	if again := one(t, e, u); again.Status != known.ProfileFound || !jsonEqual(t, again.Metadata, want) {
		t.Fatalf("the stored profile read again = %+v", again)
	}
	if n := api.fetchesOf("bad-keys"); n != 1 {
		t.Fatalf("the user API was asked %d times, want once: the profile was not stored", n)
	}
	got := readUser(t, e, u.ID)
	if got.FirstName == nil || *got.FirstName != "Ada" || got.Metadata["plan"] != "Pro" || got.Metadata["nested"] == nil {
		t.Fatalf("the user after the profile: first name %v, metadata %v", sp(got.FirstName), got.Metadata)
	}
	for k := range got.Metadata {
		if strings.ContainsAny(k, ".$\x00") {
			t.Fatalf("the user's metadata has key %q", k)
		}
	}

	ep := project(t, e).UserDataEndpoint
	if ep.LastStatus == nil || *ep.LastStatus != known.ProfileFound || ep.LastError == nil {
		t.Fatalf("endpoint: %s; want lastStatus FOUND and a lastError", endpointText(ep))
	}
	for _, k := range []string{`"a.b"`, `"$where"`, `"nul\x00key"`, `"nested"."x.y"`, `"nested"."list"[0]."$in"`, `"trailing "`} {
		if !strings.Contains(*ep.LastError, k) {
			t.Errorf("lastError %q does not name %s", *ep.LastError, k)
		}
	}
	warnings := log.lines(t, "warn")
	if len(warnings) != 1 {
		t.Fatalf("%d warnings logged, want 1: %v", len(warnings), warnings)
	}
	if dropped, _ := warnings[0]["dropped_keys"].([]any); len(dropped) != 6 {
		t.Fatalf("the warning names %v, want the 6 dropped keys", warnings[0]["dropped_keys"])
	}
}

func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return bytes.Equal(ja, jb)
}

// TestBackgroundProfileRefreshErrorsAreLogged: a profile fetch that identify starts in the
// background, which no request waits for, logs its error (here: the database went away while
// the user API answered) as one error line naming the project and the user (issue 9, point 8).
func TestBackgroundProfileRefreshErrorsAreLogged(t *testing.T) {
	e, log := newLoggedProfileEnv(t)
	release := make(chan struct{})
	api := newUserAPIWith(t, func(a *userAPI, w http.ResponseWriter, r *http.Request) {
		a.started <- "bg-1"
		<-release
		a.serve(w, r)
	})
	setEndpoint(t, e, service.EndpointInput{Enabled: true, URL: api.pathURL(), IDPlacement: "PATH"})
	ss := claimed(t, e, "bg-1", service.IdentifyInput{})
	select {
	case <-api.started:
	case <-time.After(10 * time.Second):
		t.Fatal("no background fetch reached the user API")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.store.Close(ctx); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := e.svc.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	errs := log.lines(t, "error")
	if len(errs) != 1 {
		t.Fatalf("%d error lines, want 1: %v", len(errs), errs)
	}
	l := errs[0]
	if l["project"] != string(e.project.Project.ID) || l["user"] != string(*ss.UserID) || l["error"] == nil {
		t.Fatalf("the error line %v does not name the project, the user and the cause", l)
	}
}
