package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func b64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func spki(t testing.TB, key crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// RFC 7515 appendix A.3: ES256. Its payload is {"iss":"joe","exp":1300819380,...}.
const rfc7515A3 = "eyJhbGciOiJFUzI1NiJ9." +
	"eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ." +
	"DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"

func TestRFC7515A3ES256(t *testing.T) {
	pub := &ecdsa.PublicKey{Curve: elliptic.P256(),
		X: new(big.Int).SetBytes(b64(t, "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU")),
		Y: new(big.Int).SetBytes(b64(t, "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"))}
	key, alg, err := ParsePublicKey(spki(t, pub), "")
	if err != nil || alg != ES256 {
		t.Fatalf("ParsePublicKey = %v, %v", alg, err)
	}
	exp := time.Unix(1300819380, 0)
	c, err := JWT(rfc7515A3, []Key{{ID: "a3", Algorithm: alg, Public: key}}, "app", exp.Add(-time.Minute))
	if err != nil {
		t.Fatalf("the RFC's token does not verify at its time: %v", err)
	}
	if c.Issuer != "joe" {
		t.Fatalf("iss = %q", c.Issuer)
	}
	if _, err := JWT(rfc7515A3, []Key{{ID: "a3", Algorithm: alg, Public: key}}, "app", exp.Add(Leeway+time.Second)); err == nil {
		t.Fatal("accepted after exp + leeway")
	}
}

// RFC 8037 appendix A.4: Ed25519. Its payload is not a claims set, so the signature layer
// that JWT relies on is checked directly, under both names of the algorithm.
func TestRFC8037A4Ed25519(t *testing.T) {
	pub := ed25519.PublicKey(b64(t, "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"))
	key, alg, err := ParsePublicKey(spki(t, pub), "")
	if err != nil || alg != EdDSA {
		t.Fatalf("ParsePublicKey = %v, %v", alg, err)
	}
	input := "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
	sig := b64(t, "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg")
	for _, name := range []string{"EdDSA", "Ed25519"} {
		m := jwt.GetSigningMethod(name)
		if m == nil {
			t.Fatalf("%s is not a signing method", name)
		}
		if err := m.Verify(input, sig, key); err != nil {
			t.Fatalf("%s: the RFC's signature does not verify: %v", name, err)
		}
		if err := m.Verify(input+"x", sig, key); err == nil {
			t.Fatalf("%s: a changed input verifies", name)
		}
	}
}

// RFC 4231 test case 2: HMAC-SHA256 with key "Jefe".
func TestUserHashRFC4231Case2(t *testing.T) {
	const data, mac = "what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
	cases := []struct {
		name    string
		secrets [][]byte
		hash    string
		want    bool
	}{
		{"Matches", [][]byte{[]byte("Jefe")}, mac, true},
		{"MatchesAnyLiveSecret", [][]byte{[]byte("new"), []byte("Jefe")}, mac, true},
		{"OtherSecretFails", [][]byte{[]byte("jefe")}, mac, false},
		{"OneBitOffFails", [][]byte{[]byte("Jefe")}, mac[:63] + "2", false},
		{"NotHexFails", [][]byte{[]byte("Jefe")}, "zz" + mac[2:], false},
		{"ShortFails", [][]byte{[]byte("Jefe")}, mac[:62], false},
		{"EmptyFails", [][]byte{[]byte("Jefe")}, "", false},
		{"NoSecretFails", nil, mac, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := UserHash(c.secrets, data, c.hash); got != c.want {
				t.Fatalf("UserHash = %v, want %v", got, c.want)
			}
		})
	}
}

type signer struct {
	key  Key
	priv crypto.Signer
	m    jwt.SigningMethod
}

