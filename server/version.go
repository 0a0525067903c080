package main

import (
	"fmt"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// buildInfo names the build that is running, as the Go toolchain stamped it into the binary:
// the main module's version (a tag, or a pseudo-version made from the commit) and the VCS
// commit, so that no constant has to be kept in step by hand.
type buildInfo struct {
	Version   string // "devel" when the toolchain stamped none (go run, go test)
	Commit    string // "unknown" when built outside a checkout
	Modified  bool   // the checkout had uncommitted changes
	GoVersion string
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: "devel", Commit: "unknown", GoVersion: "unknown"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.GoVersion = bi.GoVersion
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		b.Version = v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is what `known -version` prints.
func (b buildInfo) String() string {
	commit := b.Commit
	if b.Modified {
		commit += " (modified)"
	}
	return fmt.Sprintf("known %s\ncommit %s\n%s", b.Version, commit, b.GoVersion)
}

// collector is the known_build_info gauge: always 1, its labels name the build.
func (b buildInfo) collector() prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "known_build_info", Help: "Always 1; the labels name the running build's version, commit and Go version.",
	}, []string{"version", "commit", "go_version"})
	g.WithLabelValues(b.Version, b.Commit, b.GoVersion).Set(1)
	return g
}
