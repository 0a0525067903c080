package rest

import (
	_ "embed"
	"net/http"
)

// OpenAPIDocument is the OpenAPI 3.1 description of every route, written by hand; the server's
// tests validate it, and every request and response of the route tests against it.
//
//go:embed openapi.json
var OpenAPIDocument []byte

// OpenAPI serves OpenAPIDocument (GET /openapi.json).
func OpenAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(OpenAPIDocument)
	})
}
