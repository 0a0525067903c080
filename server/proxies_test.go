package main

import (
	"context"
	"github.com/knownhq/known/clocktest"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/knownhq/known/ratelimit"
	"github.com/knownhq/known/service"
	"github.com/knownhq/known/store/storetest"
	"github.com/rs/zerolog"
)

// TestClientAddress: X-Forwarded-For names the client only when the peer is a trusted proxy,
// and then the right-most address that is not a trusted proxy is the client, so that what a
// client writes into the header itself (left of what its proxies append) never counts.
func TestClientAddress(t *testing.T) {
	trusted, err := parseTrustedProxies("10.0.0.0/8, fd00::/8 192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"NoHeaderIsThePeer", "10.1.1.1:5000", nil, "10.1.1.1"},
		{"TrustedPeerNamesTheClient", "10.1.1.1:5000", []string{"203.0.113.9"}, "203.0.113.9"},
		{"UntrustedPeerIsIgnored", "198.51.100.4:5000", []string{"203.0.113.9"}, "198.51.100.4"},
		{"SpoofedLeftEntriesDoNotCount", "10.1.1.1:5000", []string{"1.1.1.1, 2.2.2.2, 203.0.113.9"}, "203.0.113.9"},
		{"SpoofedTrustedAddressIsSkippedToTheNextUntrusted", "10.1.1.1:5000", []string{"203.0.113.9, 10.9.9.9"}, "203.0.113.9"},
		{"ChainOfTrustedProxies", "10.1.1.1:5000", []string{"203.0.113.9, 192.0.2.7, 10.2.2.2"}, "203.0.113.9"},
		{"SeveralHeadersReadAsOneList", "10.1.1.1:5000", []string{"1.1.1.1", "203.0.113.9, 10.2.2.2"}, "203.0.113.9"},
		{"EveryHopTrustedIsTheLeftMost", "10.1.1.1:5000", []string{"10.3.3.3, 10.2.2.2"}, "10.3.3.3"},
		{"GarbageStopsAtTheLastTrustedHop", "10.1.1.1:5000", []string{"203.0.113.9, not-an-ip, 10.2.2.2"}, "10.2.2.2"},
		{"GarbageRightAfterThePeerIsThePeer", "10.1.1.1:5000", []string{"203.0.113.9, <script>"}, "10.1.1.1"},
		{"EntriesWithPorts", "10.1.1.1:5000", []string{"[2001:db8::1]:4711, 203.0.113.9:80"}, "203.0.113.9"},
		{"IPv6Client", "[fd00::1]:5000", []string{"2001:db8::1"}, "2001:db8::1"},
		{"IPv4MappedPeerIsTrustedAsIPv4", "[::ffff:10.1.1.1]:5000", []string{"203.0.113.9"}, "203.0.113.9"},
		{"IPv4MappedClientIsWrittenAsIPv4", "10.1.1.1:5000", []string{"::ffff:203.0.113.9"}, "203.0.113.9"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = c.peer
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := trusted.clientAddress(r); got != c.want {
				t.Fatalf("client address %q, want %q", got, c.want)
			}
			if got := trustedProxies(nil).clientAddress(r); got != parseHostAddr(c.peer).String() {
				t.Fatalf("with no trusted proxy: %q, want the peer", got)
			}
		})
	}
}

