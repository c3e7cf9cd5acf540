package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/lifenavigator/crossservice/transport"
	"golang.org/x/time/rate"
)

// Transport is the resilient, signing http.RoundTripper for one target
// service. For each request it waits for the client-side rate limit, asks the
// target host's circuit breaker, clones the request, signs the clone, sends it
// through Base under a per-try timeout, and retries what its [RetryPolicy]
// allows after a full-jitter exponential backoff or the target's Retry-After,
// within a retry budget and never past the caller's deadline.
//
// A response is returned as a response, whatever its status, with two
// exceptions where the Transport ends the call with an [*Error] instead
// (closing the response): it would have retried but the Retry-After is too
// long ([KindRateLimited], [ErrRetryAfterTooLong]), or it would have retried
// but the body cannot be rewound ([transport.ErrBodyNotRewindable]). Every other failure is
// an [*Error] too. The [Client] turns error statuses into [*Error] as well.
//
// Use it with an http.Client whose Timeout is zero: net/http replaces the
// error of a call cut by Client.Timeout by one that wraps nothing, so
// errors.As could no longer reach the [*Error]; put deadlines on the request
// context instead. Do not let the http.Client follow redirects to other hosts
// (the [Client] follows none): the Transport would sign the redirected request.
//
// A Transport is safe for concurrent use; share one per target.
type Transport struct {
	c       *resolved
	limiter *rate.Limiter
	hosts   sync.Map // host:port → *host
}

var _ http.RoundTripper = (*Transport)(nil)

// NewTransport validates cfg and returns a Transport.
func NewTransport(cfg TransportConfig) (*Transport, error) {
	r, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	t := &Transport{c: r}
	if r.RateLimit.PerSecond > 0 {
		t.limiter = rate.NewLimiter(rate.Limit(r.RateLimit.PerSecond), r.RateLimit.Burst)
	}
	return t, nil
}

// Target returns the target service's name.
func (t *Transport) Target() string { return t.c.Target }

// BreakerState returns the state of the breaker for a target host
// ("host:port" as in the request URL); closed when it has none yet.
func (t *Transport) BreakerState(hostport string) BreakerState {
	v, ok := t.hosts.Load(hostport)
	if !ok || v.(*host).cb == nil {
		return BreakerClosed
	}
	return breakerState(v.(*host).cb.State())
}

// call is the state of one RoundTrip.
type call struct {
	t        *Transport
	req      *http.Request
	ctx      context.Context
	method   string
	host     *host
	start    time.Time
	attempts int
	bodyUsed bool // req.Body was handed to Base or closed
	lastID   string
	lastCode int // status of the last response, for errors after it
	bo       *fullJitter
	out      outcome // the current attempt's, reused by the next one
	rb       body    // the response body handed to the caller
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	c := &call{t: t, req: req, ctx: req.Context(), method: req.Method, start: time.Now()}
	if c.method == "" {
		c.method = http.MethodGet
	}
	defer func() {
		if !c.bodyUsed && req.Body != nil {
			_ = req.Body.Close()
		}
	}()
	if req.URL == nil || req.URL.Host == "" {
		return c.done(nil, c.fail(KindTransport, errors.New("client: request has no URL host"), false))
	}
	c.host = t.host(req.URL.Host)
	c.host.deposit(&t.c.budget, t.c.Now())
	resp, err := c.run()
	return c.done(resp, err)
}

// done records the call's final outcome.
func (c *call) done(resp *http.Response, err error) (*http.Response, error) {
	d := time.Since(c.start)
	m := methodLabel(c.method)
	if err != nil {
		kind := KindTransport
		if e := (*Error)(nil); errors.As(err, &e) {
			kind = e.Kind
		}
		c.t.c.Metrics.done(c.t.c.Target, m, kind.String(), kind, d)
		return nil, err
	}
	if c.t.c.Metrics != nil {
		c.t.c.Metrics.done(c.t.c.Target, m, statusLabel(resp.StatusCode), 0, d)
	}
	return resp, nil
}

// fail builds the call's *Error.
func (c *call) fail(kind Kind, cause error, retryable bool) *Error {
	return &Error{Kind: kind, Target: c.t.c.Target, Method: c.method, Attempts: c.attempts, Status: c.lastCode,
		Err: cause, retryable: retryable, requestID: c.lastID}
}

