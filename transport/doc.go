// Package transport authenticates service-to-service HTTP requests: it signs
// them on the way out ([Signer]) and verifies them on the way in
// ([Verifier]), over TLS 1.3 ([ServerTLSConfig], [ClientTLSConfig]).
// The byte-exact wire format is SPEC.md part 2; the vectors in
// testdata/signing are its examples.
//
// # Signing
//
// Every request carries X-Request-ID, X-Timestamp (Unix milliseconds),
// X-Service-Name (the caller), X-Signature (lowercase hex HMAC-SHA256) and,
// for v1, X-Key-ID. The v1 canonical string ([SchemeV1], rendered by
// [Components.Canonical]) covers the environment, caller, target, key id,
// timestamp, request id, method, escaped path, raw query, content type and
// the SHA-256 of the body; a component holding a control byte is refused
// ([ErrInvalidComponent]). [SchemeLegacy] is the original system's
// METHOD\nREQUEST_PATH\nTIMESTAMP\nBODY, kept to talk to services that
// have not moved, enabled per caller and logged as deprecated.
//
// A [Signer] is meant for a RoundTripper: call [Signer.Sign] on each
// attempt's clone of the request; each call takes a new timestamp and
// request id and hashes the body through GetBody without consuming it.
//
// # Verifying
//
// [New] builds a [Verifier] from a [Config]; [Verifier.Middleware] and
// [Verifier.Require] (the original requiredServices) wrap handlers, and nest
// (an inner guard of the same verifier only adds its route check). Checks
// run in this order, each refusal an RFC 9457 [Problem] with a stable
// [Code]: transport (TLS off loopback), headers, caller and scheme, client
// certificate identity (Config.TrustDomain), freshness, announced body
// size, v1 key id (known, not retired: before any body byte is read), body
// (read and hashed in one pass, into buffers that grow as bytes arrive),
// signature (constant time), replay (consumed only after the signature
// verifies, in a [ReplayStore], each caller within its share), route
// access, rate limit ([Limiter]). The handler then sees the exact body and
// [CallerFrom] returns the caller. Non-strict mode admits unsigned requests
// in Middleware only, without their signing headers; Require refuses them.
//
// # Redis
//
// Replicas of a service share replay protection and rate limits through
// Redis. [NewRedisClient] (or [ParseRedisURL], or [RedisOptionsFromEnv] for
// REDIS_URL) takes redis://[user:password@]host[:port][/db] or rediss://
// (TLS 1.3 at least); its errors ([RedisURLError]) never repeat the URL,
// which may hold a password. [RedisReplayStore] consumes a request id with
// one SET key 1 PX ttl NX; [RedisLimiter] runs go-redis/redis_rate's GCRA
// on Redis's clock, per caller or, with Config.LimitPerRoute, per caller and
// ServeMux pattern ([RouteLimiter]). Each costs one round trip per request,
// bounded by a timeout (100 ms by default). Redis down or slow: the verifier
// answers 503 replay_store_unavailable or rate_limiter_unavailable and the
// handler does not run; when Redis is back, go-redis reconnects within about
// a second, nothing to rebuild. Config.FailOpen admits such requests
// instead, in development only. Key layout, and why Redis must neither
// evict nor lose these keys: SPEC.md part 2 section 7.
//
// # Keys
//
// A [Key] is an id and at least 32 bytes that no String, Format, log or
// error shows. [KeyEntry] places it for a caller (and optionally one target);
// several active entries per caller allow rotation, and a retired entry is
// refused with its own log reason. Two callers never share a secret
// ([ErrSharedKey]): a shared key cannot tell them apart. Keys come from
// code ([NewKey]), from the environment with the original names
// ([TargetKeyFromEnv], [CallerKeysFromEnv], [EnvPrefix]; INTERNAL_API_KEY
// serves one caller at most) or from a 0600 JSON file ([LoadKeyFile],
// exact member names, no duplicates).
//
// # Observability
//
// Config.Logger gets one line per refusal (slog, discarded by default).
// Config.Metrics takes a [Metrics] from [NewMetrics], a Prometheus
// collector that the user registers: requests by outcome ("admitted" or the
// [Code]), scheme and caller, the latency of the verification itself, and
// the replay store's and limiter's errors by kind. caller is a label only
// once the signature verified ("unknown" before): unauthenticated requests
// cannot create series or be charged to a real caller. Config.Hooks
// ([Hooks]) are called synchronously once per admitted or refused request
// with an [AdmitInfo] or a [RefusalInfo]. No label carries a request id, a
// path or a header value; neither labels nor hooks carry a key, a
// signature or a body. Without Metrics and Hooks (nil) a request costs
// nothing more.
//
// # Environments
//
// [Environment] is development, staging or production (APP_ENV, see
// [EnvironmentFromEnv]). Production refuses non-strict mode and plain HTTP
// off loopback; staging refuses plain HTTP off loopback; development allows
// both. [CheckListener] applies the same rule to listeners at start-up.
//
// # Errors
//
// Sentinels ([ErrInvalidConfig], [ErrKeyTooShort], [ErrBodyNotRewindable],
// [ErrReplayStoreFull], [ErrRedisUnavailable], [ErrSharedKey]...) for
// errors.Is, typed errors ([ComponentError], [MissingEnvError],
// [SharedKeyError], [RedisURLError], [Problem]) for errors.As. [ParseProblem] turns a refusal back into a [Problem] on the
// client side.
package transport
