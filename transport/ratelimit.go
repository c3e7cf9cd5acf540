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
// as Retry-After with 429 rate_limited). An error fails closed (503
// rate_limiter_unavailable). The verifier calls it only with verified caller
// names, a set bounded by the keyring. It maps onto go-redis/redis_rate's
// Allow (Result.Allowed, Result.RetryAfter) for a limit shared by replicas.
type Limiter interface {
	Allow(ctx context.Context, caller string) (ok bool, retryAfter time.Duration, err error)
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
// (golang.org/x/time/rate). Safe for concurrent use.
type MemoryLimiter struct {
	cfg MemoryLimiterConfig
	mu  sync.Mutex
	per map[string]*rate.Limiter
}

var _ Limiter = (*MemoryLimiter)(nil)

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
	return &MemoryLimiter{cfg: cfg, per: make(map[string]*rate.Limiter)}, nil
}

// Allow implements [Limiter]; it never returns an error.
func (l *MemoryLimiter) Allow(_ context.Context, caller string) (bool, time.Duration, error) {
	l.mu.Lock()
	lim := l.per[caller]
	if lim == nil {
		r, ok := l.cfg.Callers[caller]
		if !ok {
			r = l.cfg.Default
		}
		lim = rate.NewLimiter(r.Limit, r.Burst)
		l.per[caller] = lim
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
