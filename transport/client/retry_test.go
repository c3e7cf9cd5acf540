package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifenavigator/crossservice/transport"
	"github.com/lifenavigator/crossservice/transport/client"
)

func TestPostWithoutIdempotencyKeyNeverRetried(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler func(*hits) http.HandlerFunc
		kind    client.Kind
	}{
		{"503", func(h *hits) http.HandlerFunc { return always(503, h) }, client.KindRemote},
		{"429", func(h *hits) http.HandlerFunc { return retryAfter(func() string { return "0" }, 100, h) }, client.KindRateLimited},
		{"reset", func(h *hits) http.HandlerFunc { return resetFirst(100, h) }, client.KindTransport},
		{"per-try timeout", func(h *hits) http.HandlerFunc { return hangFirst(100, h) }, client.KindTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h hits
			srv := server(t, tc.handler(&h))
			c := newClient(t, srv.URL, func(c *client.Config) {
				c.Transport.Retry.MaxAttempts = 5
				c.Transport.PerTryTimeout = 100 * time.Millisecond
				c.Transport.Breaker.Disabled = true // 5 failures would open it
			})
			err := c.Post(context.Background(), "/payments", map[string]int{"amount": 1}, nil)
			e := asError(t, err)
			if e.Kind != tc.kind || h.count() != 1 || e.Attempts != 1 {
				t.Fatalf("kind %v, server hits %d, attempts %d; want %v, 1, 1 (err: %v)", e.Kind, h.count(), e.Attempts, tc.kind, err)
			}

			// The same POST with an Idempotency-Key is retried.
			before := h.count()
			err = c.Post(context.Background(), "/payments", map[string]int{"amount": 1}, nil, client.IdempotencyKey("k-1"))
			if err == nil || h.count()-before != 5 {
				t.Fatalf("with Idempotency-Key: %d hits, err %v; want 5 hits and an error", h.count()-before, err)
			}
		})
	}
}

func TestGetRetriedOnFlapping503(t *testing.T) {
	var h hits
	srv := server(t, flapping(2, &h))
	var retries []client.RetryInfo
	var mu sync.Mutex
	c := newClient(t, srv.URL, func(c *client.Config) {
		c.Transport.Hooks.OnRetry = func(r client.RetryInfo) { mu.Lock(); retries = append(retries, r); mu.Unlock() }
	})
	var out struct{ OK bool }
	if err := c.Get(context.Background(), "/accounts", &out); err != nil {
		t.Fatal(err)
	}
	if !out.OK || h.count() != 3 {
		t.Fatalf("out %+v after %d hits; want ok after 3", out, h.count())
	}
	if len(retries) != 2 || retries[0].Reason != "503" || retries[0].Attempt != 1 || retries[1].Attempt != 2 {
		t.Fatalf("OnRetry calls %+v", retries)
	}
}

func TestGetRetriedOnConnectionReset(t *testing.T) {
	var h hits
	srv := server(t, resetFirst(2, &h))
	c := newClient(t, srv.URL, nil)
	if err := c.Get(context.Background(), "/accounts", nil); err != nil {
		t.Fatal(err)
	}
	if h.count() != 3 {
		t.Fatalf("%d hits, want 3", h.count())
	}

	// A listener that resets every connection: three attempts, then a
	// retryable transport error.
	var acc hits
	addr := resetListener(t, &acc)
	c = newClient(t, "http://"+addr, nil)
	e := asError(t, c.Get(context.Background(), "/accounts", nil))
	if e.Kind != client.KindTransport || !e.Retryable() || e.Attempts != 3 {
		t.Fatalf("got %v (kind %v, retryable %v, attempts %d)", e, e.Kind, e.Retryable(), e.Attempts)
	}
	if acc.count() < 3 {
		t.Fatalf("listener accepted %d connections, want >= 3", acc.count())
	}
}