func newSigner(t testing.TB, alg Algorithm, id string) signer {
	t.Helper()
	var priv crypto.Signer
	var err error
	var m jwt.SigningMethod
	switch alg {
	case EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
		m = jwt.SigningMethodEdDSA
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		m = jwt.SigningMethodES256
	case RS256, PS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
		m = jwt.GetSigningMethod(string(alg))
	}
	if err != nil {
		t.Fatal(err)
	}
	pub, got, err := ParsePublicKey(spki(t, priv.Public()), alg)
	if err != nil || got != alg {
		t.Fatalf("ParsePublicKey(%s) = %v, %v", alg, got, err)
	}
	return signer{key: Key{ID: id, Algorithm: alg, Public: pub}, priv: priv, m: m}
}

func (s signer) sign(t testing.TB, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(s.m, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	out, err := tok.SignedString(s.priv)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func claimsAt(exp time.Time) jwt.MapClaims {
	return jwt.MapClaims{"id": "user-123", "email": "jane@example.com", "exp": exp.Unix(), "iat": now.Unix()}
}

func TestJWTPerAlgorithm(t *testing.T) {
	for _, alg := range []Algorithm{EdDSA, ES256, RS256, PS256} {
		t.Run(string(alg), func(t *testing.T) {
			s := newSigner(t, alg, "k1")
			c, err := JWT(s.sign(t, claimsAt(now.Add(5*time.Minute)), nil), []Key{s.key}, "app_1", now)
			if err != nil {
				t.Fatal(err)
			}
			if c.UserID != "user-123" || c.Email == nil || *c.Email != "jane@example.com" || c.Name != nil {
				t.Fatalf("claims = %+v", c)
			}
		})
	}
	t.Run("Ed25519NameAccepted", func(t *testing.T) {
		s := newSigner(t, EdDSA, "k1")
		s.m = jwt.GetSigningMethod("Ed25519")
		if _, err := JWT(s.sign(t, claimsAt(now.Add(time.Minute)), nil), []Key{s.key}, "app_1", now); err != nil {
			t.Fatal(err)
		}
	})
}

func TestJWTRefusals(t *testing.T) {
	ed := newSigner(t, EdDSA, "ed")
	other := newSigner(t, EdDSA, "other")
	es := newSigner(t, ES256, "es")
	keys := []Key{ed.key, es.key}
	valid := ed.sign(t, claimsAt(now.Add(5*time.Minute)), nil)
	parts := strings.Split(valid, ".")

	// alg none: header {"alg":"none"}, no signature.
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	// HS256 keyed with the public key's bytes: the classic algorithm-confusion attack.
	edPub := []byte(ed.key.Public.(ed25519.PublicKey))
	hs, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claimsAt(now.Add(time.Minute))).SignedString(edPub)
	if err != nil {
		t.Fatal(err)
	}
	hsPEM, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claimsAt(now.Add(time.Minute))).SignedString([]byte(spki(t, ed.key.Public)))
	if err != nil {
		t.Fatal(err)
	}
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"id":"admin","exp":`+itoa(now.Add(time.Minute).Unix())+`}`)) + "." + parts[2]
	// An Ed25519 key's signature presented as ES256: the header alg must be the key's.
	mismatch := func() string {
		s := ed
		s.m = jwt.SigningMethodEdDSA
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","typ":"JWT"}`))
		sig, err := s.m.Sign(h+"."+parts[1], s.priv)
		if err != nil {
			t.Fatal(err)
		}
		return h + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	}()

	cases := []struct {
		name  string
		token string
		keys  []Key
	}{
		{"AlgNone", none, keys},
		{"HS256WithPublicKeyBytes", hs, keys},
		{"HS256WithPublicKeyPEM", hsPEM, keys},
		{"SignedByAnotherKey", other.sign(t, claimsAt(now.Add(time.Minute)), nil), keys},
		{"TamperedPayload", tampered, keys},
		{"HeaderAlgIsNotTheKeys", mismatch, []Key{ed.key}},
		{"ExpiredBeyondLeeway", ed.sign(t, jwt.MapClaims{"exp": now.Add(-Leeway - time.Second).Unix()}, nil), keys},
		{"NoExp", ed.sign(t, jwt.MapClaims{"id": "u"}, nil), keys},
		{"NotBeforeInTheFuture", ed.sign(t, jwt.MapClaims{"exp": now.Add(time.Hour).Unix(), "nbf": now.Add(Leeway + time.Minute).Unix()}, nil), keys},
		{"IssuedInTheFuture", ed.sign(t, jwt.MapClaims{"exp": now.Add(time.Hour).Unix(), "iat": now.Add(Leeway + time.Minute).Unix()}, nil), keys},
		{"LifetimeOver24Hours", ed.sign(t, jwt.MapClaims{"exp": now.Add(25 * time.Hour).Unix(), "iat": now.Unix()}, nil), keys},
		{"LifetimeOver24HoursWithoutIat", ed.sign(t, jwt.MapClaims{"exp": now.Add(25 * time.Hour).Unix()}, nil), keys},
		{"WrongAudience", ed.sign(t, jwt.MapClaims{"exp": now.Add(time.Hour).Unix(), "aud": "app_other"}, nil), keys},
		{"UnknownKid", ed.sign(t, claimsAt(now.Add(time.Minute)), map[string]any{"kid": "nope"}), keys},
		{"KidOfAnotherAlgorithm", ed.sign(t, claimsAt(now.Add(time.Minute)), map[string]any{"kid": "es"}), keys},
		{"NoKeys", valid, nil},
		{"Garbage", "not.a.jwt", keys},
		{"TooLong", strings.Repeat("a", MaxJWT+1), keys},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := JWT(c.token, c.keys, "app_1", now)
			var f *Failure
			if !errors.As(err, &f) {
				t.Fatalf("JWT = %v, want a *Failure", err)
			}
		})
	}
	accepted := []struct {
		name  string
		token string
	}{
		{"ExpiredWithinLeeway", ed.sign(t, jwt.MapClaims{"exp": now.Add(-Leeway + time.Second).Unix()}, nil)},
		{"AudienceNamesTheApp", ed.sign(t, jwt.MapClaims{"exp": now.Add(time.Hour).Unix(), "aud": []string{"x", "app_1"}}, nil)},
		{"KidChoosesTheKey", ed.sign(t, claimsAt(now.Add(time.Minute)), map[string]any{"kid": "ed"})},
		{"Lifetime24Hours", ed.sign(t, jwt.MapClaims{"exp": now.Add(24 * time.Hour).Unix(), "iat": now.Unix()}, nil)},
	}
	for _, c := range accepted {
		t.Run(c.name, func(t *testing.T) {
			if _, err := JWT(c.token, keys, "app_1", now); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func itoa(n int64) string { return big.NewInt(n).String() }

func TestParsePublicKeyRefusals(t *testing.T) {
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(edPriv)
	cases := []struct {
		name string
		pem  string
		want Algorithm
	}{
		{"NotPEM", "hello", ""},
		{"PrivateKey", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), ""},
		{"P384", spki(t, p384.Public()), ""},
		{"RSA1024", spki(t, rsa1024.Public()), ""},
		{"Ed25519AsES256", spki(t, edPub), ES256},
		{"TwoBlocks", spki(t, edPub) + spki(t, edPub), ""},
		{"GarbageDER", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}})), ""},
		{"TooLong", strings.Repeat("a", MaxPEM+1), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, _, err := ParsePublicKey(c.pem, c.want); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func BenchmarkJWT(b *testing.B) {
	for _, alg := range []Algorithm{EdDSA, ES256, RS256, PS256} {
		b.Run(string(alg), func(b *testing.B) {
			s := newSigner(b, alg, "k")
			tok := s.sign(b, claimsAt(now.Add(time.Hour)), nil)
			keys := []Key{s.key}
			for b.Loop() {
				if _, err := JWT(tok, keys, "app_1", now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("UserHash", func(b *testing.B) {
		secrets := [][]byte{[]byte("0123456789abcdef0123456789abcdef")}
		for b.Loop() {
			UserHash(secrets, "user-123", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
		}
	})
}
