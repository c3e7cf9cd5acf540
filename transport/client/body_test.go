package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifenavigator/crossservice/transport/client"
)

// trackedBody counts Close calls on the caller's body and on every body
// GetBody hands out.
type trackedBody struct {
	io.Reader
	closed *atomic.Int64
}

func (b trackedBody) Close() error { b.closed.Add(1); return nil }

func trackedRequest(ctx context.Context, url string, closed, opened *atomic.Int64) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, url, nil)
	mk := func() io.ReadCloser {
		opened.Add(1)
		return trackedBody{Reader: strings.NewReader(`{"a":1}`), closed: closed}
	}
	req.Body = mk()
	req.ContentLength = 7
	req.GetBody = func() (io.ReadCloser, error) { return mk(), nil }
	return req
}

type failingSigner struct{}

func (failingSigner) Sign(*http.Request) error { return errors.New("no key") }

// TestBodyClosedOnEveryPath: the RoundTripper contract — every body the
// Transport receives or makes is closed, whichever way the call ends.
func TestBodyClosedOnEveryPath(t *testing.T) {
	var h hits
	flaky := server(t, flapping(2, &h)).URL
	failing := server(t, always(503, &h)).URL
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		url  string
		ctx  context.Context
		mod  func(*client.TransportConfig)
		warm bool // one failing call first (opens a Failures:1 breaker, drains a burst-1 limiter)
	}{
		{"retried then ok", flaky, context.Background(), nil, false},
		{"retries exhausted", failing, context.Background(), nil, false},
		{"canceled before sending", failing, canceled, nil, false},
		{"signing fails", failing, context.Background(), func(c *client.TransportConfig) { c.Signer = failingSigner{} }, false},
		{"breaker open", failing, context.Background(), func(c *client.TransportConfig) {
			c.Breaker.Failures, c.Retry.MaxAttempts = 1, 1
		}, true},
		{"rate limited", failing, context.Background(), func(c *client.TransportConfig) {
			c.RateLimit = client.RateLimit{PerSecond: 0.001, Burst: 1}
			c.Retry.MaxAttempts = 1
		}, true},
		{"no URL host", "http:///x", context.Background(), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := newTransport(t, tc.mod)
			if tc.warm {
				if resp, err := get(t, rt, failing); err == nil {
					resp.Body.Close()
				}
			}
			var closed, opened atomic.Int64
			ctx, cancel := context.WithTimeout(tc.ctx, 2*time.Second)
			defer cancel()
			resp, err := rt.RoundTrip(trackedRequest(ctx, tc.url, &closed, &opened))
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			// net/http closes request bodies from its own goroutines.
			deadline := time.Now().Add(time.Second)
			for closed.Load() < opened.Load() && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if closed.Load() < opened.Load() || opened.Load() == 0 {
				t.Fatalf("%d bodies made, %d closed (err %v)", opened.Load(), closed.Load(), err)
			}
		})
	}
}
