package widget

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestScriptStaysUnderItsGzipBudget(t *testing.T) {
	if GzipSize() > MaxGzipSize {
		t.Fatalf("widget.js is %d bytes gzipped, over the budget of %d (API.md §8)", GzipSize(), MaxGzipSize)
	}
	t.Logf("widget.js: %d bytes, %d gzipped (budget %d)", len(script), GzipSize(), MaxGzipSize)
}

func get(t *testing.T, h http.Handler, header map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/widget.js", nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func TestScript(t *testing.T) {
	h := Script()

	t.Run("GzipWhenAccepted", func(t *testing.T) {
		res := get(t, h, map[string]string{"Accept-Encoding": "br, gzip;q=0.8"})
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("status %d, Content-Encoding %q, want 200 gzip", res.StatusCode, res.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(res.Body)
		if err != nil {
			t.Fatalf("body is not gzip: %v", err)
		}
		body, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(body, script) {
			t.Fatalf("gunzipped body is not widget.js (err %v)", err)
		}
		if !strings.Contains(res.Header.Get("Vary"), "Accept-Encoding") {
			t.Errorf("Vary = %q, want Accept-Encoding", res.Header.Get("Vary"))
		}
	})

	t.Run("PlainOtherwise", func(t *testing.T) {
		for _, ae := range []string{"", "br", "gzip;q=0", "gzip;q=0.000, *", "identity", "*;q=0"} {
			res := get(t, h, map[string]string{"Accept-Encoding": ae})
			body, _ := io.ReadAll(res.Body)
			if res.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, script) {
				t.Errorf("Accept-Encoding %q: Content-Encoding %q, want the plain script", ae, res.Header.Get("Content-Encoding"))
			}
		}
		if res := get(t, h, map[string]string{"Accept-Encoding": "deflate, *"}); res.Header.Get("Content-Encoding") != "gzip" {
			t.Errorf(`Accept-Encoding "deflate, *" did not get gzip`)
		}
	})

	t.Run("CacheHeaders", func(t *testing.T) {
		res := get(t, h, nil)
		want := map[string]string{
			"Content-Type":           "text/javascript; charset=utf-8",
			"Cache-Control":          CacheControl,
			"X-Content-Type-Options": "nosniff",
		}
		for k, v := range want {
			if got := res.Header.Get(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
		if etag := res.Header.Get("ETag"); !strings.HasPrefix(etag, `"`) || len(etag) < 10 {
			t.Errorf("ETag = %q, want a strong ETag", etag)
		}
	})

	t.Run("IfNoneMatchAnswers304", func(t *testing.T) {
		for _, ae := range []string{"", "gzip"} {
			etag := get(t, h, map[string]string{"Accept-Encoding": ae}).Header.Get("ETag")
			res := get(t, h, map[string]string{"Accept-Encoding": ae, "If-None-Match": etag})
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != http.StatusNotModified || len(body) != 0 {
				t.Errorf("Accept-Encoding %q, If-None-Match %s: status %d with %d bytes, want 304 and no body", ae, etag, res.StatusCode, len(body))
			}
		}
		gz := get(t, h, map[string]string{"Accept-Encoding": "gzip"}).Header.Get("ETag")
		if plain := get(t, h, nil).Header.Get("ETag"); plain == gz {
			t.Errorf("the gzip and plain representations share the ETag %s", gz)
		}
		if res := get(t, h, map[string]string{"If-None-Match": `"stale"`}); res.StatusCode != http.StatusOK {
			t.Errorf("a stale ETag got %d, want 200", res.StatusCode)
		}
	})
}

func TestDemo(t *testing.T) {
	page := func(app DemoApp, host string) (int, string) {
		req := httptest.NewRequest(http.MethodGet, "/demo", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		Demo(app).ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	t.Run("EmbedsTheWidgetForTheApp", func(t *testing.T) {
		code, body := page(func(context.Context) (string, error) { return "app_demo123", nil }, "known.test:8080")
		if code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		for _, want := range []string{`appId: "app_demo123"`, `<script async src="/widget.js">`, `http://known.test:8080/widget.js`, `id="identify"`} {
			if !strings.Contains(body, want) {
				t.Errorf("the page lacks %s", want)
			}
		}
	})
	t.Run("EscapesTheHost", func(t *testing.T) {
		_, body := page(func(context.Context) (string, error) { return "app_x", nil }, `evil"><script>alert(1)</script>`)
		if strings.Contains(body, "<script>alert(1)") {
			t.Errorf("the Host header reached the page unescaped")
		}
	})
	t.Run("NotFoundWithoutADemoProject", func(t *testing.T) {
		code, body := page(func(context.Context) (string, error) { return "", nil }, "x")
		if code != http.StatusNotFound || !strings.Contains(body, "createProject") {
			t.Errorf("status %d, body %q: want 404 saying how to make the project", code, body)
		}
	})
	t.Run("UnavailableWhenTheLookupFails", func(t *testing.T) {
		code, _ := page(func(context.Context) (string, error) { return "", errors.New("down") }, "x")
		if code != http.StatusServiceUnavailable {
			t.Errorf("status %d, want 503", code)
		}
	})
}
