package client

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/lifenavigator/crossservice/internal/names"
	"github.com/lifenavigator/crossservice/transport"
)

// Signer signs one attempt of a request in place: it sets the signing headers
// (request id, timestamp, caller, signature) on req, reading the body through
// req.GetBody without consuming req.Body. The [Transport] calls it once per
// attempt, on a clone of the caller's request, so every attempt carries a
// fresh timestamp and request id. It must be safe for concurrent use.
// [*transport.Signer] is the implementation; the interface lets tests and
// other schemes plug in.
type Signer interface {
	Sign(req *http.Request) error
}

var _ Signer = (*transport.Signer)(nil)

// TransportConfig configures a [Transport]. Every field's zero value is valid
// and documented, except Target, which is required. [NewTransport] returns an
// error for an invalid value; it never replaces one silently.
type TransportConfig struct {
	// Target is the name of the service called (internal service-name grammar,
	// e.g. "financial-service"). It labels metrics, logs and errors. Required.
	Target string

	// Base sends each attempt. nil: http.DefaultTransport. Give it a TLS 1.3
	// client configuration for anything but loopback tests.
	Base http.RoundTripper

	// Signer signs every attempt afresh. nil: requests are sent unsigned.
	// With a Signer, a request with a body must have GetBody (http.NewRequest
	// sets it for bytes and strings readers): the body is hashed through it.
	Signer Signer

	// Retry is the retry policy; its zero value retries up to 3 attempts.
	Retry RetryPolicy

	// Breaker configures the circuit breaker kept per target host.
	Breaker BreakerPolicy

	// PerTryTimeout bounds each attempt from sending to the response headers,
	// inside the caller's deadline; an attempt cut by it may be retried.
	// 0: 10 seconds. Negative: invalid.
	PerTryTimeout time.Duration

	// RateLimit is an optional client-side limit on attempts.
	RateLimit RateLimit

	// Logger receives debug lines per attempt, warnings per retry and breaker
	// changes. Nothing secret is logged: no header values, body, signature,
	// key, query or path. nil: logs are discarded.
	Logger *slog.Logger

	// Metrics receives the Prometheus observations. nil: none are recorded.
	// One [Metrics] may be shared by many Transports.
	Metrics *Metrics

	// Hooks are called synchronously on each attempt, retry and breaker change.
	Hooks Hooks

	// Now is the clock for Retry-After dates and the retry budget. nil:
	// time.Now. (Sleeps and timeouts use real timers.)
	Now func() time.Time
	// Rand returns a uniform float64 in [0, 1) for the backoff jitter; it
	// must be safe for concurrent use. nil: math/rand/v2.Float64.
	Rand func() float64
}

// RetryPolicy says which failures are retried and how long to wait.
// Only idempotent methods (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) and
// requests carrying an Idempotency-Key (or X-Idempotency-Key) header are ever
// retried, on connection failures, per-try timeouts and [RetryPolicy.Statuses].
type RetryPolicy struct {
	// MaxAttempts is the most attempts per request, the first included.
	// 0: 3. 1: never retry. Negative: invalid.
	MaxAttempts int
	// InitialBackoff is the ceiling of the first full-jitter wait (the wait is
	// uniform in [0, ceiling)); the ceiling grows by Multiplier per retry up to
	// MaxBackoff. 0: 50ms. Negative: invalid.
	InitialBackoff time.Duration
	// MaxBackoff caps the ceiling. 0: 2s. Below InitialBackoff: invalid.
	MaxBackoff time.Duration
	// Multiplier is the growth of the ceiling per retry. 0: 2. Below 1: invalid.
	Multiplier float64
	// MaxRetryAfter caps a Retry-After the target asks for: a longer one ends
	// the call at once with a [KindRateLimited] error carrying the wait, as
	// does one reaching past the caller's deadline. 0: 10s. Negative: invalid.
	MaxRetryAfter time.Duration
	// Statuses are the response statuses retried. nil: 429, 502, 503, 504.
	// Non-nil and empty: no status is retried (connection failures and per-try
	// timeouts still are). Each must be in 400..599.
	Statuses []int
	// Budget limits retries relative to requests, per target host. nil:
	// [DefaultBudget].
	Budget *Budget
}

