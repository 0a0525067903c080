package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// trustedProxies are the peers (KNOWN_TRUSTED_PROXIES) that may name the client's address in
// X-Forwarded-For: the reverse proxies in front of Known.
type trustedProxies []netip.Prefix

// parseTrustedProxies reads a comma- or space-separated list of CIDRs (a bare address counts
// as a /32 or /128). An entry that is neither is an error naming it, so that a typo does not
// silently trust nobody, or everybody.
func parseTrustedProxies(list string) (trustedProxies, error) {
	var out trustedProxies
	for _, f := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		if p, err := netip.ParsePrefix(f); err == nil {
			if p.Addr().Zone() != "" {
				return nil, fmt.Errorf("KNOWN_TRUSTED_PROXIES: %q: a zone is not allowed", f)
			}
			out = append(out, netip.PrefixFrom(p.Addr().Unmap(), unmappedBits(p)).Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("KNOWN_TRUSTED_PROXIES: %q is not a CIDR like 10.0.0.0/8 or fd00::/8, nor an IP address", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// unmappedBits is p's prefix length once an IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104)
// is read as the IPv4 prefix it stands for (10.0.0.0/8).
func unmappedBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return max(0, p.Bits()-96)
	}
	return p.Bits()
}

func (t trustedProxies) trusts(a netip.Addr) bool {
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddress returns the address of the client that sent r. The peer's address, unless
// the peer is a trusted proxy: then the right-most address of X-Forwarded-For that is not
// a trusted proxy, walking from the peer towards the client. Each proxy appends the address
// it received the request from, so the addresses right of the first untrusted one were
// written by trusted proxies, and everything left of it may be the client's invention. When
// every address is trusted, the left-most one is the client; an entry that is no address
// stops the walk at the last trusted hop, which is the nearest one the chain vouches for.
func (t trustedProxies) clientAddress(r *http.Request) string {
	peer := parseHostAddr(r.RemoteAddr)
	if !peer.IsValid() {
		return r.RemoteAddr
	}
	if len(t) == 0 || !t.trusts(peer) {
		return peer.String()
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(h, ",")...)
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a := parseHostAddr(strings.TrimSpace(hops[i]))
		if !a.IsValid() {
			break
		}
		client = a
		if !t.trusts(a) {
			break
		}
	}
	return client.String()
}

// parseHostAddr reads an address as it appears in RemoteAddr or in X-Forwarded-For: "ip",
// "ip:port", "[ipv6]" or "[ipv6]:port"; the zero Addr when it is none of these.
func parseHostAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

type clientIPKey struct{}

// withClientAddress works out each request's client address once, for the widget rate limit
// (withClient) and the request log (logRequests).
func withClientAddress(t trustedProxies, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientIPKey{}, t.clientAddress(r))))
	})
}

// clientIP returns r's client address: the one withClientAddress worked out, or the peer's
// when it did not run (no proxy is trusted then).
func clientIP(r *http.Request) string {
	if ip, ok := r.Context().Value(clientIPKey{}).(string); ok {
		return ip
	}
	return trustedProxies(nil).clientAddress(r)
}
