package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/events"
	"github.com/knownhq/known/profile"
	"github.com/knownhq/known/secret"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/webhook"
	"github.com/rs/zerolog"
)

// MaxWebhooks bounds a project's webhooks.
const MaxWebhooks = 10

func webhookSecretContext(id known.WebhookID) string { return "webhook|" + string(id) }

func (v *validator) webhookURL(field []string, raw string) string {
	s := strings.TrimSpace(raw)
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || len(s) > MaxURL {
		v.add(field, known.Invalid, "url must be an http(s) URL like https://crm.example.com/known-events, without user:password")
	}
	return s
}

// AddWebhook adds a webhook of the secret key's project for events of these types (all when
// none) and returns it with its signing secret, which is shown only this once. INVALID for a
// bad URL, LIMIT_EXCEEDED past MaxWebhooks. Whether the URL's address may be reached
// (KNOWN_ALLOW_PRIVATE_NETWORKS) is checked at each delivery, on the address dialled.
func (s *Service) AddWebhook(ctx context.Context, rawURL string, types []known.EventType) (*known.Webhook, string, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, "", err
	}
	var v validator
	u := v.webhookURL(path("input", "url"), rawURL)
	if err := v.err(); err != nil {
		return nil, "", err
	}
	have, err := s.store.Webhooks(ctx, p)
	if err != nil {
		return nil, "", err
	}
	if len(have) >= MaxWebhooks {
		return nil, "", known.FieldErrorf(path("input"), known.LimitExceeded, "a project has at most %d webhooks", MaxWebhooks)
	}
	now := s.clock()
	w := &known.Webhook{ID: known.WebhookID(store.NewID()), ProjectID: p, URL: u, Events: dedupe(types), Enabled: true,
		CreatedAt: now, UpdatedAt: now}
	signing := "whsec_" + secret.Random(24)
	if err := s.store.InsertWebhook(ctx, w, s.box.Seal([]byte(signing), webhookSecretContext(w.ID))); err != nil {
		return nil, "", err
	}
	return w, signing, nil
}

func dedupe[T comparable](in []T) []T {
	out := []T{}
	for _, x := range in {
		seen := false
		for _, y := range out {
			seen = seen || x == y
		}
		if !seen {
			out = append(out, x)
		}
	}
	return out
}

// UpdateWebhook changes a webhook of the secret key's project; nil fields stay. Enabling a
// disabled webhook clears its failure, and its pending deliveries go out again.
func (s *Service) UpdateWebhook(ctx context.Context, id known.WebhookID, rawURL *string, types *[]known.EventType, enabled *bool) (*known.Webhook, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, err
	}
	var v validator
	up := store.WebhookUpdate{Enabled: enabled, UpdatedAt: s.clock()}
	if rawURL != nil {
		u := v.webhookURL(path("input", "url"), *rawURL)
		up.URL = &u
	}
	if types != nil {
		t := dedupe(*types)
		up.Events = &t
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	w, err := s.store.UpdateWebhook(ctx, p, id, up)
	if known.ErrorCode(err) == known.NotFound {
		return nil, known.FieldErrorf(path("input", "id"), known.NotFound, "no webhook with this id")
	}
	return w, err
}

// RemoveWebhook deletes a webhook of the secret key's project and its deliveries.
func (s *Service) RemoveWebhook(ctx context.Context, id known.WebhookID) error {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return err
	}
	err = s.store.DeleteWebhook(ctx, p, id)
	if known.ErrorCode(err) == known.NotFound {
		return known.FieldErrorf(path("input", "id"), known.NotFound, "no webhook with this id")
	}
	return err
}

// Webhooks returns the secret key's project's webhooks, oldest first.
func (s *Service) Webhooks(ctx context.Context) ([]*known.Webhook, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, err
	}
	return s.store.Webhooks(ctx, p)
}

// WebhookDeliveries returns a page of a webhook's deliveries, newest event first.
func (s *Service) WebhookDeliveries(ctx context.Context, w *known.Webhook, page known.Page) ([]*known.WebhookDelivery, bool, error) {
	if _, err := listing(ctx, page); err != nil {
		return nil, false, err
	}
	return s.store.Deliveries(ctx, w.ID, page)
}

