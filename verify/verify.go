// Package verify checks the proofs a customer's backend gives for a widget identity (API.md
// §3): user hashes (HMAC-SHA256 of the user's id) and JWTs signed with a public key the
// project uploaded. It holds no state: keys, secrets and replay records come from the caller.
package verify

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// UserHash reports whether hash is the hex HMAC-SHA256 of value under one of secrets (the
// current identity secret and, for two hours after a rotation, the previous one). The
// comparison takes the same time whatever the hash.
func UserHash(secrets [][]byte, value, hash string) bool {
	got, err := hex.DecodeString(strings.TrimSpace(hash))
	if err != nil || len(got) != sha256.Size {
		return false
	}
	ok := false
	for _, s := range secrets {
		m := hmac.New(sha256.New, s)
		m.Write([]byte(value))
		if hmac.Equal(m.Sum(nil), got) {
			ok = true
		}
	}
	return ok
}

// Algorithm is a JWT signing algorithm Known accepts.
type Algorithm string

// The algorithms of seed 003.
const (
	EdDSA Algorithm = "EdDSA"
	ES256 Algorithm = "ES256"
	PS256 Algorithm = "PS256"
	RS256 Algorithm = "RS256"
)

// MaxPEM bounds the PEM text ParsePublicKey reads.
const MaxPEM = 16 << 10

// ParsePublicKey reads an SPKI ("PUBLIC KEY") PEM and returns the key with the one algorithm
// it may verify: Ed25519 keys EdDSA, P-256 keys ES256, RSA keys of 2048–4096 bits RS256 or
// PS256 (want chooses; "" means RS256). Any other key, curve, size or algorithm is an error
// that says why.
func ParsePublicKey(text string, want Algorithm) (crypto.PublicKey, Algorithm, error) {
	if len(text) > MaxPEM {
		return nil, "", fmt.Errorf("the PEM is longer than %d bytes", MaxPEM)
	}
	block, rest := pem.Decode([]byte(strings.TrimSpace(text)))
	if block == nil {
		return nil, "", errors.New("not a PEM block")
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, "", errors.New("more than one PEM block")
	}
	if block.Type != "PUBLIC KEY" {
		return nil, "", fmt.Errorf("a %q block; want an SPKI public key (-----BEGIN PUBLIC KEY-----)", block.Type)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, "", errors.New("not a valid SPKI public key")
	}
	only := func(alg Algorithm) (crypto.PublicKey, Algorithm, error) {
		if want != "" && want != alg {
			return nil, "", fmt.Errorf("this key verifies %s, not %s", alg, want)
		}
		return key, alg, nil
	}
	switch k := key.(type) {
	case ed25519.PublicKey:
		return only(EdDSA)
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, "", fmt.Errorf("an EC key on %s; only P-256 (ES256) is accepted", k.Curve.Params().Name)
		}
		return only(ES256)
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < 2048 || bits > 4096 {
			return nil, "", fmt.Errorf("a %d-bit RSA key; RSA keys must have 2048 to 4096 bits", bits)
		}
		switch want {
		case "", RS256:
			return key, RS256, nil
		case PS256:
			return key, PS256, nil
		}
		return nil, "", fmt.Errorf("an RSA key verifies RS256 or PS256, not %s", want)
	}
	return nil, "", fmt.Errorf("a %T key; accepted are Ed25519, P-256 and RSA", key)
}

// Key is a project's public key as verification needs it.
type Key struct {
	ID        string
	Algorithm Algorithm
	Public    crypto.PublicKey
}

// Organization is one organization claim of a JWT.
type Organization struct {
	ID    any            `json:"id"`
	Name  string         `json:"name"`
	Attrs map[string]any `json:"attrs"`
}

// Claims are a verified JWT's claims: the registered ones and the setUser fields (seed 003).
// A field the token does not carry is nil: with a JWT, only what was signed is written.
type Claims struct {
	jwt.RegisteredClaims
	UserID        any             `json:"id"`
	Email         *string         `json:"email"`
	Name          *string         `json:"name"`
	AvatarURL     *string         `json:"avatarUrl"`
	Attrs         map[string]any  `json:"attrs"`
	Organizations *[]Organization `json:"organizations"`
}

// UnmarshalJSON decodes a JWT's claims set, refusing an exp, nbf or iat that is not a JSON
// number: RFC 7519 §2 makes them NumericDates, and the JWT library would take a string such as
// "1800000000" as one. Numbers elsewhere (attrs, a numeric id) stay json.Number, as the
// parser's WithJSONNumber asks.
func (c *Claims) UnmarshalJSON(b []byte) error {
	var present map[string]json.RawMessage
	if err := json.Unmarshal(b, &present); err != nil {
		return err
	}
	for _, name := range []string{"exp", "nbf", "iat"} {
		// null is refused too: present but not a number.
		if raw, ok := present[name]; ok && !isJSONNumber(raw) {
			return fail("the JWT's %s is not a NumericDate: it must be a JSON number of seconds since 1970 (RFC 7519)", name)
		}
	}
	type plain Claims // without this method
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode((*plain)(c))
}

