package client_test

// Fault injectors: small in-process servers and listeners on loopback that
// misbehave the way real targets do. No mocks: every test talks HTTP over a
// real socket.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifenavigator/crossservice/transport/client"
)

// hits counts requests reaching a handler.
type hits struct{ n atomic.Int64 }

func (h *hits) count() int { return int(h.n.Load()) }

// server starts an httptest server for h, closed (with its client
// connections) at the end of the test.
func server(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

// base returns a fresh keep-alive transport whose idle connections are closed
// at the end of the test, so goleak sees no connection goroutine.
func base(t testing.TB) *http.Transport {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 64, ForceAttemptHTTP2: false}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// newTransport builds a Transport for target "financial-service" with a
// fresh base and fast retries; mod adjusts the config.
func newTransport(t testing.TB, mod func(*client.TransportConfig)) *client.Transport {
	t.Helper()
	cfg := client.TransportConfig{
		Target: "financial-service",
		Base:   base(t),
		Retry:  client.RetryPolicy{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond},
	}
	if mod != nil {
		mod(&cfg)
	}
	rt, err := client.NewTransport(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// newClient is newTransport under a typed Client for url.
func newClient(t testing.TB, url string, mod func(*client.Config)) *client.Client {
	t.Helper()
	cfg := client.Config{
		BaseURL: url,
		Transport: client.TransportConfig{
			Target: "financial-service",
			Base:   base(t),
			Retry:  client.RetryPolicy{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond},
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ok answers 200 with a small JSON body.
func ok(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"ok":true}`)
}

// flapping answers 503 to the first n requests, then 200.
func flapping(n int, h *hits) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if int(h.n.Add(1)) <= n {
			problem(w, http.StatusServiceUnavailable, "unavailable")
			return
		}
		ok(w)
	}
}

// always answers status to every request.
func always(status int, h *hits) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		h.n.Add(1)
		if status == http.StatusOK {
			ok(w)
			return
		}
		problem(w, status, "failing")
	}
}

func problem(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"type":"about:blank","title":"x","status":%d,"code":%q,"detail":"injected","request_id":"srv-%d"}`, status, code, status)
}

// retryAfter answers 429 with the given Retry-After to the first n requests,
// then 200.
func retryAfter(value func() string, n int, h *hits) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if int(h.n.Add(1)) <= n {
			w.Header().Set("Retry-After", value())
			problem(w, http.StatusTooManyRequests, "rate_limited")
			return
		}
		ok(w)
	}
}

// slow answers 200 after d (or gives up when the client goes away).
func slow(d time.Duration, h *hits) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		h.n.Add(1)
		select {
		case <-time.After(d):
			ok(w)
		case <-r.Context().Done():
		}
	}
}

// hangFirst hangs the first n requests until the client gives up, then 200.
// It reads the body first: net/http notices a client going away only once
// the body is consumed. The 5s bound keeps a broken test from hanging.
func hangFirst(n int, h *hits) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if int(h.n.Add(1)) <= n {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		ok(w)
	}
}

// resetFirst hijacks the first n connections and closes them with an RST
// (linger 0) before answering, then serves 200.
func resetFirst(n int, h *hits) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if int(h.n.Add(1)) <= n {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(err)
			}
			if tc, ok := conn.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
			conn.Close()
			return
		}
		ok(w)
	}
}

// resetListener accepts TCP connections and resets each at once: a target
// whose process is up but broken. It returns the "host:port" to dial.
func resetListener(t testing.TB, accepted *hits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.n.Add(1)
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// closedPort returns an address nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// asError extracts the *client.Error or fails the test.
func asError(t testing.TB, err error) *client.Error {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *client.Error", err, err)
	}
	return e
}

func get(t testing.TB, rt http.RoundTripper, url string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return (&http.Client{Transport: rt}).Do(req)
}
