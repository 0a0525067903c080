package known_test

import (
	"bytes"
	"debug/elf"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, …
	args string
}

// parseDockerfile reads the instructions of a Dockerfile: enough of the format for Known's own
// file (comments, line continuations), which TestDockerfileBuildsAStaticNonRootImage keeps plain.
func parseDockerfile(t *testing.T, path string) [][]instruction {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var stages [][]instruction
	var line string
	for _, l := range strings.Split(string(raw), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "#") || l == "" && line == "" {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			line += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		line += l
		cmd, args, _ := strings.Cut(line, " ")
		line = ""
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			t.Fatalf("%s: %s before the first FROM", path, in.cmd)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	return stages
}

// TestDockerfileBuildsAStaticNonRootImage reads the Dockerfile, checks the image it describes
// (multi-stage; the final stage runs the built binary as a non-root user, listens on all
// addresses of the container, keeps the embedded store in the /data volume) and runs the build
// stage's own `go build` command, into a temporary directory, to show that it builds a static
// binary that names its commit and answers -version and -h. (docker cannot run here.)
func TestDockerfileBuildsAStaticNonRootImage(t *testing.T) {
	stages := parseDockerfile(t, "Dockerfile")
	if len(stages) < 2 {
		t.Fatalf("the Dockerfile has %d stages, want a build stage and a runtime stage", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	buildName := ""
	if f := strings.Fields(build[0].args); len(f) == 3 && strings.EqualFold(f[1], "AS") {
		buildName = f[2]
	} else {
		t.Fatalf("the first stage is %q, want FROM <golang image> AS <name>", build[0].args)
	}

	// The build command, exactly as the Dockerfile runs it.
	var command string
	for _, in := range build {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			command = in.args
		}
	}
	if strings.ContainsAny(command, "\"'$&|;<>`\\") {
		t.Fatalf("the go build command %q is not a plain command line that this test can run as written", command)
	}
	words := strings.Fields(command)
	var env []string
	for len(words) > 0 && strings.Contains(words[0], "=") {
		env, words = append(env, words[0]), words[1:]
	}
	if !slices.Contains(env, "CGO_ENABLED=0") {
		t.Errorf("the go build command %q does not set CGO_ENABLED=0: the binary would not be static", command)
	}
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		t.Fatalf("the Dockerfile's build command is %q, want [ENV=…] go build …", command)
	}
	o := slices.Index(words, "-o")
	if o < 0 || o+1 >= len(words) {
		t.Fatalf("the go build command %q names no -o output", command)
	}
	output := words[o+1]

	// The runtime stage.
	var copied, user, entrypoint string
	var envs, volumes []string
	for _, in := range final {
		f := strings.Fields(in.args)
		switch in.cmd {
		case "COPY":
			if len(f) >= 3 && f[0] == "--from="+buildName && f[len(f)-2] == output {
				copied = f[len(f)-1]
			}
		case "USER":
			user = in.args
		case "ENV":
			envs = append(envs, f...)
		case "VOLUME":
			volumes = append(volumes, f...)
		case "ENTRYPOINT":
			entrypoint = in.args
		}
	}
	if copied == "" {
		t.Errorf("the final stage does not COPY --from=%s %s", buildName, output)
	}
	if entrypoint != `["`+copied+`"]` {
		t.Errorf("ENTRYPOINT is %s, want [%q]", entrypoint, copied)
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "0" || u == "root" {
		t.Errorf("the final stage runs as user %q, want a non-root user", user)
	}
	for _, want := range []string{"KNOWN_ADDR=0.0.0.0:8080", "KNOWN_DATA_DIR=/data"} {
		if !slices.Contains(envs, want) {
			t.Errorf("the final stage's ENV %q lacks %s", envs, want)
		}
	}
	if !slices.Contains(volumes, "/data") {
		t.Errorf("the final stage's VOLUME %q lacks /data", volumes)
	}

	// go test caches a passing result until a file the test itself opened changes: stat every
	// file the build reads, so that a change anywhere in the module runs the build again.
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (p == ".git" || p == "data" || p == "node_modules") {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			_, err = os.Stat(p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	// Build it: the same words, with the output in a temporary directory.
	bin := filepath.Join(t.TempDir(), "known")
	words[o+1] = bin
	cmd := exec.Command(words[0], words[1:]...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(append(env, words...), " "), err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary is dynamically linked (it has a %v program header)", p.Type)
		}
	}

	version, err := exec.Command(bin, "-version").Output()
	if err != nil {
		t.Fatalf("known -version: %v", err)
	}
	if !strings.HasPrefix(string(version), "known ") || !strings.Contains(string(version), "\ncommit ") {
		t.Errorf("known -version printed %q", version)
	}
	// In a clone (CI, and the image's build context) the toolchain stamps the commit; a git
	// worktree's .git is a file, which the toolchain does not read.
	if fi, err := os.Stat(".git"); err == nil && fi.IsDir() {
		head, err := exec.Command("git", "rev-parse", "HEAD").Output()
		if err != nil {
			t.Fatalf("git rev-parse HEAD: %v", err)
		}
		if want := "\ncommit " + string(bytes.TrimSpace(head)); !strings.Contains(string(version), want) {
			t.Errorf("known -version printed %q, want it to name the commit (%q)", version, want)
		}
		if strings.HasPrefix(string(version), "known devel") {
			t.Errorf("known -version printed %q, want a version stamped from the commit", version)
		}
	} else {
		t.Logf("not a clone (.git is not a directory): the commit stamp is checked in clones only; -version printed %q", version)
	}
	if out, err := exec.Command(bin, "-h").CombinedOutput(); err != nil || !strings.Contains(string(out), "-addr") {
		t.Errorf("known -h: %v, output %q; want exit status 0 and the usage", err, out)
	}
	if err := exec.Command(bin, "-no-such-flag").Run(); err == nil {
		t.Errorf("known -no-such-flag exited 0, want an error")
	}
}

// TestComposeRunsKnownOnAMongoDBReplicaSet reads compose.yaml: Known is built from the
// Dockerfile and talks to a MongoDB started as a replica set (whose health check initiates it),
// after it is healthy, with KNOWN_SECRET and KNOWN_ADMIN_TOKEN required from the environment.
func TestComposeRunsKnownOnAMongoDBReplicaSet(t *testing.T) {
	raw, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type service struct {
		Image       string
		Build       any
		Command     []string
		Environment map[string]string
		Ports       []string
		DependsOn   map[string]struct{ Condition string } `yaml:"depends_on"`
		Healthcheck struct{ Test []string }
	}
	var c struct{ Services map[string]service }
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	k, ok := c.Services["known"]
	if !ok || k.Build != "." {
		t.Fatalf("compose.yaml has no service known built from the Dockerfile: %+v", c.Services)
	}
	uri := k.Environment["KNOWN_MONGODB_URI"]
	dbName, _, _ := strings.Cut(strings.TrimPrefix(uri, "mongodb://"), ":")
	db, ok := c.Services[dbName]
	if !ok || !strings.HasPrefix(db.Image, "mongo:") {
		t.Fatalf("KNOWN_MONGODB_URI %q names no mongo service", uri)
	}
	rs := slices.Index(db.Command, "--replSet")
	if rs < 0 || rs+1 >= len(db.Command) || !strings.Contains(uri, "replicaSet="+db.Command[rs+1]) {
		t.Errorf("MongoDB runs %q and Known connects to %q: want the same replica set", db.Command, uri)
	}
	if hc := strings.Join(db.Healthcheck.Test, " "); !strings.Contains(hc, "rs.initiate") || !strings.Contains(hc, "isWritablePrimary") {
		t.Errorf("the MongoDB health check %q does not initiate the replica set and wait for a primary", hc)
	}
	if k.DependsOn[dbName].Condition != "service_healthy" {
		t.Errorf("known does not wait for %s to be healthy: %+v", dbName, k.DependsOn)
	}
	for _, name := range []string{"KNOWN_SECRET", "KNOWN_ADMIN_TOKEN"} {
		if v := k.Environment[name]; !strings.HasPrefix(v, "${"+name+":?") {
			t.Errorf("%s is %q, want it required from the environment (${%s:?…})", name, v, name)
		}
	}
	for _, p := range k.Ports {
		if !strings.HasPrefix(p, "127.0.0.1:") {
			t.Errorf("known publishes %q on every host address; want 127.0.0.1 behind a TLS proxy", p)
		}
	}
}
