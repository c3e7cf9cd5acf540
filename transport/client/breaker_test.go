package client_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifenavigator/crossservice/transport/client"
)

func TestBreakerOpensFailsFastHalfOpensAndCloses(t *testing.T) {
	var h hits
	var status atomic.Int64
	status.Store(503)
	srv := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.n.Add(1)
		if r.URL.Path == "/slow" {
			hangFirst(1<<30, new(hits))(w, r)
			return
		}
		if s := int(status.Load()); s != 200 {
			problem(w, s, "x")
			return
		}
		ok(w)
	}))
	var mu sync.Mutex
	var changes []client.BreakerChange
	const openFor = 300 * time.Millisecond
	c := newClient(t, srv.URL, func(c *client.Config) {
		c.Transport.Retry.MaxAttempts = 1
		c.Transport.Breaker = client.BreakerPolicy{Failures: 3, OpenTimeout: openFor}
		c.Transport.Hooks.OnBreakerStateChange = func(ch client.BreakerChange) {
			mu.Lock()
			changes = append(changes, ch)
			mu.Unlock()
		}
	})
	hostport := srv.Listener.Addr().String()
	state := func() client.BreakerState { return c.Transport().BreakerState(hostport) }
	call := func(path string) error { return c.Get(context.Background(), path, nil) }

	// Not counted: 4xx other than 429, and the caller's own cancellation.
	status.Store(404)
	for range 5 {
		call("/")
	}
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		time.AfterFunc(10*time.Millisecond, cancel)
		if e := asError(t, c.Get(ctx, "/slow", nil)); e.Kind != client.KindCanceled {
			t.Fatalf("want canceled, got %v", e)
		}
	}
	if state() != client.BreakerClosed {
		t.Fatalf("breaker %v after 404s and cancellations", state())
	}

	// Counted: 503, 429; the third consecutive failure opens it.
	status.Store(503)
	call("/")
	status.Store(429)
	call("/")
	status.Store(502)
	call("/")
	if state() != client.BreakerOpen {
		t.Fatalf("breaker %v after 3 failures, want open", state())
	}

	// Open: fails fast, nothing reaches the target.
	before := h.count()
	start := time.Now()
	for range 20 {
		err := call("/")
		if e := asError(t, err); e.Kind != client.KindBreakerOpen || !errors.Is(err, client.ErrBreakerOpen) || e.Attempts != 0 {
			t.Fatalf("while open: %v", err)
		}
	}
	if el := time.Since(start); h.count() != before || el > 100*time.Millisecond {
		t.Fatalf("while open: %d requests reached the target, 20 calls took %v", h.count()-before, el)
	}

	// After OpenTimeout: half-open; a failed probe opens it again.
	time.Sleep(openFor + 50*time.Millisecond)
	if state() != client.BreakerHalfOpen {
		t.Fatalf("breaker %v after the open timeout, want half-open", state())
	}
	call("/")
	if state() != client.BreakerOpen {
		t.Fatalf("breaker %v after a failed probe, want open", state())
	}

	// Half-open again; the target has recovered: a good probe closes it.
	time.Sleep(openFor + 50*time.Millisecond)
	status.Store(200)
	if err := call("/"); err != nil {
		t.Fatal(err)
	}
	if state() != client.BreakerClosed {
		t.Fatalf("breaker %v after a good probe, want closed", state())
	}

	mu.Lock()
	defer mu.Unlock()
	want := []client.BreakerState{client.BreakerOpen, client.BreakerHalfOpen, client.BreakerOpen, client.BreakerHalfOpen, client.BreakerClosed}
	if len(changes) != len(want) {
		t.Fatalf("changes %+v", changes)
	}
	for i, ch := range changes {
		if ch.To != want[i] || ch.Target != "financial-service" || ch.Host != hostport {
			t.Fatalf("change %d: %+v, want to %v", i, ch, want[i])
		}
	}
}

// The breaker stops a retry loop too: once open, the remaining attempts of a
// call are not sent.
func TestBreakerCutsRetries(t *testing.T) {
	var h hits
	srv := server(t, always(503, &h))
	c := newClient(t, srv.URL, func(c *client.Config) {
		c.Transport.Retry.MaxAttempts = 10
		c.Transport.Breaker = client.BreakerPolicy{Failures: 4, OpenTimeout: time.Minute}
	})
	e := asError(t, c.Get(context.Background(), "/", nil))
	if e.Kind != client.KindBreakerOpen || e.Attempts != 4 || h.count() != 4 || e.Status != 503 {
		t.Fatalf("%v: attempts %d, hits %d", e, e.Attempts, h.count())
	}
}
