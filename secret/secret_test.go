package secret

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBox(t *testing.T) {
	b := NewBox([]byte(strings.Repeat("m", 32)))
	sealed := b.Seal([]byte("identity-secret"), "app_1")
	if strings.Contains(sealed, "identity-secret") {
		t.Fatal("sealed value shows the plaintext")
	}
	t.Run("OpensWithSameContext", func(t *testing.T) {
		got, err := b.Open(sealed, "app_1")
		if err != nil || string(got) != "identity-secret" {
			t.Fatalf("Open = %q, %v", got, err)
		}
	})
	cases := map[string]struct {
		box     *Box
		sealed  string
		context string
	}{
		"OtherContextFails": {b, sealed, "app_2"},
		"OtherMasterFails":  {NewBox([]byte(strings.Repeat("n", 32))), sealed, "app_1"},
		"TamperedFails":     {b, sealed[:len(sealed)-2] + "AA", "app_1"},
		"GarbageFails":      {b, "v1.!!!", "app_1"},
		"NoPrefixFails":     {b, "plain", "app_1"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := c.box.Open(c.sealed, c.context); err != ErrSealed {
				t.Fatalf("Open = %v, want ErrSealed", err)
			}
		})
	}
	t.Run("EachSealDiffers", func(t *testing.T) {
		if b.Seal([]byte("x"), "c") == b.Seal([]byte("x"), "c") {
			t.Fatal("two seals of one value are equal: the nonce is not random")
		}
	})
}

func TestDeriveSeparatesPurposes(t *testing.T) {
	m := []byte(strings.Repeat("m", 32))
	if string(Derive(m, PurposeSeal)) == string(Derive(m, PurposeSession)) {
		t.Fatal("two purposes derive the same key")
	}
	if string(Derive(m, PurposeSeal)) != string(Derive(m, PurposeSeal)) {
		t.Fatal("derivation is not deterministic")
	}
}

func TestHashKey(t *testing.T) {
	// SHA-256("abc"), FIPS 180-2 appendix B.1.
	if got := HashKey("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("HashKey = %s", got)
	}
	if NewSecretKey() == NewSecretKey() {
		t.Fatal("two secret keys are equal")
	}
}

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	first, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) < MinMasterLen {
		t.Fatalf("secret is %d bytes", len(first))
	}
	info, err := os.Stat(filepath.Join(dir, "secret"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode = %v, want 0600", info.Mode().Perm())
	}
	again, err := LoadOrCreate(dir)
	if err != nil || string(again) != string(first) {
		t.Fatalf("second load = %q, %v; want the same secret", again, err)
	}
	t.Run("ShortSecretRefused", func(t *testing.T) {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, "secret"), []byte("short"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreate(d); err == nil {
			t.Fatal("a 5-byte secret was accepted")
		}
	})
}
