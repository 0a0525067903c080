// Package session signs and checks widget session tokens. A token names its session, project,
// visitor, user and verification level, and expires; it is honoured only while its session,
// kept in the store, is live, so that resetSession ends it on every Known instance.
package session

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/knownhq/known/secret"
)

// Claims are what a token says.
type Claims struct {
	SessionID string `json:"sid"`
	ProjectID string `json:"app"`
	VisitorID string `json:"vid"`
	UserID    string `json:"uid,omitempty"`
	Level     string `json:"lvl"`
	Method    string `json:"mth,omitempty"`
	IssuedAt  int64  `json:"iat"`
	ExpiresAt int64  `json:"exp"`
}

// Errors of Verify.
var (
	ErrMalformed = errors.New("session: not a widget session token")
	ErrSignature = errors.New("session: bad signature")
	ErrExpired   = errors.New("session: token expired")
)

const prefix = "ks1."

// MaxLen is the longest token Verify reads; anything longer is malformed.
const MaxLen = 2048

// Signer signs and verifies tokens with a key derived from KNOWN_SECRET, so that every
// instance with the same secret accepts every other's tokens.
type Signer struct{ key []byte }

// NewSigner returns a Signer for the master secret.
func NewSigner(master []byte) *Signer {
	return &Signer{key: secret.Derive(master, secret.PurposeSession)}
}

func (s *Signer) mac(payload string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(prefix + payload))
	return m.Sum(nil)
}

// Sign returns the token for c.
func (s *Signer) Sign(c Claims) string {
	b, _ := json.Marshal(c) // a struct of strings and ints always marshals
	payload := base64.RawURLEncoding.EncodeToString(b)
	return prefix + payload + "." + base64.RawURLEncoding.EncodeToString(s.mac(payload))
}

// Verify checks a token's signature and expiry at now and returns its claims.
func (s *Signer) Verify(token string, now time.Time) (Claims, error) {
	var c Claims
	if len(token) > MaxLen {
		return c, ErrMalformed
	}
	rest, ok := strings.CutPrefix(token, prefix)
	if !ok {
		return c, ErrMalformed
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok {
		return c, ErrMalformed
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return c, ErrMalformed
	}
	if !hmac.Equal(got, s.mac(payload)) {
		return c, ErrSignature
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || json.Unmarshal(raw, &c) != nil || c.SessionID == "" || c.ProjectID == "" {
		return Claims{}, ErrMalformed
	}
	if now.Unix() >= c.ExpiresAt {
		return Claims{}, ErrExpired
	}
	return c, nil
}
