package service_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"github.com/knownhq/known/clocktest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/knownhq/known"
	"github.com/knownhq/known/service"
)

// Identity verification through the service (API.md §3, §5; seeds 002, 003, 004): user
// hashes and identity-secret rotation, JWTs and their keys, identification tokens, and the
// policy that a claim without proof never reaches a verified user. The grace periods and
// token lifetimes are shown on an injected clock.

// testClock is a clock the test moves; the service reads it through Options.Now.
type testClock = clocktest.Clock

// clockedEnv is newEnv whose service runs on a clock the test controls, on the same store.
func clockedEnv(t *testing.T) (*env, *testClock) {
	t.Helper()
	e := newEnv(t)
	c := clocktest.New(time.Now().UTC().Truncate(time.Millisecond))
	e.svc = service.New(e.store, service.Options{Secret: testSecret, AdminToken: adminToken, Now: c.Now})
	return e, c
}

// otherProjectEnv is an env for another project of e's store, served by e's service.
func otherProjectEnv(t *testing.T, e *env, name string) *env {
	t.Helper()
	p := e.newProject(t, name)
	return &env{svc: e.svc, store: e.store, project: p, ctx: e.as(t, p.SecretKey)}
}

// hashOf is a userHash: lowercase hex HMAC-SHA256(secret, value).
func hashOf(secret, value string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil))
}

// wantVerified checks that a session and its user are verified by method, the user at time at.
func wantVerified(t *testing.T, e *env, ss *known.Session, method known.VerificationMethod, at time.Time) *known.User {
	t.Helper()
	if !ss.Verified() || ss.Method == nil || *ss.Method != method || ss.UserID == nil {
		t.Fatalf("session = %+v (method %v), want verified by %s with a user", ss, ss.Method, method)
	}
	if got := sessionOf(t, e, ss.Token); !got.Verified() || got.Method == nil || *got.Method != method {
		t.Fatalf("session query = %+v, want verified by %s", got, method)
	}
	u := readUser(t, e, *ss.UserID)
	if !u.Verified || u.VerificationMethod == nil || *u.VerificationMethod != method || u.VerifiedAt == nil || !u.VerifiedAt.Equal(at) {
		t.Fatalf("user verified %v, method %v, verifiedAt %v; want verified by %s at %v", u.Verified, u.VerificationMethod, u.VerifiedAt, method, at)
	}
	return u
}

func ext(u *known.User) string {
	if u.ExternalID == nil {
		return ""
	}
	return string(*u.ExternalID)
}

func identifyCall(e *env, token string, in service.IdentifyInput) func() error {
	return func() error { _, err := identifyErr(e, token, in); return err }
}

func setUserCall(e *env, token string, in service.SetUserInput) func() error {
	return func() error { _, err := setUserErr(e, token, in); return err }
}

