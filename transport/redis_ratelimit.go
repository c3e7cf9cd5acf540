package transport

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/lifenavigator/crossservice/internal/names"
)

// RedisLimiterConfig configures [NewRedisLimiter].
type RedisLimiterConfig struct {
	// Client is the Redis connection shared by the replicas (see
	// [RedisReplayConfig.Client]). Required. The limiter never closes it.
	Client redis.UniversalClient
	// Service and Environment name the key space, as in the verifier's
	// Config, so that services and environments sharing one Redis keep
	// separate budgets. Required.
	Service     string
	Environment Environment
	// Default applies to every caller without an entry in Callers. Required:
	// Limit > 0 and Burst >= 1 (rate.Inf means no limit and no Redis call).
	// Finite limits must lie between one per year and 10^9 per second.
	Default Rate
	// Callers overrides Default per caller name.
	Callers map[string]Rate
	// Prefix is prepended to the key after redis_rate's own "rate:" (zero:
	// none); see [RedisReplayConfig.Prefix].
	Prefix string
	// Timeout bounds each call (zero: [DefaultRedisTimeout]). Negative is
	// invalid.
	Timeout time.Duration
}

// RedisLimiter is a [Limiter] (and [RouteLimiter]) whose budgets are shared
// by every replica using the same Redis: go-redis/redis_rate's GCRA, run as
// one Lua script on Redis's clock, so replicas' clocks do not matter. A
// [Rate] means what it means for [MemoryLimiter]: Limit requests per second
// on average, bursts of up to Burst; over any interval of length T a caller
// (or caller and route) is admitted at most Burst + Limit·T times in all.
//
// Keys (the script reads and writes one, with an expiry):
//
//	rate:<prefix>xsvc:limit:<environment>:<service>:<caller>
//	rate:<prefix>xsvc:limit:<environment>:<service>:<caller>:<route pattern>
//
// Each call is one round trip (EVALSHA), except after Redis lost its script
// cache (first use, restart): then NOSCRIPT, and EVAL, two. A failure is an
// error wrapping [ErrRedisUnavailable]; the verifier fails closed with 503
// rate_limiter_unavailable.
type RedisLimiter struct {
	lim     *redis_rate.Limiter
	base    string // "<prefix>xsvc:limit:<env>:<service>:"
	timeout time.Duration
	def     gcra
	callers map[string]gcra
}

// gcra is a Rate as redis_rate takes it; unlimited skips Redis.
type gcra struct {
	limit     redis_rate.Limit
	unlimited bool
}

var _ RouteLimiter = (*RedisLimiter)(nil)

// NewRedisLimiter validates cfg and returns a limiter. It does not contact
// Redis.
func NewRedisLimiter(cfg RedisLimiterConfig) (*RedisLimiter, error) {
	if err := checkRedisClient("RedisLimiterConfig", cfg.Client); err != nil {
		return nil, err
	}
	if !names.Valid(cfg.Service) {
		return nil, fmt.Errorf("transport: RedisLimiterConfig.Service %q is not a service name: %w", cfg.Service, ErrInvalidConfig)
	}
	if _, err := ParseEnvironment(string(cfg.Environment)); err != nil {
		return nil, fmt.Errorf("transport: RedisLimiterConfig.Environment: %w", err)
	}
	timeout, err := checkRedisTimeout("RedisLimiterConfig", cfg.Timeout)
	if err != nil {
		return nil, err
	}
	l := &RedisLimiter{
		lim:     redis_rate.NewLimiter(cfg.Client),
		base:    cfg.Prefix + "xsvc:limit:" + string(cfg.Environment) + ":" + cfg.Service + ":",
		timeout: timeout,
		callers: make(map[string]gcra, len(cfg.Callers)),
	}
	if l.def, err = toGCRA("default", cfg.Default); err != nil {
		return nil, err
	}
	for c, r := range cfg.Callers {
		if l.callers[c], err = toGCRA(c, r); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func toGCRA(who string, r Rate) (gcra, error) {
	if r.Limit <= 0 || r.Burst < 1 {
		return gcra{}, fmt.Errorf("transport: rate for %s: need Limit > 0 and Burst >= 1: %w", who, ErrInvalidConfig)
	}
	if r.Limit == rate.Inf {
		return gcra{unlimited: true}, nil
	}
	// redis_rate's emission interval is Period/Rate: one request per
	// 1/Limit seconds, to the nanosecond.
	period := float64(time.Second) / float64(r.Limit)
	if period < 1 || period > float64(365*24*time.Hour) {
		return gcra{}, fmt.Errorf("transport: rate for %s: Limit %v outside one per year to 1e9 per second: %w", who, r.Limit, ErrInvalidConfig)
	}
	return gcra{limit: redis_rate.Limit{Rate: 1, Period: time.Duration(period), Burst: r.Burst}}, nil
}

// Allow implements [Limiter]: the caller's own budget.
func (l *RedisLimiter) Allow(ctx context.Context, caller string) (bool, time.Duration, error) {
	return l.AllowRoute(ctx, caller, "")
}

// AllowRoute implements [RouteLimiter]: one budget per caller and route, each
// with the caller's Rate; route "" is the caller's own budget.
func (l *RedisLimiter) AllowRoute(ctx context.Context, caller, route string) (bool, time.Duration, error) {
	g, ok := l.callers[caller]
	if !ok {
		g = l.def
	}
	if g.unlimited {
		return true, 0, nil
	}
	key := l.base + caller
	if route != "" {
		key += ":" + route
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	res, err := l.lim.Allow(ctx, key, g.limit)
	if err != nil {
		return false, 0, redisErr("redis limiter", err)
	}
	if res.Allowed > 0 {
		return true, 0, nil
	}
	return false, res.RetryAfter, nil
}
