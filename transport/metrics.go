package transport

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds the verifier's Prometheus collectors. It is itself a
// prometheus.Collector: register it once, and pass it to as many [Config]
// values as you like (their observations add up).
//
//	m := transport.NewMetrics("")
//	prometheus.MustRegister(m)
//	v, err := transport.New(transport.Config{..., Metrics: m})
//
// Labels are bounded: outcome ("admitted" or a [Code]), scheme ("v1",
// "legacy" or "unsigned": the form of the request, X-Key-ID present or not,
// X-Signature absent), caller, class ("admitted", "refused" for a 4xx,
// "unavailable" for a 503), backend ("replay_store" or "rate_limiter") and
// kind ("full", "timeout", "canceled" or "error"). No path, query, request
// id, header value, signature or secret is ever a label.
//
// caller is the name of a verified caller, one whose signature verified
// with an active key: a set bounded by Config.Keys, fixed at [New]. Every
// other request, refused before its signature verified (or admitted
// unsigned in non-strict mode), is caller "unknown": X-Service-Name is then
// only a claim, and labelling with it would let anyone create series, or
// charge a real caller with the refusals of whoever pretends to be it.
// caller is there because "who is being rate limited, who replays, who is
// calling" are the questions these series answer; it is on the counter
// only, not on the histogram, whose buckets would multiply it.
//
// Series, with the namespace (default "xsvc"):
//
//	<ns>_verifier_requests_total{outcome,scheme,caller}    requests, by the verifier's decision
//	<ns>_verifier_duration_seconds{class}                  the verification alone: until the handler is called or the refusal written
//	<ns>_verifier_backend_errors_total{backend,kind}       replay store and limiter errors (under FailOpen too)
//
// A request admitted by an outer guard and refused by an inner guard of the
// same verifier (nested guards, see [Verifier.Middleware]) is counted once
// for each decision: admitted, then refused.
type Metrics struct {
	requests, backend *prometheus.CounterVec
	latency           *prometheus.HistogramVec
}

// NewMetrics returns unregistered collectors. namespace "" means "xsvc".
func NewMetrics(namespace string) *Metrics {
	if namespace == "" {
		namespace = "xsvc"
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "verifier", Name: name, Help: help,
		}, labels)
	}
	return &Metrics{
		requests: counter("requests_total", "Requests through the verifier, by outcome (admitted or the problem code), scheme and verified caller.", "outcome", "scheme", "caller"),
		backend:  counter("backend_errors_total", "Errors of the replay store and the rate limiter, by backend and kind.", "backend", "kind"),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "verifier", Name: "duration_seconds",
			Help:    "Duration of the verification until the handler is called or the refusal written, in seconds.",
			Buckets: prometheus.ExponentialBuckets(0.000025, 2.5, 14), // 25µs .. ~3.7s
		}, []string{"class"}),
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
	return []prometheus.Collector{m.requests, m.backend, m.latency}
}

var _ prometheus.Collector = (*Metrics)(nil)

// Label values.
const (
	outcomeAdmitted = "admitted"
	callerUnknown   = "unknown"

	schemeLabelV1       = "v1"
	schemeLabelLegacy   = "legacy"
	schemeLabelUnsigned = "unsigned"

	classAdmitted    = "admitted"
	classRefused     = "refused"
	classUnavailable = "unavailable"

	backendReplay  = "replay_store"
	backendLimiter = "rate_limiter"
)

// Hooks are optional callbacks, called synchronously on the request's
// goroutine (keep them fast: the request waits) and concurrently from every
// request the verifier serves. They receive no key, signature, path or
// body; the only header value is the request id, which the problem echoes
// anyway. A panic in a hook is a panic in the handler.
type Hooks struct {
	// OnAdmitted is called once per admitted request, just before the
	// handler runs.
	OnAdmitted func(AdmitInfo)
	// OnRefused is called once per refused request, after the problem
	// was written.
	OnRefused func(RefusalInfo)
}

// AdmitInfo describes an admitted request for [Hooks.OnAdmitted].
type AdmitInfo struct {
	Caller    string // the verified caller; "" when admitted unsigned
	KeyID     string // id of the key that verified; "" when unsigned
	Scheme    Scheme // "" when admitted unsigned (non-strict mode)
	RequestID string // X-Request-ID; "" when unsigned
	// Skew is this server's clock minus X-Timestamp: positive for a
	// request signed in the past. Zero when unsigned.
	Skew time.Duration
	// FailedOpen: the replay store or limiter failed and Config.FailOpen
	// admitted the request without that check (development only).
	FailedOpen bool
	Duration   time.Duration // of the verification, until now
}

