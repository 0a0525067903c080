package main

import (
	"context"
	"net/http"

	"github.com/knownhq/known"
	"github.com/knownhq/known/service"
	"github.com/knownhq/known/widget"
)

// serverOption adds optional routes to newServer's mux.
type serverOption func(mux *http.ServeMux, svc *service.Service)

// withDemo serves the demo page (KNOWN_DEMO) when on.
func withDemo(on bool) serverOption {
	return func(mux *http.ServeMux, svc *service.Service) {
		if on {
			mux.Handle("GET /demo", widget.Demo(demoApp(svc)))
		}
	}
}

// demoApp finds the Demo project's app id for the demo page.
func demoApp(svc *service.Service) widget.DemoApp {
	return func(ctx context.Context) (string, error) {
		p, err := svc.DemoProject(ctx)
		if known.ErrorCode(err) == known.NotFound {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		return string(p.ID), nil
	}
}
