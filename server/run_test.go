package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/knownhq/known/store/embedded"
	"github.com/rs/zerolog"
)

const demoMessage = "created the Demo project"

// TestRunEmbeddedStoreFromCleanDataDir shows that Known starts on the embedded store from an
// empty data dir, makes and logs a Demo project once, keeps its secret in a 0600 file, and
// keeps its data (and no second Demo project) across a restart.
func TestRunEmbeddedStoreFromCleanDataDir(t *testing.T) {
	dir := t.TempDir()
	env := func() map[string]string {
		return map[string]string{
			"KNOWN_MONGODB_URI": "",
			"KNOWN_DATA_DIR":    dir,
			"KNOWN_ADDR":        freeAddr(t),
			"KNOWN_LOG_LEVEL":   "info",
		}
	}

	first := startRun(t, env())
	for _, path := range []string{"/healthz", "/readyz"} {
		if status, _, body := httpGet(t, first.URL, path); status != http.StatusOK {
			t.Fatalf("GET %s = %d %q, want 200", path, status, body)
		}
	}
	demos := first.Stdout.linesWithMessagePrefix(t, demoMessage)
	if len(demos) != 1 {
		t.Fatalf("first run logged %d %q lines, want 1; stdout:\n%s", len(demos), demoMessage, first.Stdout)
	}
	appID, _ := demos[0]["app_id"].(string)
	key, _ := demos[0]["secret_key"].(string)
	if appID == "" || key == "" {
		t.Fatalf("the Demo log line lacks app_id or secret_key: %v", demos[0])
	}
	checkDemoKey := func(k *knownServer) {
		t.Helper()
		r := gql(t, k.URL, key, `{ project { name appId } }`, nil)
		var data struct{ Project struct{ Name, AppID string } }
		r.decode(t, &data)
		if data.Project.Name != "Demo" || data.Project.AppID != appID {
			t.Fatalf("project = %+v, want Demo with appId %q", data.Project, appID)
		}
	}
	checkDemoKey(first)

	secretPath := filepath.Join(dir, "secret")
	fi, err := os.Stat(secretPath)
	if err != nil {
		t.Fatalf("the generated secret file: %v", err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("%s has mode %o, want 600", secretPath, mode)
	}
	secretBefore, err := os.ReadFile(secretPath)
	if err != nil {
		t.Fatal(err)
	}

	if err := first.Stop(); err != nil {
		t.Fatalf("first run returned %v at shutdown, want nil", err)
	}

	second, err := tryStartRun(t, env())
	if err != nil {
		t.Fatalf("restarting Known on the same data dir: %v\nstdout:\n%s", err, second.Stdout)
	}
	if status, _, body := httpGet(t, second.URL, "/readyz"); status != http.StatusOK {
		t.Fatalf("second run: GET /readyz = %d %q, want 200", status, body)
	}
	if n := len(second.Stdout.linesWithMessagePrefix(t, demoMessage)); n != 0 {
		t.Fatalf("second run on the same data dir logged %d new Demo projects, want 0; stdout:\n%s", n, second.Stdout)
	}
	checkDemoKey(second)
	secretAfter, err := os.ReadFile(secretPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(secretAfter) != string(secretBefore) {
		t.Errorf("the secret file changed across restarts")
	}
	if strings.Contains(second.Stdout.String(), key) {
		t.Errorf("the second run logged the Demo secret key again")
	}
}

// TestRunExternalMongoDB shows that Known runs on a MongoDB URI (a second FerretDB plays the
// external deployment), that KNOWN_SECRET is then required, and that /readyz follows the
// database going away and coming back without restarting Known.
func TestRunExternalMongoDB(t *testing.T) {
	t.Parallel()
	dbDir := t.TempDir()
	dbAddr := freeAddr(t)
	ext, err := embedded.Start(dbDir, dbAddr, zerolog.Nop())
	if err != nil {
		t.Fatalf("starting the external FerretDB: %v", err)
	}
	extRunning := true
	t.Cleanup(func() {
		if extRunning {
			ext.Stop()
		}
	})

	dataDir := t.TempDir()
	env := func() map[string]string {
		return map[string]string{
			"KNOWN_MONGODB_URI": ext.URI(),
			"KNOWN_DATABASE":    "known_external",
			"KNOWN_DATA_DIR":    dataDir,
			"KNOWN_SECRET":      testSecret,
			"KNOWN_ADMIN_TOKEN": testAdminToken,
			"KNOWN_ADDR":        freeAddr(t),
			"KNOWN_LOG_LEVEL":   "info",
		}
	}

	t.Run("MissingSecretIsAnError", func(t *testing.T) {
		e := env()
		delete(e, "KNOWN_SECRET")
		err := runBriefly(t, e)
		if err == nil || !strings.Contains(err.Error(), "KNOWN_SECRET") {
			t.Fatalf("run without KNOWN_SECRET on an external URI = %v, want an error naming KNOWN_SECRET", err)
		}
	})
	t.Run("ShortSecretIsAnError", func(t *testing.T) {
		e := env()
		e["KNOWN_SECRET"] = "only-31-bytes-long-0123456789ab"
		err := runBriefly(t, e)
		if err == nil || !strings.Contains(err.Error(), "KNOWN_SECRET") || !strings.Contains(err.Error(), "32") {
			t.Fatalf("run with a 31-byte KNOWN_SECRET = %v, want an error naming KNOWN_SECRET and 32", err)
		}
	})

	k := startRun(t, env())
	if status, _, body := httpGet(t, k.URL, "/readyz"); status != http.StatusOK {
		t.Fatalf("GET /readyz = %d %q, want 200", status, body)
	}
	if n := len(k.Stdout.linesWithMessagePrefix(t, demoMessage)); n != 0 {
		t.Errorf("Known made a Demo project on an external database")
	}
	if _, err := os.Stat(filepath.Join(dataDir, "secret")); !os.IsNotExist(err) {
		t.Errorf("with KNOWN_SECRET given, a secret file was written to the data dir (stat: %v)", err)
	}
	_, key := createProject(t, k.URL, "External")
	checkKey := func() {
		t.Helper()
		var data struct{ Project struct{ Name string } }
		gql(t, k.URL, key, `{ project { name } }`, nil).decode(t, &data)
		if data.Project.Name != "External" {
			t.Fatalf("project.name = %q, want External", data.Project.Name)
		}
	}
	checkKey()

	ext.Stop()
	extRunning = false
	waitReadyz(t, k.URL, http.StatusServiceUnavailable, 15*time.Second)

	ext, err = embedded.Start(dbDir, dbAddr, zerolog.Nop())
	if err != nil {
		t.Fatalf("restarting the external FerretDB on %s: %v", dbAddr, err)
	}
	extRunning = true
	waitReadyz(t, k.URL, http.StatusOK, 30*time.Second)
	checkKey()
}

// waitReadyz polls /readyz until it answers want, failing the test after timeout.
func waitReadyz(t *testing.T, baseURL string, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last int
	for {
		res, err := httpClient.Get(baseURL + "/readyz")
		if err == nil {
			res.Body.Close()
			last = res.StatusCode
			if last == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz did not answer %d within %v (last status %d, error %v)", want, timeout, last, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runBriefly runs Known with env and returns run's error, failing the test if run is still
// serving after 15 s.
func runBriefly(t *testing.T, env map[string]string) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	go func() { errc <- run(ctx, []string{"known"}, func(n string) string { return env[n] }, stdout, stderr) }()
	select {
	case err := <-errc:
		return err
	case <-time.After(15 * time.Second):
		cancel()
		<-errc
		t.Fatalf("run did not return within 15 s; stdout:\n%s", stdout)
		return nil
	}
}

// TestRunFailsOnUnreachableMongoDB shows that run gives up with an error, rather than serving or
// hanging, when the MongoDB URI names nothing that answers.
func TestRunFailsOnUnreachableMongoDB(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	env["KNOWN_MONGODB_URI"] = "mongodb://" + freeAddr(t) + "/"
	start := time.Now()
	err := runBriefly(t, env)
	if err == nil {
		t.Fatalf("run with an unreachable MongoDB returned nil, want an error")
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("run took %v to fail, want at most 15 s", d)
	}
	if c, err := net.DialTimeout("tcp", env["KNOWN_ADDR"], time.Second); err == nil {
		c.Close()
		t.Errorf("something listens on %s after run failed", env["KNOWN_ADDR"])
	}
}

// TestRunGracefulShutdown shows that cancelling run's context makes it return nil and stop
// listening.
func TestRunGracefulShutdown(t *testing.T) {
	k := startKnown(t)
	if status, _, _ := httpGet(t, k.URL, "/readyz"); status != http.StatusOK {
		t.Fatalf("GET /readyz = %d, want 200", status)
	}
	httpClient.CloseIdleConnections()
	if err := k.Stop(); err != nil {
		t.Fatalf("run returned %v after its context was cancelled, want nil", err)
	}
	if c, err := net.DialTimeout("tcp", k.Addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after run returned", k.Addr)
	}
	if n := len(k.Stdout.linesWithMessagePrefix(t, "shutting down")); n != 1 {
		t.Errorf("logged %d shutdown lines, want 1", n)
	}
}

// TestRunRestartsOnExistingDatabase shows that Known starts again on a database it has used
// before (here on the test binary's MongoDB URI), keeping its projects.
func TestRunRestartsOnExistingDatabase(t *testing.T) {
	env := testEnv(t)
	first := startRun(t, env)
	_, key := createProject(t, first.URL, "Again")
	if err := first.Stop(); err != nil {
		t.Fatalf("run returned %v at shutdown, want nil", err)
	}
	env["KNOWN_ADDR"] = freeAddr(t)
	second, err := tryStartRun(t, env)
	if err != nil {
		t.Fatalf("restarting Known on database %s: %v\nstdout:\n%s", env["KNOWN_DATABASE"], err, second.Stdout)
	}
	var data struct{ Project struct{ Name string } }
	gql(t, second.URL, key, `{ project { name } }`, nil).decode(t, &data)
	if data.Project.Name != "Again" {
		t.Fatalf("after a restart the key reads project %q, want Again", data.Project.Name)
	}
}
