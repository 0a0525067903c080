package main

import (
	"net/http"
	"strings"
	"testing"
)

func TestDemoPage(t *testing.T) {
	t.Run("OffUnlessKnownDemo", func(t *testing.T) {
		k := startKnown(t)
		createProject(t, k.URL, "Demo")
		if status, _, _ := httpGet(t, k.URL, "/demo"); status != http.StatusNotFound {
			t.Errorf("GET /demo without KNOWN_DEMO = %d, want 404", status)
		}
		if status, h, _ := httpGet(t, k.URL, "/widget.js"); status != http.StatusOK || h.Get("ETag") == "" {
			t.Errorf("GET /widget.js = %d (ETag %q), want 200 with an ETag whether or not the demo is on", status, h.Get("ETag"))
		}
	})
	t.Run("EmbedsTheWidgetForTheDemoProject", func(t *testing.T) {
		env := testEnv(t)
		env["KNOWN_DEMO"] = "true"
		k := startRun(t, env)
		if status, _, body := httpGet(t, k.URL, "/demo"); status != http.StatusNotFound || !strings.Contains(body, "Demo") {
			t.Errorf("GET /demo with no Demo project = %d %q, want 404 saying how to make it", status, body)
		}
		createProject(t, k.URL, "Other")
		app, _ := createProject(t, k.URL, "Demo")
		createProject(t, k.URL, "Demo") // a later namesake is not the demo's
		status, _, body := httpGet(t, k.URL, "/demo")
		if status != http.StatusOK || !strings.Contains(body, `appId: "`+app+`"`) {
			t.Errorf("GET /demo = %d, want the page for the first Demo project %s:\n%.600s", status, app, body)
		}
	})
	t.Run("RefusesABadKnownDemo", func(t *testing.T) {
		env := testEnv(t)
		env["KNOWN_DEMO"] = "yes please"
		if _, err := tryStartRun(t, env); err == nil || !strings.Contains(err.Error(), "KNOWN_DEMO") {
			t.Errorf("KNOWN_DEMO=%q started Known (err %v), want a refusal naming KNOWN_DEMO", env["KNOWN_DEMO"], err)
		}
	})
}
