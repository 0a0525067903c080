package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/secret"
	"github.com/knownhq/known/verify"
)

// Verification lifetimes (API.md §3, §5).
const (
	// KeyGrace is how long a replaced identity secret or JWT key keeps verifying.
	KeyGrace = 2 * time.Hour
	// IdentificationTokenTTL is how long an identification token is valid (seed 004).
	IdentificationTokenTTL = 12 * time.Hour
)

// RotateIdentitySecret makes a new identity secret for the caller's project and returns it,
// shown this once, with the time until which the previous one keeps verifying user hashes.
func (s *Service) RotateIdentitySecret(ctx context.Context) (string, time.Time, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	now := s.clock()
	fresh := secret.NewIdentitySecret()
	grace := now.Add(KeyGrace)
	if err := s.store.RotateIdentitySecret(ctx, p, s.box.Seal([]byte(fresh), string(p)), now, grace); err != nil {
		return "", time.Time{}, err
	}
	if err := s.record(ctx, p, &known.AuditEntry{Action: known.AuditIdentitySecretRotated}); err != nil {
		return "", time.Time{}, err
	}
	return fresh, grace, nil
}

// AddJwtPublicKey uploads a public key (SPKI PEM) that verifies widget JWTs: it becomes the
// current key and the previous current key expires KeyGrace later. algorithm chooses RS256 or
// PS256 for an RSA key (default RS256); other keys fix their own. A key that is not an SPKI
// Ed25519, P-256 or 2048–4096-bit RSA key is INVALID, with the reason.
func (s *Service) AddJwtPublicKey(ctx context.Context, pemText string, algorithm *string) (*known.JwtKey, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, err
	}
	want := verify.Algorithm("")
	if algorithm != nil {
		want = verify.Algorithm(*algorithm)
	}
	_, alg, err := verify.ParsePublicKey(pemText, want)
	if err != nil {
		field := path("input", "pem")
		if algorithm != nil && strings.Contains(err.Error(), string(want)) {
			field = path("input", "algorithm")
		}
		return nil, known.FieldErrorf(field, known.Invalid, "%s", err)
	}
	now := s.clock()
	k := known.JwtKey{ID: "key_" + secret.Random(12), Algorithm: string(alg), PEM: strings.TrimSpace(pemText) + "\n", CreatedAt: now}
	if err := s.store.AddJwtKey(ctx, p, k, now, now.Add(KeyGrace)); err != nil {
		return nil, err
	}
	if err := s.record(ctx, p, &known.AuditEntry{Action: known.AuditJwtKeyAdded, Subject: &k.ID}); err != nil {
		return nil, err
	}
	return &k, nil
}

// JwtPublicKeys returns the caller's project's live JWT keys, the current one first.
func (s *Service) JwtPublicKeys(ctx context.Context) ([]known.JwtKey, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, err
	}
	return s.store.JwtKeys(ctx, p, s.clock())
}

// CreateIdentificationToken makes a token vouching for email (seed 004), valid
// IdentificationTokenTTL and reusable until then; identify with the token and the same email
// (case-insensitive) is verified (TOKEN). firstName and lastName are written only to a new user
// or one without a name. Only the token's hash is stored.
func (s *Service) CreateIdentificationToken(ctx context.Context, email string, first, last *string) (string, time.Time, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	var v validator
	_, key := v.email(path("input", "email"), &email)
	if key == nil && len(v.errs) == 0 {
		v.add(path("input", "email"), known.Invalid, "email must not be blank")
	}
	t := &known.IdentificationToken{ProjectID: p, FirstName: v.optString(path("input", "firstName"), first),
		LastName: v.optString(path("input", "lastName"), last)}
	if err := v.err(); err != nil {
		return "", time.Time{}, err
	}
	now := s.clock()
	t.EmailKey, t.CreatedAt, t.ExpiresAt = *key, now, now.Add(IdentificationTokenTTL)
	token := "idt_" + secret.Random(32)
	if err := s.store.SaveIdentificationToken(ctx, secret.HashKey(token), t); err != nil {
		return "", time.Time{}, err
	}
	return token, t.ExpiresAt, nil
}

// proofs are the proof fields of identify and setUser.
type proofs struct {
	userHash, jwt, identificationToken *string
}

func failed(field string, format string, args ...any) error {
	return known.FieldErrorf(path("input", field), known.VerificationFailed, format, args...)
}

