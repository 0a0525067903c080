package service_test

import (
	"context"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/service"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/storetest"
	"go.mongodb.org/mongo-driver/v2/event"
)

func TestMain(m *testing.M) { storetest.Main(m) }

const adminToken = "test-admin-token"

var testSecret = []byte("0123456789abcdef0123456789abcdef-test")

// env is a service on a fresh database, with one project ready.
type env struct {
	svc     *service.Service
	store   *store.Store
	project *service.NewProject
	ctx     context.Context // authenticated as the project's secret key
}

func newEnv(t testing.TB) *env { return newEnvWatched(t, nil) }

// newEnvWatched is newEnv on a store whose commands monitor sees.
func newEnvWatched(t testing.TB, monitor *event.CommandMonitor) *env {
	t.Helper()
	st := storetest.Open(t, monitor)
	svc := service.New(st, service.Options{Secret: testSecret, AdminToken: adminToken})
	e := &env{svc: svc, store: st}
	e.project = e.newProject(t, "Acme")
	e.ctx = e.as(t, e.project.SecretKey)
	return e
}

// newProject makes another project through the admin token.
func (e *env) newProject(t testing.TB, name string) *service.NewProject {
	t.Helper()
	p, err := e.svc.CreateProject(e.as(t, adminToken), name)
	if err != nil {
		t.Fatalf("CreateProject: %v", err)
	}
	return p
}

// as returns a context authenticated with credential, as the HTTP middleware would make it.
func (e *env) as(t testing.TB, credential string) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	c, err := e.svc.Authenticate(ctx, credential)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	return known.NewContextWithCaller(ctx, c)
}

func (e *env) counts(t testing.TB, p known.ProjectID) map[string]int64 {
	t.Helper()
	n, err := e.store.Counts(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func str(s string) *string { return &s }

// wantCode fails unless err carries code (the first error, for a list) on field.
func wantCode(t *testing.T, err error, code known.Code, field ...string) {
	t.Helper()
	if got := known.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
	if field == nil {
		return
	}
	es, uerr := known.UserErrors(err)
	var got []string
	if uerr == nil && len(es) > 0 {
		got = es[0].Field
	} else if ke, ok := err.(*known.Error); ok {
		got = ke.Field
	}
	if len(got) != len(field) {
		t.Fatalf("error field = %v, want %v", got, field)
	}
	for i := range field {
		if got[i] != field[i] {
			t.Fatalf("error field = %v, want %v", got, field)
		}
	}
}
