package verify

import (
	"crypto/ed25519"
	"testing"
	"time"
)

// FuzzJWT: no input makes JWT panic, and nothing but a token signed by the key passes.
func FuzzJWT(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	s := signer{key: Key{ID: "k", Algorithm: EdDSA, Public: pub}, priv: priv}
	f.Add(rfc7515A3)
	f.Add("eyJhbGciOiJub25lIn0.eyJleHAiOjF9.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := JWT(token, []Key{s.key}, "app_1", time.Unix(1_800_000_000, 0))
		if err == nil && c.ExpiresAt == nil {
			t.Fatalf("accepted %q without exp", token)
		}
	})
}

// FuzzParsePublicKey: no input makes ParsePublicKey panic, and an accepted key has an
// accepted algorithm.
func FuzzParsePublicKey(f *testing.F) {
	f.Add("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n", "")
	f.Add("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----", "RS256")
	f.Fuzz(func(t *testing.T, text, want string) {
		key, alg, err := ParsePublicKey(text, Algorithm(want))
		if err != nil {
			return
		}
		if key == nil {
			t.Fatal("nil key without error")
		}
		switch alg {
		case EdDSA, ES256, RS256, PS256:
		default:
			t.Fatalf("algorithm %q", alg)
		}
	})
}

// FuzzUserHash: no input panics, and a hash only matches its own value and secret.
func FuzzUserHash(f *testing.F) {
	f.Add([]byte("Jefe"), "what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
	f.Add([]byte(""), "", "")
	f.Fuzz(func(t *testing.T, secret []byte, value, hash string) {
		if UserHash([][]byte{secret}, value, hash) && UserHash([][]byte{append(secret, 'x')}, value, hash) {
			t.Fatalf("one hash matches two secrets")
		}
	})
}
