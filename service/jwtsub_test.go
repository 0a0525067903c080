package service_test

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/knownhq/known"
	"github.com/knownhq/known/service"
)

// TestJWTSubject: a JWT's standard sub claim is the user id when the token signs no id, and
// an id, when signed, wins over sub.
func TestJWTSubject(t *testing.T) {
	e, clock := clockedEnv(t)
	pub, priv := newEd25519(t)
	k := addKey(t, e, spkiPEM(t, pub), nil)

	t.Run("SubIsTheUserIDWithoutID", func(t *testing.T) {
		tok := signJWT(t, jwt.SigningMethodEdDSA, priv, k.ID, jwtClaims(clock, jwt.MapClaims{"sub": "sub-1", "email": "sub@example.com"}))
		ss := setUser(t, e, "", service.SetUserInput{JWT: &tok})
		u := wantVerified(t, e, ss, known.VerifiedByJWT, clock.Now())
		if ext(u) != "sub-1" {
			t.Fatalf("externalId = %q, want the sub claim", ext(u))
		}
		if id := u.Identity(known.IdentityExternalID); id == nil || !id.Proven {
			t.Fatalf("the sub identity is %+v, want proven", id)
		}
	})
	t.Run("IDWinsOverSub", func(t *testing.T) {
		tok := signJWT(t, jwt.SigningMethodEdDSA, priv, k.ID, jwtClaims(clock, jwt.MapClaims{"id": "id-2", "sub": "sub-2"}))
		ss := setUser(t, e, "", service.SetUserInput{JWT: &tok})
		if u := wantVerified(t, e, ss, known.VerifiedByJWT, clock.Now()); ext(u) != "id-2" {
			t.Fatalf("externalId = %q, want the id claim", ext(u))
		}
	})
}
