package graphiql

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAcceptsGzip shows which Accept-Encoding headers get the compressed files: gzip named
// without q=0.
func TestAcceptsGzip(t *testing.T) {
	for header, want := range map[string]bool{
		"":                      false,
		"gzip":                  true,
		"GZIP":                  true,
		"br, gzip;q=0.5":        true,
		"deflate, br":           false,
		"gzip;q=0":              false,
		"gzip; q=0.000, br":     false,
		"identity, x-gzip-like": false,
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Accept-Encoding", header)
		if got := acceptsGzip(r); got != want {
			t.Errorf("Accept-Encoding %q: acceptsGzip = %v, want %v", header, got, want)
		}
	}
}

// TestHandlerServesThePageAndItsFilesOnly shows that the page and its two files are served,
// uncompressed to a client that does not ask for gzip, and nothing else is.
func TestHandlerServesThePageAndItsFilesOnly(t *testing.T) {
	h := Handler()
	for path, want := range map[string]string{
		"/":                          "text/html",
		AssetPrefix + "graphiql.js":  "text/javascript",
		AssetPrefix + "graphiql.css": "text/css",
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), want) ||
			w.Header().Get("Content-Encoding") != "" || w.Body.Len() == 0 {
			t.Errorf("GET %s = %d %q (encoding %q, %d bytes), want 200 %s uncompressed",
				path, w.Code, w.Header().Get("Content-Type"), w.Header().Get("Content-Encoding"), w.Body.Len(), want)
		}
	}
	for _, path := range []string{"/index.html", AssetPrefix, AssetPrefix + "index.html", AssetPrefix + "../index.html", "/graphiql.js"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, w.Code)
		}
	}
}
