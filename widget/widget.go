// Package widget serves Known's browser SDK (API.md §8): GET /widget.js, one self-contained
// script embedded in the binary, and the /demo page that embeds it. The script is plain
// JavaScript with no build step: widget.js in this folder is what browsers get.
package widget

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

//go:embed widget.js
var script []byte

// MaxGzipSize is the SDK's budget: at most 20 KiB on the wire (API.md §8).
const MaxGzipSize = 20 << 10

// CacheControl is the cache header of /widget.js. A deploy reaches pages within ten minutes; in
// between, browsers revalidate with the ETag and usually get a 304.
const CacheControl = "public, max-age=600"

// asset is one representation of the script with its strong ETag.
type asset struct {
	body []byte
	etag string
}

var plain, gzipped = build()

func build() (asset, asset) {
	sum := sha256.Sum256(script)
	tag := hex.EncodeToString(sum[:12])
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // the level is valid
	_, _ = zw.Write(script)                                  // writes to memory do not fail
	_ = zw.Close()
	// Each encoding is its own representation, so each gets its own strong ETag.
	return asset{script, `"` + tag + `"`}, asset{buf.Bytes(), `"` + tag + `-gz"`}
}

// Source returns the script as served without compression.
func Source() []byte { return bytes.Clone(script) }

// GzipSize returns the size of the script as served to a client that accepts gzip.
func GzipSize() int { return len(gzipped.body) }

// Script returns the handler of GET /widget.js: the SDK, gzip-compressed when the client
// accepts it, with an ETag (If-None-Match answers 304) and CacheControl.
func Script() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := plain
		if acceptsGzip(r.Header.Values("Accept-Encoding")) {
			a = gzipped
			w.Header().Set("Content-Encoding", "gzip")
		}
		h := w.Header()
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		h.Set("Cache-Control", CacheControl)
		h.Set("ETag", a.etag)
		h.Add("Vary", "Accept-Encoding")
		h.Set("X-Content-Type-Options", "nosniff")
		// Customers' pages load the script from another origin, including pages that isolate
		// themselves (COEP) or pin it with Subresource Integrity (crossorigin="anonymous").
		h.Set("Cross-Origin-Resource-Policy", "cross-origin")
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Timing-Allow-Origin", "*") // lets pages (and tests) measure what it weighs
		// ServeContent answers If-None-Match with 304 and HEAD without a body.
		http.ServeContent(w, r, "widget.js", time.Time{}, bytes.NewReader(a.body))
	})
}

// acceptsGzip reports whether Accept-Encoding allows gzip: named with a quality above zero, or
// left to "*" with one.
func acceptsGzip(values []string) bool {
	star := false
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(part, ";")
			q := 1.0
			for _, p := range strings.Split(params, ";") {
				k, val, ok := strings.Cut(p, "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
					if err != nil {
						f = 0 // a quality that does not parse allows nothing
					}
					q = f
				}
			}
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "gzip":
				return q > 0
			case "*":
				star = q > 0
			}
		}
	}
	return star
}
