package service_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/clocktest"
	"github.com/knownhq/known/profile"
	"github.com/knownhq/known/service"
	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/embedded"
	"github.com/knownhq/known/store/storetest"
	"github.com/rs/zerolog"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// refusingProxy stands between a store and the test database on loopback: it passes every
// message on, except the updates of the users it is told to refuse, which it answers itself
// with a command error, as a database that cannot write one document would. The other
// commands, on the same connections, go on as before.
type refusingProxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	refused map[string]bool // user ids whose updates fail
	conns   []net.Conn
}

func newRefusingProxy(t *testing.T) (*refusingProxy, string) {
	t.Helper()
	u, err := url.Parse(storetest.URI())
	if err != nil || u.Scheme != "mongodb" || strings.Contains(u.Host, ",") {
		// A deployment of several hosts (KNOWN_TEST_MONGODB_URI) has no one host to stand in
		// front of: the test runs on an embedded store of its own.
		srv, err := embedded.Start(t.TempDir(), "", zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Stop)
		if u, err = url.Parse(srv.URI()); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &refusingProxy{ln: ln, target: u.Host, refused: map[string]bool{}}
	go p.accept()
	t.Cleanup(p.close)
	u.Host = ln.Addr().String()
	q := u.Query()
	q.Set("directConnection", "true") // every connection through the proxy
	u.RawQuery = q.Encode()
	return p, u.String()
}

func (p *refusingProxy) refuse(id known.UserID, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refused[string(id)] = on
}

func (p *refusingProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
}

func (p *refusingProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		var toClient sync.Mutex // the server's replies and the proxy's own, one message at a time
		go func() {
			defer client.Close()
			for {
				msg, err := readWireMessage(server)
				if err != nil {
					return
				}
				toClient.Lock()
				_, err = client.Write(msg)
				toClient.Unlock()
				if err != nil {
					return
				}
			}
		}()
		go func() {
			defer server.Close()
			for {
				msg, err := readWireMessage(client)
				if err != nil {
					return
				}
				if reply := p.answer(msg); reply != nil {
					toClient.Lock()
					_, err = client.Write(reply)
					toClient.Unlock()
				} else {
					_, err = server.Write(msg)
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// Wire protocol: a message is a 16-byte header (length, requestID, responseTo, opCode, all
// int32 little-endian) and a body; an OP_MSG body is flag bits and sections, the first of kind 0
// holding the command document.
const opMsg = 2013

func readWireMessage(r io.Reader) ([]byte, error) {
	head := make([]byte, 16)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, err
	}
	n := int(binary.LittleEndian.Uint32(head))
	if n < 16 || n > 48<<20 {
		return nil, errors.New("not a wire protocol message")
	}
	msg := make([]byte, n)
	copy(msg, head)
	_, err := io.ReadFull(r, msg[16:])
	return msg, err
}

// answer returns the error reply to msg when it updates a refused user, else nil.
func (p *refusingProxy) answer(msg []byte) []byte {
	if binary.LittleEndian.Uint32(msg[12:]) != opMsg || len(msg) < 26 || msg[20] != 0 {
		return nil
	}
	cmd := bson.Raw(msg[21:])
	if coll, ok := cmd.Lookup("findAndModify").StringValueOK(); !ok || coll != "users" {
		return nil
	}
	id, _ := cmd.Lookup("query", "_id").StringValueOK()
	p.mu.Lock()
	refused := p.refused[id]
	p.mu.Unlock()
	if !refused {
		return nil
	}
	doc, err := bson.Marshal(bson.D{{Key: "ok", Value: 0.0}, {Key: "errmsg", Value: "the test refuses this write"},
		{Key: "code", Value: int32(8)}, {Key: "codeName", Value: "UnknownError"}})
	if err != nil {
		panic(err)
	}
	reply := make([]byte, 21+len(doc))
	binary.LittleEndian.PutUint32(reply[0:], uint32(len(reply)))
	binary.LittleEndian.PutUint32(reply[4:], 1)
	copy(reply[8:12], msg[4:8]) // responseTo: the request's id
	binary.LittleEndian.PutUint32(reply[12:], opMsg)
	copy(reply[21:], doc) // flag bits 0, section kind 0
	return reply
}

// syncBuffer is a log destination many goroutines write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) lines(substr string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range strings.Split(b.b.String(), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// TestProfileApplyFailureKeepsTheBatch: a dashboard page of stale users whose profiles are
// fetched together, where the database refuses one user's write: the other users get their
// profiles applied and stored, the endpoint's status is recorded, the page is answered (the
// refused user's profile as fetched), the failure is logged once, and the refused profile,
// not stored, is fetched and applied again by the next read.
func TestProfileApplyFailureKeepsTheBatch(t *testing.T) {
	proxy, uri := newRefusingProxy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Config{URI: uri, Database: storetest.NewDatabaseName(t), Log: zerolog.Nop(),
		ServerSelectionTimeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("opening the store through the proxy: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = st.Drop(ctx)
		_ = st.Close(ctx)
	})
	var log syncBuffer
	clock := clocktest.New(time.Now().UTC().Truncate(time.Millisecond))
	e := &env{store: st, svc: service.New(st, service.Options{Secret: testSecret, AdminToken: adminToken,
		Profiles: profile.New(profile.Options{AllowPrivate: true, Timeout: 2 * time.Second}),
		Now:      clock.Now, Log: zerolog.New(&log)})}
	e.project = e.newProject(t, "Acme")
	e.ctx = e.as(t, e.project.SecretKey)

	api := newUserAPI(t)
	setEndpoint(t, e, service.EndpointInput{Enabled: true, URL: api.pathURL(), IDPlacement: "PATH"})
	const n, bad = 5, 2
	users := make([]*known.User, n)
	for i := range users {
		users[i] = newExtUser(t, e, "batch-"+string(rune('a'+i)))
	}
	refused := users[bad]
	proxy.refuse(refused.ID, true)

	prs, err := e.svc.ExternalProfiles(e.ctx, service.ProfileKeys(users...))
	if err != nil {
		// Go on: what follows shows what the failure cost the other users.
		t.Errorf("ExternalProfiles with one user's write refused: %v", err)
		prs = make([]*known.Profile, n)
	}
	stored, err := e.store.ProfilesOf(context.Background(), e.project.Project.ID, []known.UserID{
		users[0].ID, users[1].ID, users[2].ID, users[3].ID, users[4].ID})
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range users {
		ext := string(*u.ExternalID)
		if prs[i] == nil || prs[i].Status != known.ProfileFound || sp(prs[i].FirstName) != "First "+ext {
			t.Errorf("%s: the page got profile %+v, want FOUND as fetched", ext, prs[i])
		}
		got := readUser(t, e, u.ID)
		if i == bad {
			if sp(got.FirstName) != "Orig" || stored[u.ID] != nil {
				t.Errorf("%s, refused: user first name %q, stored profile %v; want Orig and none (applied again later)",
					ext, sp(got.FirstName), stored[u.ID])
			}
			continue
		}
		if sp(got.FirstName) != "First "+ext || sp(got.Email) != ext+"@profiles.example.com" {
			t.Errorf("%s: user first name %q email %q; want the profile applied", ext, sp(got.FirstName), sp(got.Email))
		}
		if stored[u.ID] == nil || stored[u.ID].Status != known.ProfileFound {
			t.Errorf("%s: stored profile %v, want FOUND", ext, stored[u.ID])
		}
	}
	if ep := project(t, e).UserDataEndpoint; ep == nil || ep.LastStatus == nil || *ep.LastStatus != known.ProfileFound || ep.LastCheckedAt == nil {
		t.Errorf("the endpoint's status was not recorded: %s", endpointText(ep))
	}
	if lines := log.lines(string(refused.ID)); len(lines) != 1 || !strings.Contains(lines[0], `"level":"error"`) ||
		!strings.Contains(lines[0], "the test refuses this write") {
		t.Errorf("the refused apply was logged as %q; want one error line with its cause", lines)
	}

	// The refused user's profile was not stored: the next read fetches and applies it; the
	// others are fresh.
	proxy.refuse(refused.ID, false)
	externalProfiles(t, e, users...)
	for i, u := range users {
		ext := string(*u.ExternalID)
		want := 1
		if i == bad {
			want = 2
		}
		if got := api.fetchesOf(ext); got != want {
			t.Errorf("%s: fetched %d times, want %d", ext, got, want)
		}
	}
	if got := readUser(t, e, refused.ID); sp(got.FirstName) != "First "+string(*refused.ExternalID) {
		t.Errorf("the refused user's profile was not applied on the next read: first name %q", sp(got.FirstName))
	}
}
