package service_test

import (
	"testing"
	"time"

	"github.com/knownhq/known/service"
)

// TestRotatedKeyStopsOnEveryInstance: two instances share one store; each keeps a key's
// project for service.CacheTTL. A key rotated (or a project deleted) on one instance stops
// working there at once and on the other within CacheTTL (the issue asks within 5 s).
func TestRotatedKeyStopsOnEveryInstance(t *testing.T) {
	e, clock := clockedEnv(t)
	other := service.New(e.store, service.Options{Secret: testSecret, AdminToken: adminToken, Now: clock.Now})
	old := e.project.SecretKey
	authenticated := func(svc *service.Service, key string) bool {
		t.Helper()
		c, err := svc.Authenticate(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		return c.ProjectID == e.project.Project.ID && !c.BadCredential
	}
	if !authenticated(other, old) || !authenticated(e.svc, old) {
		t.Fatal("the key does not authenticate before the rotation")
	}
	rotated, err := e.svc.RotateSecretKey(e.as(t, old), nil)
	if err != nil {
		t.Fatal(err)
	}
	if authenticated(e.svc, old) {
		t.Error("the rotating instance still takes the old key")
	}
	if !authenticated(other, rotated.SecretKey) {
		t.Error("the other instance does not take the new key")
	}
	clock.Advance(service.CacheTTL - time.Millisecond)
	if !authenticated(other, old) {
		t.Log("the other instance dropped the old key early (allowed)")
	}
	clock.Advance(time.Millisecond)
	if authenticated(other, old) {
		t.Fatalf("the other instance still takes the old key %v after the rotation", service.CacheTTL)
	}
	if service.CacheTTL > 5*time.Second {
		t.Fatalf("CacheTTL %v: a rotated key must stop within 5 s", service.CacheTTL)
	}

	// A deleted project's key likewise.
	if !authenticated(other, rotated.SecretKey) {
		t.Fatal("the new key does not authenticate")
	}
	if err := e.svc.DeleteProject(e.as(t, adminToken), e.project.Project.ID); err != nil {
		t.Fatal(err)
	}
	clock.Advance(service.CacheTTL)
	if authenticated(other, rotated.SecretKey) {
		t.Fatal("the other instance still takes a deleted project's key")
	}
}
