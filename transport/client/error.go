package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/lifenavigator/crossservice/transport"
)

// Kind tells apart the failures a call can end with. Every error this package
// returns for a failed call is an [*Error] carrying one Kind.
type Kind uint8

const (
	// KindTransport: the request did not get a response: connection refused
	// or reset, a broken body, a signing failure before sending.
	KindTransport Kind = iota + 1
	// KindRemote: the target answered with an error status; [Error.Problem]
	// holds its parsed application/problem+json body when there was one.
	KindRemote
	// KindBreakerOpen: the circuit breaker for the target host is open (or
	// half-open and already probing), so nothing was sent.
	KindBreakerOpen
	// KindRateLimited: the target answered 429, or asked (Retry-After) for a
	// wait beyond the cap or the caller's deadline, or the client-side rate
	// limit could not admit the request before the deadline.
	// [Error.RetryAfter] carries the wait when it is known.
	KindRateLimited
	// KindTimeout: a per-try timeout, the caller's deadline, or a network
	// timeout (dial, TLS handshake) expired.
	KindTimeout
	// KindCanceled: the caller canceled the context.
	KindCanceled
	// KindTLS: the TLS handshake failed: untrusted certificate, name mismatch,
	// expired certificate, an alert from the peer.
	KindTLS
)

var kindNames = [...]string{
	KindTransport:   "transport",
	KindRemote:      "remote",
	KindBreakerOpen: "breaker_open",
	KindRateLimited: "rate_limited",
	KindTimeout:     "timeout",
	KindCanceled:    "canceled",
	KindTLS:         "tls",
}

// String returns the kind's stable lowercase name, also used as the "reason"
// label of the error metric.
func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Sentinel causes, reachable with errors.Is through an [*Error].
var (
	// ErrBreakerOpen is the cause of a [KindBreakerOpen] error.
	ErrBreakerOpen = errors.New("client: circuit breaker open")
	// ErrRetryAfterTooLong is the cause of a [KindRateLimited] error raised because
	// the target's Retry-After exceeds [RetryPolicy.MaxRetryAfter] or the
	// caller's deadline.
	ErrRetryAfterTooLong = errors.New("client: Retry-After beyond the cap or the deadline")
	// ErrLocalRateLimit is the cause of a [KindRateLimited] error raised by the
	// client-side rate limit, which could not admit the request in time.
	ErrLocalRateLimit = errors.New("client: client-side rate limit would exceed the deadline")
	// ErrPerTryTimeout is the cause of a [KindTimeout] error raised by
	// [TransportConfig.PerTryTimeout].
	ErrPerTryTimeout = errors.New("client: per-try timeout")
)

