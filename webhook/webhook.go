// Package webhook holds what a webhook delivery is on the wire (API.md §9): the JSON body, the
// signature, and the retry schedule. The deliveries themselves are the service's.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/knownhq/known"
)

// Timeout bounds one delivery attempt: 2xx within it is delivered.
const Timeout = 10 * time.Second

// MaxAttempts is how often a delivery is tried before it is given up (FAILED); with Backoff
// the attempts span about 39 hours, past DisableAfter, so that a receiver that is down for
// good gets its webhook disabled rather than each delivery given up.
const MaxAttempts = 12

// DisableAfter is how long a webhook may fail (no delivery since its first failure) before
// it is disabled.
const DisableAfter = 24 * time.Hour

// Body is the JSON a receiver gets: {id, type, createdAt, data}.
func Body(e *known.InboxEvent) ([]byte, error) {
	return json.Marshal(struct {
		ID        string         `json:"id"`
		Type      string         `json:"type"`
		CreatedAt string         `json:"createdAt"`
		Data      map[string]any `json:"data"`
	}{string(e.ID), string(e.Type), e.CreatedAt.UTC().Format(time.RFC3339Nano), e.Data})
}

// Signature is the Known-Signature header of body sent at t: t=<unix seconds>,v1=<hex
// HMAC-SHA256(secret, "<t>.<body>")>.
func Signature(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return fmt.Sprintf("t=%s,v1=%s", ts, hex.EncodeToString(mac.Sum(nil)))
}

// Backoff is how long to wait after failed attempt n (1, 2, …): 30 s, tripled each time, at
// most 6 hours, each spread by ±20% at random (jitter is a number in [0, 1)), so that
// receivers coming back from an outage are not hit by every retry at once.
func Backoff(n int, jitter float64) time.Duration {
	d := 30 * time.Second
	for i := 1; i < n && d < 6*time.Hour; i++ {
		d *= 3
	}
	d = min(d, 6*time.Hour)
	return time.Duration(float64(d) * (0.8 + 0.4*jitter))
}

// Jitter is the default source of Backoff's jitter.
func Jitter() float64 { return rand.Float64() }
