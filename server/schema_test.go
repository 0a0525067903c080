package main

import (
	"bufio"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// introspectionQuery is the standard full introspection query (graphql-js
// getIntrospectionQuery, with descriptions).
const introspectionQuery = `query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind
  name
  description
  fields(includeDeprecated: true) {
    name
    description
    args { ...InputValue }
    type { ...TypeRef }
    isDeprecated
    deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name
  description
  type { ...TypeRef }
  defaultValue
}
fragment TypeRef on __Type {
  kind
  name
  ofType {
    kind
    name
    ofType {
      kind
      name
      ofType {
        kind
        name
        ofType {
          kind
          name
          ofType {
            kind
            name
            ofType {
              kind
              name
              ofType { kind name }
            }
          }
        }
      }
    }
  }
}`

// TestSchemaIsDescribed runs the full introspection query over HTTP and shows that every type,
// field, argument, input field and enum value of Known's schema has a description.
func TestSchemaIsDescribed(t *testing.T) {
	k := startKnown(t)
	type inputValue struct{ Name, Description string }
	var data struct {
		Schema struct {
			QueryType    struct{ Name string }
			MutationType *struct{ Name string }
			Types        []struct {
				Kind, Name, Description string
				Fields                  []struct {
					Name, Description string
					Args              []inputValue
				}
				InputFields []inputValue
				EnumValues  []struct{ Name, Description string }
			}
		} `json:"__schema"`
	}
	gql(t, k.URL, "", introspectionQuery, nil).decode(t, &data)
	if data.Schema.QueryType.Name != "Query" || data.Schema.MutationType == nil || data.Schema.MutationType.Name != "Mutation" {
		t.Fatalf("introspection gave query type %q and mutation type %v", data.Schema.QueryType.Name, data.Schema.MutationType)
	}
	builtin := map[string]bool{"String": true, "Int": true, "Float": true, "Boolean": true, "ID": true}
	blank := func(s string) bool { return strings.TrimSpace(s) == "" }
	var missing []string
	seen := map[string]bool{}
	for _, ty := range data.Schema.Types {
		if strings.HasPrefix(ty.Name, "__") || builtin[ty.Name] {
			continue
		}
		seen[ty.Name] = true
		if blank(ty.Description) {
			missing = append(missing, "type "+ty.Name)
		}
		for _, f := range ty.Fields {
			if blank(f.Description) {
				missing = append(missing, "field "+ty.Name+"."+f.Name)
			}
			for _, a := range f.Args {
				if blank(a.Description) {
					missing = append(missing, "argument "+ty.Name+"."+f.Name+"("+a.Name+")")
				}
			}
		}
		for _, f := range ty.InputFields {
			if blank(f.Description) {
				missing = append(missing, "input field "+ty.Name+"."+f.Name)
			}
		}
		for _, v := range ty.EnumValues {
			if blank(v.Description) {
				missing = append(missing, "enum value "+ty.Name+"."+v.Name)
			}
		}
	}
	for _, name := range []string{"Query", "Mutation", "User", "Project", "CreateUserInput", "UserErrorCode", "Node"} {
		if !seen[name] {
			t.Errorf("introspection did not list type %s", name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		t.Fatalf("%d schema elements have no description:\n  %s", len(missing), strings.Join(missing, "\n  "))
	}
}

// TestHTTPSurface shows the non-GraphQL routes: the SDL, GraphiQL, health and the metrics that
// count operations by name, errors by code and MongoDB commands.
func TestHTTPSurface(t *testing.T) {
	k := startKnown(t)
	_, key := createProject(t, k.URL, "Surface")

	t.Run("SchemaSDL", func(t *testing.T) {
		status, h, body := httpGet(t, k.URL, "/schema.graphql")
		if status != http.StatusOK || !strings.Contains(body, "type User implements Node") ||
			!strings.Contains(body, "createUser") {
			t.Fatalf("GET /schema.graphql = %d %.300q", status, body)
		}
		if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("Content-Type = %q, want text/plain", ct)
		}
	})
	t.Run("GraphiQL", func(t *testing.T) {
		status, h, body := httpGet(t, k.URL, "/")
		if status != http.StatusOK || !strings.Contains(strings.ToLower(body), "graphiql") || !strings.Contains(body, "<html") {
			t.Fatalf("GET / = %d %.300q, want the GraphiQL page", status, body)
		}
		if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("Content-Type = %q, want text/html", ct)
		}
		if status, _, _ := httpGet(t, k.URL, "/no-such-page"); status != http.StatusNotFound {
			t.Errorf("GET /no-such-page = %d, want 404", status)
		}
	})
	t.Run("Health", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz"} {
			if status, _, body := httpGet(t, k.URL, path); status != http.StatusOK {
				t.Errorf("GET %s = %d %q, want 200", path, status, body)
			}
		}
	})
	t.Run("Metrics", func(t *testing.T) {
		var data struct{ Project struct{ ID string } }
		gql(t, k.URL, key, `query DashboardProbe { project { id } }`, nil).decode(t, &data)
		gql(t, k.URL, "", `query Unauthorized { project { id } }`, nil).requireCode(t, "UNAUTHENTICATED")

		m := scrapeMetrics(t, k.URL)
		if v, ok := m[`known_graphql_requests_total{operation="DashboardProbe"}`]; !ok || v != 1 {
			t.Errorf(`known_graphql_requests_total{operation="DashboardProbe"} = %v (present %v), want 1`, v, ok)
		}
		if v, ok := m[`known_graphql_errors_total{code="UNAUTHENTICATED"}`]; !ok || v != 1 {
			t.Errorf(`known_graphql_errors_total{code="UNAUTHENTICATED"} = %v (present %v), want 1`, v, ok)
		}
		if v := m[`known_mongodb_commands_total{command="find",outcome="ok"}`]; v < 1 {
			t.Errorf(`known_mongodb_commands_total{command="find",outcome="ok"} = %v, want at least 1`, v)
		}

		gql(t, k.URL, key, `query DashboardProbe { project { id } }`, nil).decode(t, &data)
		m = scrapeMetrics(t, k.URL)
		if v := m[`known_graphql_requests_total{operation="DashboardProbe"}`]; v != 2 {
			t.Errorf(`after a second call known_graphql_requests_total{operation="DashboardProbe"} = %v, want 2`, v)
		}
	})
}

// scrapeMetrics GETs /metrics and returns each sample (name with labels) and its value.
func scrapeMetrics(t *testing.T, baseURL string) map[string]float64 {
	t.Helper()
	status, _, body := httpGet(t, baseURL, "/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics = %d", status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("metrics line %q has no value", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if !strings.Contains(body, "known_mongodb_commands_total") {
		t.Fatalf("/metrics has no known_mongodb_commands_total")
	}
	return out
}
