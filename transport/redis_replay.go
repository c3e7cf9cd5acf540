package transport

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisReplayConfig configures [NewRedisReplayStore].
type RedisReplayConfig struct {
	// Client is the Redis connection, shared by every replica of the
	// service (build it with [NewRedisClient] or [ParseRedisURL]). Required;
	// a *redis.Client, *redis.ClusterClient or *redis.Ring must have
	// ContextTimeoutEnabled. The store never closes it.
	Client redis.UniversalClient
	// Prefix is prepended to every key, e.g. "billing:" when the Redis
	// database is shared with other applications (zero: none). The
	// verifier's keys already name the scheme, environment and target (and,
	// for v1, the caller; SPEC.md part 2 section 7), so services
	// sharing one Redis need no prefix to keep apart.
	Prefix string
	// Timeout bounds each call (zero: [DefaultRedisTimeout], 100 ms). Past
	// it the call fails and the verifier answers 503
	// replay_store_unavailable. Negative is invalid.
	Timeout time.Duration
}

// RedisReplayStore is a [ReplayStore] on Redis, for replicas that must refuse
// a request any one of them already accepted. Each Consume is one command,
// one round trip:
//
//	SET <prefix><key> 1 PX <ttl in ms, rounded up> NX
//
// fresh ⇔ the reply is OK. Redis applies it atomically, so of concurrent
// requests with one id on any number of replicas exactly one is fresh, and
// expires the key itself, so the store holds no state in the process.
//
// Any failure (refused or lost connection, timeout, error reply) is an error
// wrapping [ErrRedisUnavailable], and the verifier fails closed with 503
// replay_store_unavailable (see Config.FailOpen for development).
//
// Redis must not forget a key before it expires. Run it with
// maxmemory-policy noeviction: a full Redis then refuses the SET, and the
// verifier fails closed, where an evicting one would drop live ids. A Redis
// that loses its data forgets consumed ids too: after a restart without
// persistence, or a failover to a replica that had not received the last
// writes, requests accepted within the last Window + FutureSkew can be
// replayed once more. Run it with persistence (appendonly yes) where that
// matters.
type RedisReplayStore struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration
}

var _ ReplayStore = (*RedisReplayStore)(nil)

// NewRedisReplayStore returns a store on cfg.Client. It does not contact
// Redis: an unreachable server shows on the first request, as a 503.
func NewRedisReplayStore(cfg RedisReplayConfig) (*RedisReplayStore, error) {
	if err := checkRedisClient("RedisReplayConfig", cfg.Client); err != nil {
		return nil, err
	}
	timeout, err := checkRedisTimeout("RedisReplayConfig", cfg.Timeout)
	if err != nil {
		return nil, err
	}
	return &RedisReplayStore{client: cfg.Client, prefix: cfg.Prefix, timeout: timeout}, nil
}

// Consume implements [ReplayStore]. ttl must be positive; it is sent in
// milliseconds, rounded up, so a key is never held for less than ttl. The
// verifier asks for Window + FutureSkew + 1 ms (PX 600001 with the
// defaults): a request stays acceptable until its skew, in whole
// milliseconds, exceeds Window, which is 1 ms after Window + FutureSkew
// from the earliest moment it could be accepted.
func (s *RedisReplayStore) Consume(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, fmt.Errorf("transport: replay ttl %v: %w", ttl, ErrInvalidConfig)
	}
	ms := int64((ttl + time.Millisecond - 1) / time.Millisecond)
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	cmd := redis.NewBoolCmd(ctx, "set", s.prefix+key, "1", "px", ms, "nx")
	if err := s.client.Process(ctx, cmd); err != nil {
		return false, redisErr("redis replay store", err)
	}
	return cmd.Val(), nil
}
