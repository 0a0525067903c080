package session

import (
	"strings"
	"testing"
	"time"
)

func TestToken(t *testing.T) {
	s := NewSigner([]byte(strings.Repeat("k", 32)))
	now := time.Unix(1_800_000_000, 0)
	c := Claims{SessionID: "s1", ProjectID: "app_1", VisitorID: "v1", UserID: "u1", Level: "claimed", IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Hour).Unix()}
	tok := s.Sign(c)
	t.Run("RoundTrip", func(t *testing.T) {
		got, err := s.Verify(tok, now)
		if err != nil || got != c {
			t.Fatalf("Verify = %+v, %v", got, err)
		}
	})
	forged := NewSigner([]byte(strings.Repeat("x", 32))).Sign(c)
	payload, sig, _ := strings.Cut(strings.TrimPrefix(tok, prefix), ".")
	other := s.Sign(Claims{SessionID: "s2", ProjectID: "app_2", ExpiresAt: now.Add(time.Hour).Unix()})
	otherPayload, _, _ := strings.Cut(strings.TrimPrefix(other, prefix), ".")
	cases := []struct {
		name  string
		token string
		at    time.Time
		want  error
	}{
		{"ForgedKeyRefused", forged, now, ErrSignature},
		{"SwappedPayloadRefused", prefix + otherPayload + "." + sig, now, ErrSignature},
		{"ExpiredRefused", tok, now.Add(time.Hour), ErrExpired},
		{"NoPrefix", payload + "." + sig, now, ErrMalformed},
		{"NoSignature", prefix + payload, now, ErrMalformed},
		{"BadBase64Signature", prefix + payload + ".!!", now, ErrMalformed},
		{"Empty", "", now, ErrMalformed},
		{"TooLong", prefix + strings.Repeat("a", MaxLen), now, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Verify(tc.token, tc.at); err != tc.want {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzVerify checks that no input makes Verify panic or accept a token it did not sign.
func FuzzVerify(f *testing.F) {
	s := NewSigner([]byte(strings.Repeat("k", 32)))
	now := time.Unix(1_800_000_000, 0)
	f.Add(s.Sign(Claims{SessionID: "s", ProjectID: "p", ExpiresAt: now.Add(time.Hour).Unix()}))
	f.Add("ks1.e30.AAAA")
	f.Add("ks1..")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := s.Verify(token, now)
		if err == nil && s.Sign(c) != token {
			// A valid token must be exactly what Sign makes of its claims, or a second
			// encoding of the same payload got through.
			if _, err2 := s.Verify(s.Sign(c), now); err2 != nil {
				t.Fatalf("accepted %q but its re-signed form fails: %v", token, err2)
			}
		}
	})
}