// WebhookOptions tunes a WebhookWorker; zero values take the defaults.
type WebhookOptions struct {
	// AllowPrivate lets deliveries reach loopback and private addresses
	// (KNOWN_ALLOW_PRIVATE_NETWORKS); ignored when HTTP is set.
	AllowPrivate bool
	// HTTP sends the deliveries (default: the SSRF-guarded transport of package profile,
	// no redirects followed, webhook.Timeout per attempt).
	HTTP *http.Client
	// Jitter spreads the retries (default webhook.Jitter).
	Jitter func() float64
	// Lease is how long an instance holds a delivery it attempts (default 30 s, well past
	// webhook.Timeout).
	Lease time.Duration
	// Poll is how often Run looks for work (default 1 s).
	Poll time.Duration
	Log  zerolog.Logger
}

// WebhookWorker turns published events into webhook deliveries and sends them. Every instance
// runs one: making a delivery is idempotent (its id is the webhook's and the event's), and an
// attempt is made by the instance that holds the delivery's lease. Deliveries go out at least
// once and, per webhook and user, in event order: a delivery waits while an earlier one of
// the same user is pending.
type WebhookWorker struct {
	svc    *Service
	st     *store.Store
	hub    *events.Hub
	o      WebhookOptions
	holder string
	hooks  map[known.ProjectID][]*known.Webhook // per Step
	// saved is the dispatch position last saved (or read at start): a step that did not move
	// it writes nothing.
	saved int64
}