// failCtx is the error for a call whose context ended outside an attempt.
func (c *call) failCtx(err error) *Error {
	if errors.Is(err, context.DeadlineExceeded) {
		return c.fail(KindTimeout, err, true)
	}
	return c.fail(KindCanceled, err, false)
}

// failResponse closes resp and builds an *Error from it and its problem body.
func (c *call) failResponse(kind Kind, resp *http.Response, cause error, retryAfter time.Duration) *Error {
	e := c.fail(kind, cause, true)
	e.Status = resp.StatusCode
	e.Problem = readProblem(resp, c.lastID)
	e.RetryAfter = retryAfter
	return e
}

func (c *call) run() (*http.Response, error) {
	cfg := c.t.c
	canRetry := cfg.Retry.MaxAttempts > 1 && idempotent(c.req)
	rewindable := c.req.Body == nil || c.req.Body == http.NoBody || c.req.GetBody != nil
	for {
		if err := c.ctx.Err(); err != nil {
			return nil, c.failCtx(err)
		}
		if c.t.limiter != nil {
			if err := c.waitLimiter(); err != nil {
				return nil, err
			}
		}
		verdict, err := c.host.allow()
		if err != nil {
			// Open, or half-open with its probes already in flight.
			return nil, c.fail(KindBreakerOpen, ErrBreakerOpen, true)
		}
		o := c.attempt()
		verdict(o.verdict())
		c.observe(o)

		reason, retry := o.retryReason(c)
		if !retry {
			return o.finish(c)
		}
		if !canRetry {
			if cfg.Retry.MaxAttempts > 1 {
				cfg.Metrics.deny(cfg.Target, "not_idempotent")
			}
			return o.finish(c)
		}
		if c.attempts >= cfg.Retry.MaxAttempts {
			cfg.Metrics.deny(cfg.Target, "attempts")
			return o.finish(c)
		}
		if !rewindable {
			cfg.Metrics.deny(cfg.Target, "not_rewindable")
			o.stop()
			if o.resp != nil {
				e := c.failResponse(statusKind(o.resp.StatusCode), o.resp, transport.ErrBodyNotRewindable, 0)
				o.cancel(nil)
				return nil, e
			}
			return nil, c.fail(o.kind, fmt.Errorf("%w (%w)", o.cause, transport.ErrBodyNotRewindable), o.retryable(cfg))
		}

		// How long to wait: the target's Retry-After, else the backoff.
		var wait time.Duration
		fromHeader := false
		if o.resp != nil {
			if ra, ok := parseRetryAfter(o.resp.Header.Get("Retry-After"), cfg.Now()); ok {
				wait, fromHeader = ra, true
				if ra > cfg.Retry.MaxRetryAfter || pastDeadline(c.ctx, ra) {
					cfg.Metrics.deny(cfg.Target, "retry_after")
					o.stop()
					e := c.failResponse(KindRateLimited, o.resp, ErrRetryAfterTooLong, ra)
					o.cancel(nil)
					return nil, e
				}
			}
		}
		if c.bo == nil {
			c.bo = newFullJitter(&cfg.Retry, cfg.Rand)
		}
		if fromHeader {
			c.bo.Reset() // as backoff.Retry does after a RetryAfterError
		} else {
			wait = c.bo.NextBackOff()
		}
		if pastDeadline(c.ctx, wait) {
			cfg.Metrics.deny(cfg.Target, "deadline")
			return o.finish(c)
		}
		if !c.host.withdraw(&cfg.budget, cfg.Now()) {
			cfg.Metrics.deny(cfg.Target, "budget")
			cfg.Logger.Warn("client: retry budget exhausted", "target", cfg.Target, "host", c.host.name)
			return o.finish(c)
		}
		o.discard()

		cfg.Metrics.retry(cfg.Target, methodLabel(c.method), reason)
		cfg.Logger.Warn("client: retrying", "target", cfg.Target, "method", c.method, "attempt", c.attempts,
			"reason", reason, "wait", wait, "retry_after", fromHeader)
		if h := cfg.Hooks.OnRetry; h != nil {
			h(RetryInfo{Target: cfg.Target, Method: c.method, Attempt: c.attempts, Reason: reason, Delay: wait, RetryAfter: fromHeader})
		}
		if err := sleep(c.ctx, wait); err != nil {
			return nil, c.failCtx(err)
		}
	}
}

