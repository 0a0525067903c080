package main

import (
	"strings"
	"testing"
	"time"
)

// TestSecondInstanceOnOneFerretDBRefusesToStart shows that a second Known on the database a
// first one serves on an external FerretDB (the test binary's) refuses to start, saying that
// several instances need MongoDB; that KNOWN_FERRETDB_SHARED=unsafe lets it start; and that
// once the first stops, a new instance starts at once.
func TestSecondInstanceOnOneFerretDBRefusesToStart(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	first := startRun(t, env)

	second := map[string]string{}
	for k, v := range env {
		second[k] = v
	}
	second["KNOWN_ADDR"] = freeAddr(t)
	start := time.Now()
	err := runBriefly(t, second)
	if err == nil || !strings.Contains(err.Error(), "MongoDB") || !strings.Contains(err.Error(), "KNOWN_FERRETDB_SHARED") {
		t.Fatalf("a second instance on one FerretDB database returned %v, want a refusal naming MongoDB and KNOWN_FERRETDB_SHARED", err)
	}
	t.Logf("the second instance refused after %v: %v", time.Since(start), err)

	second["KNOWN_FERRETDB_SHARED"] = "unsafe"
	shared := startRun(t, second)
	if n := len(shared.Stdout.linesWithMessagePrefix(t, "KNOWN_FERRETDB_SHARED=unsafe")); n != 1 {
		t.Errorf("the unsafe instance logged %d warnings, want 1", n)
	}
	if err := shared.Stop(); err != nil {
		t.Fatal(err)
	}

	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	delete(second, "KNOWN_FERRETDB_SHARED")
	second["KNOWN_ADDR"] = freeAddr(t)
	start = time.Now()
	startRun(t, second)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("starting after the first instance stopped took %v, want no wait for its lease", d)
	}
}
