package client_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lifenavigator/crossservice/transport"
	"github.com/lifenavigator/crossservice/transport/client"
)

const testSecret = "0123456789abcdef0123456789abcdef-test-only"

// signedPair returns a real verifier for financial-service admitting
// frontend, and frontend's signer for it, sharing one key.
func signedPair(t testing.TB) (*transport.Verifier, *transport.Signer) {
	t.Helper()
	return signedPairFor(t, "frontend", "financial-service")
}

// signedPairFor is signedPair for any caller and target.
func signedPairFor(t testing.TB, caller, target string) (*transport.Verifier, *transport.Signer) {
	t.Helper()
	key, err := transport.NewKey("k1", []byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	// A benchmark sends one caller's requests by the million within the
	// replay window: give it a store that holds them all (the default's
	// per-caller share would answer 503 replay_store_full).
	store, err := transport.NewMemoryReplayStore(transport.MemoryReplayConfig{MaxEntries: 8 << 20, MaxEntriesPerCaller: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	v, err := transport.New(transport.Config{
		Service: target, Environment: transport.Development,
		Keys:        []transport.KeyEntry{{Caller: caller, Key: key}},
		ReplayStore: store,
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := transport.NewSigner(transport.SignerConfig{
		Caller: caller, Target: target, Environment: transport.Development, Key: key,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v, s
}

// seen records what reached a handler past the verifier.
type seen struct {
	mu        sync.Mutex
	ids, sigs []string
	callers   []string
	bodies    []string
}

func (s *seen) record(r *http.Request) int {
	b, _ := io.ReadAll(r.Body)
	c, _ := transport.CallerFrom(r.Context())
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = append(s.ids, r.Header.Get("X-Request-ID"))
	s.sigs = append(s.sigs, r.Header.Get("X-Signature"))
	s.callers = append(s.callers, c.Service)
	s.bodies = append(s.bodies, string(b))
	return len(s.ids)
}

func distinct(xs []string) bool {
	m := map[string]bool{}
	for _, x := range xs {
		if x == "" || m[x] {
			return false
		}
		m[x] = true
	}
	return true
}

// TestRetriesAreSignedAfresh: a GET (and a POST with an Idempotency-Key)
// failing twice with 503 behind the real verifier is retried; every attempt
// passes verification (no replay refusal) with its own request id and
// signature.
func TestRetriesAreSignedAfresh(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			v, signer := signedPair(t)
			var s seen
			srv := server(t, v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if s.record(r) <= 2 {
					problem(w, 503, "unavailable")
					return
				}
				ok(w)
			})))
			c := newClient(t, srv.URL, func(c *client.Config) { c.Transport.Signer = signer })
			var out struct{ OK bool }
			var err error
			if method == http.MethodGet {
				err = c.Get(context.Background(), "/accounts?owner=7", &out)
			} else {
				err = c.Post(context.Background(), "/transfers", map[string]int{"cents": 125}, &out, client.IdempotencyKey("t-1"))
			}
			if err != nil || !out.OK {
				t.Fatalf("err %v, out %+v", err, out)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if len(s.ids) != 3 || !distinct(s.ids) || !distinct(s.sigs) {
				t.Fatalf("verified attempts: ids %q sigs %q; want 3 distinct of each", s.ids, s.sigs)
			}
			for i, c := range s.callers {
				if c != "frontend" {
					t.Fatalf("attempt %d: verified caller %q", i, c)
				}
				if method == http.MethodPost && s.bodies[i] != `{"cents":125}` {
					t.Fatalf("attempt %d: body %q", i, s.bodies[i])
				}
			}
		})
	}
}

// staleSigner signs once and replays the first attempt's headers: what a
// client that signs outside the retry loop does. The verifier must refuse
// the retry as a replay, which is what makes the test above meaningful.
type staleSigner struct {
	s    *transport.Signer
	once sync.Once
	h    http.Header
}

func (st *staleSigner) Sign(r *http.Request) error {
	var err error
	st.once.Do(func() {
		err = st.s.Sign(r)
		st.h = r.Header.Clone()
	})
	for _, k := range []string{"X-Request-Id", "X-Timestamp", "X-Service-Name", "X-Signature", "X-Key-Id"} {
		r.Header[k] = st.h[k]
	}
	return err
}

func TestStaleSignatureIsRefusedAsReplay(t *testing.T) {
	v, signer := signedPair(t)
	var h hits
	srv := server(t, v.Middleware(flapping(1, &h)))
	c := newClient(t, srv.URL, func(c *client.Config) { c.Transport.Signer = &staleSigner{s: signer} })
	e := asError(t, c.Get(context.Background(), "/accounts", nil))
	if e.Status != 401 || e.Problem == nil || e.Problem.Code != transport.CodeReplayDetected || e.Retryable() {
		t.Fatalf("got %v, want 401 replay_detected, not retryable", e)
	}
	if e.Attempts != 2 || h.count() != 1 || e.RequestID() == "" {
		t.Fatalf("attempts %d, handler hits %d, request id %q", e.Attempts, h.count(), e.RequestID())
	}
}

// TestSharedClientUnderLoad: one signed client shared by many goroutines
// against a target failing the first attempt of one call in five; run with
// -race. Every call succeeds thanks to retries, every attempt verifies, and
// the metrics add up.
func TestSharedClientUnderLoad(t *testing.T) {
	v, signer := signedPair(t)
	var failed atomic.Int64
	var seenPaths sync.Map
	srv := server(t, v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		var w0, i int
		fmt.Sscanf(r.URL.Path, "/accounts/%d-secret-%d", &w0, &i)
		if _, again := seenPaths.LoadOrStore(r.URL.Path, true); !again && (w0+i)%5 == 0 {
			failed.Add(1)
			problem(w, 503, "unavailable")
			return
		}
		ok(w)
	})))
	m := client.NewMetrics("test")
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	var logs bytes.Buffer
	var logMu sync.Mutex
	c := newClient(t, srv.URL, func(c *client.Config) {
		c.Transport.Signer = signer
		c.Transport.Metrics = m
		c.Transport.Retry.MaxAttempts = 4
		// Concurrent first attempts fail together; the breaker (exercised
		// under -race all the same) must not open on them here.
		c.Transport.Breaker.Failures = 1000
		c.Transport.Retry.Budget = &client.Budget{Ratio: 1, MinPerSecond: 100, Burst: 100}
		c.Transport.Logger = slog.New(slog.NewJSONHandler(&lockedWriter{w: &logs, mu: &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	const workers, each = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				var out struct{ OK bool }
				path := fmt.Sprintf("/accounts/%d-secret-%d", w, i)
				var err error
				if i%2 == 0 {
					err = c.Get(context.Background(), path, &out)
				} else {
					err = c.Put(context.Background(), path, map[string]int{"i": i}, &out)
				}
				if err == nil && !out.OK {
					err = fmt.Errorf("empty answer")
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := float64(workers * each)
	if failed.Load() == 0 {
		t.Fatal("the target never failed: the test proves nothing")
	}
	if got := sum(t, reg, "test_client_requests_total", "code", "200"); got != total {
		t.Fatalf("requests_total{code=200} = %v, want %v", got, total)
	}
	if got := sum(t, reg, "test_client_attempts_total", "code", "503"); got != float64(failed.Load()) {
		t.Fatalf("attempts_total{code=503} = %v, server failed %d", got, failed.Load())
	}
	if got := sum(t, reg, "test_client_retries_total", "reason", "503"); got != float64(failed.Load()) {
		t.Fatalf("retries_total{reason=503} = %v, server failed %d", got, failed.Load())
	}
	if got := sum(t, reg, "test_client_request_duration_seconds", "", ""); got != total {
		t.Fatalf("request_duration_seconds count = %v, want %v", got, total)
	}
	// Labels and logs: no path, no id from the path, no signature, no key.
	families, err := reg.Gather() // the pedantic registry checks consistency
	if err != nil {
		t.Fatal(err)
	}
	var dump strings.Builder
	for _, f := range families {
		fmt.Fprintln(&dump, f.String())
	}
	logMu.Lock()
	defer logMu.Unlock()
	for _, where := range []struct{ name, text string }{{"metrics", dump.String()}, {"logs", logs.String()}} {
		for _, bad := range []string{"secret", "/accounts", testSecret, "X-Signature"} {
			if strings.Contains(where.text, bad) {
				t.Errorf("%s contain %q", where.name, bad)
			}
		}
	}
	if !strings.Contains(logs.String(), `"msg":"client: retrying"`) {
		t.Errorf("no retry logged")
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// sum adds the values (histogram: counts) of metric name whose label has
// value ("" label: all series).
func sum(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					match = true
				}
			}
			if !match {
				continue
			}
			switch {
			case m.Counter != nil:
				total += m.Counter.GetValue()
			case m.Histogram != nil:
				total += float64(m.Histogram.GetSampleCount())
			case m.Gauge != nil:
				total += m.Gauge.GetValue()
			}
		}
	}
	return total
}