// waitLimiter takes a token from the client-side rate limit, or fails at
// once when the wait would pass the caller's deadline.
func (c *call) waitLimiter() error {
	r := c.t.limiter.Reserve()
	d := r.Delay()
	if !r.OK() || pastDeadline(c.ctx, d) {
		r.Cancel()
		e := c.fail(KindRateLimited, ErrLocalRateLimit, true)
		e.RetryAfter = d
		return e
	}
	if err := sleep(c.ctx, d); err != nil {
		r.Cancel()
		return c.failCtx(err)
	}
	return nil
}

// outcome is the result of one attempt.
type outcome struct {
	resp   *http.Response // nil on failure
	kind   Kind           // 0 with a response
	cause  error
	local  bool // failed before anything was sent
	start  time.Time
	dur    time.Duration // until the response headers
	actx   context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
}

// attempt sends one signed clone of the request.
func (c *call) attempt() *outcome {
	cfg := c.t.c
	actx, cancel := context.WithCancelCause(c.ctx)
	// The previous attempt, if any, is released (discard) before this one.
	o := &c.out
	*o = outcome{actx: actx, cancel: cancel, start: time.Now()}
	c.attempts++
	areq := c.req.Clone(actx)
	if err := c.prepareBody(areq); err != nil {
		o.kind, o.cause, o.local = KindTransport, err, true
		c.attempts--
		cancel(nil)
		return o
	}
	if cfg.Signer != nil {
		if err := cfg.Signer.Sign(areq); err != nil {
			if areq.Body != nil {
				_ = areq.Body.Close()
			}
			o.kind, o.cause, o.local = KindTransport, fmt.Errorf("client: signing: %w", err), true
			c.attempts--
			cancel(nil)
			return o
		}
	}
	c.lastID = ""
	if v := areq.Header["X-Request-Id"]; len(v) > 0 { // canonical key: no allocation
		c.lastID = v[0]
	}
	o.timer = time.AfterFunc(cfg.PerTryTimeout, func() { cancel(ErrPerTryTimeout) })
	resp, err := cfg.Base.RoundTrip(areq)
	o.dur = time.Since(o.start)
	if err != nil {
		o.stop()
		o.kind, o.cause = classify(c.ctx, actx, err)
		cancel(nil)
		return o
	}
	o.resp = resp
	c.lastCode = resp.StatusCode
	return o
}

// prepareBody gives areq the body for this attempt: the caller's on the
// first, a fresh one from GetBody on the next.
func (c *call) prepareBody(areq *http.Request) error {
	if c.req.Body == nil || c.req.Body == http.NoBody {
		return nil
	}
	if !c.bodyUsed {
		c.bodyUsed = true // Base (or signingBody) closes it from here on
		return nil
	}
	b, err := c.req.GetBody()
	if err != nil {
		return fmt.Errorf("client: GetBody: %w", err)
	}
	areq.Body = b
	return nil
}

// verdict is what the breaker counts: unhealthy-target failures only.
func (o *outcome) verdict() error {
	switch {
	case o.local, o.kind == KindCanceled:
		return errExcluded
	case o.kind != 0:
		return errUnhealthy
	case o.resp.StatusCode >= 500, o.resp.StatusCode == http.StatusTooManyRequests:
		return errUnhealthy
	}
	return nil
}

// retryReason says whether the outcome may be retried and labels why.
func (o *outcome) retryReason(c *call) (string, bool) {
	if o.resp != nil {
		s := o.resp.StatusCode
		return statusLabel(s), c.t.c.statuses[s]
	}
	if o.local || c.ctx.Err() != nil {
		return o.kind.String(), false // nothing sent, or the caller's context ended
	}
	// Connection failures, per-try and network timeouts; not TLS failures.
	return o.kind.String(), o.kind == KindTransport || o.kind == KindTimeout
}

// retryable is Error.Retryable for this outcome.
func (o *outcome) retryable(cfg *resolved) bool {
	switch o.kind {
	case KindTransport:
		return !o.local
	case KindTimeout, KindRateLimited, KindBreakerOpen:
		return true
	case KindRemote:
		return o.resp != nil && cfg.statuses[o.resp.StatusCode]
	}
	return false
}

