package main

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/coder/websocket"
	"github.com/knownhq/known"
	"github.com/knownhq/known/events"
	"github.com/knownhq/known/service"
	"github.com/knownhq/known/store"
	"github.com/rs/zerolog"
)

// closeForbidden is the WebSocket close code for a wrong or missing credential (API.md §9).
const closeForbidden = 4403

// websocketTransport serves subscriptions with the graphql-transport-ws protocol (and the
// older graphql-ws one). The socket accepts any Origin: a secret key is no ambient credential
// (it is sent in connection_init, not by the browser on its own), and a widget session's
// project checks its allowedOrigins against the Origin of the upgrade request, as for every
// widget call.
func websocketTransport(svc *service.Service) transport.Websocket {
	return transport.Websocket{
		Implementation:        transport.CoderWebsocketImplementation{AcceptOptions: websocket.AcceptOptions{InsecureSkipVerify: true}},
		InitFunc:              websocketInit(svc),
		InitTimeout:           10 * time.Second,
		KeepAlivePingInterval: 15 * time.Second,
	}
}

// websocketInit authenticates a connection from its connection_init payload: a secret key
// (Agent-Secret-Key, or Authorization: Bearer) or a widget session (X-Widget-Session). A
// wrong or missing one closes the socket with 4403.
func websocketInit(svc *service.Service) transport.WebsocketInitFunc {
	return func(ctx context.Context, p transport.InitPayload) (context.Context, *transport.InitPayload, error) {
		refuse := func(why string) (context.Context, *transport.InitPayload, error) {
			return transport.WithWebsocketCloseCode(transport.AppendCloseReason(ctx, why), closeForbidden), nil, errors.New(why)
		}
		get := func(name string) string {
			for k, v := range p {
				if s, ok := v.(string); ok && strings.EqualFold(k, name) {
					return strings.TrimSpace(s)
				}
			}
			return ""
		}
		key := get("Agent-Secret-Key")
		if key == "" {
			if a, ok := strings.CutPrefix(get("Authorization"), "Bearer "); ok {
				key = strings.TrimSpace(a)
			}
		}
		token := get("X-Widget-Session")
		switch {
		case key != "":
			c, err := svc.Authenticate(ctx, key)
			if err != nil {
				return transport.WithWebsocketCloseCode(ctx, 1011), nil, errors.New("the credential could not be checked; try again")
			}
			if c.ProjectID == "" {
				return refuse("the secret key is not valid")
			}
			return known.NewContextWithCaller(ctx, c), nil, nil
		case token != "":
			client := known.ClientFromContext(ctx)
			client.WidgetToken = token
			ctx = known.NewContextWithClient(ctx, client)
			if _, err := svc.Session(ctx); err != nil {
				switch known.ErrorCode(err) {
				case known.Internal:
					return transport.WithWebsocketCloseCode(ctx, 1011), nil, errors.New("the session could not be checked; try again")
				case known.RateLimited:
					return transport.WithWebsocketCloseCode(ctx, 1013), nil, errors.New("rate limited; try again later")
				}
				return refuse("the widget session is not valid (" + string(known.ErrorCode(err)) + ")")
			}
			return ctx, nil, nil
		}
		return refuse("connection_init carries no Agent-Secret-Key or X-Widget-Session")
	}
}

// upgrades sends WebSocket upgrade requests to ws and everything else to next. A socket
// outlives the server's read and write timeouts, which are meant for one request: they are
// lifted for it before the connection is taken over.
func upgrades(ws, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
		ws.ServeHTTP(w, r)
	})
}

// followEvents starts this instance's event reader and the outbox sweeper: at start it
// publishes whatever a previous process left pending, then every sweepEvery when one may be
// left (store.SweepDue).
func followEvents(ctx context.Context, log zerolog.Logger, st *store.Store, sweepEvery time.Duration) *events.Hub {
	st = st.Background()
	h := events.New(st, events.Options{Log: log})
	go func() { _ = h.Run(ctx) }()
	go func() {
		t := time.NewTicker(sweepEvery)
		defer t.Stop()
		minAge := time.Duration(0)
		for {
			if minAge == 0 || st.SweepDue() {
				if n, err := st.Sweep(ctx, minAge); err != nil && ctx.Err() == nil {
					log.Warn().Err(err).Msg("publishing pending events")
				} else if n > 0 {
					log.Info().Int("events", n).Msg("published events a change had left pending")
				}
			}
			minAge = 30 * time.Second // later sweeps leave the events of requests in flight alone
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return h
}

// eventSweepInterval is how often the outbox sweeper looks for events left pending.
const eventSweepInterval = time.Minute

// startWebhooks runs this instance's webhook worker until ctx is done: it dispatches from the
// position the instances saved (so events published while Known was down are delivered at
// the next start) and sends what is due, pending deliveries of earlier runs included.
func startWebhooks(ctx context.Context, log zerolog.Logger, svc *service.Service, allowPrivate bool) error {
	w, err := svc.NewWebhookWorker(ctx, service.WebhookOptions{AllowPrivate: allowPrivate, Log: log})
	if err != nil {
		return err
	}
	go w.Run(ctx)
	return nil
}
