// Package client calls another service safely: every attempt signed afresh,
// retried only when that is safe, bounded in time, cut off by a circuit
// breaker when the target is unhealthy, and failing with one error type that
// says what went wrong and whether retrying could help.
//
// It has two layers: [Transport], an http.RoundTripper usable under any
// *http.Client, and [Client], one-line typed calls on top of it
// ([Client.Get], [Client.Post], [Client.Put], [Client.Delete], [Client.Do])
// that seal request DTOs for the target and open response envelopes.
//
// # The Transport
//
// For each request the [Transport] waits for the optional client-side
// [RateLimit], asks the target host's circuit breaker, then for each
// attempt clones the request (req.Clone, so the caller's request is never
// touched), gives the clone a fresh body through GetBody, has the [Signer]
// sign it (new timestamp, new request id: the verifier's replay check sees
// a new request) and sends it through Base under [TransportConfig.PerTryTimeout].
//
// Retries follow [RetryPolicy]: only idempotent methods (GET, HEAD, OPTIONS,
// TRACE, PUT, DELETE) or requests carrying an Idempotency-Key header; only
// after connection failures, per-try timeouts and the statuses 429, 502,
// 503, 504 (configurable); after a full-jitter exponential backoff (a wait
// uniform in [0, ceiling), the ceiling from backoff/v5's ExponentialBackOff)
// or the target's Retry-After in either form (seconds or HTTP-date). A
// Retry-After beyond [RetryPolicy.MaxRetryAfter] or beyond the caller's
// deadline ends the call at once with a [KindRateLimited] error carrying the
// wait; a backoff that would reach the deadline returns the last outcome at
// once. The call therefore never runs past the caller's deadline. A retry
// [Budget] per target host (a token bucket filled by requests, as in gRPC
// and Envoy) keeps a failing target from being hit by a retry storm. A
// request whose body cannot be rewound (no GetBody) is never retried: it
// fails with transport.ErrBodyNotRewindable where it would have been.
//
// The loop is this package's own rather than backoff.Retry, because it must
// check the deadline before each wait, spend the retry budget, close each
// discarded response and report each attempt to the breaker and the hooks.
//
// # Circuit breaker
//
// One gobreaker/v2 breaker per target host ([BreakerPolicy]) counts only
// failures that say the target is unhealthy: connection and TLS failures,
// timeouts (per-try, network, and the caller's deadline: a deadline is a
// timeout, not a cancellation), 5xx and 429. Other 4xx count as successes;
// the caller's own cancellation and local failures (signing, GetBody) are
// not counted. While open, calls fail at once with [KindBreakerOpen]; after
// [BreakerPolicy.OpenTimeout] probes go through (half-open) and close it
// again. gobreaker has no injectable clock, so tests use short timeouts.
//
// # Errors
//
// Every failure of an exchange is an [*Error]: [Error.Kind] is one of
// [KindTransport], [KindRemote], [KindBreakerOpen], [KindRateLimited],
// [KindTimeout], [KindCanceled], [KindTLS]; [Error.Retryable] says whether
// sending the same request later could succeed; for a response,
// [Error.Status] and [Error.Problem] hold the status and the parsed RFC 9457
// problem (code, detail, request id). errors.As reaches it through the
// *url.Error of http.Client.Do, and errors.Is through it to the cause
// ([ErrBreakerOpen], [ErrRetryAfterTooLong], [ErrLocalRateLimit],
// [ErrPerTryTimeout], context.Canceled, a crypto/x509 error...). Do not set
// http.Client.Timeout: net/http replaces such errors with one that wraps
// nothing; put deadlines on the context.
//
// Local mistakes caught before anything is sent (a bad path, a value that
// cannot be encoded or sealed, out not a pointer) are plain wrapped errors,
// not [*Error]: they are bugs, not failures of the exchange.
//
// # Sealed and plain JSON
//
// With a [Codec] (a *fieldcrypt.Codec), the [Client] seals request bodies
// for the target (Content-Type [EnvelopeMediaType],
// "application/vnd.xsvc.envelope+json") and requires response bodies to be
// envelopes sent by the target, opened into the caller's value, which is
// left unchanged on any error ([ErrWrongSender], [ErrBadResponse]).
// [Client.Plain] gives the same client speaking application/json, for
// endpoints without DTOs. On the server, transport.OpenRequest opens a
// request body and refuses an envelope whose sender is not the caller the
// verifier authenticated; transport.WriteSealed answers sealed.
//
// # Configuration from the environment
//
// [LoadEnv] reads the original system's variables: SERVICE_NAME, APP_ENV,
// <TARGET>_API_URL and <TARGET>_API_KEY with INTERNAL_API_KEY as the
// fallback, where <TARGET> is transport.EnvPrefix of the target
// ("financial-api" → FINANCIAL). A missing or malformed variable is an
// [*EnvError] naming it, never quoting its value. Outside development an
// http:// URL is accepted only for a loopback host.
//
// # Observability
//
// [TransportConfig.Logger] (log/slog, discarding by default) gets a debug
// line per attempt, a warning per retry and an info line per breaker change;
// [Metrics] holds Prometheus collectors to register (requests, attempts,
// retries, denied retries, errors by kind, breaker state, latency in
// seconds); [Hooks] are called on each attempt, retry and breaker change.
// Labels and log lines carry the target service, method, status or error
// kind and the target host: never a path, query, header value, body,
// signature or key.
package client