// TestUserHash: a userHash (HMAC-SHA256 of the userId, or of the email without one) verifies
// a claim; a wrong one is VERIFICATION_FAILED and changes nothing; after rotateIdentitySecret
// the old secret keeps verifying for 2 hours and the new one at once.
func TestUserHash(t *testing.T) {
	e, clock := clockedEnv(t)
	secret := e.project.IdentitySecret

	t.Run("UserIDHashVerifies", func(t *testing.T) {
		ss := identify(t, e, "", service.IdentifyInput{UserID: str("uh-1"), Name: str("Hal Hash"), UserHash: str(hashOf(secret, "uh-1"))})
		u := wantVerified(t, e, ss, known.VerifiedByHMAC, clock.Now())
		if ext(u) != "uh-1" || opt(u.Name) != "Hal Hash" {
			t.Fatalf("user = %+v", u)
		}
	})
	t.Run("EmailOnlyHashVerifies", func(t *testing.T) {
		ss := identify(t, e, "", service.IdentifyInput{Email: str("Only@Example.com"), UserHash: str(hashOf(secret, "Only@Example.com"))})
		u := wantVerified(t, e, ss, known.VerifiedByHMAC, clock.Now())
		if u.ExternalID != nil || opt(u.Email) != "Only@Example.com" {
			t.Fatalf("user = %+v", u)
		}
	})
	t.Run("SetUserHashVerifies", func(t *testing.T) {
		ss := setUser(t, e, "", service.SetUserInput{ID: str("uh-set"), Email: str("set@example.com"), UserHash: str(hashOf(secret, "uh-set"))})
		u := wantVerified(t, e, ss, known.VerifiedByHMAC, clock.Now())
		if ext(u) != "uh-set" || opt(u.Email) != "set@example.com" {
			t.Fatalf("user = %+v", u)
		}
	})
	anon := anonymous(t, e)
	wrong := func(name string, call func() error) rejected {
		return rejected{name, call, known.VerificationFailed, []string{"input", "userHash"}}
	}
	t.Run("WrongHashVerificationFailed", func(t *testing.T) {
		runRejected(t, e, []rejected{
			wrong("HashOfAnotherUserID", identifyCall(e, "", service.IdentifyInput{UserID: str("uh-2"), UserHash: str(hashOf(secret, "uh-3"))})),
			wrong("HashUnderAnotherSecret", identifyCall(e, "", service.IdentifyInput{UserID: str("uh-2"), UserHash: str(hashOf("not-the-secret", "uh-2"))})),
			wrong("EmailHashWhenUserIDSent", identifyCall(e, "", service.IdentifyInput{UserID: str("uh-2"), Email: str("uh2@example.com"), UserHash: str(hashOf(secret, "uh2@example.com"))})),
			wrong("NotHex", identifyCall(e, "", service.IdentifyInput{UserID: str("uh-2"), UserHash: str("not-a-hash")})),
			wrong("NoUserIDOrEmail", identifyCall(e, "", service.IdentifyInput{UserHash: str(hashOf(secret, ""))})),
			wrong("ExistingVerifiedUser", identifyCall(e, "", service.IdentifyInput{UserID: str("uh-1"), Name: str("Mallory"), UserHash: str(hashOf(secret, "uh-1x"))})),
			wrong("FromAnonymousSession", identifyCall(e, anon.Token, service.IdentifyInput{UserID: str("uh-2"), Metadata: map[string]any{"x": 1}, UserHash: str(hashOf(secret, "uh-3"))})),
			wrong("SetUser", setUserCall(e, "", service.SetUserInput{ID: str("uh-2"), Attrs: map[string]any{"x": 1}, UserHash: str(hashOf(secret, "uh-3"))})),
		})
		if got := sessionOf(t, e, anon.Token); !got.Anonymous() {
			t.Fatalf("the anonymous session became %+v after a refused proof", got)
		}
	})

	rotatedAt := clock.Now()
	fresh, grace, err := e.svc.RotateIdentitySecret(e.ctx)
	if err != nil {
		t.Fatalf("RotateIdentitySecret: %v", err)
	}
	t.Run("RotateReturnsNewSecretAndGrace", func(t *testing.T) {
		if fresh == "" || fresh == secret {
			t.Fatalf("new identity secret %q (old %q)", fresh, secret)
		}
		if want := rotatedAt.Add(2 * time.Hour); !grace.Equal(want) {
			t.Fatalf("previous secret expires at %v, want %v", grace, want)
		}
	})
	t.Run("NewSecretAcceptedAtOnce", func(t *testing.T) {
		ss := identify(t, e, "", service.IdentifyInput{UserID: str("rot-1"), UserHash: str(hashOf(fresh, "rot-1"))})
		wantVerified(t, e, ss, known.VerifiedByHMAC, clock.Now())
	})
	t.Run("OldSecretAcceptedAt1h59m", func(t *testing.T) {
		clock.Set(rotatedAt.Add(time.Hour + 59*time.Minute))
		ss := identify(t, e, "", service.IdentifyInput{UserID: str("rot-2"), UserHash: str(hashOf(secret, "rot-2"))})
		wantVerified(t, e, ss, known.VerifiedByHMAC, clock.Now())
		ss = setUser(t, e, "", service.SetUserInput{ID: str("rot-2"), UserHash: str(hashOf(secret, "rot-2"))})
		wantVerified(t, e, ss, known.VerifiedByHMAC, clock.Now())
	})
	t.Run("OldSecretRefusedAt2h01m", func(t *testing.T) {
		clock.Set(rotatedAt.Add(2*time.Hour + time.Minute))
		runRejected(t, e, []rejected{
			wrong("NewUser", identifyCall(e, "", service.IdentifyInput{UserID: str("rot-3"), UserHash: str(hashOf(secret, "rot-3"))})),
			wrong("ExistingUser", identifyCall(e, "", service.IdentifyInput{UserID: str("uh-1"), UserHash: str(hashOf(secret, "uh-1"))})),
			wrong("SetUser", setUserCall(e, "", service.SetUserInput{ID: str("rot-3"), UserHash: str(hashOf(secret, "rot-3"))})),
		})
	})
	t.Run("NewSecretStillAccepted", func(t *testing.T) {
		ss := identify(t, e, "", service.IdentifyInput{UserID: str("rot-3"), UserHash: str(hashOf(fresh, "rot-3"))})
		wantVerified(t, e, ss, known.VerifiedByHMAC, clock.Now())
	})
}

// spkiPEM encodes a public key as an SPKI "PUBLIC KEY" PEM.
func spkiPEM(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// signJWT signs claims with key by method, with kid in the header unless it is "".
func signJWT(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("signing a JWT: %v", err)
	}
	return s
}

