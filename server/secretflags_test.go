package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelpAndUnknownFlagsNeverPrintSecrets shows that `known -h` and an unknown flag print no
// secret's value (KNOWN_SECRET, KNOWN_SECRET_PREVIOUS, KNOWN_ADMIN_TOKEN, the password of
// KNOWN_MONGODB_URI), only whether each secret is set, and that secrets have no flags.
func TestHelpAndUnknownFlagsNeverPrintSecrets(t *testing.T) {
	const (
		sec      = "secret-value-that-must-never-print-0123456789"
		previous = "previous-secret-that-must-never-print-0123456"
		admin    = "admin-token-that-must-never-print"
		password = "mongo-password-never-printed"
	)
	env := map[string]string{
		"KNOWN_SECRET":          sec,
		"KNOWN_SECRET_PREVIOUS": previous,
		"KNOWN_ADMIN_TOKEN":     admin,
		"KNOWN_MONGODB_URI":     "mongodb://known:" + password + "@127.0.0.1:1/",
	}
	for _, args := range [][]string{{"-h"}, {"-help"}, {"-no-such-flag"}, {"-secret", "x"}, {"-admin-token", "x"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			stdout, stderr := &syncBuffer{}, &syncBuffer{}
			err := run(context.Background(), append([]string{"known"}, args...), func(n string) string { return env[n] }, stdout, stderr)
			help := args[0] == "-h" || args[0] == "-help"
			if help != (err == nil) {
				t.Fatalf("run %v returned %v; want nil for help (it exits 0), an error otherwise", args, err)
			}
			out := stdout.String() + stderr.String()
			if err != nil {
				out += err.Error()
			}
			for _, v := range []string{sec, previous, admin, password} {
				if strings.Contains(out, v) {
					t.Fatalf("run %v printed a secret value %q:\n%s", args, v, out)
				}
			}
			if help {
				for _, want := range []string{"KNOWN_SECRET (set)", "KNOWN_ADMIN_TOKEN (set)", "KNOWN_SECRET_FILE", "KNOWN_ADMIN_TOKEN_FILE"} {
					if !strings.Contains(out, want) {
						t.Errorf("-h output lacks %q:\n%s", want, out)
					}
				}
			}
		})
	}
	t.Run("UnsetSecretsShowUnset", func(t *testing.T) {
		stderr := &syncBuffer{}
		_ = run(context.Background(), []string{"known", "-h"}, func(string) string { return "" }, &syncBuffer{}, stderr)
		for _, want := range []string{"KNOWN_SECRET (unset)", "KNOWN_ADMIN_TOKEN (unset)"} {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("-h output lacks %q:\n%s", want, stderr)
			}
		}
	})
}

// TestSecretsFromFiles shows that KNOWN_SECRET_FILE and KNOWN_ADMIN_TOKEN_FILE are read (one
// trailing newline dropped), that naming a secret both ways is an error, and that an unreadable
// file is an error naming the variable.
func TestSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	secPath := write("secret", testSecret+"\n")
	adminPath := write("admin", testAdminToken+"\n")
	prevPath := write("previous", "previous-"+testSecret+"\n")

	c, err := parseConfig(nil, func(n string) string {
		return map[string]string{"KNOWN_SECRET_FILE": secPath, "KNOWN_ADMIN_TOKEN_FILE": adminPath,
			"KNOWN_SECRET_PREVIOUS_FILE": prevPath}[n]
	}, &syncBuffer{})
	if err != nil {
		t.Fatalf("parseConfig with secret files: %v", err)
	}
	if c.Secret != testSecret || c.AdminToken != testAdminToken || c.SecretPrevious != "previous-"+testSecret {
		t.Fatalf("config read secret %q, admin token %q, previous %q from the files", c.Secret, c.AdminToken, c.SecretPrevious)
	}

	_, err = parseConfig(nil, func(n string) string {
		return map[string]string{"KNOWN_SECRET_FILE": secPath, "KNOWN_SECRET": testSecret}[n]
	}, &syncBuffer{})
	if err == nil || !strings.Contains(err.Error(), "KNOWN_SECRET_FILE") || strings.Contains(err.Error(), testSecret) {
		t.Fatalf("both KNOWN_SECRET and KNOWN_SECRET_FILE: err = %v, want an error naming both and no value", err)
	}

	missing := filepath.Join(dir, "missing")
	_, err = parseConfig(nil, func(n string) string {
		return map[string]string{"KNOWN_ADMIN_TOKEN_FILE": missing}[n]
	}, &syncBuffer{})
	if err == nil || !strings.Contains(err.Error(), "KNOWN_ADMIN_TOKEN_FILE") {
		t.Fatalf("an unreadable KNOWN_ADMIN_TOKEN_FILE: err = %v, want an error naming it", err)
	}
}
