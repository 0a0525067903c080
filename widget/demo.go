package widget

import (
	"bytes"
	"context"
	_ "embed"
	"html/template"
	"net/http"
)

//go:embed demo.html
var demoHTML string

var demoPage = template.Must(template.New("demo").Parse(demoHTML))

// DemoApp finds the app id of the project the demo page embeds the widget for. It returns ""
// and no error when there is no such project.
type DemoApp func(ctx context.Context) (string, error)

// Demo returns the handler of GET /demo: a page that embeds the widget for the app that app
// finds, with a form to identify as a test user. It answers 404 with the way to make that
// project when there is none, and 503 when app fails.
func Demo(app DemoApp) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		id, err := app(r.Context())
		if err != nil {
			http.Error(w, "the demo project cannot be read now; try again", http.StatusServiceUnavailable)
			return
		}
		if id == "" {
			http.Error(w, "there is no project named \"Demo\": Known makes one on the first start of an empty embedded store without KNOWN_ADMIN_TOKEN, or create it with createProject(input: {name: \"Demo\"})", http.StatusNotFound)
			return
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		var buf bytes.Buffer
		// The template escapes both values, the Host header included.
		if err := demoPage.Execute(&buf, struct{ AppID, Origin string }{id, scheme + "://" + r.Host}); err != nil {
			http.Error(w, "the demo page could not be drawn", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = buf.WriteTo(w)
	})
}
