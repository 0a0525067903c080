package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/knownhq/known/store"
	"github.com/rs/zerolog"
)

// TestRetentionConfig: the retention settings default to a week of events, a month of
// finished deliveries and an audit log kept forever; 0 is the default, forever keeps forever,
// a flag wins over its variable, and a bad value stops the start with an error that names the
// variable.
func TestRetentionConfig(t *testing.T) {
	parse := func(args []string, env map[string]string) (store.Retention, error) {
		t.Helper()
		c, err := parseConfig(args, func(n string) string { return env[n] }, &syncBuffer{})
		return c.Retention, err
	}
	const day = 24 * time.Hour
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want store.Retention
	}{
		{nil, nil, store.Retention{Events: 7 * day, Deliveries: 30 * day}},
		{nil, map[string]string{"KNOWN_EVENT_RETENTION": "0", "KNOWN_DELIVERY_RETENTION": "0", "KNOWN_AUDIT_RETENTION": "0"},
			store.Retention{Events: 7 * day, Deliveries: 30 * day}},
		{nil, map[string]string{"KNOWN_EVENT_RETENTION": "48h", "KNOWN_DELIVERY_RETENTION": "forever", "KNOWN_AUDIT_RETENTION": "8760h"},
			store.Retention{Events: 48 * time.Hour, Audit: 365 * day}},
		{nil, map[string]string{"KNOWN_EVENT_RETENTION": "forever"}, store.Retention{Deliveries: 30 * day}},
		{[]string{"-event-retention", "2h", "-audit-retention", "1h"}, map[string]string{"KNOWN_EVENT_RETENTION": "48h"},
			store.Retention{Events: 2 * time.Hour, Deliveries: 30 * day, Audit: time.Hour}},
	} {
		got, err := parse(tc.args, tc.env)
		if err != nil || got != tc.want {
			t.Errorf("args %v env %v: retention %+v, %v; want %+v", tc.args, tc.env, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ name, value string }{
		{"KNOWN_EVENT_RETENTION", "7d"},
		{"KNOWN_EVENT_RETENTION", "-1h"},
		{"KNOWN_DELIVERY_RETENTION", "30m"}, // shorter than an hour
		{"KNOWN_DELIVERY_RETENTION", "never"},
		{"KNOWN_AUDIT_RETENTION", "1y"},
	} {
		_, err := parse(nil, map[string]string{tc.name: tc.value})
		if err == nil || !strings.HasPrefix(err.Error(), tc.name+": ") || !strings.Contains(err.Error(), tc.value) {
			t.Errorf("%s=%s: err = %v, want one that names the variable and the value", tc.name, tc.value, err)
		}
	}
}

// TestRetainOldStopsWithItsContext: the background pass returns once its context is done,
// before its first pass is due.
func TestRetainOldStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		retainOld(ctx, zerolog.Nop(), nil, store.Retention{Events: time.Hour})
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("retainOld still runs after its context ended")
	}
}