// NewWebhookWorker returns a worker that dispatches from the saved position (the log's end
// the first time).
func (s *Service) NewWebhookWorker(ctx context.Context, o WebhookOptions) (*WebhookWorker, error) {
	if o.HTTP == nil {
		o.HTTP = &http.Client{Transport: profile.Transport(o.AllowPrivate), Timeout: webhook.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if o.Jitter == nil {
		o.Jitter = webhook.Jitter
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	from, err := s.store.WebhookCursor(ctx)
	if err != nil {
		return nil, err
	}
	w := &WebhookWorker{svc: s, st: s.store.Background(), o: o, holder: secret.Random(8), saved: from}
	w.hub = events.New(w.st, events.Options{From: from, Handle: w.dispatch, Now: s.now, Log: o.Log})
	return w, nil
}

// Run steps until ctx is done, every Poll and whenever this process publishes events.
func (w *WebhookWorker) Run(ctx context.Context) {
	woken := w.st.Published()
	t := time.NewTicker(w.o.Poll)
	defer t.Stop()
	for {
		if err := w.Step(ctx); err != nil && ctx.Err() == nil {
			w.o.Log.Warn().Err(err).Msg("webhook deliveries")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-woken:
		}
	}
}

// Step makes the deliveries of newly published events, saves the dispatch position when it
// moved (a step that saw no new event writes nothing), and attempts every delivery that is
// due.
func (w *WebhookWorker) Step(ctx context.Context) error {
	w.hooks = map[known.ProjectID][]*known.Webhook{}
	// A round held back for a missing number is looked at again next step; what is due is
	// delivered meanwhile.
	_, err := w.hub.Poll(ctx)
	if pos := w.hub.Position(); pos > w.saved {
		serr := w.st.SetWebhookCursor(ctx, pos)
		if serr == nil {
			w.saved = pos
		} else if err == nil {
			err = serr
		}
	}
	if err != nil {
		return err
	}
	return w.attempt(ctx)
}

// dispatch makes the deliveries of event e, one per webhook of its project that wants it and
// existed when it was published (a disabled webhook's wait until it is enabled again).
func (w *WebhookWorker) dispatch(ctx context.Context, e *known.InboxEvent) error {
	hooks, ok := w.hooks[e.ProjectID]
	if !ok {
		var err error
		if hooks, err = w.st.Webhooks(ctx, e.ProjectID); err != nil {
			return err
		}
		w.hooks[e.ProjectID] = hooks
	}
	var body []byte
	for _, h := range hooks {
		if !h.Wants(e.Type) || e.Seq < h.FromSeq {
			continue
		}
		if body == nil {
			var err error
			if body, err = webhook.Body(e); err != nil {
				return err
			}
		}
		key := string(h.ID) + "|"
		if e.UserID != nil {
			key += string(*e.UserID)
		} else if e.ConversationID != nil {
			key += "c:" + string(*e.ConversationID)
		}
		now := w.svc.clock()
		if err := w.st.AddDelivery(ctx, &known.WebhookDelivery{ID: store.DeliveryID(h.ID, e.Seq), WebhookID: h.ID,
			ProjectID: e.ProjectID, EventID: e.ID, EventSeq: e.Seq, EventType: e.Type, OrderKey: key, UserID: e.UserID, Body: string(body),
			NextAttemptAt: &now, CreatedAt: now}); err != nil {
			return err
		}
	}
	return nil
}

// attempt sends, for each enabled webhook, each due delivery that is first in its order (of
// one user). Each webhook's backlog is read on its own, so that one receiver that is down
// does not hold the others back.
func (w *WebhookWorker) attempt(ctx context.Context) error {
	hooks, sealed, err := w.st.EnabledWebhooks(ctx)
	if err != nil {
		return err
	}
	for _, h := range hooks {
		pending, err := w.st.PendingDeliveries(ctx, h.ID, 1000, w.svc.clock())
		if err != nil {
			return err
		}
		if len(pending) == 0 {
			continue
		}
		key, err := w.svc.box.Open(sealed[h.ID], webhookSecretContext(h.ID))
		if err != nil {
			return fmt.Errorf("opening webhook %s's signing secret: %w", h.ID, err)
		}
		seen := map[string]bool{}
		for _, d := range pending {
			if !h.Enabled {
				break // disabled by a failure this step
			}
			if seen[d.OrderKey] {
				continue // an earlier one of this user is still pending
			}
			seen[d.OrderKey] = true
			now := w.svc.clock()
			if d.NextAttemptAt != nil && d.NextAttemptAt.After(now) {
				continue
			}
			token := w.holder + secret.Random(6)
			ok, err := w.st.ClaimDelivery(ctx, d.ID, now, now.Add(w.o.Lease), token)
			if err != nil {
				return err
			}
			if ok {
				if err := w.send(ctx, h, d, token, string(key)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// send makes one attempt of delivery d and records it.
func (w *WebhookWorker) send(ctx context.Context, h *known.Webhook, d *known.WebhookDelivery, token, key string) error {
	at := w.svc.clock()
	body := []byte(d.Body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Known-Webhooks/1")
	req.Header.Set("Known-Event-Id", string(d.EventID))
	req.Header.Set("Known-Event-Type", string(d.EventType))
	req.Header.Set("Known-Signature", webhook.Signature(key, at, body))
	actx, cancel := context.WithTimeout(ctx, webhook.Timeout)
	defer cancel()
	res, err := w.o.HTTP.Do(req.WithContext(actx))
	a := store.Attempt{At: at}
	var failure string
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // stopping: the lease runs out and another attempt is made
		}
		failure = "request failed: " + err.Error()
		var ue *url.Error
		if errors.As(err, &ue) && ue.Timeout() {
			failure = "no answer within 10 s"
		}
	} else {
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
		res.Body.Close()
		code := res.StatusCode
		a.ResponseCode = &code
		if code < 200 || code > 299 {
			failure = fmt.Sprintf("answered %d", code)
		}
	}
	if failure == "" {
		a.Delivered = true
	} else {
		a.Error = &failure
		if d.Attempts+1 >= webhook.MaxAttempts {
			a.Failed = true
		} else {
			next := at.Add(webhook.Backoff(d.Attempts+1, w.o.Jitter()))
			a.Next = &next
		}
	}
	if _, err := w.st.RecordAttempt(ctx, d.ID, token, a); err != nil {
		return err
	}
	if a.Delivered {
		return w.st.WebhookSucceeded(ctx, h.ID)
	}
	hh, err := w.st.WebhookFailed(ctx, h.ID, failure, at, webhook.DisableAfter)
	if err == nil && hh != nil && !hh.Enabled {
		h.Enabled = false // no more attempts this step
		w.o.Log.Warn().Str("webhook", string(h.ID)).Str("project", string(h.ProjectID)).Msg("disabled a webhook that failed for 24 hours")
	}
	return err
}
