package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// Secrets come from the environment or from a file a variable names, never from flags: a
// command line is visible to every user of the machine (ps), and flag defaults are printed by
// -h. Only whether each one is set is ever printed.
var secretVars = []struct {
	name string // the variable; name+"_FILE" names a file that holds the value
	what string
	set  func(*config, string)
}{
	{"KNOWN_SECRET", "signs widget sessions and encrypts stored secrets; at least 32 bytes",
		func(c *config, v string) { c.Secret = v }},
	{"KNOWN_SECRET_PREVIOUS", "the secret being replaced: values sealed with it are sealed again with KNOWN_SECRET at start",
		func(c *config, v string) { c.SecretPrevious = v }},
	{"KNOWN_ADMIN_TOKEN", "operator token that enables createProject",
		func(c *config, v string) { c.AdminToken = v }},
}

// readSecrets sets c's secrets from each variable or the file its _FILE variable names (one
// trailing newline dropped). Naming both is an error: which one wins would be a guess.
func readSecrets(c *config, getenv func(string) string) error {
	for _, sv := range secretVars {
		v, path := getenv(sv.name), getenv(sv.name+"_FILE")
		if v != "" && path != "" {
			return fmt.Errorf("%s and %s_FILE are both set; set one of them", sv.name, sv.name)
		}
		if path != "" {
			b, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("%s_FILE: %w", sv.name, err)
			}
			v = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
			if v == "" {
				return fmt.Errorf("%s_FILE: %s is empty", sv.name, path)
			}
		}
		sv.set(c, v)
	}
	return nil
}

// usage prints the flags, then the secrets with "set" or "unset" in place of their values.
func usage(fs *flag.FlagSet, getenv func(string) string) {
	w := fs.Output()
	fmt.Fprintf(w, "Usage of known (each flag also reads the environment variable it names):\n")
	fs.PrintDefaults()
	fmt.Fprintf(w, "\nSecrets, from the environment only (VAR) or from a file (VAR_FILE):\n")
	for _, sv := range secretVars {
		state := "unset"
		if getenv(sv.name) != "" || getenv(sv.name+"_FILE") != "" {
			state = "set"
		}
		fmt.Fprintf(w, "  %s (%s), %s_FILE\n    \t%s\n", sv.name, state, sv.name, sv.what)
	}
}

// redactURI hides the password of a connection string.
func redactURI(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") {
			return "(set, not shown)"
		}
		return s
	}
	if u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