// Error is the one error type of this package. Use errors.As to reach it from
// whatever the call returned, including the *url.Error that http.Client.Do
// wraps around a RoundTripper's error:
//
//	var e *client.Error
//	if errors.As(err, &e) && e.Retryable() { ... }
//
// Its text names the target service, the method, the kind and, for remote
// errors, the status and problem code; it never holds a URL, header, body,
// signature or key.
type Error struct {
	Kind   Kind
	Target string // the target service's name
	Method string
	// Attempts is how many attempts were sent; 0 when the call was refused
	// before anything was sent (breaker open, rate limit, canceled).
	Attempts int
	// Status is the HTTP status of the last response, 0 when there was none.
	Status int
	// Problem is the last response's problem (RFC 9457, parsed by
	// [transport.ParseProblem]); nil when there was no response. When the body
	// was not a problem document, only Status and RequestID are set.
	// RequestID falls back to the response's X-Request-ID, then to the
	// request id the client sent.
	Problem *transport.Problem
	// RetryAfter is how long the target or the local rate limit asks to wait
	// (KindRateLimited, or a 503 with Retry-After); 0 when unknown.
	RetryAfter time.Duration
	// Err is the underlying cause: a net/http or net error, context.Canceled,
	// context.DeadlineExceeded, one of this package's sentinels, or nil.
	Err error

	retryable bool
	requestID string // the X-Request-ID of the last attempt sent
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("client: ")
	if e.Target != "" {
		b.WriteString(e.Target)
		b.WriteByte(' ')
	}
	if e.Method != "" {
		b.WriteString(e.Method)
		b.WriteByte(' ')
	}
	b.WriteString(e.Kind.String())
	if e.Status != 0 {
		if e.Kind == KindRemote || e.Kind == KindRateLimited {
			b.WriteByte(' ')
		} else {
			b.WriteString(" (last status ")
		}
		b.WriteString(strconv.Itoa(e.Status))
		if e.Kind != KindRemote && e.Kind != KindRateLimited {
			b.WriteByte(')')
		}
	}
	if p := e.Problem; p != nil {
		if p.Code != "" {
			b.WriteString(" (")
			b.WriteString(string(p.Code))
			b.WriteByte(')')
		}
		if p.Detail != "" {
			b.WriteString(": ")
			b.WriteString(p.Detail)
		} else if p.Title != "" {
			b.WriteString(": ")
			b.WriteString(p.Title)
		}
	}
	if e.RetryAfter > 0 {
		b.WriteString(" (retry after ")
		b.WriteString(e.RetryAfter.String())
		b.WriteByte(')')
	}
	if e.Attempts > 1 {
		b.WriteString(" after ")
		b.WriteString(strconv.Itoa(e.Attempts))
		b.WriteString(" attempts")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if id := e.RequestID(); id != "" {
		b.WriteString(" [request_id=")
		b.WriteString(id)
		b.WriteByte(']')
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether sending the same request again, later, could
// succeed: true for connection failures, timeouts, an open breaker, rate
// limits and the retryable statuses of [RetryPolicy.Statuses]; false for
// cancellation, TLS failures, other statuses and local failures such as a
// signing error. The Transport has already retried where its policy allowed;
// and a request that is neither idempotent nor carries an Idempotency-Key may
// have taken effect, so resending it is the caller's decision.
func (e *Error) Retryable() bool { return e.retryable }

// RequestID returns the request id of the last attempt as the target reported
// it (problem body or X-Request-ID), or as the client sent it; "" when unknown
// (no attempt sent, or no Signer to set one).
func (e *Error) RequestID() string {
	if e.Problem != nil && e.Problem.RequestID != "" {
		return e.Problem.RequestID
	}
	return e.requestID
}

// classify maps an error from the base RoundTripper to a Kind. parent is the
// caller's context, attempt the per-try context derived from it.
func classify(parent, attempt context.Context, err error) (Kind, error) {
	if perr := parent.Err(); perr != nil {
		if errors.Is(perr, context.DeadlineExceeded) {
			return KindTimeout, perr
		}
		return KindCanceled, perr
	}
	if attempt != nil && errors.Is(context.Cause(attempt), ErrPerTryTimeout) {
		return KindTimeout, ErrPerTryTimeout
	}
	if isTLS(err) {
		return KindTLS, err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return KindTimeout, err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return KindTimeout, err
	}
	if errors.Is(err, context.Canceled) {
		return KindCanceled, err
	}
	return KindTransport, err
}

func isTLS(err error) bool {
	var (
		cv   *tls.CertificateVerificationError
		rh   tls.RecordHeaderError
		ae   tls.AlertError
		ech  *tls.ECHRejectionError
		ua   x509.UnknownAuthorityError
		he   x509.HostnameError
		ci   x509.CertificateInvalidError
		op   *net.OpError
		sysr x509.SystemRootsError
	)
	switch {
	case errors.As(err, &cv), errors.As(err, &rh), errors.As(err, &ae), errors.As(err, &ech),
		errors.As(err, &ua), errors.As(err, &he), errors.As(err, &ci), errors.As(err, &sysr):
		return true
	case errors.As(err, &op) && op.Op == "remote error":
		// crypto/tls reports an alert received from the peer (bad certificate,
		// protocol version, handshake failure) as a *net.OpError with this Op.
		return true
	}
	return false
}