// isJSONNumber reports whether raw is one JSON number (not a string, null or anything else).
func isJSONNumber(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return false
	}
	var n json.Number
	return json.Unmarshal(raw, &n) == nil
}

// Leeway is the clock skew allowed on exp, nbf and iat.
const Leeway = 60 * time.Second

// MaxLifetime is the longest a JWT may be valid: from iat (or from now, without one) to exp.
const MaxLifetime = 24 * time.Hour

// MaxJWT bounds the token JWT reads.
const MaxJWT = 8 << 10

// Failure is why a proof was refused: a message for the customer's developer, never a secret.
type Failure struct{ Reason string }

func (f *Failure) Error() string { return f.Reason }

func fail(format string, args ...any) error { return &Failure{Reason: fmt.Sprintf(format, args...)} }

// JWT verifies a JWT signed by one of keys, as of now: the header's alg must be the key's
// algorithm (EdDSA and Ed25519 both name Ed25519; none and HMAC are never accepted); kid,
// when present, chooses the key, and without it every key of that algorithm is tried; exp is
// required, exp, nbf and iat are checked with Leeway; a lifetime over MaxLifetime is refused;
// aud, when present, must contain appID. A refusal is a *Failure. The jti, when present, is
// the caller's to record: it is usable once.
func JWT(raw string, keys []Key, appID string, now time.Time) (*Claims, error) {
	if len(raw) > MaxJWT {
		return nil, fail("the JWT is longer than %d bytes", MaxJWT)
	}
	methods := []string{}
	for _, k := range keys {
		methods = append(methods, string(k.Algorithm))
		if k.Algorithm == EdDSA {
			methods = append(methods, ed25519Alias)
		}
	}
	if len(methods) == 0 {
		return nil, fail("this app has no JWT public key: upload one with addJwtPublicKey")
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods(methods),
		jwt.WithLeeway(Leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithJSONNumber(),
	)
	claims := &Claims{}
	_, err := parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		alg := Algorithm(t.Method.Alg())
		if alg == ed25519Alias {
			alg = EdDSA
		}
		kid, hasKid := t.Header["kid"].(string)
		var set jwt.VerificationKeySet
		for _, k := range keys {
			if hasKid && k.ID != kid {
				continue
			}
			if k.Algorithm == alg {
				set.Keys = append(set.Keys, k.Public)
			}
		}
		switch {
		case len(set.Keys) > 0:
			return set, nil
		case hasKid:
			return nil, fail("no live key of this app has kid %q for %s", truncate(kid), alg)
		}
		return nil, fail("no live key of this app verifies %s", alg)
	})
	if err != nil {
		return nil, refusal(err)
	}
	if len(claims.Audience) > 0 && !contains(claims.Audience, appID) {
		return nil, fail("the JWT's aud does not name this app")
	}
	start := now
	if claims.IssuedAt != nil {
		start = claims.IssuedAt.Time
	}
	if claims.ExpiresAt.Sub(start) > MaxLifetime {
		return nil, fail("the JWT is valid for more than 24 hours (exp - iat); sign shorter-lived tokens")
	}
	return claims, nil
}

// refusal turns a parser error into a Failure that names the rule, without echoing the token.
func refusal(err error) error {
	var f *Failure
	switch {
	case errors.As(err, &f):
		return f
	case errors.Is(err, jwt.ErrTokenExpired):
		return fail("the JWT has expired")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return fail("the JWT has no exp claim; exp is required")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return fail("the JWT is not valid yet (nbf)")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fail("the JWT was issued in the future (iat)")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return fail("the JWT's signature does not verify with this app's keys")
	case errors.Is(err, jwt.ErrTokenUnverifiable), errors.Is(err, jwt.ErrSignatureInvalid):
		return fail("the JWT's algorithm is not one this app's keys verify")
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fail("not a well-formed JWT")
	}
	return fail("the JWT is not valid")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// ed25519Alias is the other name of EdDSA over Ed25519 (RFC 9864's fully specified name).
const ed25519Alias = "Ed25519"

type ed25519Named struct{ *jwt.SigningMethodEd25519 }

func (ed25519Named) Alg() string { return ed25519Alias }

func init() {
	jwt.RegisterSigningMethod(ed25519Alias, func() jwt.SigningMethod {
		return ed25519Named{jwt.SigningMethodEdDSA}
	})
}
