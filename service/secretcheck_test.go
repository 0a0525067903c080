package service_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/secret"
	"github.com/knownhq/known/service"
	"github.com/knownhq/known/store"
)

// TestCheckSecret shows the rules of KNOWN_SECRET on an existing database: a database keeps a
// check value sealed with its secret, a start with another secret is refused, and
// KNOWN_SECRET_PREVIOUS seals every stored secret again with the new one, idempotently and so
// that an interrupted rotation completes at the next start.
func TestCheckSecret(t *testing.T) {
	oldSecret := []byte("old-secret-0123456789abcdef0123456789abcdef")
	newSecret := []byte("new-secret-0123456789abcdef0123456789abcdef")
	ctx := context.Background()

	// setup returns a store with two projects sealed with oldSecret (identity secrets, one
	// rotated, and user-API header values), before any check value exists.
	setup := func(t *testing.T) (*store.Store, *env) {
		e := newEnv(t)
		e.newProject(t, "Other")
		if _, _, err := e.svc.RotateIdentitySecret(e.ctx); err != nil {
			t.Fatal(err)
		}
		_, err := e.svc.UpdateProject(e.ctx, service.UpdateProjectInput{UserDataEndpoint: &service.EndpointInput{
			URL: "https://api.example.com/users/{id}", IDPlacement: "PATH",
			Headers: []known.Header{{Name: "Authorization", Value: "Bearer abc"}, {Name: "X-Api-Key", Value: "k"}}}})
		if err != nil {
			t.Fatal(err)
		}
		return e.store, e
	}
	with := func(st *store.Store, master []byte) *service.Service {
		return service.New(st, service.Options{Secret: master})
	}
	// allOpenWith fails unless every sealed value opens with master.
	allOpenWith := func(t *testing.T, st *store.Store, master []byte) int {
		t.Helper()
		values, err := st.SealedValues(ctx)
		if err != nil {
			t.Fatal(err)
		}
		box := secret.NewBox(master)
		for _, v := range values {
			c := string(v.ProjectID)
			if v.Kind == store.SealedEndpointHeader {
				c = string(v.ProjectID) + "|header|" + v.HeaderName
			}
			if _, err := box.Open(v.Value, c); err != nil {
				t.Fatalf("%+v does not open with the expected secret", v)
			}
		}
		return len(values)
	}

	t.Run("FirstStartStoresTheCheckAndTheSameSecretStartsAgain", func(t *testing.T) {
		st, _ := setup(t)
		rep, err := with(st, testSecret).CheckSecret(ctx, nil)
		if err != nil || !rep.Created {
			t.Fatalf("first CheckSecret = %+v, %v; want a created check value", rep, err)
		}
		rep, err = with(st, testSecret).CheckSecret(ctx, nil)
		if err != nil || rep.Created || rep.Resealed != 0 {
			t.Fatalf("second CheckSecret = %+v, %v; want nothing to do", rep, err)
		}
	})

	t.Run("AnotherSecretIsRefused", func(t *testing.T) {
		st, _ := setup(t)
		if _, err := with(st, testSecret).CheckSecret(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := with(st, newSecret).CheckSecret(ctx, nil); !errors.Is(err, service.ErrWrongSecret) {
			t.Fatalf("CheckSecret with another secret = %v, want ErrWrongSecret", err)
		}
		if _, err := with(st, newSecret).CheckSecret(ctx, oldSecret); !errors.Is(err, service.ErrWrongSecret) {
			t.Fatalf("CheckSecret with another secret and a wrong previous = %v, want ErrWrongSecret", err)
		}
	})

	t.Run("ADatabaseWithoutCheckValueIsJudgedByItsSealedValues", func(t *testing.T) {
		st, _ := setup(t)
		if _, err := with(st, newSecret).CheckSecret(ctx, nil); !errors.Is(err, service.ErrWrongSecret) {
			t.Fatalf("CheckSecret with another secret on a database without check value = %v, want ErrWrongSecret", err)
		}
		if check, _ := st.SecretCheck(ctx); check != "" {
			t.Fatalf("a refused start stored a check value")
		}
	})

	t.Run("PreviousSecretRotatesEveryValueIdempotently", func(t *testing.T) {
		st, _ := setup(t)
		if _, err := with(st, testSecret).CheckSecret(ctx, nil); err != nil {
			t.Fatal(err)
		}
		n := allOpenWith(t, st, testSecret)
		if n != 5 {
			t.Fatalf("the setup stored %d sealed values, want 5 (3 identity secrets, 2 headers)", n)
		}
		rep, err := with(st, newSecret).CheckSecret(ctx, testSecret)
		if err != nil || rep.Resealed != n {
			t.Fatalf("rotation = %+v, %v; want %d values sealed again", rep, err, n)
		}
		allOpenWith(t, st, newSecret)
		rep, err = with(st, newSecret).CheckSecret(ctx, testSecret)
		if err != nil || rep.Resealed != 0 || !rep.PreviousUnused {
			t.Fatalf("a second rotation = %+v, %v; want nothing to do and the previous secret unused", rep, err)
		}
		if _, err := with(st, newSecret).CheckSecret(ctx, nil); err != nil {
			t.Fatalf("the new secret alone after the rotation: %v", err)
		}
		if _, err := with(st, testSecret).CheckSecret(ctx, nil); !errors.Is(err, service.ErrWrongSecret) {
			t.Fatalf("the old secret after the rotation = %v, want ErrWrongSecret", err)
		}
	})

	t.Run("AnInterruptedRotationCompletesAtTheNextStart", func(t *testing.T) {
		st, _ := setup(t)
		if _, err := with(st, testSecret).CheckSecret(ctx, nil); err != nil {
			t.Fatal(err)
		}
		// The interrupted run sealed two values again, and stopped before the check value.
		values, err := st.SealedValues(ctx)
		if err != nil {
			t.Fatal(err)
		}
		oldBox, newBox := secret.NewBox(testSecret), secret.NewBox(newSecret)
		for _, v := range values[:2] {
			plain, err := oldBox.Open(v.Value, string(v.ProjectID))
			if err != nil {
				t.Fatalf("opening %+v: %v", v, err)
			}
			if ok, err := st.ReplaceSealed(ctx, v, newBox.Seal(plain, string(v.ProjectID)), time.Now()); !ok || err != nil {
				t.Fatalf("ReplaceSealed = %v, %v", ok, err)
			}
		}
		if _, err := with(st, newSecret).CheckSecret(ctx, nil); !errors.Is(err, service.ErrWrongSecret) {
			t.Fatalf("the new secret alone after an interrupted rotation = %v, want ErrWrongSecret", err)
		}
		rep, err := with(st, newSecret).CheckSecret(ctx, testSecret)
		if err != nil || rep.Resealed != len(values)-2 || rep.Unopened != 0 {
			t.Fatalf("completing the rotation = %+v, %v; want %d values sealed again", rep, err, len(values)-2)
		}
		allOpenWith(t, st, newSecret)
		if _, err := with(st, newSecret).CheckSecret(ctx, nil); err != nil {
			t.Fatalf("the new secret alone after the completed rotation: %v", err)
		}
	})

	t.Run("AStaleValueDoesNotOverwriteAChangedOne", func(t *testing.T) {
		st, _ := setup(t)
		values, err := st.SealedValues(ctx)
		if err != nil {
			t.Fatal(err)
		}
		v := values[0]
		if ok, err := st.ReplaceSealed(ctx, v, "v1.first", time.Now()); !ok || err != nil {
			t.Fatalf("ReplaceSealed = %v, %v", ok, err)
		}
		if ok, err := st.ReplaceSealed(ctx, v, "v1.second", time.Now()); ok || err != nil {
			t.Fatalf("ReplaceSealed of a value read before a change = %v, %v; want false", ok, err)
		}
	})
}
