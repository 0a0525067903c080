package known

import (
	"errors"
	"fmt"
	"testing"
)

func TestGlobalID(t *testing.T) {
	id := GlobalID(KindUser, "6b01f73331b629ce6c1e0d77")
	k, raw, ok := ParseGlobalID(id)
	if !ok || k != KindUser || raw != "6b01f73331b629ce6c1e0d77" {
		t.Fatalf("ParseGlobalID(%q) = %q, %q, %v", id, k, raw, ok)
	}
	for name, s := range map[string]string{
		"NotBase64":   "!!!",
		"NoKind":      GlobalID("", "x")[1:],
		"UnknownKind": GlobalID("Secret", "x"),
		"EmptyID":     GlobalID(KindUser, ""),
		"Empty":       "",
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, ok := ParseGlobalID(s); ok {
				t.Fatalf("%q parsed as a global id", s)
			}
		})
	}
}

func TestErrorCodes(t *testing.T) {
	cases := []struct {
		name string
		err  error
		code Code
		user bool
	}{
		{"Nil", nil, "", false},
		{"Plain", errors.New("boom"), Internal, false},
		{"Known", Errorf(NotFound, "x"), NotFound, true},
		{"Wrapped", fmt.Errorf("ctx: %w", Errorf(AlreadyExists, "x")), AlreadyExists, true},
		{"List", Errors{FieldErrorf([]string{"input", "email"}, Invalid, "bad")}, Invalid, true},
		{"Unauthenticated", Errorf(Unauthenticated, "x"), Unauthenticated, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ErrorCode(tc.err); got != tc.code {
				t.Fatalf("ErrorCode = %q, want %q", got, tc.code)
			}
			es, err := UserErrors(tc.err)
			if tc.user != (len(es) > 0 && err == nil) {
				t.Fatalf("UserErrors = %v, %v", es, err)
			}
		})
	}
}
