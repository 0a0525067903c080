package main

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/knownhq/known"
)

// TestCORS: a widget on any site may call /graphql from the browser (API.md §1); which origins
// a project accepts is the service's rule, not the HTTP layer's.
func TestCORS(t *testing.T) {
	k := startKnown(t)
	const origin = "https://shop.example"

	send := func(t *testing.T, method string, h map[string]string, body string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, k.URL+"/graphql", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for name, v := range h {
			req.Header.Set(name, v)
		}
		res, err := httpClient.Do(req)
		if err != nil {
			t.Fatalf("%s /graphql: %v", method, err)
		}
		res.Body.Close()
		return res
	}
	// listed splits a comma-separated header into lower-case names.
	listed := func(h http.Header, name string) []string {
		var out []string
		for _, v := range h.Values(name) {
			for _, s := range strings.Split(v, ",") {
				out = append(out, strings.ToLower(strings.TrimSpace(s)))
			}
		}
		return out
	}

	t.Run("PreflightFromAnyOriginIsAllowed", func(t *testing.T) {
		res := send(t, http.MethodOptions, map[string]string{
			"Origin":                         origin,
			"Access-Control-Request-Method":  "POST",
			"Access-Control-Request-Headers": "content-type,x-widget-session",
		}, "")
		if res.StatusCode != http.StatusNoContent {
			t.Fatalf("status %d, want 204", res.StatusCode)
		}
		if got := res.Header.Get("Access-Control-Allow-Origin"); got != origin {
			t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, origin)
		}
		allowed := listed(res.Header, "Access-Control-Allow-Headers")
		for _, h := range []string{"content-type", "x-widget-session"} {
			if !slices.Contains(allowed, h) {
				t.Errorf("Access-Control-Allow-Headers = %q, want it to include %s", allowed, h)
			}
		}
		if got := res.Header.Get("Access-Control-Allow-Methods"); got != "POST" {
			t.Errorf("Access-Control-Allow-Methods = %q, want POST", got)
		}
		if got := res.Header.Get("Access-Control-Max-Age"); got != "600" {
			t.Errorf("Access-Control-Max-Age = %q, want 600", got)
		}
		if v, ok := res.Header["Access-Control-Allow-Credentials"]; ok {
			t.Errorf("Access-Control-Allow-Credentials = %q, want none: no cookies", v)
		}
	})

	t.Run("PreflightForOtherHeadersIsNotAllowed", func(t *testing.T) {
		res := send(t, http.MethodOptions, map[string]string{
			"Origin":                         origin,
			"Access-Control-Request-Method":  "POST",
			"Access-Control-Request-Headers": "content-type,x-something-else",
		}, "")
		if got := res.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("Access-Control-Allow-Origin = %q, want none", got)
		}
	})

	t.Run("CrossOriginPostSeesTheRequestID", func(t *testing.T) {
		res := send(t, http.MethodPost, map[string]string{
			"Origin":       origin,
			"Content-Type": "application/json",
		}, `{"query":"{ __typename }"}`)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200", res.StatusCode)
		}
		if got := res.Header.Get("Access-Control-Allow-Origin"); got != origin {
			t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, origin)
		}
		if exposed := listed(res.Header, "Access-Control-Expose-Headers"); !slices.Contains(exposed, "x-request-id") {
			t.Errorf("Access-Control-Expose-Headers = %q, want it to include X-Request-Id", exposed)
		}
		if res.Header.Get("X-Request-Id") == "" {
			t.Error("no X-Request-Id")
		}
		if v, ok := res.Header["Access-Control-Allow-Credentials"]; ok {
			t.Errorf("Access-Control-Allow-Credentials = %q, want none", v)
		}
	})

	t.Run("PlainOptionsIsNotRefusedAsAMethod", func(t *testing.T) {
		if res := send(t, http.MethodOptions, nil, ""); res.StatusCode == http.StatusMethodNotAllowed {
			t.Errorf("OPTIONS /graphql answered 405")
		}
	})
}

// TestWithClient: the service learns the caller's address, Origin and widget session from the
// request, and the address is the peer's, whatever headers claim.
func TestWithClient(t *testing.T) {
	tests := []struct {
		name       string
		remoteAddr string
		header     map[string]string
		want       known.Client
	}{
		{"AddressIsThePeers", "203.0.113.7:51234", nil, known.Client{IP: "203.0.113.7"}},
		{"IPv6AddressHasNoBrackets", "[2001:db8::1]:443", nil, known.Client{IP: "2001:db8::1"}},
		{"XForwardedForIsIgnored", "203.0.113.7:51234",
			map[string]string{"X-Forwarded-For": "198.51.100.1", "X-Real-Ip": "198.51.100.2"},
			known.Client{IP: "203.0.113.7"}},
		{"OriginAndWidgetSessionAreRead", "203.0.113.7:1",
			map[string]string{"Origin": "https://shop.example", "X-Widget-Session": "  tok.en \t"},
			known.Client{IP: "203.0.113.7", Origin: "https://shop.example", WidgetToken: "tok.en"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got known.Client
			h := withClient(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = known.ClientFromContext(r.Context())
			}))
			req := httptest.NewRequest(http.MethodPost, "/graphql", nil)
			req.RemoteAddr = tt.remoteAddr
			for name, v := range tt.header {
				req.Header.Set(name, v)
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
			if got.IP != tt.want.IP || got.Origin != tt.want.Origin || got.WidgetToken != tt.want.WidgetToken {
				t.Errorf("client = %+v, want %+v", got, tt.want)
			}
		})
	}
}