func (c *call) observe(o *outcome) {
	cfg := c.t.c
	status := 0
	if o.resp != nil {
		status = o.resp.StatusCode
	}
	if cfg.Metrics != nil {
		cfg.Metrics.attempt(cfg.Target, methodLabel(c.method), codeLabel(status, o.kind))
	}
	if cfg.Logger.Enabled(c.ctx, slog.LevelDebug) {
		cfg.Logger.Debug("client: attempt", "target", cfg.Target, "method", c.method, "host", c.host.name,
			"attempt", c.attempts, "outcome", codeLabel(status, o.kind), "request_id", c.lastID)
	}
	if h := cfg.Hooks.OnAttempt; h != nil {
		info := AttemptInfo{Target: cfg.Target, Method: c.method, Host: c.host.name, Attempt: c.attempts,
			Status: status, Duration: o.dur, RequestID: c.lastID}
		if o.kind != 0 {
			info.Err = c.fail(o.kind, o.cause, o.retryable(cfg))
		}
		h(info)
	}
}

// stop disarms the per-try timer.
func (o *outcome) stop() {
	if o.timer != nil {
		o.timer.Stop()
	}
}

// discard drains a little of a response that will be retried, so that its
// connection can be reused, then releases the attempt.
func (o *outcome) discard() {
	if o.resp != nil {
		_, _ = io.CopyN(io.Discard, o.resp.Body, 4<<10)
		_ = o.resp.Body.Close()
	}
	o.stop()
	o.cancel(nil)
}

// finish returns the outcome to the caller.
func (o *outcome) finish(c *call) (*http.Response, error) {
	o.stop()
	if o.resp == nil {
		return nil, c.fail(o.kind, o.cause, o.retryable(c.t.c))
	}
	resp := o.resp
	if resp.Body != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		c.rb = body{rc: resp.Body, c: c, actx: o.actx, cancel: o.cancel}
		resp.Body = &c.rb
	}
	return resp, nil
}

// body releases the attempt's context when the caller closes the response,
// and turns read errors into *Error.
type body struct {
	rc     io.ReadCloser
	c      *call
	actx   context.Context
	cancel context.CancelCauseFunc
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		var e *Error
		if !errors.As(err, &e) {
			kind, cause := classify(b.c.ctx, b.actx, err)
			e = b.c.fail(kind, fmt.Errorf("client: reading response body: %w", cause), kind == KindTimeout || kind == KindTransport)
			err = e
		}
	}
	return n, err
}

func (b *body) Close() error {
	err := b.rc.Close()
	b.cancel(nil)
	return err
}

func statusKind(status int) Kind {
	if status == http.StatusTooManyRequests {
		return KindRateLimited
	}
	return KindRemote
}

// idempotent reports whether the request may be sent more than once.
func idempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

// pastDeadline reports whether waiting d would reach the context's deadline.
func pastDeadline(ctx context.Context, d time.Duration) bool {
	dl, ok := ctx.Deadline()
	return ok && time.Until(dl) <= d
}

// parseRetryAfter reads a Retry-After value in either form (RFC 9110
// §10.2.3): delay-seconds or an HTTP-date. A date in the past means 0.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	return transport.ParseRetryAfter(v, now)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fullJitter is "full jitter" (AWS Architecture Blog, "Exponential Backoff
// and Jitter"): a uniform wait in [0, ceiling), the ceiling growing
// exponentially per backoff/v5's ExponentialBackOff without its own
// randomization.
type fullJitter struct {
	exp  backoff.ExponentialBackOff
	rand func() float64
}

var _ backoff.BackOff = (*fullJitter)(nil)

func newFullJitter(p *RetryPolicy, rnd func() float64) *fullJitter {
	if rnd == nil {
		rnd = rand.Float64
	}
	j := &fullJitter{rand: rnd, exp: backoff.ExponentialBackOff{
		InitialInterval:     p.InitialBackoff,
		RandomizationFactor: 0,
		Multiplier:          p.Multiplier,
		MaxInterval:         p.MaxBackoff,
	}}
	j.exp.Reset()
	return j
}

func (j *fullJitter) NextBackOff() time.Duration {
	return time.Duration(j.rand() * float64(j.exp.NextBackOff()))
}

func (j *fullJitter) Reset() { j.exp.Reset() }
