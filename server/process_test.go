package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/knownhq/known/store/embedded"
	"github.com/rs/zerolog"
)

// TestProcess runs Known as real processes of a binary built once for these subtests.
func TestProcess(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "known")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	t.Run("SecondProcessOnOneDataDirExitsNamingIt", func(t *testing.T) {
		dir := t.TempDir()
		env := map[string]string{"KNOWN_DATA_DIR": dir, "KNOWN_ADDR": freeAddr(t), "KNOWN_LOG_LEVEL": "info"}
		startRun(t, env)

		// In the same process: a second run on the directory fails at once.
		env2 := map[string]string{"KNOWN_DATA_DIR": dir, "KNOWN_ADDR": freeAddr(t), "KNOWN_LOG_LEVEL": "info"}
		if err := runBriefly(t, env2); err == nil || !strings.Contains(err.Error(), dir) {
			t.Fatalf("a second run on data dir %s returned %v, want an error naming the directory", dir, err)
		}

		// As another process: it exits non-zero within seconds, naming the directory.
		cmd := exec.Command(bin)
		cmd.Env = envList(env2)
		var stdout, stderr syncBuffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err == nil {
				t.Fatalf("a second process on data dir %s exited 0, want non-zero", dir)
			}
			if !strings.Contains(stderr.String(), dir) {
				t.Fatalf("the second process's stderr does not name %s:\n%s", dir, stderr.String())
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the second process took %v to exit, want a few seconds at most", d)
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("a second process on data dir %s still runs after 15 s; stdout:\n%s", dir, stdout.String())
		}
	})
	t.Run("SIGTERMUnderLoadLosesNoAcknowledgedWrite", func(t *testing.T) {
		t.Run("EmbeddedStore", func(t *testing.T) {
			env := map[string]string{"KNOWN_DATA_DIR": t.TempDir(), "KNOWN_ADMIN_TOKEN": testAdminToken}
			sigtermUnderLoad(t, bin, env)
		})
		t.Run("ExternalStore", func(t *testing.T) {
			ext, err := embedded.Start(t.TempDir(), freeAddr(t), zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(ext.Stop)
			env := map[string]string{"KNOWN_MONGODB_URI": ext.URI(), "KNOWN_DATABASE": "known_sigterm",
				"KNOWN_SECRET": testSecret, "KNOWN_ADMIN_TOKEN": testAdminToken}
			sigtermUnderLoad(t, bin, env)
		})
	})

	t.Run("ShutdownTimeoutCutsOffAHungRequest", func(t *testing.T) {
		env := map[string]string{"KNOWN_DATA_DIR": t.TempDir(), "KNOWN_ADMIN_TOKEN": testAdminToken,
			"KNOWN_SHUTDOWN_TIMEOUT": "2s"}
		p := startProcess(t, bin, env)
		// A request whose body never finishes keeps its connection active: a drain would
		// wait for it until the server's 30 s read timeout.
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"query\":")
		time.Sleep(100 * time.Millisecond)
		signalled := time.Now()
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		err = p.wait(t, 10*time.Second)
		if d := time.Since(signalled); d > 2*time.Second+500*time.Millisecond {
			t.Errorf("the process exited %v after SIGTERM, want within KNOWN_SHUTDOWN_TIMEOUT (2 s)", d)
		}
		if err != nil {
			t.Errorf("the process exited with %v, want 0; stderr:\n%s", err, p.stderr.String())
		}
		last := p.lastLogLine(t)
		if msg, _ := last["message"].(string); !strings.HasPrefix(msg, "Known stopped: requests still running") || last["drained"] != false {
			t.Fatalf("the last log line is %v, want one saying Known stopped and cut requests off", last)
		}
	})
}

// sigtermUnderLoad starts Known as a process with env, has 20 clients write through it, sends
// SIGTERM under that load, and checks that the process exits 0 within KNOWN_SHUTDOWN_TIMEOUT
// with a last log line saying it stopped, and that a Known started again on the same store
// finds every acknowledged write.
func sigtermUnderLoad(t *testing.T, bin string, env map[string]string) {
	const timeout = 10 * time.Second
	env["KNOWN_SHUTDOWN_TIMEOUT"] = timeout.String()
	p := startProcess(t, bin, env)
	_, key := createProject(t, p.url, "Sigterm")
	l := startLoad(t, p.url, key, 20)
	waitFor(t, "100 acknowledged writes", 30*time.Second, func() bool { return len(acked(l.Results())) >= 100 })

	signalled := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := p.wait(t, timeout+5*time.Second)
	exited := time.Since(signalled)
	l.Stop()
	if err != nil {
		t.Fatalf("the process exited with %v after SIGTERM, want 0; stderr:\n%s", err, p.stderr.String())
	}
	if exited > timeout {
		t.Errorf("the process exited %v after SIGTERM, want within KNOWN_SHUTDOWN_TIMEOUT (%v)", exited, timeout)
	}
	last := p.lastLogLine(t)
	if msg, _ := last["message"].(string); !strings.HasPrefix(msg, "Known stopped") {
		t.Fatalf("the last log line is %v, want one saying Known stopped", last)
	}
	results := l.Results()
	ids := acked(results)
	t.Logf("%d requests, %d acknowledged; exited %v after SIGTERM; last line %v", len(results), len(ids), exited, last["message"])

	again := map[string]string{"KNOWN_ADDR": freeAddr(t), "KNOWN_LOG_LEVEL": "warn"}
	for k, v := range env {
		again[k] = v
	}
	again["KNOWN_ADDR"] = freeAddr(t)
	k := startRun(t, again)
	requireAllPresent(t, k.URL, key, ids)
}

// process is Known running as a child process.
type process struct {
	cmd            *exec.Cmd
	addr, url      string
	stdout, stderr *syncBuffer
	done           chan error
}

// startProcess runs bin with env (plus a free KNOWN_ADDR) and waits until /healthz answers.
// The process is killed when the test ends, if it still runs.
func startProcess(t *testing.T, bin string, env map[string]string) *process {
	t.Helper()
	p := &process{addr: freeAddr(t), stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan error, 1)}
	p.url = "http://" + p.addr
	e := map[string]string{"KNOWN_ADDR": p.addr, "KNOWN_LOG_LEVEL": "info"}
	for k, v := range env {
		e[k] = v
	}
	p.cmd = exec.Command(bin)
	p.cmd.Env = envList(e)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		p.done <- nil
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("the process exited before serving: %v\nstderr:\n%s", err, p.stderr.String())
		default:
		}
		if res, err := httpClient.Get(p.url + "/healthz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the process did not serve /healthz within 60 s; stderr:\n%s", p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wait returns the process's exit error, failing the test if it runs for longer than timeout.
func (p *process) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(timeout):
		t.Fatalf("the process still runs %v after SIGTERM; stdout:\n%s", timeout, p.stdout.String())
		return nil
	}
}

// lastLogLine decodes the process's last line of output.
func (p *process) lastLogLine(t *testing.T) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(p.stdout.String()), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatalf("the last line of output is not a JSON log line: %q", lines[len(lines)-1])
	}
	return m
}

// envList makes a process environment from env, with only what a Go program needs besides.
func envList(env map[string]string) []string {
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}