// Budget is a token bucket of retries, as gRPC's retry throttling and Envoy's
// retry budgets: every request deposits Ratio tokens, every retry takes one,
// and MinPerSecond tokens accrue with time so a quiet client can still retry.
// When the bucket is empty the last failure is returned instead of retrying,
// so a failing target sees at most about (1+Ratio)× the request rate plus
// MinPerSecond. Fields are taken literally (0 means zero).
type Budget struct {
	Ratio        float64 // tokens deposited per request; >= 0
	MinPerSecond float64 // tokens accrued per second; >= 0
	Burst        float64 // bucket size, and its initial content; >= 1
}

// DefaultBudget is the budget used when [RetryPolicy.Budget] is nil: retries
// may add 20% to the request rate, plus 10 per second, bursting to 20.
var DefaultBudget = Budget{Ratio: 0.2, MinPerSecond: 10, Burst: 20}

// BreakerPolicy configures the circuit breaker ([github.com/sony/gobreaker/v2])
// kept per target host. Only failures that say the target is unhealthy count:
// connection failures, timeouts (per-try or the caller's deadline), TLS
// failures, 5xx and 429. Other statuses count as successes; the caller's own
// cancellation and local failures (signing, body) are not counted.
type BreakerPolicy struct {
	// Disabled turns the breaker off.
	Disabled bool
	// Failures is how many consecutive counted failures open the breaker.
	// 0: 5.
	Failures uint32
	// OpenTimeout is how long the breaker stays open before letting probes
	// through (half-open). 0: 30s. Negative: invalid.
	OpenTimeout time.Duration
	// HalfOpenProbes is how many requests may probe a half-open breaker; that
	// many consecutive successes close it, one failure opens it again. 0: 1.
	HalfOpenProbes uint32
	// Interval clears the failure counts periodically while closed.
	// 0: counts are cleared only on state changes. Negative: invalid.
	Interval time.Duration
}

// RateLimit is an optional client-side limit on attempts sent by one
// [Transport] ([golang.org/x/time/rate]). An attempt waits for a token; when
// the wait would pass the caller's deadline the call ends at once with a
// [KindRateLimited] error carrying the wait.
type RateLimit struct {
	// PerSecond is the sustained rate. 0: no limit. Negative or NaN: invalid.
	PerSecond float64
	// Burst is the bucket size. 0: 1 when PerSecond is set. Negative: invalid.
	Burst int
}

// Hooks are optional callbacks, called synchronously (keep them fast) and
// concurrently from every goroutine using the Transport.
type Hooks struct {
	// OnAttempt is called after each attempt, with its outcome.
	OnAttempt func(AttemptInfo)
	// OnRetry is called before waiting to retry.
	OnRetry func(RetryInfo)
	// OnBreakerStateChange is called when a target host's breaker changes
	// state. It runs under the breaker's lock: it must not block or call the
	// Transport.
	OnBreakerStateChange func(BreakerChange)
}

// AttemptInfo describes one attempt for [Hooks.OnAttempt].
type AttemptInfo struct {
	Target, Method, Host string
	Attempt              int           // 1 for the first
	Status               int           // 0 when no response
	Err                  *Error        // nil when a response arrived
	Duration             time.Duration // until the response headers
	RequestID            string        // the X-Request-ID this attempt carried
}

// RetryInfo describes a coming retry for [Hooks.OnRetry].
type RetryInfo struct {
	Target, Method string
	Attempt        int           // the attempt that failed
	Reason         string        // "503", "transport", "timeout", ...
	Delay          time.Duration // the wait before the next attempt
	RetryAfter     bool          // the delay is the target's Retry-After
}

// BreakerState is a circuit breaker's state.
type BreakerState uint8

// Breaker states, with the values exported by the breaker_state gauge.
const (
	BreakerClosed   BreakerState = 0
	BreakerHalfOpen BreakerState = 1
	BreakerOpen     BreakerState = 2
)

func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerHalfOpen:
		return "half-open"
	case BreakerOpen:
		return "open"
	}
	return fmt.Sprintf("BreakerState(%d)", uint8(s))
}

