package events

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/knownhq/known"
)

// memLog is a log in memory: numbers are taken (take) and stored (store) separately, as two
// racing writers do.
type memLog struct {
	mu     sync.Mutex
	last   int64
	stored map[int64]*known.InboxEvent
	reads  int
}

func newMemLog() *memLog { return &memLog{stored: map[int64]*known.InboxEvent{}} }

func (l *memLog) take() int64 { l.mu.Lock(); defer l.mu.Unlock(); l.last++; return l.last }
func (l *memLog) store(seq int64, p known.ProjectID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stored[seq] = &known.InboxEvent{ID: known.InboxEventID(fmt.Sprint("e", seq)), Seq: seq, ProjectID: p, Type: known.UserCreated}
}
func (l *memLog) EventAt(_ context.Context, seq int64) (*known.InboxEvent, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads++
	return l.stored[seq], nil
}
func (l *memLog) LastEventSeq(context.Context) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last, nil
}
func (l *memLog) Published() <-chan struct{} { return nil }

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func drain(c <-chan *known.InboxEvent) []int64 {
	var out []int64
	for {
		select {
		case e, ok := <-c:
			if !ok {
				return out
			}
			out = append(out, e.Seq)
		default:
			return out
		}
	}
}

func newHub(t *testing.T, l *memLog, clk *clock) *Hub {
	t.Helper()
	h := New(l, Options{Grace: time.Second, Watch: time.Minute, Now: clk.now})
	if _, err := h.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	return h
}

func poll(t *testing.T, h *Hub) {
	t.Helper()
	if _, err := h.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestHubDeliversRacingWritersInOrderOnce: writers that took 1 and 2 store 2 first; the hub
// holds 2 back until 1 lands (within Grace), and delivers each once.
func TestHubDeliversRacingWritersInOrderOnce(t *testing.T) {
	l, clk := newMemLog(), &clock{t: time.Unix(1e9, 0)}
	h := newHub(t, l, clk)
	c, _ := h.Subscribe(func(*known.InboxEvent) bool { return true })
	a, b := l.take(), l.take()
	l.store(b, "p")
	poll(t, h)
	if got := drain(c); len(got) != 0 {
		t.Fatalf("delivered %v while %d was missing within Grace", got, a)
	}
	clk.advance(100 * time.Millisecond)
	l.store(a, "p")
	poll(t, h)
	poll(t, h)
	if got := drain(c); !slices.Equal(got, []int64{a, b}) {
		t.Fatalf("delivered %v, want [%d %d]", got, a, b)
	}
}

// TestHubSkipsAMissingNumberAfterGraceAndDeliversItLate: a number missing past Grace does not
// hold the others back; when it lands later it is still delivered, once; one that never lands
// is given up after Watch.
func TestHubSkipsAMissingNumberAfterGraceAndDeliversItLate(t *testing.T) {
	l, clk := newMemLog(), &clock{t: time.Unix(1e9, 0)}
	h := newHub(t, l, clk)
	c, _ := h.Subscribe(func(*known.InboxEvent) bool { return true })
	late, never, after := l.take(), l.take(), l.take()
	l.store(after, "p")
	poll(t, h)
	clk.advance(2 * time.Second)
	poll(t, h) // gives up holding for `late`
	poll(t, h) // and for `never`
	clk.advance(2 * time.Second)
	poll(t, h)
	if got := drain(c); !slices.Equal(got, []int64{after}) {
		t.Fatalf("delivered %v, want [%d] while %d and %d are missing", got, after, late, never)
	}
	l.store(late, "p")
	poll(t, h)
	poll(t, h)
	if got := drain(c); !slices.Equal(got, []int64{late}) {
		t.Fatalf("delivered %v, want the late %d once", got, late)
	}
	clk.advance(2 * time.Minute)
	poll(t, h)
	if len(h.gaps) != 0 {
		t.Fatalf("still watching %v after Watch", h.gaps)
	}
	l.mu.Lock()
	before := l.reads
	l.mu.Unlock()
	poll(t, h)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.reads != before {
		t.Fatalf("an idle poll read %d events", l.reads-before)
	}
}

// TestHubFiltersAndEndsSlowSubscribers: each subscriber gets what its filter takes; one that
// does not read is ended instead of holding back the others.
func TestHubFiltersAndEndsSlowSubscribers(t *testing.T) {
	l, clk := newMemLog(), &clock{t: time.Unix(1e9, 0)}
	h := New(l, Options{Buffer: 2, Now: clk.now})
	poll(t, h)
	a, _ := h.Subscribe(func(e *known.InboxEvent) bool { return e.ProjectID == "a" })
	b, _ := h.Subscribe(func(e *known.InboxEvent) bool { return e.ProjectID == "b" })
	for _, p := range []known.ProjectID{"a", "b", "a", "a"} {
		l.store(l.take(), p)
	}
	poll(t, h)
	if got := drain(b); !slices.Equal(got, []int64{2}) {
		t.Fatalf("b got %v, want [2]", got)
	}
	got := drain(a)
	if !slices.Equal(got, []int64{1, 3}) {
		t.Fatalf("a got %v, want [1 3] before it was ended", got)
	}
	if _, open := <-a; open {
		t.Fatal("the subscriber that fell behind is still open")
	}
	if h.Subscribers() != 1 {
		t.Fatalf("%d subscribers, want 1", h.Subscribers())
	}
}