func TestPerTryTimeoutRetriesAHangingTarget(t *testing.T) {
	var h hits
	srv := server(t, hangFirst(1, &h))
	c := newClient(t, srv.URL, func(c *client.Config) { c.Transport.PerTryTimeout = 100 * time.Millisecond })
	start := time.Now()
	if err := c.Get(context.Background(), "/accounts", nil); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); h.count() != 2 || el < 100*time.Millisecond || el > 2*time.Second {
		t.Fatalf("%d hits in %v; want 2 after one per-try timeout", h.count(), el)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	var h hits
	srv := server(t, retryAfter(func() string { return "1" }, 1, &h))
	var got []client.RetryInfo
	c := newClient(t, srv.URL, func(c *client.Config) {
		c.Transport.Hooks.OnRetry = func(r client.RetryInfo) { got = append(got, r) }
	})
	start := time.Now()
	if err := c.Get(context.Background(), "/accounts", nil); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < time.Second || h.count() != 2 {
		t.Fatalf("retried after %v with %d hits; want >= 1s and 2 hits", el, h.count())
	}
	if len(got) != 1 || !got[0].RetryAfter || got[0].Delay != time.Second {
		t.Fatalf("OnRetry %+v", got)
	}
}

func TestRetryAfterBeyondCapOrDeadlineStopsAtOnce(t *testing.T) {
	date := func(d time.Duration) func() string {
		return func() string { return time.Now().Add(d).UTC().Format(http.TimeFormat) }
	}
	for _, tc := range []struct {
		name     string
		value    func() string
		deadline time.Duration // 0: none
		min, max time.Duration // expected RetryAfter
	}{
		{"seconds beyond cap", func() string { return "120" }, 0, 120 * time.Second, 120 * time.Second},
		{"date beyond cap", date(time.Hour), 0, 59 * time.Minute, time.Hour},
		{"seconds beyond deadline", func() string { return "3" }, 500 * time.Millisecond, 3 * time.Second, 3 * time.Second},
		{"date beyond deadline", date(4 * time.Second), 500 * time.Millisecond, 2 * time.Second, 4 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h hits
			srv := server(t, retryAfter(tc.value, 100, &h))
			c := newClient(t, srv.URL, nil) // cap: 10s
			ctx := context.Background()
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			start := time.Now()
			e := asError(t, c.Get(ctx, "/accounts", nil))
			el := time.Since(start)
			if e.Kind != client.KindRateLimited || !errors.Is(e, client.ErrRetryAfterTooLong) || !e.Retryable() {
				t.Fatalf("got %v, want a retryable rate-limited error with ErrRetryAfterTooLong", e)
			}
			if e.RetryAfter < tc.min || e.RetryAfter > tc.max {
				t.Fatalf("RetryAfter %v, want in [%v, %v]", e.RetryAfter, tc.min, tc.max)
			}
			if h.count() != 1 || el > 250*time.Millisecond {
				t.Fatalf("%d hits in %v; want one, at once", h.count(), el)
			}
			if e.Status != 429 || e.Problem == nil || e.Problem.Code != "rate_limited" {
				t.Fatalf("status %d problem %+v", e.Status, e.Problem)
			}
		})
	}
}

func TestNeverPastTheDeadline(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler func(*hits) http.HandlerFunc
		mod     func(*client.TransportConfig)
	}{
		{"hanging target", func(h *hits) http.HandlerFunc { return hangFirst(1000, h) },
			func(c *client.TransportConfig) { c.PerTryTimeout = 120 * time.Millisecond; c.Retry.MaxAttempts = 100 }},
		{"slow 200 beyond the deadline", func(h *hits) http.HandlerFunc { return slow(time.Second, h) }, nil},
		{"flapping with long backoff", func(h *hits) http.HandlerFunc { return always(503, h) },
			func(c *client.TransportConfig) {
				c.Retry.InitialBackoff, c.Retry.MaxBackoff, c.Retry.MaxAttempts = 150*time.Millisecond, time.Second, 100
				c.Rand = func() float64 { return 0.99 }
			}},
		{"latency then 503", func(h *hits) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				h.n.Add(1)
				time.Sleep(80 * time.Millisecond)
				problem(w, 503, "unavailable")
			}
		}, func(c *client.TransportConfig) { c.Retry.MaxAttempts = 100 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h hits
			srv := server(t, tc.handler(&h))
			rt := newTransport(t, tc.mod)
			const deadline = 400 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/x", nil)
			start := time.Now()
			resp, err := (&http.Client{Transport: rt}).Do(req)
			el := time.Since(start)
			if err == nil {
				resp.Body.Close()
			}
			// A few ms of scheduling slack on a shared 2-core machine.
			if el > deadline+50*time.Millisecond {
				t.Fatalf("returned after %v, deadline %v (err %v, hits %d)", el, deadline, err, h.count())
			}
			t.Logf("returned after %v with %d hits: %v", el, h.count(), err)
		})
	}
}

