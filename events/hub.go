// Package events follows the published change events (API.md §9) and fans them out to this
// instance's subscribers. Every instance runs one Hub on the shared database: change streams
// are not available on FerretDB, so the hub reads the log by sequence number, each event by
// _id equality (the one query the embedded store serves from an index), woken at once by this
// process's own publications and otherwise by a short poll.
//
// Gaps. Sequence numbers are taken before events are stored, so two writers that took 5 and 6
// may store 6 first, and a number may never be stored (a writer that died after taking it; an
// event published twice keeps only its first number). The hub delivers in sequence order and,
// when the next number is missing while later ones exist, holds back for Grace (a writer a few
// milliseconds late lands in order). After Grace it moves on but keeps watching the missing
// number for Watch, delivering it if it lands late (out of order, never lost); a number still
// missing after Watch was never stored: its event, if any, stays pending in its document and
// the sweeper publishes it under a new number. The hub remembers what it delivered by
// position, so nothing is delivered twice.
package events

import (
	"context"
	"sync"
	"time"

	"github.com/knownhq/known"
	"github.com/rs/zerolog"
)

// Log is the published events as the hub reads them (the store).
type Log interface {
	// EventAt returns the event under seq, or nil when there is none (yet).
	EventAt(ctx context.Context, seq int64) (*known.InboxEvent, error)
	// LastEventSeq returns the last sequence number handed out.
	LastEventSeq(ctx context.Context) (int64, error)
	// Published returns a channel that receives a value when this process published events
	// (called once per reader).
	Published() <-chan struct{}
}

// Options tunes a Hub; zero values take the defaults.
type Options struct {
	// Poll is how often the log is read without a wake-up from this process (default 50 ms:
	// another instance's event reaches a subscriber here within about that; an idle poll is
	// one find by _id).
	Poll time.Duration
	// Grace is how long a missing number holds back the ones after it (default 300 ms).
	Grace time.Duration
	// Watch is how long a skipped number is still looked for (default 10 minutes: well past
	// the store's operation timeout, the longest a writer can hold a number unstored).
	Watch time.Duration
	// Batch bounds the events read in one round (default 256).
	Batch int
	// Buffer is each subscriber's queue; a subscriber that falls this far behind is ended
	// rather than holding back the others (default 256).
	Buffer int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// From, when positive, is the first number to read (a consumer that keeps its position,
	// such as webhook dispatch); zero starts at the log's end.
	From int64
	// Handle, when set, gets every event, in turn, before the subscribers: an error stops the
	// round there, and the event is handed again at the next one (at least once).
	Handle func(context.Context, *known.InboxEvent) error
	Log    zerolog.Logger
}

func (o *Options) defaults() {
	if o.Poll <= 0 {
		o.Poll = 50 * time.Millisecond
	}
	if o.Grace <= 0 {
		o.Grace = 300 * time.Millisecond
	}
	if o.Watch <= 0 {
		o.Watch = 10 * time.Minute
	}
	if o.Batch <= 0 {
		o.Batch = 256
	}
	if o.Buffer <= 0 {
		o.Buffer = 256
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Hub reads the log and hands each event to the subscribers whose filter accepts it.
type Hub struct {
	log Log
	o   Options

	mu   sync.Mutex
	subs map[*sub]struct{}

	// Reader state, used by one goroutine at a time (Run or a test's Poll).
	started   bool
	next      int64               // the next number to deliver in order
	heldSince time.Time           // when next was first found missing (zero: not missing)
	gaps      map[int64]time.Time // numbers skipped after Grace, and since when
}

type sub struct {
	c      chan *known.InboxEvent
	accept func(*known.InboxEvent) bool
	closed bool
}

// New returns a hub on log; it reads nothing until Run (or Poll).
func New(log Log, o Options) *Hub {
	o.defaults()
	return &Hub{log: log, o: o, subs: map[*sub]struct{}{}, gaps: map[int64]time.Time{}, started: o.From > 0, next: o.From}
}

// Position returns the first number the hub has not yet delivered in order: a consumer that
// keeps it starts there again (numbers it skipped as gaps before are not looked for again).
func (h *Hub) Position() int64 { return h.next }

// Subscribe returns a channel of the events accept takes, from now on, and the function that
// ends the subscription. The channel is closed when the subscription ends: by that function,
// or by the hub when the subscriber fell Buffer events behind.
func (h *Hub) Subscribe(accept func(*known.InboxEvent) bool) (<-chan *known.InboxEvent, func()) {
	s := &sub{c: make(chan *known.InboxEvent, h.o.Buffer), accept: accept}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s.c, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.drop(s)
	}
}

// drop ends s; h.mu is held.
func (h *Hub) drop(s *sub) {
	if !s.closed {
		s.closed = true
		close(s.c)
		delete(h.subs, s)
	}
}

// Subscribers returns how many subscriptions are open: for metrics and tests.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

func (h *Hub) deliver(ctx context.Context, e *known.InboxEvent) error {
	if h.o.Handle != nil {
		if err := h.o.Handle(ctx, e); err != nil {
			return err
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if !s.accept(e) {
			continue
		}
		select {
		case s.c <- e:
		default:
			h.o.Log.Warn().Int("buffer", h.o.Buffer).Msg("ending a subscription that fell behind")
			h.drop(s)
		}
	}
	return nil
}

// Run follows the log from its current end until ctx is done, then ends every subscription.
// A read that fails (the database is down) is logged and tried again at the next poll.
func (h *Hub) Run(ctx context.Context) error {
	woken := h.log.Published()
	t := time.NewTicker(h.o.Poll)
	defer t.Stop()
	defer func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		for s := range h.subs {
			h.drop(s)
		}
	}()
	for {
		again, err := h.Poll(ctx)
		if err != nil && ctx.Err() == nil {
			h.o.Log.Warn().Err(err).Msg("reading the event log")
		}
		wait := t.C
		if again { // holding for a missing number, or a full batch: look again soon
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(min(h.o.Grace/10, h.o.Poll/2)):
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wait:
		case <-woken:
		}
	}
}

// Poll reads what the log has past the hub's position and delivers it; it reports whether it
// should run again soon (it holds back for a missing number, or read a full batch). The first
// Poll only finds the log's end: a hub delivers what is published after it starts.
func (h *Hub) Poll(ctx context.Context) (bool, error) {
	last, err := h.log.LastEventSeq(ctx)
	if err != nil {
		return false, err
	}
	if !h.started {
		h.started, h.next = true, last+1
		return false, nil
	}
	now := h.o.Now()
	for seq, since := range h.gaps {
		e, err := h.log.EventAt(ctx, seq)
		if err != nil {
			return false, err
		}
		switch {
		case e != nil:
			if err := h.deliver(ctx, e); err != nil {
				return false, err
			}
			delete(h.gaps, seq)
		case now.Sub(since) >= h.o.Watch:
			delete(h.gaps, seq)
		}
	}
	for n := 0; h.next <= last; n++ {
		if n == h.o.Batch {
			return true, nil
		}
		e, err := h.log.EventAt(ctx, h.next)
		if err != nil {
			return false, err
		}
		if e == nil {
			if h.heldSince.IsZero() {
				h.heldSince = now
			}
			if now.Sub(h.heldSince) < h.o.Grace {
				return true, nil
			}
			h.gaps[h.next] = now
		} else if err := h.deliver(ctx, e); err != nil {
			return false, err
		}
		h.heldSince = time.Time{}
		h.next++
	}
	return false, nil
}
