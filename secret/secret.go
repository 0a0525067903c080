// Package secret makes and keeps Known's secrets: project secret keys (only their SHA-256 is
// stored), identity secrets (stored sealed with AES-GCM under a key derived from KNOWN_SECRET),
// and the derived keys other packages sign with.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// MinMasterLen is the shortest KNOWN_SECRET accepted, in bytes.
const MinMasterLen = 32

// Purposes of derived keys. A key derived for one purpose is useless for another.
const (
	PurposeSeal    = "known/seal/v1"
	PurposeSession = "known/widget-session/v1"
)

// Random returns n random bytes encoded as unpadded base64url.
func Random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewSecretKey returns a new project secret key, shown once to its owner.
func NewSecretKey() string { return "sk_" + Random(32) }

// NewIdentitySecret returns a new HMAC identity secret. Customers use its text as the HMAC key.
func NewIdentitySecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// HashKey returns the lowercase hex SHA-256 of a secret key: what the store keeps and looks up.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Derive returns a 32-byte key for purpose from the master secret (HKDF-SHA256).
func Derive(master []byte, purpose string) []byte {
	k, err := hkdf.Key(sha256.New, master, nil, purpose, 32)
	if err != nil {
		panic(err) // only for lengths HKDF cannot produce; 32 always works
	}
	return k
}

// Box seals small secrets for storage with AES-256-GCM.
type Box struct{ aead cipher.AEAD }

// NewBox returns a Box whose key is derived from the master secret.
func NewBox(master []byte) *Box {
	block, err := aes.NewCipher(Derive(master, PurposeSeal))
	if err != nil {
		panic(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &Box{aead: aead}
}

const sealPrefix = "v1."

// Seal encrypts plaintext bound to context (for example the owning project's id), so that a
// sealed value copied to another owner does not open.
func (b *Box) Seal(plaintext []byte, context string) string {
	nonce := make([]byte, b.aead.NonceSize())
	_, _ = rand.Read(nonce)
	out := b.aead.Seal(nonce, nonce, plaintext, []byte(context))
	return sealPrefix + base64.RawURLEncoding.EncodeToString(out)
}

// ErrSealed is returned by Open for a value that was not sealed by this Box with that context.
var ErrSealed = errors.New("secret: sealed value does not open with this key and context")

// Open decrypts a value made by Seal with the same context.
func (b *Box) Open(sealed, context string) ([]byte, error) {
	raw, ok := strings.CutPrefix(sealed, sealPrefix)
	if !ok {
		return nil, ErrSealed
	}
	data, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(data) < b.aead.NonceSize() {
		return nil, ErrSealed
	}
	n := b.aead.NonceSize()
	plain, err := b.aead.Open(nil, data[:n], data[n:], []byte(context))
	if err != nil {
		return nil, ErrSealed
	}
	return plain, nil
}

// LoadOrCreate returns the master secret kept in dir/secret, creating it (mode 0600) on first
// use. It is how the embedded store gets a KNOWN_SECRET that survives restarts.
func LoadOrCreate(dir string) ([]byte, error) {
	path := filepath.Join(dir, "secret")
	if b, err := os.ReadFile(path); err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) < MinMasterLen {
			return nil, fmt.Errorf("secret: %s holds %d bytes, want at least %d", path, len(s), MinMasterLen)
		}
		return []byte(s), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("secret: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	s := Random(48)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) { // another process won the race: use its secret
		return LoadOrCreate(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("secret: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	return []byte(s), nil
}
