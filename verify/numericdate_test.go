package verify

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestJWTRefusesNonNumericDates: exp, nbf and iat are NumericDates (RFC 7519 §2), JSON
// numbers; a properly signed token that carries one of them as a string, null, a boolean, an
// object or an array is refused with a Failure naming the claim, while the same token with
// numbers verifies.
func TestJWTRefusesNonNumericDates(t *testing.T) {
	s := newSigner(t, EdDSA, "k1")
	keys := []Key{s.key}
	exp, nbf, iat := now.Add(5*time.Minute).Unix(), now.Add(-time.Minute).Unix(), now.Unix()
	numbers := jwt.MapClaims{"id": "user-1", "exp": exp, "nbf": nbf, "iat": iat}
	if _, err := JWT(s.sign(t, numbers, nil), keys, "app_1", now); err != nil {
		t.Fatalf("the token with numeric dates is refused: %v", err)
	}
	if _, err := JWT(s.sign(t, jwt.MapClaims{"id": "user-1", "exp": 1.8e9 + 0.5, "iat": 1.8e9 - 0.25}, nil), keys, "app_1",
		time.Unix(1.8e9, 0)); err != nil {
		t.Fatalf("a non-integer NumericDate is refused: %v", err)
	}
	for _, claim := range []string{"exp", "nbf", "iat"} {
		for name, bad := range map[string]any{
			"String":       strconv.FormatInt(numbers[claim].(int64), 10),
			"StringOfDate": "2026-11-21T12:05:00Z",
			"Null":         nil,
			"Bool":         true,
			"Object":       map[string]any{"seconds": exp},
			"Array":        []any{exp},
		} {
			t.Run(claim+"/"+name, func(t *testing.T) {
				c := jwt.MapClaims{}
				for k, v := range numbers {
					c[k] = v
				}
				c[claim] = bad
				_, err := JWT(s.sign(t, c, nil), keys, "app_1", now)
				var f *Failure
				if !errors.As(err, &f) {
					t.Fatalf("JWT with %s = %#v: err %v, want a Failure", claim, bad, err)
				}
				if !strings.Contains(f.Reason, claim) || !strings.Contains(f.Reason, "NumericDate") {
					t.Fatalf("the reason %q does not name %s as a NumericDate", f.Reason, claim)
				}
			})
		}
	}
}

// FuzzJWTClaims signs any claims set with a real key: JWT never panics on it, and a token it
// accepts is a JSON object with a numeric exp (required), and nbf and iat numeric when present.
func FuzzJWTClaims(f *testing.F) {
	f.Add(`{"id":"u","exp":1795262700,"iat":1795262400}`)
	f.Add(`{"id":"u","exp":"1795262700","iat":1795262400}`)
	f.Add(`{"id":"u","exp":1795262700,"nbf":null}`)
	f.Add(`{"id":"u","exp":1795262700,"iat":"1795262400"}`)
	f.Add(`{"id":"u","exp":1795262700,"exp":"1795262700"}`)
	f.Add(`{"id":"u","exp":1.7952627e9,"attrs":{"a":{"b":[1,2,{"c":null}]}}}`)
	s := newSigner(f, EdDSA, "k1")
	f.Fuzz(func(t *testing.T, payload string) {
		token := signRaw(t, s, payload)
		c, err := JWT(token, []Key{s.key}, "app_1", now)
		if err != nil {
			var fl *Failure
			if !errors.As(err, &fl) {
				t.Fatalf("JWT(%q) = %v, not a Failure", payload, err)
			}
			return
		}
		var raw map[string]json.RawMessage
		if json.Unmarshal([]byte(payload), &raw) != nil {
			t.Fatalf("accepted a payload that is not a JSON object: %q", payload)
		}
		if c.ExpiresAt == nil {
			t.Fatalf("accepted %q without exp", payload)
		}
		for _, name := range []string{"exp", "nbf", "iat"} {
			if v, ok := raw[name]; ok && !isJSONNumber(v) {
				t.Fatalf("accepted %s = %s, not a number", name, v)
			}
		}
	})
}

// signRaw signs payload, as it is, with s: the token of a customer whose backend writes
// whatever JSON it likes.
func signRaw(t testing.TB, s signer, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	input := enc.EncodeToString([]byte(`{"alg":"EdDSA","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(payload))
	sig, err := s.m.Sign(input, s.priv)
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + enc.EncodeToString(sig)
}
