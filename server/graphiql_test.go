package main

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// TestGraphiQLLoadsNothingFromOutsideKnown fetches the page at / and every file it references
// (and every file those style sheets reference), and shows that all of them are served by Known
// itself: the page works with no internet, under the Content-Security-Policy it is sent with.
func TestGraphiQLLoadsNothingFromOutsideKnown(t *testing.T) {
	k := startKnown(t)
	base, err := url.Parse(k.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	status, h, page := httpGet(t, k.URL, "/")
	if status != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s, want 200 text/html", status, h.Get("Content-Type"))
	}
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "http") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("Content-Security-Policy %q allows another origin or eval", csp)
	}

	refs := htmlRefs(t, page)
	var scripts, styles []string
	for _, r := range refs {
		switch r.kind {
		case "script":
			scripts = append(scripts, r.url)
		case "stylesheet":
			styles = append(styles, r.url)
		}
	}
	// The blank "Loading…" page of a CDN-loaded IDE has scripts too: these must be Known's
	// bundle, with GraphiQL and React in it.
	if len(scripts) != 1 || !strings.HasSuffix(scripts[0], "/graphiql.js") || len(styles) != 1 {
		t.Fatalf("the page references scripts %q and style sheets %q, want Known's graphiql.js and one style sheet", scripts, styles)
	}

	fetched := map[string]bool{}
	queue := refs
	for len(queue) > 0 {
		r := queue[0]
		queue = queue[1:]
		u, err := base.Parse(r.url)
		if err != nil {
			t.Errorf("%s references %q, which is not a URL: %v", r.from, r.url, err)
			continue
		}
		if u.Scheme == "data" {
			continue // inline: no request
		}
		if u.Scheme != base.Scheme || u.Host != base.Host {
			t.Errorf("%s references %s, outside Known's origin %s://%s", r.from, u, base.Scheme, base.Host)
			continue
		}
		if fetched[u.Path] {
			continue
		}
		fetched[u.Path] = true
		status, h, body := httpGet(t, k.URL, u.RequestURI())
		if status != http.StatusOK || len(body) == 0 {
			t.Errorf("%s references %s, which answers %d with %d bytes", r.from, u.Path, status, len(body))
			continue
		}
		for _, cdn := range []string{"unpkg.com", "jsdelivr", "cdnjs", "googleapis.com", "esm.sh"} {
			if strings.Contains(body, cdn) {
				t.Errorf("%s mentions %s", u.Path, cdn)
			}
		}
		ct := h.Get("Content-Type")
		switch r.kind {
		case "script":
			if !strings.Contains(ct, "javascript") {
				t.Errorf("%s has Content-Type %q, want JavaScript", u.Path, ct)
			}
			for _, want := range []string{"graphiql-container", "react.dev/errors", "__schema"} {
				if !strings.Contains(body, want) {
					t.Errorf("%s does not contain %q: it is not the GraphiQL bundle", u.Path, want)
				}
			}
		case "stylesheet":
			if !strings.HasPrefix(ct, "text/css") {
				t.Errorf("%s has Content-Type %q, want text/css", u.Path, ct)
			}
			queue = append(queue, cssRefs(u.Path, body)...)
		}
	}
	if len(fetched) < 2 {
		t.Errorf("fetched only %v", fetched)
	}

	t.Run("GzipAndRevalidation", func(t *testing.T) {
		u, _ := base.Parse(scripts[0])
		req, err := http.NewRequest(http.MethodGet, u.String(), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept-Encoding", "gzip")
		res, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("Content-Encoding = %q, want gzip", res.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		js, err := io.ReadAll(zr)
		if err != nil || !strings.Contains(string(js), "graphiql-container") {
			t.Fatalf("the gzip body does not unpack to the bundle (%v)", err)
		}
		etag := res.Header.Get("ETag")
		req.Header.Set("If-None-Match", etag)
		again, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		again.Body.Close()
		if etag == "" || again.StatusCode != http.StatusNotModified {
			t.Errorf("with If-None-Match %q the script answers %d, want 304", etag, again.StatusCode)
		}
	})
	t.Run("OtherPathsAre404", func(t *testing.T) {
		for _, p := range []string{"/graphiql/", "/graphiql/index.html", "/graphiql/nope.js", "/index.html"} {
			if status, _, _ := httpGet(t, k.URL, p); status != http.StatusNotFound {
				t.Errorf("GET %s = %d, want 404", p, status)
			}
		}
	})
}

// ref is one reference from a page or style sheet to another file.
type ref struct{ from, kind, url string }

// htmlRefs returns every URL the page's elements would load or link to.
func htmlRefs(t *testing.T, page string) []ref {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatalf("parsing the page: %v", err)
	}
	var out []ref
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			attrs := map[string]string{}
			for _, a := range n.Attr {
				attrs[strings.ToLower(a.Key)] = a.Val
			}
			kind := n.Data
			if n.Data == "link" {
				kind = strings.ToLower(attrs["rel"])
			}
			if n.Data == "script" && attrs["src"] == "" && n.FirstChild != nil {
				t.Errorf("the page has an inline script, which its Content-Security-Policy refuses")
			}
			for _, name := range []string{"src", "href", "srcset", "poster", "data", "action"} {
				if v, ok := attrs[name]; ok {
					out = append(out, ref{from: "/", kind: kind, url: strings.TrimSpace(v)})
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return out
}

var (
	cssURL    = regexp.MustCompile(`url\(\s*(?:"([^"]*)"|'([^']*)'|([^)'"\s]*))\s*\)`)
	cssImport = regexp.MustCompile(`@import\s+(?:"([^"]*)"|'([^']*)')`)
)

// cssRefs returns the url() and @import references of a style sheet.
func cssRefs(from, css string) []ref {
	var out []ref
	for _, re := range []*regexp.Regexp{cssURL, cssImport} {
		for _, m := range re.FindAllStringSubmatch(css, -1) {
			kind := "css-url"
			if re == cssImport {
				kind = "stylesheet"
			}
			out = append(out, ref{from: from, kind: kind, url: strings.Join(m[1:], "")})
		}
	}
	return out
}