func TestRetryBudgetStopsAStorm(t *testing.T) {
	var h hits
	srv := server(t, always(503, &h))
	rt := newTransport(t, func(c *client.TransportConfig) {
		c.Retry.MaxAttempts = 5
		c.Retry.Budget = &client.Budget{Ratio: 0.5, MinPerSecond: 0, Burst: 2}
		c.Breaker.Disabled = true
	})
	status := func() int {
		resp, err := get(t, rt, srv.URL+"/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// The bucket starts full (2 tokens): the first request gets 2 retries.
	if s := status(); s != 503 || h.count() != 3 {
		t.Fatalf("first call: %d after %d hits, want 503 after 3", s, h.count())
	}
	// Empty bucket + 0.5 deposited: no retry.
	status()
	if h.count() != 4 {
		t.Fatalf("second call: %d hits in total, want 4", h.count())
	}
	// Then one retry every other request: 10 requests send 15 attempts,
	// not the 50 that MaxAttempts alone would allow.
	before := h.count()
	for range 10 {
		status()
	}
	if n := h.count() - before; n != 15 {
		t.Fatalf("10 calls sent %d attempts, want 15", n)
	}
}

func TestNonRewindableBodyIsNotRetried(t *testing.T) {
	var h hits
	srv := server(t, always(503, &h))
	rt := newTransport(t, nil)
	body := io.NopCloser(strings.NewReader(`{"a":1}`)) // no GetBody
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/x", body)
	req.GetBody = nil
	_, err := (&http.Client{Transport: rt}).Do(req)
	e := asError(t, err)
	if !errors.Is(err, transport.ErrBodyNotRewindable) || e.Status != 503 || h.count() != 1 {
		t.Fatalf("got %v (status %d) after %d hits; want ErrBodyNotRewindable after 1", err, e.Status, h.count())
	}

	// With GetBody the same PUT is retried, its body sent whole each time.
	var bodies []string
	var mu sync.Mutex
	srv2 := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		n := len(bodies)
		mu.Unlock()
		if n < 3 {
			problem(w, 502, "bad_gateway")
			return
		}
		ok(w)
	}))
	req, _ = http.NewRequest(http.MethodPut, srv2.URL+"/x", bytes.NewReader([]byte(`{"a":1}`)))
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(bodies) != 3 || bodies[0] != `{"a":1}` || bodies[2] != `{"a":1}` {
		t.Fatalf("bodies %q", bodies)
	}
}

func TestClientSideRateLimit(t *testing.T) {
	var h hits
	srv := server(t, always(200, &h))
	c := newClient(t, srv.URL, func(c *client.Config) {
		c.Transport.RateLimit = client.RateLimit{PerSecond: 1, Burst: 1}
	})
	if err := c.Get(context.Background(), "/x", nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	e := asError(t, c.Get(ctx, "/x", nil))
	if e.Kind != client.KindRateLimited || !errors.Is(e, client.ErrLocalRateLimit) || e.RetryAfter < 500*time.Millisecond ||
		e.Attempts != 0 || time.Since(start) > 50*time.Millisecond {
		t.Fatalf("got %v (wait %v, attempts %d) after %v", e, e.RetryAfter, e.Attempts, time.Since(start))
	}
	if h.count() != 1 {
		t.Fatalf("%d hits, want 1", h.count())
	}
}

func TestHooksSeeEveryAttempt(t *testing.T) {
	var h hits
	srv := server(t, flapping(1, &h))
	var attempts []client.AttemptInfo
	c := newClient(t, srv.URL, func(c *client.Config) {
		c.Transport.Hooks.OnAttempt = func(a client.AttemptInfo) { attempts = append(attempts, a) }
	})
	if err := c.Get(context.Background(), "/accounts/12345", nil); err != nil {
		t.Fatal(err)
	}
	if len(attempts) != 2 || attempts[0].Status != 503 || attempts[1].Status != 200 || attempts[1].Attempt != 2 ||
		attempts[0].Target != "financial-service" || attempts[0].Method != "GET" {
		t.Fatalf("attempts %+v", attempts)
	}
}
