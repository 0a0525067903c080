package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"
)

// commandLog records the MongoDB commands a stretch of work sends, with when each started and
// ended, so that a test can count both the commands and the round trips: commands sent
// together (while another is in flight) share one round trip, and a command that starts after
// every earlier one ended begins the next.
type commandLog struct {
	// latency, when set, holds each logged command this long before it is sent: commands
	// sent together then overlap however the goroutines that send them are scheduled, and the
	// count of round trips does not depend on the machine's load (unless it delays a goroutine
	// by as much: the test holds commands 50 ms, longer than a busy CI machine delays one).
	latency time.Duration
	on      atomic.Bool
	mu      sync.Mutex
	started map[int64]*loggedCommand
	all     []*loggedCommand
}

type loggedCommand struct {
	name       string
	start, end time.Time
}

func newCommandLog() *commandLog { return &commandLog{started: map[int64]*loggedCommand{}} }

func (l *commandLog) monitor() *event.CommandMonitor {
	end := func(id int64) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if c := l.started[id]; c != nil {
			c.end = time.Now()
			delete(l.started, id)
		}
	}
	return &event.CommandMonitor{
		Started: func(_ context.Context, e *event.CommandStartedEvent) {
			if !l.on.Load() {
				return
			}
			c := &loggedCommand{name: e.CommandName + " " + collectionOf(e), start: time.Now()}
			l.mu.Lock()
			l.started[e.RequestID] = c
			l.all = append(l.all, c)
			l.mu.Unlock()
			time.Sleep(l.latency)
		},
		Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) { end(e.RequestID) },
		Failed:    func(_ context.Context, e *event.CommandFailedEvent) { end(e.RequestID) },
	}
}

// during runs f and returns the commands it sent, the round trips they took, and their names.
// The round trips are the longest chain of commands each sent after the one before it
// returned: what the call waited for one after another, however many commands went
// alongside. In the names, "|" starts a command that began after every earlier one ended.
func (l *commandLog) during(f func()) (commands, rounds int, names string) {
	l.mu.Lock()
	l.all, l.started = nil, map[int64]*loggedCommand{}
	l.mu.Unlock()
	l.on.Store(true)
	f()
	l.on.Store(false)
	l.mu.Lock()
	defer l.mu.Unlock()
	cs := append([]*loggedCommand(nil), l.all...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].start.Before(cs[j].start) })
	var lastEnd time.Time
	var parts []string
	depth := make([]int, len(cs))
	for i, c := range cs {
		if c.end.IsZero() {
			c.end = c.start
		}
		depth[i] = 1
		for j := range i {
			if !cs[j].end.After(c.start) {
				depth[i] = max(depth[i], depth[j]+1)
			}
		}
		rounds = max(rounds, depth[i])
		if i == 0 || c.start.After(lastEnd) {
			parts = append(parts, "|")
		}
		if c.end.After(lastEnd) {
			lastEnd = c.end
		}
		parts = append(parts, c.name)
	}
	return len(cs), rounds, strings.Join(parts, " ")
}

// identifyScenario is a Known serving in process on a store whose commands are logged, with
// a project whose identity secret the scenarios use.
type identifyScenario struct {
	url, appID, secret string
	log                *commandLog
}

func newIdentifyScenario(tb testing.TB) *identifyScenario {
	l := newCommandLog()
	url := inProcessKnown(tb, l.monitor()).URL
	appID, _, secret := createProjectWithIdentitySecret(tb, url, "Rounds")
	return &identifyScenario{url: url, appID: appID, secret: secret, log: l}
}

// newUserWithCompany identifies a new user, with a company, from a new browser.
func (s *identifyScenario) newUserWithCompany(tb testing.TB, i int) {
	ext := fmt.Sprintf("new-%d-%d", i, time.Now().UnixNano())
	mustIdentify(tb, s.url, "", map[string]any{"appId": s.appID, "userId": ext, "email": ext + "@example.com",
		"name": "New User", "company": map[string]any{"id": fmt.Sprintf("co-%d", i%7), "name": "Acme"}})
}

