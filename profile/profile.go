// Package profile fetches a user's profile from the customer's own user API (seed 000): a GET
// with the project's headers, whose answer becomes the user's external profile. Every request
// is guarded: addresses are checked when dialled (loopback, private and link-local ones are
// refused unless allowed), no proxy from the environment is used, and no redirect to another
// host is followed, since the custom headers would go with it.
package profile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"code.dny.dev/ssrf"
	"github.com/knownhq/known"
)

// MaxBody is the largest profile body read; a larger one is an error.
const MaxBody = 1 << 20

// DefaultTimeout is how long a fetch may take (seed 000).
const DefaultTimeout = 10 * time.Second

// Options configures a Client.
type Options struct {
	// AllowPrivate lets requests reach loopback, private and link-local addresses
	// (KNOWN_ALLOW_PRIVATE_NETWORKS).
	AllowPrivate bool
	// Timeout bounds a whole fetch; zero means DefaultTimeout.
	Timeout time.Duration
	// Observe, when set, is told each fetch's status and duration (metrics).
	Observe func(status known.ProfileStatus, d time.Duration)
}

// Client fetches profiles.
type Client struct {
	http    *http.Client
	timeout time.Duration
	observe func(known.ProfileStatus, time.Duration)
}

// errOtherHost refuses a redirect to another host.
var errOtherHost = errors.New("the user API redirected to another host; Known does not follow it, so that its headers stay with your API")

// New returns a Client.
func New(o Options) *Client {
	transport := Transport(o.AllowPrivate)
	timeout := o.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	return &Client{
		http: &http.Client{Transport: transport, CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("the user API redirected more than 3 times")
			}
			if req.URL.Host != via[0].URL.Host || req.URL.Scheme != via[0].URL.Scheme {
				return errOtherHost
			}
			return nil
		}},
		timeout: timeout,
		observe: o.Observe,
	}
}

// Transport is the HTTP transport of Known's requests to customers' URLs (user APIs,
// webhooks): it refuses loopback, private and link-local addresses unless allowPrivate
// (KNOWN_ALLOW_PRIVATE_NETWORKS), checked on the address actually dialled, so that a name
// resolving to an internal address is refused too; and it never uses a proxy.
func Transport(allowPrivate bool) *http.Transport {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	if !allowPrivate {
		dialer.Control = ssrf.New(ssrf.WithAnyPort()).Safe
	}
	return &http.Transport{
		Proxy:                 nil, // never a proxy from the environment
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: DefaultTimeout,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
}

// Endpoint is where and how to ask for a profile.
type Endpoint struct {
	URL         string
	IDPlacement string // PATH: {id} in URL is replaced; QUERY: ?<QueryParam>=<id>
	QueryParam  string
	Headers     []known.Header
}

// Result is the outcome of one fetch. Data is set for StatusFound; Error says, for people,
// what went wrong otherwise (never a header value or the body).
type Result struct {
	Status     known.ProfileStatus
	HTTPStatus int
	Data       *Data
	Error      string
}

// Data is the profile a user API returned (seed 000's fields).
type Data struct {
	FirstName   *string        `json:"first_name"`
	LastName    *string        `json:"last_name"`
	Email       *string        `json:"email"`
	PhoneNumber *string        `json:"phone_number"`
	Metadata    map[string]any `json:"metadata"`
}

// RequestURL returns the URL a fetch of id asks.
func RequestURL(e Endpoint, id string) (string, error) {
	if e.IDPlacement == "QUERY" {
		u, err := url.Parse(e.URL)
		if err != nil {
			return "", err
		}
		q := u.Query()
		param := e.QueryParam
		if param == "" {
			param = "id"
		}
		q.Set(param, id)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	if id == "." || id == ".." {
		// A dot segment would move the request off {id}, to another path of the customer's API.
		return "", errors.New("the id . or .. cannot be placed in a URL path")
	}
	return strings.ReplaceAll(e.URL, "{id}", url.PathEscape(id)), nil
}

// Fetch asks the user API for the profile of the customer's user id (seed 000): 200 with a
// JSON object is StatusFound, 404 NotFound, 401 and 403 Unauthorized; 5xx, other answers, bad
// JSON, a body over MaxBody, a refused address or redirect are Error; no answer within the
// timeout is Timeout.
func (c *Client) Fetch(ctx context.Context, e Endpoint, id string) Result {
	start := time.Now()
	r := c.fetch(ctx, e, id)
	if c.observe != nil {
		c.observe(r.Status, time.Since(start))
	}
	return r
}

func (c *Client) fetch(ctx context.Context, e Endpoint, id string) Result {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	target, err := RequestURL(e, id)
	if err != nil {
		return Result{Status: known.ProfileError, Error: "the request URL could not be made: " + err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return Result{Status: known.ProfileError, Error: "the endpoint URL is not valid"}
	}
	for _, h := range e.Headers {
		req.Header.Set(h.Name, h.Value)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "Known (+user-data endpoint)")
	resp, err := c.http.Do(req)
	if err != nil {
		return failure(ctx, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusNotFound:
		return Result{Status: known.ProfileNotFound, HTTPStatus: resp.StatusCode}
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return Result{Status: known.ProfileUnauthorized, HTTPStatus: resp.StatusCode,
			Error: fmt.Sprintf("the user API answered %d: check the endpoint's headers", resp.StatusCode)}
	default:
		return Result{Status: known.ProfileError, HTTPStatus: resp.StatusCode,
			Error: fmt.Sprintf("the user API answered %d", resp.StatusCode)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		r := failure(ctx, err)
		r.HTTPStatus = resp.StatusCode
		return r
	}
	if len(body) > MaxBody {
		return Result{Status: known.ProfileError, HTTPStatus: resp.StatusCode, Error: "the user API's answer is larger than 1 MiB"}
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		return Result{Status: known.ProfileError, HTTPStatus: resp.StatusCode, Error: "the user API's answer is not a JSON object"}
	}
	var d Data
	if err := json.Unmarshal(body, &d); err != nil {
		return Result{Status: known.ProfileError, HTTPStatus: resp.StatusCode,
			Error: "the user API's answer has fields of the wrong type (names, email and phone_number are strings, metadata an object)"}
	}
	return Result{Status: known.ProfileFound, HTTPStatus: resp.StatusCode, Data: &d}
}

// failure classifies a request that got no usable answer.
func failure(ctx context.Context, err error) Result {
	switch {
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return Result{Status: known.ProfileTimeout, Error: "the user API did not answer in time"}
	case errors.Is(err, errOtherHost):
		return Result{Status: known.ProfileError, Error: errOtherHost.Error()}
	case errors.Is(err, ssrf.ErrProhibitedIP), errors.Is(err, ssrf.ErrProhibitedPort), errors.Is(err, ssrf.ErrProhibitedNetwork),
		errors.Is(err, ssrf.ErrInvalidHostPort):
		return Result{Status: known.ProfileError,
			Error: "the user API's address is loopback, private or link-local; set KNOWN_ALLOW_PRIVATE_NETWORKS=true to allow it"}
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		return Result{Status: known.ProfileTimeout, Error: "the user API did not answer in time"}
	}
	return Result{Status: known.ProfileError, Error: "the user API could not be reached"}
}
