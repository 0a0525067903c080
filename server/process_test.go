package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
}

// envList makes a process environment from env, with only what a Go program needs besides.
func envList(env map[string]string) []string {
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}
