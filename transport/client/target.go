package client

import (
	"errors"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
)

// host is the per target host state: its breaker and its retry budget.
type host struct {
	name string
	cb   *gobreaker.TwoStepCircuitBreaker[struct{}] // nil when disabled

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// Verdicts reported to the breaker: nil counts as a success.
var (
	errUnhealthy = errors.New("client: target unhealthy")
	errExcluded  = errors.New("client: not counted")
)

func (t *Transport) host(name string) *host {
	if v, ok := t.hosts.Load(name); ok {
		return v.(*host)
	}
	h := &host{name: name, tokens: t.c.budget.Burst}
	if bp := t.c.Breaker; !bp.Disabled {
		target, hooks, log, m := t.c.Target, t.c.Hooks, t.c.Logger, t.c.Metrics
		h.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
			Name:        target + "@" + name,
			MaxRequests: bp.HalfOpenProbes,
			Interval:    bp.Interval,
			Timeout:     bp.OpenTimeout,
			ReadyToTrip: func(c gobreaker.Counts) bool {
				return c.ConsecutiveFailures >= bp.Failures
			},
			IsSuccessful: func(err error) bool { return err == nil },
			IsExcluded:   func(err error) bool { return err == errExcluded },
			OnStateChange: func(_ string, from, to gobreaker.State) {
				ch := BreakerChange{Target: target, Host: name, From: breakerState(from), To: breakerState(to)}
				m.breakerState(target, name, ch.To)
				log.Info("client: circuit breaker state change", "target", target, "host", name,
					"from", ch.From.String(), "to", ch.To.String())
				if hooks.OnBreakerStateChange != nil {
					hooks.OnBreakerStateChange(ch)
				}
			},
		})
	}
	v, loaded := t.hosts.LoadOrStore(name, h)
	if !loaded && h.cb != nil {
		t.c.Metrics.breakerState(t.c.Target, name, BreakerClosed)
	}
	return v.(*host)
}

func breakerState(s gobreaker.State) BreakerState {
	switch s {
	case gobreaker.StateOpen:
		return BreakerOpen
	case gobreaker.StateHalfOpen:
		return BreakerHalfOpen
	}
	return BreakerClosed
}

// allow asks the breaker for one attempt; done must be called with the verdict.
func (h *host) allow() (done func(error), err error) {
	if h.cb == nil {
		return func(error) {}, nil
	}
	return h.cb.Allow()
}

// deposit credits the retry budget for one request.
func (h *host) deposit(b *Budget, now time.Time) {
	h.mu.Lock()
	h.refill(b, now)
	h.tokens = min(b.Burst, h.tokens+b.Ratio)
	h.mu.Unlock()
}

// withdraw takes one retry from the budget, reporting whether there was one.
func (h *host) withdraw(b *Budget, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.refill(b, now)
	if h.tokens < 1 {
		return false
	}
	h.tokens--
	return true
}

func (h *host) refill(b *Budget, now time.Time) {
	if !h.last.IsZero() && now.After(h.last) {
		h.tokens = min(b.Burst, h.tokens+b.MinPerSecond*now.Sub(h.last).Seconds())
	}
	if now.After(h.last) {
		h.last = now
	}
}
