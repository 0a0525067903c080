package service_test

import (
	"slices"
	"testing"

	"github.com/knownhq/known"
	"github.com/knownhq/known/service"
	"github.com/knownhq/known/store/storetest"
)

// TestIdentifyPathsReadNoWholeCollection runs the identify paths a widget takes every day on
// the embedded store with the command auditor (storetest.Auditor): none of their commands may
// be one that FerretDB serves by reading and decoding the whole collection, since such a
// command costs in proportion to the project's users (issue 10). On MongoDB, which serves
// every filter from an index, the commands are not checked.
func TestIdentifyPathsReadNoWholeCollection(t *testing.T) {
	e := newScaleEnv(t, 50)
	if !e.store.FerretDB() {
		t.Skip("the rule is about FerretDB; MongoDB serves these filters from indexes")
	}
	// allowed are the scanning commands a path may still send, each with why.
	allowed := []string{}
	var returningToken string
	paths := []struct {
		name string
		run  func(t *testing.T) error
	}{
		{"NewUserWithNewCompany", func(t *testing.T) error {
			_, err := e.svc.Identify(widgetCtx(""), service.IdentifyInput{AppID: e.appID(), UserID: str("fresh1"),
				Email: str("fresh1@example.com"), Name: str("Fresh One"),
				Company: &service.CompanyInput{ID: "freshco1", Name: str("Fresh Co")}})
			return err
		}},
		{"NewUserWithNewCompanyAndMetadata", func(t *testing.T) error {
			_, err := e.svc.Identify(widgetCtx(""), service.IdentifyInput{AppID: e.appID(), UserID: str("fresh2"),
				Email: str("fresh2@example.com"), Metadata: map[string]any{"plan": "pro"},
				Company: &service.CompanyInput{ID: "freshco2", Name: str("Fresh Co 2"), Metadata: map[string]any{"seats": 5}}})
			return err
		}},
		{"NewUserWithCompanyStageIfEmpty", func(t *testing.T) error {
			_, err := e.svc.Identify(widgetCtx(""), service.IdentifyInput{AppID: e.appID(), UserID: str("fresh3"),
				Company: &service.CompanyInput{ID: "c3", Stage: str("trial")}, StageMode: ptr(known.StageIfEmpty)})
			return err
		}},
		{"ReturningUserFromANewBrowser", func(t *testing.T) error {
			ss, err := e.svc.Identify(widgetCtx(""), service.IdentifyInput{AppID: e.appID(), UserID: str("u7")})
			if err == nil {
				returningToken = ss.Token
			}
			return err
		}},
		{"ReturningUserWithItsSession", func(t *testing.T) error {
			_, err := e.svc.Identify(widgetCtx(returningToken), service.IdentifyInput{AppID: e.appID(), UserID: str("u7"),
				Name: str("Seven Renamed"), Metadata: map[string]any{"plan": "team"}})
			return err
		}},
		{"ReturningUserWithItsCompany", func(t *testing.T) error {
			_, err := e.svc.Identify(widgetCtx(""), service.IdentifyInput{AppID: e.appID(), UserID: str("u8"),
				Company: &service.CompanyInput{ID: "c8", Name: str("Company 8")}})
			return err
		}},
	}
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			e.store.WaitPublished()
			e.audit.Reset()
			if err := p.run(t); err != nil {
				t.Fatalf("identify: %v", err)
			}
			cmds := e.audit.Commands()
			var scans []storetest.Command
			for _, c := range cmds {
				if !c.Constant && !slices.Contains(allowed, c.String()) {
					scans = append(scans, c)
				}
			}
			if len(scans) > 0 {
				t.Fatalf("commands that read the whole collection on the embedded store:\n%s\nall commands:\n%s",
					storetest.Summary(scans), storetest.Summary(cmds))
			}
			if len(cmds) == 0 {
				t.Fatal("no commands recorded: the auditor is not watching this store")
			}
		})
	}
}