// RefusalInfo describes a refused request for [Hooks.OnRefused].
type RefusalInfo struct {
	Code Code // as in the problem; Code.Status() is the HTTP status
	// Check is the failed check as the log line names it ("unsigned",
	// "missing X-Timestamp", "signature_mismatch", "key_retired", "replay",
	// "rate_limited", ...): a fixed set, more precise than Code.
	Check string
	// Caller is the caller only when its signature verified (replay,
	// route access, rate limit, store or limiter errors); "" otherwise,
	// however the request named itself.
	Caller string
	// Scheme is the form of the request: SchemeV1 with X-Key-ID,
	// SchemeLegacy without, "" without X-Signature.
	Scheme Scheme
	// RequestID is the X-Request-ID echoed in the problem ("" when missing
	// or malformed).
	RequestID string
	// Skew is this server's clock minus X-Timestamp, valid when HasSkew
	// (the request reached the freshness check).
	Skew    time.Duration
	HasSkew bool
	// Err is the replay store's or limiter's error, for those refusals.
	Err        error
	RetryAfter time.Duration // sent as Retry-After; zero: none
	Duration   time.Duration // of the verification, the problem written
}

// The methods below accept a nil *Metrics, so the verifier needs no checks.

func (m *Metrics) request(outcome, scheme, caller, class string, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(outcome, scheme, caller).Inc()
	m.latency.WithLabelValues(class).Observe(d.Seconds())
}

func (m *Metrics) backendError(backend string, err error) {
	if m != nil {
		m.backend.WithLabelValues(backend, errorKind(err)).Inc()
	}
}

// errorKind classifies a replay store or limiter error.
func errorKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, ErrReplayStoreFull):
		return "full"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "error"
}

// schemeLabel is the scheme label of a request: its form.
func schemeLabel(s Scheme) string {
	switch s {
	case SchemeV1:
		return schemeLabelV1
	case SchemeLegacy:
		return schemeLabelLegacy
	}
	return schemeLabelUnsigned
}

// requestForm is the scheme of a request by its headers, before they are
// checked: "" without X-Signature.
func requestForm(h http.Header) Scheme {
	switch {
	case len(h[hdrSignature]) == 0:
		return ""
	case len(h[hdrKeyID]) == 0:
		return SchemeLegacy
	}
	return SchemeV1
}

// observeRefusal records a refusal; v.observe is set.
func (v *Verifier) observeRefusal(r *http.Request, code Code, c *check, retry time.Duration) {
	d := time.Since(c.start)
	scheme := c.scheme
	if scheme == "" {
		scheme = requestForm(r.Header)
	}
	caller := ""
	if c.verified {
		caller = c.caller
	}
	if v.metrics != nil {
		class := classRefused
		if code.Status() >= 500 {
			class = classUnavailable
		}
		label := caller
		if label == "" {
			label = callerUnknown
		}
		v.metrics.request(string(code), schemeLabel(scheme), label, class, d)
	}
	if v.hooks.OnRefused != nil {
		info := RefusalInfo{Code: code, Check: c.reason, Caller: caller, Scheme: scheme, RequestID: c.requestID,
			HasSkew: c.hasSkew, Err: c.err, RetryAfter: retry, Duration: d}
		if c.hasSkew {
			info.Skew = time.Duration(c.skewMS) * time.Millisecond
		}
		v.hooks.OnRefused(info)
	}
}

// observeAdmission records an admission; v.observe is set. cl is nil for
// a request admitted unsigned.
func (v *Verifier) observeAdmission(c *check, cl *Caller) {
	d := time.Since(c.start)
	if cl == nil {
		v.metrics.request(outcomeAdmitted, schemeLabelUnsigned, callerUnknown, classAdmitted, d)
		if v.hooks.OnAdmitted != nil {
			v.hooks.OnAdmitted(AdmitInfo{Duration: d})
		}
		return
	}
	v.metrics.request(outcomeAdmitted, schemeLabel(cl.Scheme), cl.Service, classAdmitted, d)
	if v.hooks.OnAdmitted != nil {
		v.hooks.OnAdmitted(AdmitInfo{Caller: cl.Service, KeyID: cl.KeyID, Scheme: cl.Scheme, RequestID: cl.RequestID,
			Skew: time.Duration(c.skewMS) * time.Millisecond, FailedOpen: c.failedOpen, Duration: d})
	}
}