// returningProven makes a user proven with a userHash and returns a function that identifies
// them again, with their session token and the same proof: a page load of a signed-in user.
func (s *identifyScenario) returningProven(tb testing.TB) func(tb testing.TB) {
	input := map[string]any{"appId": s.appID, "userId": "returning", "email": "returning@example.com", "name": "Re Turning",
		"userHash": userHashOf(s.secret, "returning")}
	ss := mustIdentify(tb, s.url, "", input)
	return func(tb testing.TB) {
		next := mustIdentify(tb, s.url, ss.Token, input)
		if !next.Verified || deref(next.UserID) != deref(ss.UserID) {
			tb.Fatalf("returning identify: verified %v user %s, want verified %s", next.Verified, deref(next.UserID), deref(ss.UserID))
		}
		ss = next
	}
}

// Round-trip budgets of identify (issue 8): a new user with a company at most 5, a returning
// proven user at most 3. Before the identity engine they were 16 and 8 commands, one after
// another.
const (
	maxRoundsNewUser   = 5
	maxRoundsReturning = 3
)

// TestIdentifyRoundTrips fails when identify's MongoDB round trips grow past their budget: a
// new user with a company, and a returning proven user with their session.
func TestIdentifyRoundTrips(t *testing.T) {
	s := newIdentifyScenario(t)
	s.log.latency = 50 * time.Millisecond
	s.newUserWithCompany(t, 0) // the companies exist from now on, as they mostly do
	t.Run("NewUserWithCompany", func(t *testing.T) {
		for i, fresh := range []bool{false, true} {
			n, rounds, names := s.log.during(func() {
				if fresh {
					mustIdentify(t, s.url, "", map[string]any{"appId": s.appID, "userId": "fresh-co-user",
						"company": map[string]any{"id": "fresh-company", "name": "Fresh"}})
				} else {
					s.newUserWithCompany(t, i)
				}
			})
			t.Logf("new user (new company %v): %d commands in %d round trips: %s", fresh, n, rounds, names)
			if rounds > maxRoundsNewUser {
				t.Errorf("identify of a new user (new company %v): %d round trips, want at most %d", fresh, rounds, maxRoundsNewUser)
			}
		}
	})
	t.Run("ReturningProvenUser", func(t *testing.T) {
		again := s.returningProven(t)
		again(t) // the first return may renew the session
		n, rounds, names := s.log.during(func() { again(t) })
		t.Logf("returning proven user: %d commands in %d round trips: %s", n, rounds, names)
		if rounds > maxRoundsReturning {
			t.Errorf("identify of a returning proven user: %d round trips, want at most %d", rounds, maxRoundsReturning)
		}
	})
}

// BenchmarkIdentify measures identify over HTTP on the embedded store and reports MongoDB
// commands and round trips per call: a new user with a company from a new browser, and a
// returning proven user with their session.
func BenchmarkIdentify(b *testing.B) {
	s := newIdentifyScenario(b)
	s.newUserWithCompany(b, 0)
	report := func(b *testing.B, commands, rounds int) {
		b.ReportMetric(float64(commands)/float64(b.N), "commands/op")
		b.ReportMetric(float64(rounds)/float64(b.N), "roundtrips/op")
	}
	b.Run("NewUserWithCompany", func(b *testing.B) {
		commands, rounds := 0, 0
		i := 0
		for b.Loop() {
			i++
			n, r, _ := s.log.during(func() { s.newUserWithCompany(b, i) })
			commands, rounds = commands+n, rounds+r
		}
		report(b, commands, rounds)
	})
	b.Run("ReturningProvenUser", func(b *testing.B) {
		again := s.returningProven(b)
		again(b)
		commands, rounds := 0, 0
		for b.Loop() {
			n, r, _ := s.log.during(func() { again(b) })
			commands, rounds = commands+n, rounds+r
		}
		report(b, commands, rounds)
	})
}
