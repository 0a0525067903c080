package rest

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/knownhq/known"
)

// TestStatusOfEveryCode: each error code answers the status of API.md §10.
func TestStatusOfEveryCode(t *testing.T) {
	for code, want := range map[known.Code]int{
		known.BadUserInput: 400, known.Invalid: 400, known.LimitExceeded: 400,
		known.Unauthenticated: 401, known.Forbidden: 403, known.NotFound: 404,
		known.AlreadyExists: 409, known.IdentityConflict: 409,
		known.VerificationFailed: 422, known.VerificationRequired: 422, known.CompanyRequired: 422,
		known.RateLimited: 429, known.Internal: 500, "SOMETHING_NEW": 500,
	} {
		if got := Status(code); got != want {
			t.Errorf("Status(%s) = %d, want %d", code, got, want)
		}
	}
}

// TestFieldsInTheSeedsNaming: the service's input paths become the seed's field names.
func TestFieldsInTheSeedsNaming(t *testing.T) {
	for _, tc := range []struct {
		names fieldNames
		path  []string
		want  string
	}{
		{widgetFields, []string{"input", "userId"}, "user_id"},
		{widgetFields, []string{"input", "appId"}, "app_id"},
		{widgetFields, []string{"input", "company", "id"}, "company.id"},
		{widgetFields, []string{"input", "companyIds", "2"}, "company_ids[2]"},
		{widgetFields, []string{"input", "identificationToken"}, "identification_token"},
		{widgetFields, []string{"input"}, ""},
		{widgetFields, nil, ""},
		{userFields, []string{"input", "externalId"}, "fkId"},
		{userFields, []string{"externalId"}, "fkId"},
		{userFields, []string{"input", "phoneNumber"}, "phoneNumber"},
		{sameFields, []string{"input", "firstName"}, "firstName"},
	} {
		if got := tc.names.of(tc.path); got != tc.want {
			t.Errorf("%v → %q, want %q", tc.path, got, tc.want)
		}
	}
}

// TestOpenAPIDescribesEveryRoute: /openapi.json is a valid OpenAPI 3.1 document whose
// operations are exactly the routes served.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPIDocument)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("invalid document: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %s, want 3.1", doc.OpenAPI)
	}
	var described, served []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			described = append(described, method+" "+path)
		}
	}
	for _, rt := range (&API{}).Routes() {
		served = append(served, rt.Pattern)
	}
	slices.Sort(described)
	slices.Sort(served)
	if !slices.Equal(described, served) {
		t.Fatalf("the document describes %v; the routes are %v", described, served)
	}
}

// FuzzIdentifyRequest: any body decodes into identify's request or is refused as
// BAD_USER_INPUT in the seed's naming; nothing else, and never a panic.
func FuzzIdentifyRequest(f *testing.F) {
	f.Add([]byte(`{"app_id": "proj_123", "visitor_id": "user_456", "email": "alice@acme.com"}`))
	f.Add([]byte(`{"app_id": "a", "user_id": 12, "company": {"id": "acme", "metadata": {"a": [1, {"b": null}]}}, "company_ids": ["x"]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var in identifyRequest
		err := decode(httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)), &in)
		if err == nil {
			return
		}
		var re requestError
		if !errors.As(err, &re) || re.err.Code != known.BadUserInput || re.err.Message == "" {
			t.Fatalf("decode(%q) = %v; want a BAD_USER_INPUT requestError", body, err)
		}
	})
}