// TestTrustedProxiesConfig: KNOWN_TRUSTED_PROXIES takes CIDRs and bare addresses, and a start
// with anything else fails, naming the variable and the entry.
func TestTrustedProxiesConfig(t *testing.T) {
	for _, ok := range []string{"", "10.0.0.0/8", "10.0.0.0/8,192.168.1.1", " fd00::/8 , 127.0.0.1/32 "} {
		if _, err := parseTrustedProxies(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "10.0.0/8", "example.com", "10.0.0.0/8,*", "fe80::1%eth0"} {
		env := testEnv(t)
		env["KNOWN_TRUSTED_PROXIES"] = bad
		k, err := tryStartRun(t, env)
		if err == nil {
			t.Fatalf("%q: Known started", bad)
		}
		if !strings.Contains(k.err.Error(), "KNOWN_TRUSTED_PROXIES") {
			t.Fatalf("%q: the error %q does not name KNOWN_TRUSTED_PROXIES", bad, k.err)
		}
	}
}

// TestRateLimitAndLogUseTheClientAddress: behind a trusted proxy every client has its own
// widget rate-limit bucket and its own client_ip in the request log; a client that is not
// behind a trusted proxy cannot escape its bucket by writing X-Forwarded-For.
func TestRateLimitAndLogUseTheClientAddress(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	start := func(t *testing.T, trust string) (string, *syncBuffer) {
		proxies, err := parseTrustedProxies(trust)
		if err != nil {
			t.Fatal(err)
		}
		st := storetest.Open(t, nil)
		buf := &syncBuffer{}
		log := zerolog.New(buf)
		// A rate of 1 per second is a burst of 2, on a clock that does not move.
		svc := service.New(st, service.Options{Secret: []byte(testSecret), AdminToken: testAdminToken, Log: log,
			WidgetLimiter: ratelimit.NewWithClock(1, clock.Now)})
		srv := httptest.NewServer(withClientAddress(proxies, newServer(log, svc, st, newMetrics())))
		t.Cleanup(func() {
			srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = svc.Wait(ctx)
		})
		return srv.URL, buf
	}
	identify := func(t *testing.T, url, appID, xff string) string {
		h := http.Header{}
		h.Set("X-Forwarded-For", xff)
		return gqlHeaders(t, url, h, identifyMutation, map[string]any{"input": map[string]any{"appId": appID}}).code()
	}

	t.Run("TrustedProxy", func(t *testing.T) {
		url, logs := start(t, "127.0.0.0/8, ::1")
		appID, _ := createProject(t, url, "Behind a proxy")
		for i := range 2 {
			if code := identify(t, url, appID, "203.0.113.1"); code != "" {
				t.Fatalf("call %d of client 1: %s", i, code)
			}
		}
		if code := identify(t, url, appID, "203.0.113.1"); code != "RATE_LIMITED" {
			t.Fatalf("client 1's third call: %q, want RATE_LIMITED", code)
		}
		// Another client behind the same proxy has its own bucket, even if it writes client
		// 1's address into the header: the proxy appends the address it saw.
		if code := identify(t, url, appID, "203.0.113.1, 203.0.113.2"); code != "" {
			t.Fatalf("client 2 was limited with client 1 (%s)", code)
		}
		ips := map[any]int{}
		for _, l := range logs.logLines(t) {
			if l["message"] == "request" && l["path"] == "/graphql" {
				ips[l["client_ip"]]++
			}
		}
		if ips["203.0.113.1"] != 3 || ips["203.0.113.2"] != 1 {
			t.Fatalf("client_ip in the request log: %v, want 203.0.113.1 three times and 203.0.113.2 once", ips)
		}
	})
	t.Run("UntrustedPeer", func(t *testing.T) {
		url, logs := start(t, "")
		appID, _ := createProject(t, url, "No proxy")
		for i := range 2 {
			if code := identify(t, url, appID, "203.0.113."+string(rune('1'+i))); code != "" {
				t.Fatalf("call %d: %s", i, code)
			}
		}
		if code := identify(t, url, appID, "203.0.113.9"); code != "RATE_LIMITED" {
			t.Fatalf("a new X-Forwarded-For escaped the peer's bucket: %q, want RATE_LIMITED", code)
		}
		for _, l := range logs.logLines(t) {
			if l["message"] == "request" && l["client_ip"] != "127.0.0.1" && l["client_ip"] != "::1" {
				t.Fatalf("client_ip %v, want the peer's address", l["client_ip"])
			}
		}
	})
}