// BreakerChange describes a breaker transition for [Hooks.OnBreakerStateChange].
type BreakerChange struct {
	Target, Host string
	From, To     BreakerState
}

// ErrConfig is the cause of every configuration error, reachable with errors.Is.
var ErrConfig = errors.New("client: invalid configuration")

func configError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
}

// resolved is a validated TransportConfig with its defaults applied.
type resolved struct {
	TransportConfig
	statuses [600]bool
	budget   Budget
}

func (c TransportConfig) resolve() (*resolved, error) {
	r := &resolved{TransportConfig: c}
	if !names.Valid(c.Target) {
		return nil, configError("Target %q is not a service name", c.Target)
	}
	if r.Base == nil {
		r.Base = http.DefaultTransport
	}
	switch {
	case c.PerTryTimeout < 0:
		return nil, configError("PerTryTimeout %v is negative", c.PerTryTimeout)
	case c.PerTryTimeout == 0:
		r.PerTryTimeout = 10 * time.Second
	}

	p := &r.Retry
	switch {
	case p.MaxAttempts < 0:
		return nil, configError("Retry.MaxAttempts %d is negative", p.MaxAttempts)
	case p.MaxAttempts == 0:
		p.MaxAttempts = 3
	}
	switch {
	case p.InitialBackoff < 0:
		return nil, configError("Retry.InitialBackoff %v is negative", p.InitialBackoff)
	case p.InitialBackoff == 0:
		p.InitialBackoff = 50 * time.Millisecond
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = max(2*time.Second, p.InitialBackoff)
	}
	if p.MaxBackoff < p.InitialBackoff {
		return nil, configError("Retry.MaxBackoff %v is below InitialBackoff %v", p.MaxBackoff, p.InitialBackoff)
	}
	switch {
	case p.Multiplier == 0:
		p.Multiplier = 2
	case !(p.Multiplier >= 1) || math.IsInf(p.Multiplier, 0):
		return nil, configError("Retry.Multiplier %v is below 1 or not finite", p.Multiplier)
	}
	switch {
	case p.MaxRetryAfter < 0:
		return nil, configError("Retry.MaxRetryAfter %v is negative", p.MaxRetryAfter)
	case p.MaxRetryAfter == 0:
		p.MaxRetryAfter = 10 * time.Second
	}
	statuses := p.Statuses
	if statuses == nil {
		statuses = []int{http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}
	}
	for _, s := range statuses {
		if s < 400 || s > 599 {
			return nil, configError("Retry.Statuses: %d is not in 400..599", s)
		}
		r.statuses[s] = true
	}
	p.Statuses = append([]int(nil), statuses...)
	r.budget = DefaultBudget
	if p.Budget != nil {
		b := *p.Budget
		if !(b.Ratio >= 0) || !(b.MinPerSecond >= 0) || !(b.Burst >= 1) ||
			math.IsInf(b.Ratio, 0) || math.IsInf(b.MinPerSecond, 0) || math.IsInf(b.Burst, 0) {
			return nil, configError("Retry.Budget %+v: Ratio and MinPerSecond must be >= 0, Burst >= 1, all finite", b)
		}
		r.budget = b
	}

	bp := &r.Breaker
	if bp.Failures == 0 {
		bp.Failures = 5
	}
	switch {
	case bp.OpenTimeout < 0:
		return nil, configError("Breaker.OpenTimeout %v is negative", bp.OpenTimeout)
	case bp.OpenTimeout == 0:
		bp.OpenTimeout = 30 * time.Second
	}
	if bp.HalfOpenProbes == 0 {
		bp.HalfOpenProbes = 1
	}
	if bp.Interval < 0 {
		return nil, configError("Breaker.Interval %v is negative", bp.Interval)
	}

	rl := &r.RateLimit
	if !(rl.PerSecond >= 0) {
		return nil, configError("RateLimit.PerSecond %v is negative or NaN", rl.PerSecond)
	}
	switch {
	case rl.Burst < 0:
		return nil, configError("RateLimit.Burst %d is negative", rl.Burst)
	case rl.Burst == 0 && rl.PerSecond > 0:
		rl.Burst = 1
	}

	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	return r, nil
}