// jwtClaims is claims with iat now and exp five minutes later, on the test's clock.
func jwtClaims(c *testClock, claims jwt.MapClaims) jwt.MapClaims {
	now := c.Now()
	out := jwt.MapClaims{"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
	for k, v := range claims {
		out[k] = v
	}
	return out
}

func addKey(t *testing.T, e *env, pemText string, algorithm *string) *known.JwtKey {
	t.Helper()
	k, err := e.svc.AddJwtPublicKey(e.ctx, pemText, algorithm)
	if err != nil {
		t.Fatalf("AddJwtPublicKey: %v", err)
	}
	return k
}

func jwtKeys(t *testing.T, e *env) string {
	t.Helper()
	keys, err := e.svc.JwtPublicKeys(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%s %s %v %v", k.ID, k.Algorithm, k.CreatedAt, k.ExpiresAt))
	}
	return strings.Join(out, "; ")
}

func newEd25519(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// TestJWT: a JWT signed with an uploaded key verifies setUser and identify, and writes exactly
// the signed fields; a jti is usable once, even under concurrency; a replaced key verifies for
// 2 hours more; a key verifies its one algorithm; bad keys and foreign audiences are refused.
func TestJWT(t *testing.T) {
	e, clock := clockedEnv(t)
	edPub, edPriv := newEd25519(t)

	t.Run("NoKeysVerificationFailed", func(t *testing.T) {
		tok := signJWT(t, jwt.SigningMethodEdDSA, edPriv, "", jwtClaims(clock, jwt.MapClaims{"id": "nk-1"}))
		runRejected(t, e, []rejected{
			{"SetUser", setUserCall(e, "", service.SetUserInput{JWT: &tok}), known.VerificationFailed, []string{"input", "jwt"}},
			{"Identify", identifyCall(e, "", service.IdentifyInput{JWT: &tok}), known.VerificationFailed, []string{"input", "jwt"}},
		})
	})

	edKey := addKey(t, e, spkiPEM(t, edPub), nil)
	t.Run("AddJwtPublicKeyReturnsKey", func(t *testing.T) {
		if edKey.ID == "" || edKey.Algorithm != "EdDSA" || !edKey.CreatedAt.Equal(clock.Now()) || edKey.ExpiresAt != nil {
			t.Fatalf("key = %+v, want an id, EdDSA, created now, no expiry", edKey)
		}
	})

	t.Run("ValidJWTSetsSignedFields", func(t *testing.T) {
		tok := signJWT(t, jwt.SigningMethodEdDSA, edPriv, edKey.ID, jwtClaims(clock, jwt.MapClaims{
			"id": "jwt-1", "email": "Jane@Example.com", "name": "Jane Doe", "avatarUrl": "https://example.com/jane.png",
			"attrs": map[string]any{"plan": "pro", "active": true, "seats": 5},
			"organizations": []any{
				map[string]any{"id": "org-456", "name": "Acme Corp", "attrs": map[string]any{"industry": "SaaS"}},
				map[string]any{"id": 789, "name": "Numbered"},
			},
		}))
		ss := setUser(t, e, "", service.SetUserInput{JWT: &tok})
		u := wantVerified(t, e, ss, known.VerifiedByJWT, clock.Now())
		if ext(u) != "jwt-1" || opt(u.Email) != "Jane@Example.com" || opt(u.Name) != "Jane Doe" || opt(u.FirstName) != "Jane" ||
			opt(u.LastName) != "Doe" || opt(u.AvatarURL) != "https://example.com/jane.png" || u.PhoneNumber != nil {
			t.Fatalf("user = %+v", u)
		}
		if got := jsonText(t, u.Metadata); got != `{"active":true,"plan":"pro","seats":5}` {
			t.Fatalf("metadata = %s, want the signed attrs", got)
		}
		orgs, err := e.svc.UserOrganizations(e.ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range orgs {
			got = append(got, o.ExternalID+"|"+o.Name+"|"+jsonText(t, o.Attrs))
		}
		sort.Strings(got)
		if want := []string{`789|Numbered|{}`, `org-456|Acme Corp|{"industry":"SaaS"}`}; !slices.Equal(got, want) && !slices.Equal(got, []string{`789|Numbered|null`, want[1]}) {
			t.Fatalf("organizations = %v, want %v", got, want)
		}
	})

	t.Run("UnsignedInputFieldsNotWritten", func(t *testing.T) {
		tok := signJWT(t, jwt.SigningMethodEdDSA, edPriv, edKey.ID, jwtClaims(clock, jwt.MapClaims{
			"id": "jwt-2", "email": "signed@example.com", "name": "Signed Name",
		}))
		ss := setUser(t, e, "", service.SetUserInput{
			ID: str("mallory"), Email: str("mallory@example.com"), Name: str("Mallory"), AvatarURL: str("https://evil.example/m.png"),
			Attrs: map[string]any{"role": "admin"}, Organizations: []service.OrganizationInput{{ID: "evil-org", Name: "Evil"}}, JWT: &tok,
		})
		u := wantVerified(t, e, ss, known.VerifiedByJWT, clock.Now())
		if ext(u) != "jwt-2" || opt(u.Email) != "signed@example.com" || opt(u.Name) != "Signed Name" || u.AvatarURL != nil ||
			len(u.Metadata) != 0 || len(u.OrganizationIDs) != 0 {
			t.Fatalf("user = %+v, want only the signed fields", u)
		}
		if m := userByExt(t, e, "mallory"); m != nil {
			t.Fatalf("the unsigned id made user %+v", m)
		}
		os, _, err := e.svc.Organizations(e.ctx, known.Page{First: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range os {
			if o.ExternalID == "evil-org" {
				t.Fatalf("the unsigned organization was written: %+v", o)
			}
		}
	})

	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecKey := addKey(t, e, spkiPEM(t, &ecPriv.PublicKey), nil)
	t.Run("IdentifyWithJWT", func(t *testing.T) {
		if ecKey.Algorithm != "ES256" {
			t.Fatalf("a P-256 key's algorithm = %s, want ES256", ecKey.Algorithm)
		}
		tok := signJWT(t, jwt.SigningMethodES256, ecPriv, ecKey.ID, jwtClaims(clock, jwt.MapClaims{"id": 4242, "email": "n@example.com"}))
		ss := identify(t, e, "", service.IdentifyInput{UserID: str("intruder"), Email: str("intruder@example.com"), Name: str("Intruder"), JWT: &tok})
		u := wantVerified(t, e, ss, known.VerifiedByJWT, clock.Now())
		if ext(u) != "4242" || opt(u.Email) != "n@example.com" || u.Name != nil {
			t.Fatalf("user = %+v, want externalId 4242, the signed email and no name", u)
		}
		if m := userByExt(t, e, "intruder"); m != nil {
			t.Fatalf("the unsigned userId made user %+v", m)
		}
	})

	t.Run("ReplayedJTIVerificationFailed", func(t *testing.T) {
		tok := signJWT(t, jwt.SigningMethodEdDSA, edPriv, edKey.ID, jwtClaims(clock, jwt.MapClaims{"id": "jwt-3", "jti": "jti-1"}))
		ss := setUser(t, e, "", service.SetUserInput{JWT: &tok})
		wantVerified(t, e, ss, known.VerifiedByJWT, clock.Now())
		again := signJWT(t, jwt.SigningMethodEdDSA, edPriv, edKey.ID, jwtClaims(clock, jwt.MapClaims{"id": "jwt-3b", "name": "Other", "jti": "jti-1"}))
		runRejected(t, e, []rejected{
			{"SameJWTAgain", setUserCall(e, "", service.SetUserInput{JWT: &tok}), known.VerificationFailed, []string{"input", "jwt"}},
			{"SameJWTFromItsOwnSession", setUserCall(e, ss.Token, service.SetUserInput{JWT: &tok}), known.VerificationFailed, []string{"input", "jwt"}},
			{"SameJWTInIdentify", identifyCall(e, "", service.IdentifyInput{JWT: &tok}), known.VerificationFailed, []string{"input", "jwt"}},
			{"SameJTIInAnotherJWT", setUserCall(e, "", service.SetUserInput{JWT: &again}), known.VerificationFailed, []string{"input", "jwt"}},
		})
	})

	t.Run("ConcurrentJTIAcceptedOnce", func(t *testing.T) {
		tok := signJWT(t, jwt.SigningMethodEdDSA, edPriv, edKey.ID, jwtClaims(clock, jwt.MapClaims{"id": "jwt-race", "jti": "jti-race"}))
		const n = 20
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				_, errs[i] = setUserErr(e, "", service.SetUserInput{JWT: &tok})
			})
		}
		close(start)
		wg.Wait()
		accepted := 0
		for i, err := range errs {
			if err == nil {
				accepted++
				continue
			}
			es, _ := known.UserErrors(err)
			if known.ErrorCode(err) != known.VerificationFailed || len(es) == 0 || !slices.Equal(es[0].Field, []string{"input", "jwt"}) {
				t.Errorf("call %d: %v (code %s), want VERIFICATION_FAILED on input.jwt", i, err, known.ErrorCode(err))
			}
		}
		if accepted != 1 {
			t.Fatalf("%d of %d calls with one jti were accepted, want exactly 1", accepted, n)
		}
		if u := userByExt(t, e, "jwt-race"); u == nil || len(u.VisitorIDs) != 1 {
			t.Fatalf("user = %+v, want one user with one visitor", u)
		}
	})

	t.Run("AudOfAnotherAppVerificationFailed", func(t *testing.T) {
		other := signJWT(t, jwt.SigningMethodEdDSA, edPriv, edKey.ID, jwtClaims(clock, jwt.MapClaims{"id": "jwt-aud", "aud": "app_someoneelse"}))
		others := signJWT(t, jwt.SigningMethodEdDSA, edPriv, edKey.ID, jwtClaims(clock, jwt.MapClaims{"id": "jwt-aud", "aud": []string{"app_someoneelse", "app_third"}}))
		runRejected(t, e, []rejected{
			{"SetUser", setUserCall(e, "", service.SetUserInput{JWT: &other}), known.VerificationFailed, []string{"input", "jwt"}},
			{"AudienceList", setUserCall(e, "", service.SetUserInput{JWT: &others}), known.VerificationFailed, []string{"input", "jwt"}},
			{"Identify", identifyCall(e, "", service.IdentifyInput{JWT: &other}), known.VerificationFailed, []string{"input", "jwt"}},
		})
		mine := signJWT(t, jwt.SigningMethodEdDSA, edPriv, edKey.ID, jwtClaims(clock, jwt.MapClaims{"id": "jwt-aud", "aud": e.appID()}))
		wantVerified(t, e, setUser(t, e, "", service.SetUserInput{JWT: &mine}), known.VerifiedByJWT, clock.Now())
	})

	rsaPriv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	psKey := addKey(t, e, spkiPEM(t, &rsaPriv.PublicKey), str("PS256"))
	t.Run("PS256KeyRefusesRS256", func(t *testing.T) {
		if psKey.Algorithm != "PS256" {
			t.Fatalf("algorithm = %s, want PS256", psKey.Algorithm)
		}
		ps := signJWT(t, jwt.SigningMethodPS256, rsaPriv, psKey.ID, jwtClaims(clock, jwt.MapClaims{"id": "jwt-ps"}))
		wantVerified(t, e, setUser(t, e, "", service.SetUserInput{JWT: &ps}), known.VerifiedByJWT, clock.Now())
		rsKid := signJWT(t, jwt.SigningMethodRS256, rsaPriv, psKey.ID, jwtClaims(clock, jwt.MapClaims{"id": "jwt-rs"}))
		rsNoKid := signJWT(t, jwt.SigningMethodRS256, rsaPriv, "", jwtClaims(clock, jwt.MapClaims{"id": "jwt-rs"}))
		runRejected(t, e, []rejected{
			{"RS256WithKid", setUserCall(e, "", service.SetUserInput{JWT: &rsKid}), known.VerificationFailed, []string{"input", "jwt"}},
			{"RS256WithoutKid", setUserCall(e, "", service.SetUserInput{JWT: &rsNoKid}), known.VerificationFailed, []string{"input", "jwt"}},
		})
	})

	t.Run("AddJwtPublicKeyRefusals", func(t *testing.T) {
		edPKCS8, err := x509.MarshalPKCS8PrivateKey(edPriv)
		if err != nil {
			t.Fatal(err)
		}
		p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			t.Fatal(err)
		}
		otherEd, _ := newEd25519(t)
		cases := []struct {
			name      string
			pem       string
			algorithm *string
			field     string
		}{
			{"PrivateKeyPEM", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: edPKCS8})), nil, "pem"},
			{"P384Key", spkiPEM(t, &p384.PublicKey), nil, "pem"},
			{"RSA1024Key", spkiPEM(t, &rsa1024.PublicKey), nil, "pem"},
			{"Garbage", "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n", nil, "pem"},
			{"NotPEM", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA", nil, "pem"},
			{"Ed25519AsES256", spkiPEM(t, otherEd), str("ES256"), "algorithm"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := jwtKeys(t, e)
				_, err := e.svc.AddJwtPublicKey(e.ctx, tc.pem, tc.algorithm)
				wantCode(t, err, known.Invalid, "input", tc.field)
				if after := jwtKeys(t, e); after != before {
					t.Fatalf("a refused key changed the keys:\nbefore %s\nafter  %s", before, after)
				}
			})
		}
		if keys, err := e.svc.JwtPublicKeys(e.ctx); err != nil || len(keys) == 0 || keys[0].ID != psKey.ID || keys[0].ExpiresAt != nil {
			t.Fatalf("current key after refusals = %v, %v; want %s with no expiry", keys, err, psKey.ID)
		}
	})

	// Key replacement, in a project of its own so that its key list is exactly the two keys.
	t.Run("KeyReplacement", func(t *testing.T) {
		r := otherProjectEnv(t, e, "Key rotation")
		pub1, priv1 := newEd25519(t)
		pub2, priv2 := newEd25519(t)
		k1 := addKey(t, r, spkiPEM(t, pub1), nil)
		clock.Advance(10 * time.Minute)
		replacedAt := clock.Now()
		k2 := addKey(t, r, spkiPEM(t, pub2), nil)
		old := func(kid, id string) string {
			return signJWT(t, jwt.SigningMethodEdDSA, priv1, kid, jwtClaims(clock, jwt.MapClaims{"id": id}))
		}
		t.Run("ListsBothKeys", func(t *testing.T) {
			keys, err := r.svc.JwtPublicKeys(r.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != 2 || keys[0].ID != k2.ID || keys[0].ExpiresAt != nil || keys[1].ID != k1.ID ||
				keys[1].ExpiresAt == nil || !keys[1].ExpiresAt.Equal(replacedAt.Add(2*time.Hour)) {
				t.Fatalf("keys = %s; want %s (current) then %s expiring at %v", jwtKeys(t, r), k2.ID, k1.ID, replacedAt.Add(2*time.Hour))
			}
		})
		t.Run("NewKeyWorksAtOnce", func(t *testing.T) {
			tok := signJWT(t, jwt.SigningMethodEdDSA, priv2, k2.ID, jwtClaims(clock, jwt.MapClaims{"id": "kr-new"}))
			wantVerified(t, r, setUser(t, r, "", service.SetUserInput{JWT: &tok}), known.VerifiedByJWT, clock.Now())
		})
		t.Run("OldKeyAcceptedAt1h59m", func(t *testing.T) {
			clock.Set(replacedAt.Add(time.Hour + 59*time.Minute))
			tok := old(k1.ID, "kr-old-1")
			wantVerified(t, r, setUser(t, r, "", service.SetUserInput{JWT: &tok}), known.VerifiedByJWT, clock.Now())
			noKid := old("", "kr-old-2")
			wantVerified(t, r, setUser(t, r, "", service.SetUserInput{JWT: &noKid}), known.VerifiedByJWT, clock.Now())
		})
		t.Run("OldKeyRefusedAt2h01m", func(t *testing.T) {
			clock.Set(replacedAt.Add(2*time.Hour + time.Minute))
			withKid, noKid := old(k1.ID, "kr-old-3"), old("", "kr-old-3")
			runRejected(t, r, []rejected{
				{"WithKid", setUserCall(r, "", service.SetUserInput{JWT: &withKid}), known.VerificationFailed, []string{"input", "jwt"}},
				{"WithoutKid", setUserCall(r, "", service.SetUserInput{JWT: &noKid}), known.VerificationFailed, []string{"input", "jwt"}},
				{"Identify", identifyCall(r, "", service.IdentifyInput{JWT: &withKid}), known.VerificationFailed, []string{"input", "jwt"}},
			})
			keys, err := r.svc.JwtPublicKeys(r.ctx)
			if err != nil || len(keys) != 1 || keys[0].ID != k2.ID {
				t.Fatalf("keys = %s, %v; want only %s", jwtKeys(t, r), err, k2.ID)
			}
		})
		t.Run("NewKeyStillWorks", func(t *testing.T) {
			tok := signJWT(t, jwt.SigningMethodEdDSA, priv2, k2.ID, jwtClaims(clock, jwt.MapClaims{"id": "kr-old-3"}))
			wantVerified(t, r, setUser(t, r, "", service.SetUserInput{JWT: &tok}), known.VerifiedByJWT, clock.Now())
		})
	})
}

