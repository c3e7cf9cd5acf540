// Package soak holds the soak test with faults (issue 9, item 4). It has no
// code of its own: everything is in its tests, which `make soak` runs for 60
// seconds and `make test` (go test ./...) for 10.
//
// # What runs
//
// Two replicas of one service ("billing"), each a TLS 1.3 httptest server
// with mutual TLS behind its own transport.Verifier, share a real
// redis-server (internal/testredis) for the replay store and the rate
// limiter; the limit is generous, it only has to be consulted. Workers send,
// at a fixed rate and up to a maximum count, a mix whose every outcome is
// known before it is sent:
//
//   - valid sealed POST /orders through transport/client, with an
//     Idempotency-Key so that the client may retry them, answered with a
//     sealed receipt; valid GET /orders/{id} from two callers;
//   - replays: requests captured on the wire after a 2xx, sent again
//     byte for byte to the other replica (401 replay_detected);
//   - tampered requests: one body byte or one signed header changed (401
//     signature_invalid, 403 identity_mismatch for the caller name), each
//     followed by its untampered original, which must still be accepted:
//     a refused request consumes nothing;
//   - unauthorized calls: a valid signature on a route that does not admit
//     the caller (403 service_not_authorized);
//   - stale calls, signed with the retired key (401 signature_invalid).
//
// # Faults
//
// In the middle of the run the callers rotate their signing key: both
// verifiers list the old and the new key from the start, and the clients
// switch with transport.Signer.SetKey. Once no call that began before the
// switch is still in flight, both replicas are rebuilt with the old key
// Retired (the verifier's keys are fixed at New, so retiring is a rebuild,
// swapped in under the running server, as a rolling restart would do).
// Between the two, Redis is killed and restarted on the same port a second
// later.
//
// The test Redis has no persistence, so the restarted one has forgotten
// every consumed request id (transport.RedisReplayStore documents it: run
// production Redis with appendonly). Replays therefore only use requests
// captured since the last Redis start; a replay of an earlier one would be
// admitted, as documented, and is not attempted.
//
// # What is asserted
//
// No replayed, tampered, unauthorized or stale request gets a 2xx, and no
// handler runs for one; every outcome is the one expected; a valid request
// fails only with 503 replay_store_unavailable or rate_limiter_unavailable
// (or the open circuit breaker those cause) while Redis is down or within a
// few seconds of its return; the handler's count of sealed bodies opened
// matches the POSTs it admitted and the clients' accepted POSTs; heap in use
// and goroutines at rest after the run are within 1.5× (plus a constant) of
// their values at rest before it; no goroutine outlives the shutdown.
//
// # Knobs
//
// SOAK_DURATION (default 10s, 4s with -short), SOAK_MAX_REQUESTS (default
// 200000), SOAK_RATE (requests started per second, an open loop; default
// 250, 60 with -race) and SOAK_IN_FLIGHT (requests in flight at most;
// default 64, 32 with -race). An invalid value fails the test.
// Redis must be installed; it is skipped without it, except under CI=true.
package soak
