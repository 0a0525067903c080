package main

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/knownhq/known"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.mongodb.org/mongo-driver/v2/event"
)

// maxOperationLabels bounds the operation names that get their own series: clients choose the
// names, and an unbounded label would let them exhaust the metrics' memory.
const maxOperationLabels = 200

// metrics are Known's Prometheus metrics, on a registry of their own.
type metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	errors       *prometheus.CounterVec
	commands     *prometheus.CounterVec
	commandTimes *prometheus.HistogramVec
	fetches      *prometheus.HistogramVec
	routes       *prometheus.CounterVec
	routeTimes   *prometheus.HistogramVec
	routeErrors  *prometheus.CounterVec

	mu  sync.Mutex
	ops map[string]bool
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "known_graphql_requests_total", Help: "GraphQL requests by operation name.",
		}, []string{"operation"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "known_graphql_request_duration_seconds", Help: "GraphQL request latency by operation name.",
			Buckets: prometheus.DefBuckets,
		}, []string{"operation"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "known_graphql_errors_total", Help: "GraphQL errors by extensions.code.",
		}, []string{"code"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "known_mongodb_commands_total", Help: "MongoDB commands sent, by command and outcome.",
		}, []string{"command", "outcome"}),
		commandTimes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "known_mongodb_command_duration_seconds", Help: "MongoDB command latency by command.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"command"}),
		fetches: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "known_profile_fetch_duration_seconds", Help: "Fetches from customers' user APIs, by outcome (a histogram: _count is the number of fetches).",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"status"}),
		routes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "known_rest_requests_total", Help: "Requests to the REST routes, by route and HTTP status.",
		}, []string{"route", "status"}),
		routeTimes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "known_rest_request_duration_seconds", Help: "REST route latency by route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		routeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "known_rest_errors_total", Help: "Errors the REST routes answered, by error code.",
		}, []string{"code"}),
		ops: map[string]bool{},
	}
	m.reg.MustRegister(m.requests, m.latency, m.errors, m.commands, m.commandTimes, m.fetches,
		m.routes, m.routeTimes, m.routeErrors,
		readBuildInfo().collector(), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

var opName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// operationLabel maps a client-chosen operation name to a bounded label value.
func (m *metrics) operationLabel(name string) string {
	switch {
	case name == "":
		return "(anonymous)"
	case !opName.MatchString(name):
		return "(invalid)"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ops[name] {
		return name
	}
	if len(m.ops) >= maxOperationLabels {
		return "(other)"
	}
	m.ops[name] = true
	return name
}

func (m *metrics) observeRequest(operation string, d time.Duration) {
	op := m.operationLabel(operation)
	m.requests.WithLabelValues(op).Inc()
	m.latency.WithLabelValues(op).Observe(d.Seconds())
}

// observeRoute records one request to a REST route. Routes are Known's own patterns, a
// bounded set, so they label the series as they are.
func (m *metrics) observeRoute(route string, status int, d time.Duration) {
	m.routes.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.routeTimes.WithLabelValues(route).Observe(d.Seconds())
}

// commandMonitor counts and times every MongoDB command the store sends.
func (m *metrics) commandMonitor() *event.CommandMonitor {
	return &event.CommandMonitor{
		Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) {
			m.commands.WithLabelValues(e.CommandName, "ok").Inc()
			m.commandTimes.WithLabelValues(e.CommandName).Observe(e.Duration.Seconds())
		},
		Failed: func(_ context.Context, e *event.CommandFailedEvent) {
			m.commands.WithLabelValues(e.CommandName, "error").Inc()
			m.commandTimes.WithLabelValues(e.CommandName).Observe(e.Duration.Seconds())
		},
	}
}

// observeFetch records one fetch from a customer's user API.
func (m *metrics) observeFetch(status known.ProfileStatus, d time.Duration) {
	m.fetches.WithLabelValues(string(status)).Observe(d.Seconds())
}