// TestIdentificationToken: seed 004's tokens verify identify together with the same email,
// for 12 hours, reusably; names go only to a new or nameless user.
func TestIdentificationToken(t *testing.T) {
	e, clock := clockedEnv(t)
	made := clock.Now()
	tok, expires, err := e.svc.CreateIdentificationToken(e.ctx, "Gob@Bluth.com", str("Gob"), str("Bluth"))
	if err != nil {
		t.Fatalf("CreateIdentificationToken: %v", err)
	}
	t.Run("CreatedFor12Hours", func(t *testing.T) {
		if tok == "" || !expires.Equal(made.Add(12*time.Hour)) {
			t.Fatalf("token %q expires %v, want a token expiring at %v", tok, expires, made.Add(12*time.Hour))
		}
	})
	var gob known.UserID
	t.Run("VerifiesWithSameEmailAnyCase", func(t *testing.T) {
		ss := identify(t, e, "", service.IdentifyInput{Email: str("gob@bluth.com"), IdentificationToken: &tok})
		u := wantVerified(t, e, ss, known.VerifiedByToken, clock.Now())
		if opt(u.FirstName) != "Gob" || opt(u.LastName) != "Bluth" || opt(u.Name) != "Gob Bluth" || opt(u.Email) != "gob@bluth.com" {
			t.Fatalf("user = %+v, want Gob Bluth, gob@bluth.com", u)
		}
		gob = u.ID
	})
	t.Run("Reusable", func(t *testing.T) {
		clock.Advance(time.Hour)
		ss := identify(t, e, "", service.IdentifyInput{Email: str("GOB@bluth.com"), IdentificationToken: &tok})
		wantVerified(t, e, ss, known.VerifiedByToken, clock.Now())
		if *ss.UserID != gob {
			t.Fatalf("second use matched %s, want %s", *ss.UserID, gob)
		}
	})
	other := e.newProject(t, "Other")
	otherTok, _, err := e.svc.CreateIdentificationToken(e.as(t, other.SecretKey), "gob@bluth.com", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	failed := func(name string, in service.IdentifyInput) rejected {
		return rejected{name, identifyCall(e, "", in), known.VerificationFailed, []string{"input", "identificationToken"}}
	}
	t.Run("Refusals", func(t *testing.T) {
		runRejected(t, e, []rejected{
			failed("AnotherEmail", service.IdentifyInput{Email: str("lindsay@bluth.com"), IdentificationToken: &tok}),
			failed("WithoutEmail", service.IdentifyInput{IdentificationToken: &tok}),
			failed("UserIDWithoutEmail", service.IdentifyInput{UserID: str("gob"), IdentificationToken: &tok}),
			failed("UnknownToken", service.IdentifyInput{Email: str("gob@bluth.com"), IdentificationToken: str("idt_unknown")}),
			failed("TokenOfAnotherProject", service.IdentifyInput{Email: str("gob@bluth.com"), IdentificationToken: &otherTok}),
		})
	})
	t.Run("NamesOnlyForNewOrNamelessUser", func(t *testing.T) {
		lucy := identify(t, e, "", service.IdentifyInput{Email: str("lucille@bluth.com"), Name: str("Lucy Austero")})
		lt, _, err := e.svc.CreateIdentificationToken(e.ctx, "lucille@bluth.com", str("Lucille"), str("Bluth"))
		if err != nil {
			t.Fatal(err)
		}
		// The browser that claimed the email proves it: the proof lands on the user it made.
		ss := identify(t, e, lucy.Token, service.IdentifyInput{Email: str("lucille@bluth.com"), IdentificationToken: &lt})
		u := wantVerified(t, e, ss, known.VerifiedByToken, clock.Now())
		if u.ID != *lucy.UserID || opt(u.Name) != "Lucy Austero" || opt(u.FirstName) != "Lucy" || opt(u.LastName) != "Austero" {
			t.Fatalf("user %s named %q (%q %q), want %s keeping Lucy Austero", u.ID, opt(u.Name), opt(u.FirstName), opt(u.LastName), *lucy.UserID)
		}
		buster := identify(t, e, "", service.IdentifyInput{Email: str("buster@bluth.com")})
		bt, _, err := e.svc.CreateIdentificationToken(e.ctx, "buster@bluth.com", str("Buster"), str("Bluth"))
		if err != nil {
			t.Fatal(err)
		}
		ss = identify(t, e, buster.Token, service.IdentifyInput{Email: str("buster@bluth.com"), IdentificationToken: &bt})
		u = wantVerified(t, e, ss, known.VerifiedByToken, clock.Now())
		if u.ID != *buster.UserID || opt(u.FirstName) != "Buster" || opt(u.LastName) != "Bluth" {
			t.Fatalf("nameless user %s became %q %q, want %s Buster Bluth", u.ID, opt(u.FirstName), opt(u.LastName), *buster.UserID)
		}
	})
	t.Run("ValidUntil12Hours", func(t *testing.T) {
		clock.Set(made.Add(12*time.Hour - time.Second))
		ss := identify(t, e, "", service.IdentifyInput{Email: str("gob@bluth.com"), IdentificationToken: &tok})
		wantVerified(t, e, ss, known.VerifiedByToken, clock.Now())
	})
	t.Run("ExpiredAfter12Hours", func(t *testing.T) {
		clock.Set(made.Add(12*time.Hour + time.Second))
		runRejected(t, e, []rejected{failed("Expired", service.IdentifyInput{Email: str("gob@bluth.com"), IdentificationToken: &tok})})
	})
	t.Run("CreateBadEmailInvalid", func(t *testing.T) {
		for _, bad := range []string{"not-an-email", "", "gob@bluth"} {
			_, _, err := e.svc.CreateIdentificationToken(e.ctx, bad, str("Gob"), nil)
			wantCode(t, err, known.Invalid, "input", "email")
		}
	})
	t.Run("CreateWithoutSecretKeyUnauthenticated", func(t *testing.T) {
		_, _, err := e.svc.CreateIdentificationToken(context.Background(), "gob@bluth.com", nil, nil)
		wantCode(t, err, known.Unauthenticated)
		w := anonymous(t, e)
		_, _, err = e.svc.CreateIdentificationToken(widgetCtx(w.Token), "gob@bluth.com", nil, nil)
		wantCode(t, err, known.Unauthenticated)
	})
}

// TestVerificationPolicy: requireVerification accepts proven claims only; a claimed session
// never attaches to, changes or reads a verified user; a verified session sees the user's
// conversations from every device; each message records whether its session was verified;
// a proof vouches only for the identity it covers.
func TestVerificationPolicy(t *testing.T) {
	e, clock := clockedEnv(t)
	secret := e.project.IdentitySecret
	require := func(on bool) {
		t.Helper()
		if _, err := e.svc.UpdateProject(e.ctx, service.UpdateProjectInput{RequireVerification: &on}); err != nil {
			t.Fatal(err)
		}
	}

	require(true)
	t.Run("RequiredClaimWithProofWorks", func(t *testing.T) {
		ss := identify(t, e, "", service.IdentifyInput{UserID: str("req-1"), UserHash: str(hashOf(secret, "req-1"))})
		wantVerified(t, e, ss, known.VerifiedByHMAC, clock.Now())
		pub, priv := newEd25519(t)
		k := addKey(t, e, spkiPEM(t, pub), nil)
		tok := signJWT(t, jwt.SigningMethodEdDSA, priv, k.ID, jwtClaims(clock, jwt.MapClaims{"id": "req-2"}))
		wantVerified(t, e, setUser(t, e, "", service.SetUserInput{JWT: &tok}), known.VerifiedByJWT, clock.Now())
		it, _, err := e.svc.CreateIdentificationToken(e.ctx, "req3@example.com", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ss = identify(t, e, "", service.IdentifyInput{Email: str("req3@example.com"), IdentificationToken: &it})
		wantVerified(t, e, ss, known.VerifiedByToken, clock.Now())
	})
	t.Run("RequiredClaimWithoutProof", func(t *testing.T) {
		runRejected(t, e, []rejected{
			{"NewUser", identifyCall(e, "", service.IdentifyInput{UserID: str("req-4")}), known.VerificationRequired, []string{"input"}},
			{"ExistingUser", setUserCall(e, "", service.SetUserInput{ID: str("req-1"), Name: str("Mallory")}), known.VerificationRequired, []string{"input"}},
		})
	})
	require(false)

	// Pat talks to support unproven, then proves who they are on the same device.
	s0 := claimed(t, e, "pat", service.IdentifyInput{Email: str("pat@example.com"), Name: str("Pat Vee"), Metadata: map[string]any{"plan": "pro"}})
	conv0 := startConversation(t, e, s0.Token, "before proof")
	if _, err := e.svc.SendMessage(widgetCtx(s0.Token), nil, conv0.ID, "still unproven"); err != nil {
		t.Fatal(err)
	}
	s0v := identify(t, e, s0.Token, service.IdentifyInput{UserID: str("pat"), UserHash: str(hashOf(secret, "pat"))})
	pat := *s0.UserID
	if _, err := e.svc.SendMessage(widgetCtx(s0v.Token), nil, conv0.ID, "after proof"); err != nil {
		t.Fatal(err)
	}

	t.Run("ProofOnSameDeviceVerifiesSession", func(t *testing.T) {
		wantVerified(t, e, s0v, known.VerifiedByHMAC, clock.Now())
		if *s0v.UserID != pat || s0v.VisitorID != s0.VisitorID {
			t.Fatalf("verified session %+v, want user %s and visitor %s", s0v, pat, s0.VisitorID)
		}
	})
	t.Run("MessagesRecordVerification", func(t *testing.T) {
		ms, _, err := e.svc.Messages(e.ctx, conv0, known.Page{First: 10})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, m := range ms {
			got[m.Body] = m.Verified
		}
		want := map[string]bool{"before proof": false, "still unproven": false, "after proof": true}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("message verified flags = %v, want %v", got, want)
		}
	})
	var s1 *known.Session
	var conv1 *known.Conversation
	t.Run("ProofFromFreshSessionSeesEveryDevice", func(t *testing.T) {
		s1 = identify(t, e, "", service.IdentifyInput{UserID: str("pat"), UserHash: str(hashOf(secret, "pat"))})
		wantVerified(t, e, s1, known.VerifiedByHMAC, clock.Now())
		if *s1.UserID != pat || s1.VisitorID == s0.VisitorID {
			t.Fatalf("second device's session %+v, want user %s on a visitor of its own", s1, pat)
		}
		conv1 = startConversation(t, e, s1.Token, "from my phone")
		for _, token := range []string{s1.Token, s0v.Token} {
			got := sessionConversations(t, e, token)
			if len(got) != 2 || !slices.Contains(got, conv0.ID) || !slices.Contains(got, conv1.ID) {
				t.Fatalf("a verified session sees %v, want both devices' %s and %s", got, conv0.ID, conv1.ID)
			}
		}
		ms, _, err := e.svc.Messages(widgetCtx(s1.Token), conv0, known.Page{First: 10})
		if err != nil || len(ms) != 3 {
			t.Fatalf("the second device reads %d messages of the first's conversation (%v), want 3", len(ms), err)
		}
	})
	if s1 == nil {
		t.FailNow()
	}

	anon := anonymous(t, e)
	other := claimed(t, e, "olive", service.IdentifyInput{})
	t.Run("ClaimOfVerifiedUserRefused", func(t *testing.T) {
		runRejected(t, e, []rejected{
			{"ExternalID", identifyCall(e, "", service.IdentifyInput{UserID: str("pat")}), known.VerificationRequired, []string{"input", "userId"}},
			{"ExternalIDWithChanges", identifyCall(e, "", service.IdentifyInput{UserID: str("pat"), Name: str("Mallory"), Metadata: map[string]any{"plan": "free"}}),
				known.VerificationRequired, []string{"input", "userId"}},
			{"Email", identifyCall(e, "", service.IdentifyInput{Email: str("pat@example.com"), Name: str("Mallory")}), known.VerificationRequired, []string{"input", "email"}},
			{"EmailOtherCase", identifyCall(e, "", service.IdentifyInput{Email: str("PAT@Example.com")}), known.VerificationRequired, []string{"input", "email"}},
			{"FromAnonymousSession", identifyCall(e, anon.Token, service.IdentifyInput{UserID: str("pat")}), known.VerificationRequired, []string{"input", "userId"}},
			{"FromClaimedSession", identifyCall(e, other.Token, service.IdentifyInput{UserID: str("pat")}), known.VerificationRequired, []string{"input", "userId"}},
			{"SetUser", setUserCall(e, "", service.SetUserInput{ID: str("pat"), Attrs: map[string]any{"plan": "free"}}), known.VerificationRequired, []string{"input", "id"}},
		})
	})
	t.Run("VerifiedUserUnchanged", func(t *testing.T) {
		u := readUser(t, e, pat)
		vs := slices.Clone(u.VisitorIDs)
		slices.Sort(vs)
		want := []known.VisitorID{s0.VisitorID, s1.VisitorID}
		slices.Sort(want)
		if !u.Verified || opt(u.Name) != "Pat Vee" || opt(u.Email) != "pat@example.com" || jsonText(t, u.Metadata) != `{"plan":"pro"}` || !slices.Equal(vs, want) {
			t.Fatalf("verified user changed: %+v", u)
		}
	})
	t.Run("ClaimedSessionReadsNothingOfTheirs", func(t *testing.T) {
		for _, token := range []string{anon.Token, other.Token} {
			got := sessionConversations(t, e, token)
			if slices.Contains(got, conv0.ID) || slices.Contains(got, conv1.ID) {
				t.Fatalf("a claimed session reads the verified user's conversations: %v", got)
			}
			_, err := e.svc.SendMessage(widgetCtx(token), nil, conv0.ID, "let me in")
			wantCode(t, err, known.NotFound, "input", "conversationId")
			_, _, err = e.svc.Messages(widgetCtx(token), conv1, known.Page{First: 10})
			wantCode(t, err, known.NotFound)
		}
	})

	// A proof vouches for one identity: a userHash for the userId (or, without one, the email),
	// an identification token for the email. Another identity sent alongside is only claimed,
	// and a claim never reaches a verified user.
	t.Run("ProofCoversOnlyItsIdentity", func(t *testing.T) {
		mt, _, err := e.svc.CreateIdentificationToken(e.ctx, "mallory@example.com", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		et, _, err := e.svc.CreateIdentificationToken(e.ctx, "eve@example.com", str("Eve"), str("Verified"))
		if err != nil {
			t.Fatal(err)
		}
		eve := identify(t, e, "", service.IdentifyInput{Email: str("eve@example.com"), IdentificationToken: &et})
		wantVerified(t, e, eve, known.VerifiedByToken, clock.Now())
		runRejected(t, e, []rejected{
			// Mallory's own token, with Pat's userId.
			{"TokenForOwnEmailWithVerifiedUsersUserID", identifyCall(e, "", service.IdentifyInput{UserID: str("pat"), Email: str("mallory@example.com"), IdentificationToken: &mt}),
				known.VerificationRequired, []string{"input", "userId"}},
			// Mallory's own userHash, with Eve's email (Eve has no userId).
			{"UserHashOfOwnIDWithVerifiedUsersEmail", identifyCall(e, "", service.IdentifyInput{UserID: str("mallory-2"), Email: str("eve@example.com"), UserHash: str(hashOf(secret, "mallory-2"))}),
				known.VerificationRequired, []string{"input", "email"}},
		})
		t.Run("VictimsUnchanged", func(t *testing.T) {
			if u := readUser(t, e, pat); ext(u) != "pat" || opt(u.Email) != "pat@example.com" || len(u.VisitorIDs) != 2 {
				t.Errorf("Pat became externalId %q, email %q, %d visitors; want pat, pat@example.com, 2", ext(u), opt(u.Email), len(u.VisitorIDs))
			}
			if u := readUser(t, e, *eve.UserID); u.ExternalID != nil || opt(u.Email) != "eve@example.com" || len(u.VisitorIDs) != 1 {
				t.Errorf("Eve became externalId %q, email %q, %d visitors; want none, eve@example.com, 1", ext(u), opt(u.Email), len(u.VisitorIDs))
			}
		})
		// Bob is only claimed; Mallory's token for her own email must not give her a verified
		// session as Bob that reads Bob's conversations from his device.
		bob := claimed(t, e, "bob", service.IdentifyInput{})
		bobConv := startConversation(t, e, bob.Token, "bob's private question")
		mt3, _, err := e.svc.CreateIdentificationToken(e.ctx, "mallory3@example.com", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ss, err := identifyErr(e, "", service.IdentifyInput{UserID: str("bob"), Email: str("mallory3@example.com"), IdentificationToken: &mt3})
		switch code := known.ErrorCode(err); {
		case err == nil:
			if got := sessionConversations(t, e, ss.Token); slices.Contains(got, bobConv.ID) {
				t.Errorf("a token for mallory3@example.com sent with userId bob gave a session (level %s) that reads Bob's conversation %s", ss.Level, bobConv.ID)
			}
			if u := userByExt(t, e, "bob"); u != nil && u.Verified {
				t.Errorf("Bob became verified (%v) by a token for another email; his email is now %q", *u.VerificationMethod, opt(u.Email))
			}
		case code != known.VerificationRequired && code != known.VerificationFailed && code != known.IdentityConflict:
			t.Errorf("error %v, want VERIFICATION_REQUIRED, VERIFICATION_FAILED or IDENTITY_CONFLICT", err)
		}
		if u := userByExt(t, e, "bob"); u == nil || u.Verified || opt(u.Email) == "mallory3@example.com" {
			t.Errorf("Bob changed: %+v", u)
		}
	})
}
