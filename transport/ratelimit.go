package transport

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter decides whether a verified caller may make one more request now.
// When it refuses, retryAfter says when to try again (the verifier sends it
// as Retry-After with 429 rate_limited, rounded up to whole seconds, at least
// 1). An error fails closed (503 rate_limiter_unavailable). The verifier calls
// it only with verified caller names, a set bounded by the keyring. It maps
// onto go-redis/redis_rate's Allow (Result.Allowed, Result.RetryAfter) for a
// limit shared by replicas: see [RedisLimiter].
type Limiter interface {
	Allow(ctx context.Context, caller string) (ok bool, retryAfter time.Duration, err error)
}

// RouteLimiter is a [Limiter] that can also keep one budget per caller and
// route. With Config.LimitPerRoute the verifier calls AllowRoute instead of
// Allow, with the [http.ServeMux] pattern that routed the request
// (http.Request.Pattern): a set bounded by the routes registered, never the
// raw path. route is "" when no pattern routed the request (the verifier
// wraps the whole mux rather than each route); that budget is the caller's
// own, the one Allow uses. [MemoryLimiter] and [RedisLimiter] implement it.
type RouteLimiter interface {
	Limiter
	AllowRoute(ctx context.Context, caller, route string) (ok bool, retryAfter time.Duration, err error)
}

// Rate is a token bucket: Limit events per second on average, bursts of up to
// Burst.
type Rate struct {
	Limit rate.Limit
	Burst int
}

// MemoryLimiterConfig configures [NewMemoryLimiter].
type MemoryLimiterConfig struct {
	// Default applies to every caller without an entry in Callers. Required:
	// Limit > 0 and Burst >= 1 (rate.Inf means no limit).
	Default Rate
	// Callers overrides Default per caller name.
	Callers map[string]Rate
	// Clock returns the current time (nil: time.Now).
	Clock func() time.Time
}

// MemoryLimiter is an in-process [Limiter] with one token bucket per caller
// (golang.org/x/time/rate), or per caller and route ([RouteLimiter]). Each
// bucket of a caller has the caller's [Rate]. Safe for concurrent use. It
// limits one replica: replicas sharing a limit need [RedisLimiter].
type MemoryLimiter struct {
	cfg MemoryLimiterConfig
	mu  sync.Mutex
	per map[limitKey]*rate.Limiter
}

// limitKey names one bucket; route "" is the caller's own.
type limitKey struct{ caller, route string }

var _ RouteLimiter = (*MemoryLimiter)(nil)

// NewMemoryLimiter returns a limiter with full buckets.
func NewMemoryLimiter(cfg MemoryLimiterConfig) (*MemoryLimiter, error) {
	check := func(who string, r Rate) error {
		if r.Limit <= 0 || r.Burst < 1 {
			return fmt.Errorf("transport: rate for %s: need Limit > 0 and Burst >= 1: %w", who, ErrInvalidConfig)
		}
		return nil
	}
	if err := check("default", cfg.Default); err != nil {
		return nil, err
	}
	callers := make(map[string]Rate, len(cfg.Callers))
	for c, r := range cfg.Callers {
		if err := check(c, r); err != nil {
			return nil, err
		}
		callers[c] = r
	}
	cfg.Callers = callers
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &MemoryLimiter{cfg: cfg, per: make(map[limitKey]*rate.Limiter)}, nil
}

// Allow implements [Limiter]; it never returns an error.
func (l *MemoryLimiter) Allow(ctx context.Context, caller string) (bool, time.Duration, error) {
	return l.AllowRoute(ctx, caller, "")
}

// AllowRoute implements [RouteLimiter]; it never returns an error.
func (l *MemoryLimiter) AllowRoute(_ context.Context, caller, route string) (bool, time.Duration, error) {
	k := limitKey{caller, route}
	l.mu.Lock()
	lim := l.per[k]
	if lim == nil {
		r, ok := l.cfg.Callers[caller]
		if !ok {
			r = l.cfg.Default
		}
		lim = rate.NewLimiter(r.Limit, r.Burst)
		l.per[k] = lim
	}
	l.mu.Unlock()
	now := l.cfg.Clock()
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return false, time.Second, nil
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d, nil
	}
	return true, 0, nil
}
