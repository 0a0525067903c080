// Package graphiql serves the GraphiQL IDE at "/" from files that build.sh bundles from the
// pinned npm packages and that are embedded in Known's binary: the page loads nothing from
// outside Known's origin, so it works on an air-gapped install and under the strict
// Content-Security-Policy it is served with.
package graphiql

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed assets
var assets embed.FS

// AssetPrefix is the path under which the page's script and style sheet are served.
const AssetPrefix = "/graphiql/"

// ContentSecurityPolicy is sent with the page and its files. It allows scripts, styles and
// requests to Known's own origin only (GraphiQL sets inline style attributes, and its fonts are
// data: URLs), and no framing: the page holds a secret key while it is open.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"font-src 'self' data:; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// file is one embedded file, with its gzip form computed once at start: the script is over a
// megabyte, and compresses to a third.
type file struct {
	name        string
	contentType string
	plain, gz   []byte
	etag        string
}

// loadFiles reads and compresses the embedded files, once per process and at the first
// request, so that starting Known (and each test's server) costs nothing here.
var loadFiles = sync.OnceValue(func() map[string]*file {
	files := map[string]*file{}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		_, _ = zw.Write(b)
		if err := zw.Close(); err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		name := strings.TrimPrefix(p, "assets/")
		files[name] = &file{name: name, contentType: ct, plain: b, gz: gz.Bytes(), etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		panic("graphiql: reading the embedded assets: " + err.Error()) // only a broken build gets here
	}
	return files
})

// Handler serves the page at "/" and its files under AssetPrefix; any other path is 404.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var name string
		switch {
		case r.URL.Path == "/":
			name = "index.html"
		case strings.HasPrefix(r.URL.Path, AssetPrefix):
			name = "graphiql/" + strings.TrimPrefix(r.URL.Path, AssetPrefix)
		}
		f := loadFiles()[name]
		if f == nil || name == "index.html" && r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.contentType)
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// Revalidate every time: a new Known may serve new files under the same names.
		h.Set("Cache-Control", "no-cache")
		h.Add("Vary", "Accept-Encoding")
		body, etag := f.plain, f.etag
		if acceptsGzip(r) {
			h.Set("Content-Encoding", "gzip")
			body, etag = f.gz, strings.TrimSuffix(f.etag, `"`)+`-gz"`
		}
		h.Set("ETag", etag)
		http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(body))
	})
}

// acceptsGzip reports whether the request's Accept-Encoding names gzip without refusing it.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			q := strings.ReplaceAll(params, " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}