// checkUserHash verifies a userHash proof of the claim: HMAC-SHA256 of the externalId, or of
// the email when there is none, under a live identity secret.
func (s *Service) checkUserHash(ctx context.Context, wc *widgetCall, c *claim, hash string) error {
	value := c.ext
	if value == nil {
		value = c.email
	}
	if value == nil {
		return failed("userHash", "a userHash proves %s or email: send one of them", c.extField)
	}
	secrets := make([][]byte, 0, len(wc.secrets))
	for _, sv := range wc.secrets {
		b, err := s.box.Open(sv, string(wc.project.ID))
		if err != nil {
			return fmt.Errorf("opening identity secret: %w", err)
		}
		secrets = append(secrets, b)
	}
	candidates := []string{*value}
	if c.ext == nil && lower(*value) != *value {
		candidates = append(candidates, lower(*value)) // the email as the backend may have stored it
	}
	for _, cand := range candidates {
		if verify.UserHash(secrets, cand, hash) {
			return nil
		}
	}
	what := "email"
	if c.ext != nil {
		what = c.extField
	}
	return failed("userHash", "userHash is not the HMAC-SHA256 of this %s under the app's identity secret", what)
}

// checkIdentificationToken verifies an identification token proof: made for this project and
// for the claim's email, and not expired. It returns the token, for its names.
func (s *Service) checkIdentificationToken(ctx context.Context, wc *widgetCall, c *claim, token string) (*known.IdentificationToken, error) {
	if c.emailKey == nil {
		return nil, failed("identificationToken", "an identificationToken is valid only with the email it was made for: send email")
	}
	t, err := s.store.IdentificationToken(ctx, wc.project.ID, secret.HashKey(token))
	if known.ErrorCode(err) == known.NotFound {
		return nil, failed("identificationToken", "unknown identificationToken")
	}
	if err != nil {
		return nil, err
	}
	if !wc.now.Before(t.ExpiresAt) {
		return nil, failed("identificationToken", "the identificationToken expired (tokens are valid for 12 hours)")
	}
	if t.EmailKey != *c.emailKey {
		return nil, failed("identificationToken", "the identificationToken was made for another email")
	}
	return t, nil
}

// jwtClaim verifies a JWT and makes the claim it signs: only the signed setUser fields (seed
// 003). A jti is usable once, on every Known instance.
func (s *Service) jwtClaim(ctx context.Context, wc *widgetCall, raw, extField string) (*claim, error) {
	keys := make([]verify.Key, 0, len(wc.jwtKeys))
	for _, k := range wc.jwtKeys {
		pub, alg, err := verify.ParsePublicKey(k.PEM, verify.Algorithm(k.Algorithm))
		if err != nil {
			return nil, fmt.Errorf("stored JWT key %s: %w", k.ID, err)
		}
		keys = append(keys, verify.Key{ID: k.ID, Algorithm: alg, Public: pub})
	}
	claims, err := verify.JWT(raw, keys, string(wc.project.ID), wc.now)
	var f *verify.Failure
	if errors.As(err, &f) {
		return nil, failed("jwt", "%s", f.Reason)
	}
	if err != nil {
		return nil, err
	}
	userID := claims.UserID
	if userID == nil && claims.Subject != "" {
		// The standard claim for "who this token is about": taken when no id is signed, so that
		// a token from a generic identity provider does not land as an email-only claim.
		userID = claims.Subject
	}
	id, err := claimString(userID)
	if err != nil {
		return nil, failed("jwt", "the id claim must be a string or a number")
	}
	var v validator
	cf := claimFields{source: known.SourceWidget, at: func(name string) []string { return path("input", "jwt", name) },
		extField: "id", metaField: "attrs", ext: id, email: claims.Email, name: claims.Name, avatar: claims.AvatarURL, meta: claims.Attrs}
	if claims.Organizations != nil {
		cf.setOrgs = true
		cf.orgs = make([]OrganizationInput, len(*claims.Organizations))
		for i, o := range *claims.Organizations {
			oid, err := claimString(o.ID)
			if err != nil || oid == nil {
				v.add(path("input", "jwt", "organizations"), known.Invalid, "an organization's id must be a string or a number")
				continue
			}
			cf.orgs[i] = OrganizationInput{ID: *oid, Name: o.Name, Attrs: o.Attrs}
		}
	}
	c := newClaim(&v, cf)
	c.extField = extField
	c.stageMode = wc.project.StageMode
	if err := v.err(); err != nil {
		return nil, err
	}
	if !c.identified() {
		return nil, failed("jwt", "the JWT signs no id or email")
	}
	if claims.ID != "" {
		fresh, err := s.store.UseJWTID(ctx, wc.project.ID, claims.ID, claims.ExpiresAt.Add(verify.Leeway))
		if err != nil {
			return nil, err
		}
		if !fresh {
			return nil, failed("jwt", "this JWT's jti was used already: a jti is usable once")
		}
	}
	c.proven(known.VerifiedByJWT)
	return c, nil
}

// claimString turns a JWT's string-or-number claim into a string (nil when absent).
func claimString(v any) (*string, error) {
	switch t := v.(type) {
	case nil:
		return nil, nil
	case string:
		return &t, nil
	case json.Number:
		s := t.String()
		return &s, nil
	}
	return nil, errors.New("not a string or number")
}
