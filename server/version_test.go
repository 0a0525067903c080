package main

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// TestVersionFlagPrintsBuildAndExits shows that `known -version` prints the version, commit
// and Go version from the binary's build info and returns without starting anything, even when
// the environment would not let Known start.
func TestVersionFlagPrintsBuildAndExits(t *testing.T) {
	var stdout, stderr syncBuffer
	env := map[string]string{"KNOWN_MONGODB_URI": "mongodb://127.0.0.1:1/"} // no KNOWN_SECRET: run would refuse
	err := run(context.Background(), []string{"known", "-version"}, func(n string) string { return env[n] }, &stdout, &stderr)
	if err != nil {
		t.Fatalf("known -version returned %v, want nil", err)
	}
	b := readBuildInfo()
	want := fmt.Sprintf("known %s\ncommit %s", b.Version, b.Commit)
	if got := stdout.String(); !strings.HasPrefix(got, want) || !strings.Contains(got, runtime.Version()) {
		t.Fatalf("known -version printed %q, want %q and %s", got, want, runtime.Version())
	}
}

// TestHelpFlagSucceeds shows that -h prints the usage of every setting and is not an error
// (main exits 0), while an unknown flag is one.
func TestHelpFlagSucceeds(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		var stdout, stderr syncBuffer
		if err := run(context.Background(), []string{"known", arg}, func(string) string { return "" }, &stdout, &stderr); err != nil {
			t.Errorf("known %s returned %v, want nil", arg, err)
		}
		for _, want := range []string{"-addr", "KNOWN_MONGODB_URI", "-version"} {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("known %s printed %q, which lacks %q", arg, stderr.String(), want)
			}
		}
	}
	var stdout, stderr syncBuffer
	if err := run(context.Background(), []string{"known", "-no-such-flag"}, func(string) string { return "" }, &stdout, &stderr); err == nil {
		t.Errorf("known -no-such-flag returned nil, want an error")
	}
}

// TestBuildInfoMetric shows the known_build_info gauge on /metrics: 1, labelled with the
// running build's version, commit and Go version.
func TestBuildInfoMetric(t *testing.T) {
	k := startKnown(t)
	b := readBuildInfo()
	name := fmt.Sprintf(`known_build_info{commit=%q,go_version=%q,version=%q}`, b.Commit, runtime.Version(), b.Version)
	m := scrapeMetrics(t, k.URL)
	if v, ok := m[name]; !ok || v != 1 {
		var have []string
		for s := range m {
			if strings.HasPrefix(s, "known_build_info") {
				have = append(have, s)
			}
		}
		t.Fatalf("%s = %v (present %v), want 1; have %q", name, v, ok, have)
	}
}
