package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/knownhq/known/store"
)

// config is Known's configuration: API.md §6. Each setting is an environment variable, and a
// flag of the same meaning, which wins when both are given.
type config struct {
	Addr                 string
	MongoDBURI           string
	Database             string
	DataDir              string
	AdminToken           string
	Secret               string
	SecretPrevious       string
	AllowPrivateNetworks bool
	ProfileMaxAge        time.Duration
	ProfileConcurrency   int
	WidgetRateLimit      float64
	LogLevel             string
	ShutdownTimeout      time.Duration
	Demo                 bool // serve the demo page at /demo
	FerretDBShared       bool
	PrintVersion         bool           // -version: print the build and exit
	TrustedProxies       trustedProxies // may name the client in X-Forwarded-For
	// Retention is how long published events, finished webhook deliveries and audit entries
	// are kept (zero: forever).
	Retention store.Retention
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var c config
	var maxAge, shutdown, allowPrivate, concurrency, rate, ferretShared string
	var demo, proxies string
	var eventRetention, deliveryRetention, auditRetention string
	fs := flag.NewFlagSet("known", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Addr, "addr", env("KNOWN_ADDR", "127.0.0.1:8080"), "listen address (KNOWN_ADDR)")
	fs.StringVar(&c.MongoDBURI, "mongodb-uri", env("KNOWN_MONGODB_URI", ""), "MongoDB deployment; empty starts the embedded store (KNOWN_MONGODB_URI)")
	fs.StringVar(&c.Database, "database", env("KNOWN_DATABASE", "known"), "database name (KNOWN_DATABASE)")
	fs.StringVar(&c.DataDir, "data-dir", env("KNOWN_DATA_DIR", "./data"), "where the embedded store keeps its files (KNOWN_DATA_DIR)")
	fs.StringVar(&allowPrivate, "allow-private-networks", env("KNOWN_ALLOW_PRIVATE_NETWORKS", "false"), "let the user-data endpoint and webhooks be on a private address (KNOWN_ALLOW_PRIVATE_NETWORKS)")
	fs.StringVar(&maxAge, "profile-max-age", env("KNOWN_PROFILE_MAX_AGE", "5m"), "refetch external profiles older than this (KNOWN_PROFILE_MAX_AGE)")
	fs.StringVar(&concurrency, "profile-concurrency", env("KNOWN_PROFILE_CONCURRENCY", "8"), "external profile fetches at once per project (KNOWN_PROFILE_CONCURRENCY)")
	fs.StringVar(&rate, "widget-rate-limit", env("KNOWN_WIDGET_RATE_LIMIT", "10"), "widget calls per second per app id and client IP; 0 is off (KNOWN_WIDGET_RATE_LIMIT)")
	fs.StringVar(&c.LogLevel, "log-level", env("KNOWN_LOG_LEVEL", "info"), "debug, info, warn or error (KNOWN_LOG_LEVEL)")
	fs.StringVar(&shutdown, "shutdown-timeout", env("KNOWN_SHUTDOWN_TIMEOUT", "20s"), "how long in-flight requests may finish at shutdown (KNOWN_SHUTDOWN_TIMEOUT)")
	fs.StringVar(&demo, "demo", env("KNOWN_DEMO", "false"), "serve a page at /demo that embeds the widget for the Demo project (KNOWN_DEMO)")
	fs.StringVar(&ferretShared, "ferretdb-shared", env("KNOWN_FERRETDB_SHARED", ""), "unsafe: let several instances share a FerretDB database (KNOWN_FERRETDB_SHARED)")
	fs.StringVar(&proxies, "trusted-proxies", env("KNOWN_TRUSTED_PROXIES", ""), "CIDRs of the reverse proxies whose X-Forwarded-For names the client (KNOWN_TRUSTED_PROXIES)")
	fs.StringVar(&eventRetention, "event-retention", env("KNOWN_EVENT_RETENTION", ""), "delete published events older than this that webhook dispatch has passed; default 168h, or forever (KNOWN_EVENT_RETENTION)")
	fs.StringVar(&deliveryRetention, "delivery-retention", env("KNOWN_DELIVERY_RETENTION", ""), "delete webhook deliveries finished longer ago than this; default 720h, or forever (KNOWN_DELIVERY_RETENTION)")
	fs.StringVar(&auditRetention, "audit-retention", env("KNOWN_AUDIT_RETENTION", ""), "delete audit entries older than this; default forever (KNOWN_AUDIT_RETENTION)")
	// A URI's password must not show as the flag's default in -h.
	fs.Lookup("mongodb-uri").DefValue = redactURI(fs.Lookup("mongodb-uri").DefValue)
	fs.Usage = func() { usage(fs, getenv) }
	fs.BoolVar(&c.PrintVersion, "version", false, "print the version and commit, and exit")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.PrintVersion {
		return c, nil // the environment may be meant for another command: -version needs none of it
	}
	var err error
	if err := readSecrets(&c, getenv); err != nil {
		return c, err
	}
	if c.AllowPrivateNetworks, err = strconv.ParseBool(allowPrivate); err != nil {
		return c, fmt.Errorf("KNOWN_ALLOW_PRIVATE_NETWORKS: %q is not true or false", allowPrivate)
	}
	if c.Demo, err = strconv.ParseBool(demo); err != nil {
		return c, fmt.Errorf("KNOWN_DEMO: %q is not true or false", demo)
	}
	if c.ProfileMaxAge, err = time.ParseDuration(maxAge); err != nil || c.ProfileMaxAge < 0 {
		return c, fmt.Errorf("KNOWN_PROFILE_MAX_AGE: %q is not a duration like 5m", maxAge)
	}
	if c.ShutdownTimeout, err = time.ParseDuration(shutdown); err != nil || c.ShutdownTimeout <= 0 {
		return c, fmt.Errorf("KNOWN_SHUTDOWN_TIMEOUT: %q is not a duration like 20s", shutdown)
	}
	if c.ProfileConcurrency, err = strconv.Atoi(concurrency); err != nil || c.ProfileConcurrency < 1 {
		return c, fmt.Errorf("KNOWN_PROFILE_CONCURRENCY: %q is not a whole number of at least 1", concurrency)
	}
	if c.WidgetRateLimit, err = strconv.ParseFloat(rate, 64); err != nil || c.WidgetRateLimit < 0 {
		return c, fmt.Errorf("KNOWN_WIDGET_RATE_LIMIT: %q is not a number of at least 0", rate)
	}
	if c.TrustedProxies, err = parseTrustedProxies(proxies); err != nil {
		return c, err
	}
	for _, r := range []struct {
		name, value string
		def         time.Duration
		to          *time.Duration
	}{
		{"KNOWN_EVENT_RETENTION", eventRetention, defaultEventRetention, &c.Retention.Events},
		{"KNOWN_DELIVERY_RETENTION", deliveryRetention, defaultDeliveryRetention, &c.Retention.Deliveries},
		{"KNOWN_AUDIT_RETENTION", auditRetention, 0, &c.Retention.Audit},
	} {
		if *r.to, err = parseRetention(r.name, r.value, r.def); err != nil {
			return c, err
		}
	}
	switch ferretShared {
	case "":
	case "unsafe":
		c.FerretDBShared = true
	default:
		return c, fmt.Errorf("KNOWN_FERRETDB_SHARED: %q is not unsafe (or empty)", ferretShared)
	}
	if c.MongoDBURI != "" && c.Secret == "" {
		return c, fmt.Errorf("KNOWN_SECRET is required with KNOWN_MONGODB_URI, so that every instance signs and encrypts alike")
	}
	return c, nil
}

// The retention ages when their settings are empty or 0: a week of events (no webhook worker
// or subscription reader is ever that far behind), a month of finished deliveries (for an
// operator looking into one). The audit log is kept forever unless KNOWN_AUDIT_RETENTION says
// otherwise.
const (
	defaultEventRetention    = 7 * 24 * time.Hour
	defaultDeliveryRetention = 30 * 24 * time.Hour
	// minRetention is the shortest age: a shorter one is more likely a typo than a wish.
	minRetention = time.Hour
)

// parseRetention reads the retention setting name: empty or 0 is def, "forever" keeps
// forever (0 for store.Retention), anything else is a duration of at least minRetention.
func parseRetention(name, v string, def time.Duration) (time.Duration, error) {
	switch v {
	case "", "0":
		return def, nil
	case "forever":
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < minRetention {
		return 0, fmt.Errorf("%s: %q is not a duration of at least 1h like 168h, or forever (empty or 0: the default)", name, v)
	}
	return d, nil
}
