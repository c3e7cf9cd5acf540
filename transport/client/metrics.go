package client

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds the client's Prometheus collectors. It is itself a
// prometheus.Collector: register it once, and pass it to as many
// [TransportConfig] values as you like.
//
//	m := client.NewMetrics("")
//	prometheus.MustRegister(m)
//
// Labels are bounded: target (a configured service name), method (the
// standard methods, anything else is "OTHER"), code (the HTTP status, or the
// [Kind] name when there was no response), reason (a [Kind] name, an HTTP
// status, or a denial reason) and host (the target's configured host:port).
// No path, query, id, header value or secret is ever a label.
//
// Series, with the namespace (default "xsvc"):
//
//	<ns>_client_requests_total{target,method,code}         calls, by final outcome
//	<ns>_client_attempts_total{target,method,code}         attempts sent, by outcome
//	<ns>_client_retries_total{target,method,reason}        retries, by the failure retried
//	<ns>_client_retries_denied_total{target,reason}        retries not made: budget, deadline, retry_after, not_rewindable, not_idempotent, attempts
//	<ns>_client_errors_total{target,method,reason}         calls ending in an *Error, by Kind
//	<ns>_client_breaker_state{target,host}                 0 closed, 1 half-open, 2 open
//	<ns>_client_request_duration_seconds{target,method}    whole calls, retries and waits included, until response headers
type Metrics struct {
	requests, attempts, retries, errors *prometheus.CounterVec
	denied                              *prometheus.CounterVec
	breaker                             *prometheus.GaugeVec
	latency                             *prometheus.HistogramVec
}

// NewMetrics returns unregistered collectors. namespace "" means "xsvc".
func NewMetrics(namespace string) *Metrics {
	if namespace == "" {
		namespace = "xsvc"
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "client", Name: name, Help: help,
		}, labels)
	}
	return &Metrics{
		requests: counter("requests_total", "Calls made through the client, by final status code or error kind.", "target", "method", "code"),
		attempts: counter("attempts_total", "Attempts sent to the target, by status code or error kind.", "target", "method", "code"),
		retries:  counter("retries_total", "Retries made, by the status code or error kind retried.", "target", "method", "reason"),
		denied:   counter("retries_denied_total", "Retries not made although the failure was retryable, by reason.", "target", "reason"),
		errors:   counter("errors_total", "Calls that ended in an error, by error kind.", "target", "method", "reason"),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "client", Name: "breaker_state",
			Help: "Circuit breaker state per target host: 0 closed, 1 half-open, 2 open.",
		}, []string{"target", "host"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "client", Name: "request_duration_seconds",
			Help:    "Duration of whole calls (retries and waits included) until the response headers, in seconds.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12), // 1ms .. ~60s
		}, []string{"target", "method"}),
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.attempts, m.retries, m.denied, m.errors, m.breaker, m.latency}
}

var _ prometheus.Collector = (*Metrics)(nil)

// methodLabel bounds the method label to the standard methods.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodTrace, http.MethodConnect:
		return m
	}
	return "OTHER"
}

// codeLabel is the status code, or the error kind when there was no response.
func codeLabel(status int, kind Kind) string {
	if kind != 0 {
		return kind.String()
	}
	return statusLabel(status)
}

// statusLabels holds the decimal strings of the statuses 100..599, so that
// labelling a response costs no allocation.
var statusLabels = func() (t [500]string) {
	for i := range t {
		t[i] = strconv.Itoa(100 + i)
	}
	return t
}()

// statusLabel returns strconv.Itoa(status), without allocating for 100..599.
func statusLabel(status int) string {
	if status >= 100 && status < 600 {
		return statusLabels[status-100]
	}
	return strconv.Itoa(status)
}

// The methods below accept a nil *Metrics, so the Transport needs no checks.

func (m *Metrics) attempt(target, method, code string) {
	if m != nil {
		m.attempts.WithLabelValues(target, method, code).Inc()
	}
}

func (m *Metrics) retry(target, method, reason string) {
	if m != nil {
		m.retries.WithLabelValues(target, method, reason).Inc()
	}
}

func (m *Metrics) deny(target, reason string) {
	if m != nil {
		m.denied.WithLabelValues(target, reason).Inc()
	}
}

func (m *Metrics) done(target, method, code string, kind Kind, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(target, method, code).Inc()
	m.latency.WithLabelValues(target, method).Observe(d.Seconds())
	if kind != 0 {
		m.errors.WithLabelValues(target, method, kind.String()).Inc()
	}
}

func (m *Metrics) breakerState(target, host string, s BreakerState) {
	if m != nil {
		m.breaker.WithLabelValues(target, host).Set(float64(s))
	}
}
