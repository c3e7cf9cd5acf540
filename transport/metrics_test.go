package transport_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/lifenavigator/crossservice/transport"
)

// gathered is what a registry holds: counter values and histogram sample
// counts by `name{label="value",...}` (labels sorted by name, as Gather
// returns them), and every label value seen.
type gathered struct {
	values map[string]float64
	labels []string
}

func gather(t testing.TB, g prometheus.Gatherer) gathered {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	out := gathered{values: map[string]float64{}}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var b strings.Builder
			b.WriteString(mf.GetName())
			b.WriteByte('{')
			for i, lp := range m.GetLabel() {
				if i > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, "%s=%q", lp.GetName(), lp.GetValue())
				out.labels = append(out.labels, lp.GetValue())
			}
			b.WriteByte('}')
			switch {
			case m.GetCounter() != nil:
				out.values[b.String()] = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				out.values[b.String()] = float64(m.GetHistogram().GetSampleCount())
			default:
				t.Fatalf("unexpected metric type in %s", mf.GetName())
			}
		}
	}
	return out
}

// nonZero drops the series whose value is zero.
func (g gathered) nonZero() map[string]float64 {
	m := map[string]float64{}
	for k, v := range g.values {
		if v != 0 {
			m[k] = v
		}
	}
	return m
}

// hookLog records the hook calls, safe for concurrent use.
type hookLog struct {
	mu       sync.Mutex
	admitted []transport.AdmitInfo
	refused  []transport.RefusalInfo
}

func (h *hookLog) hooks() transport.Hooks {
	return transport.Hooks{
		OnAdmitted: func(i transport.AdmitInfo) { h.mu.Lock(); h.admitted = append(h.admitted, i); h.mu.Unlock() },
		OnRefused:  func(i transport.RefusalInfo) { h.mu.Lock(); h.refused = append(h.refused, i); h.mu.Unlock() },
	}
}

func (h *hookLog) take() ([]transport.AdmitInfo, []transport.RefusalInfo) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a, r := h.admitted, h.refused
	h.admitted, h.refused = nil, nil
	return a, r
}

// sendSigned signs a GET with s (nil: unsigned) and sends it; it returns
// the status and the signing headers it carried.
func sendSigned(t *testing.T, c *http.Client, url string, s *transport.Signer) (int, http.Header) {
	t.Helper()
	req := newRequest(t, "GET", url, "", nil)
	if s != nil {
		require.NoError(t, s.Sign(req))
	}
	return resend(t, c, url, req.Header), req.Header
}

// resend sends a GET carrying exactly the headers h.
func resend(t *testing.T, c *http.Client, url string, h http.Header) int {
	t.Helper()
	req := newRequest(t, "GET", url, "", nil)
	req.Header = h.Clone()
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// TestMetricsAndHooks drives each outcome through a real server and checks
// the series, their labels and the hook calls.
func TestMetricsAndHooks(t *testing.T) {
	d := newDeployment(t)
	clk := newClock(time.Now())
	lim, err := transport.NewMemoryLimiter(transport.MemoryLimiterConfig{
		Default: transport.Rate{Limit: rate.Inf, Burst: 1},
		Callers: map[string]transport.Rate{"analytics-service": {Limit: rate.Every(time.Hour), Burst: 1}},
		Clock:   clk.Now,
	})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	m := transport.NewMetrics("")
	reg.MustRegister(m)
	var hooks hookLog
	cfg := d.config(clk.Now)
	cfg.Limiter, cfg.Metrics, cfg.Hooks = lim, m, hooks.hooks()
	v, err := transport.New(cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(v.Middleware(&counter{}))
	t.Cleanup(srv.Close)
	c, url := srv.Client(), srv.URL+"/v1/accounts"

	fe := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", clk.Now)
	an := newSigner(t, "analytics-service", "financial-api", transport.Production, d.analytics, "", clk.Now)
	lg := newSigner(t, "legacy-gateway", "financial-api", transport.Production, d.legacy, transport.SchemeLegacy, clk.Now)
	forger := newSigner(t, "frontend", "financial-api", transport.Production, mustKey(t, "f1", secretOtherValid), "", clk.Now)
	late := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "",
		func() time.Time { return clk.Now().Add(-10 * time.Minute) })

	var sent []http.Header // every signing header sent, to look for in labels
	do := func(want int, s *transport.Signer) http.Header {
		t.Helper()
		status, h := sendSigned(t, c, url, s)
		require.Equal(t, want, status)
		sent = append(sent, h)
		return h
	}

	// admitted: v1 and legacy.
	first := do(200, fe)
	do(200, lg)
	a, r := hooks.take()
	require.Empty(t, r)
	require.Len(t, a, 2)
	require.Equal(t, "frontend", a[0].Caller)
	require.Equal(t, "f1", a[0].KeyID)
	require.Equal(t, transport.SchemeV1, a[0].Scheme)
	require.Equal(t, first.Get("X-Request-ID"), a[0].RequestID)
	require.Zero(t, a[0].Skew, "signer and verifier share the clock")
	require.False(t, a[0].FailedOpen)
	require.Positive(t, a[0].Duration)
	require.Equal(t, "legacy-gateway", a[1].Caller)
	require.Equal(t, transport.SchemeLegacy, a[1].Scheme)

	// signature_invalid: a forged signature under a real caller's name.
	forged := do(401, forger)
	_, r = hooks.take()
	require.Len(t, r, 1)
	require.Equal(t, transport.RefusalInfo{Code: transport.CodeSignatureInvalid, Check: "signature_mismatch",
		Scheme: transport.SchemeV1, RequestID: forged.Get("X-Request-ID"), HasSkew: true, Duration: r[0].Duration}, r[0],
		"no caller: the name is only a claim")

	// replay_detected: the first request again. Its caller verified.
	require.Equal(t, 401, resend(t, c, url, first))
	_, r = hooks.take()
	require.Len(t, r, 1)
	require.Equal(t, transport.CodeReplayDetected, r[0].Code)
	require.Equal(t, "replay", r[0].Check)
	require.Equal(t, "frontend", r[0].Caller)
	require.Equal(t, first.Get("X-Request-ID"), r[0].RequestID)

	// timestamp_out_of_window: signed 10 minutes ago.
	do(401, late)
	_, r = hooks.take()
	require.Len(t, r, 1)
	require.Equal(t, transport.CodeTimestampOutOfWindow, r[0].Code)
	require.Empty(t, r[0].Caller)
	require.True(t, r[0].HasSkew)
	require.Equal(t, 10*time.Minute, r[0].Skew)

	// rate_limited: analytics-service has a burst of 1.
	do(200, an)
	do(429, an)
	a, r = hooks.take()
	require.Len(t, a, 1)
	require.Len(t, r, 1)
	require.Equal(t, transport.CodeRateLimited, r[0].Code)
	require.Equal(t, "analytics-service", r[0].Caller)
	require.Equal(t, time.Hour, r[0].RetryAfter)

	// unsigned_request (strict).
	do(401, nil)
	_, r = hooks.take()
	require.Len(t, r, 1)
	require.Equal(t, transport.RefusalInfo{Code: transport.CodeUnsignedRequest, Check: "unsigned", Duration: r[0].Duration}, r[0])

	g := gather(t, reg)
	require.Equal(t, map[string]float64{
		`xsvc_verifier_requests_total{caller="analytics-service",outcome="admitted",scheme="v1"}`:      1,
		`xsvc_verifier_requests_total{caller="analytics-service",outcome="rate_limited",scheme="v1"}`:  1,
		`xsvc_verifier_requests_total{caller="frontend",outcome="admitted",scheme="v1"}`:               1,
		`xsvc_verifier_requests_total{caller="frontend",outcome="replay_detected",scheme="v1"}`:        1,
		`xsvc_verifier_requests_total{caller="legacy-gateway",outcome="admitted",scheme="legacy"}`:     1,
		`xsvc_verifier_requests_total{caller="unknown",outcome="signature_invalid",scheme="v1"}`:       1,
		`xsvc_verifier_requests_total{caller="unknown",outcome="timestamp_out_of_window",scheme="v1"}`: 1,
		`xsvc_verifier_requests_total{caller="unknown",outcome="unsigned_request",scheme="unsigned"}`:  1,
		`xsvc_verifier_duration_seconds{class="admitted"}`:                                             3,
		`xsvc_verifier_duration_seconds{class="refused"}`:                                              5,
	}, g.values)

	// No label carries a secret, a signature, a request id or a path.
	var forbidden []string
	for _, h := range sent {
		forbidden = append(forbidden, h.Get("X-Signature"), h.Get("X-Request-ID"), h.Get("X-Timestamp"))
	}
	forbidden = append(forbidden, secretFrontend1, secretAnalytics, secretLegacy, secretOtherValid, "/v1/accounts")
	for _, l := range g.labels {
		for _, f := range forbidden {
			if f != "" {
				require.NotContains(t, l, f)
			}
		}
	}
}

// TestMetricsCallerOnlyWhenVerified: a refusal before the signature
// verified is never charged to the caller it names, known or not.
func TestMetricsCallerOnlyWhenVerified(t *testing.T) {
	d := newDeployment(t)
	reg := prometheus.NewRegistry()
	m := transport.NewMetrics("svc")
	reg.MustRegister(m)
	cfg := d.config(time.Now)
	cfg.Metrics = m
	v, err := transport.New(cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(v.Middleware(&counter{}))
	t.Cleanup(srv.Close)
	c, url := srv.Client(), srv.URL+"/x"

	// An unknown caller with a valid-looking signature, a v1 caller using
	// the legacy form, a retired key, a missing header.
	status, _ := sendSigned(t, c, url, newSigner(t, "made-up-caller", "financial-api", transport.Production, d.analytics, "", time.Now))
	require.Equal(t, 401, status)
	status, _ = sendSigned(t, c, url, newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, transport.SchemeLegacy, time.Now))
	require.Equal(t, 401, status)
	status, _ = sendSigned(t, c, url, newSigner(t, "frontend", "financial-api", transport.Production, d.frontendRetired, "", time.Now))
	require.Equal(t, 401, status)
	req := newRequest(t, "GET", url, "", nil)
	require.NoError(t, newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", time.Now).Sign(req))
	req.Header.Del("X-Timestamp")
	require.Equal(t, 401, resend(t, c, url, req.Header))

	require.Equal(t, map[string]float64{
		`svc_verifier_requests_total{caller="unknown",outcome="signature_invalid",scheme="v1"}`:      2,
		`svc_verifier_requests_total{caller="unknown",outcome="scheme_not_allowed",scheme="legacy"}`: 1,
		`svc_verifier_requests_total{caller="unknown",outcome="header_missing",scheme="v1"}`:         1,
		`svc_verifier_duration_seconds{class="refused"}`:                                             4,
	}, gather(t, reg).values)
}

type timeoutLimiter struct{}

func (timeoutLimiter) Allow(ctx context.Context, _ string) (bool, time.Duration, error) {
	return false, 0, fmt.Errorf("transport: redis limiter: %w: %w", transport.ErrRedisUnavailable, context.DeadlineExceeded)
}

// TestMetricsBackendErrors: store and limiter errors are counted by kind,
// fail closed as "unavailable", and under FailOpen still counted.
func TestMetricsBackendErrors(t *testing.T) {
	d := newDeployment(t)
	reg := prometheus.NewRegistry()
	m := transport.NewMetrics("")
	reg.MustRegister(m)
	var hooks hookLog
	serve := func(mut func(*transport.Config), want int) {
		t.Helper()
		cfg := d.config(time.Now)
		cfg.Metrics, cfg.Hooks = m, hooks.hooks() // one Metrics, several verifiers
		mut(&cfg)
		v, err := transport.New(cfg)
		require.NoError(t, err)
		srv := httptest.NewServer(v.Middleware(&counter{}))
		defer srv.Close()
		fe := newSigner(t, "frontend", "financial-api", cfg.Environment, d.frontend1, "", time.Now)
		status, _ := sendSigned(t, srv.Client(), srv.URL+"/x", fe)
		require.Equal(t, want, status)
	}
	serve(func(c *transport.Config) { c.ReplayStore = failingStore{transport.ErrRedisUnavailable} }, 503)
	serve(func(c *transport.Config) { c.ReplayStore = failingStore{transport.ErrReplayStoreFull} }, 503)
	serve(func(c *transport.Config) { c.Limiter = timeoutLimiter{} }, 503)
	_, r := hooks.take()
	require.Len(t, r, 3)
	require.Equal(t, transport.CodeReplayStoreUnavailable, r[0].Code)
	require.ErrorIs(t, r[0].Err, transport.ErrRedisUnavailable)
	require.Equal(t, "frontend", r[0].Caller)
	require.Equal(t, transport.CodeReplayStoreFull, r[1].Code)
	require.Equal(t, transport.CodeRateLimiterUnavailable, r[2].Code)
	require.Equal(t, time.Second, r[2].RetryAfter)

	// FailOpen (development): admitted, flagged, and the error counted.
	serve(func(c *transport.Config) {
		c.Environment, c.FailOpen, c.Limiter = transport.Development, true, failingLimiter{}
	}, 200)
	a, r := hooks.take()
	require.Empty(t, r)
	require.Len(t, a, 1)
	require.True(t, a[0].FailedOpen)

	require.Equal(t, map[string]float64{
		`xsvc_verifier_backend_errors_total{backend="rate_limiter",kind="error"}`:                        1,
		`xsvc_verifier_backend_errors_total{backend="rate_limiter",kind="timeout"}`:                      1,
		`xsvc_verifier_backend_errors_total{backend="replay_store",kind="error"}`:                        1,
		`xsvc_verifier_backend_errors_total{backend="replay_store",kind="full"}`:                         1,
		`xsvc_verifier_requests_total{caller="frontend",outcome="admitted",scheme="v1"}`:                 1,
		`xsvc_verifier_requests_total{caller="frontend",outcome="rate_limiter_unavailable",scheme="v1"}`: 1,
		`xsvc_verifier_requests_total{caller="frontend",outcome="replay_store_full",scheme="v1"}`:        1,
		`xsvc_verifier_requests_total{caller="frontend",outcome="replay_store_unavailable",scheme="v1"}`: 1,
		`xsvc_verifier_duration_seconds{class="admitted"}`:                                               1,
		`xsvc_verifier_duration_seconds{class="unavailable"}`:                                            3,
	}, gather(t, reg).values)
}

// TestMetricsUnsignedAndNested: an unsigned admission (non-strict) is
// scheme "unsigned", caller "unknown"; a nested guard's refusal is counted
// beside the outer admission.
func TestMetricsUnsignedAndNested(t *testing.T) {
	d := newDeployment(t)
	reg := prometheus.NewRegistry()
	m := transport.NewMetrics("")
	reg.MustRegister(m)
	var hooks hookLog
	cfg := d.config(time.Now)
	cfg.Environment, cfg.NonStrict, cfg.Metrics, cfg.Hooks = transport.Development, true, m, hooks.hooks()
	v, err := transport.New(cfg)
	require.NoError(t, err)
	onlyAnalytics, err := v.Require("analytics-service")
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/open", &counter{})
	mux.Handle("/analytics", onlyAnalytics(&counter{}))
	srv := httptest.NewServer(v.Middleware(mux))
	t.Cleanup(srv.Close)
	c := srv.Client()

	status, _ := sendSigned(t, c, srv.URL+"/open", nil)
	require.Equal(t, 200, status)
	a, r := hooks.take()
	require.Empty(t, r)
	require.Equal(t, []transport.AdmitInfo{{Duration: a[0].Duration}}, a)

	fe := newSigner(t, "frontend", "financial-api", transport.Development, d.frontend1, "", time.Now)
	status, h := sendSigned(t, c, srv.URL+"/analytics", fe)
	require.Equal(t, 403, status)
	a, r = hooks.take()
	require.Len(t, a, 1, "the outer guard admitted it")
	require.Len(t, r, 1, "the inner guard refused it")
	require.Equal(t, transport.CodeServiceNotAuthorized, r[0].Code)
	require.Equal(t, "frontend", r[0].Caller)
	require.Equal(t, h.Get("X-Request-ID"), r[0].RequestID)

	status, _ = sendSigned(t, c, srv.URL+"/analytics", nil)
	require.Equal(t, 401, status)

	require.Equal(t, map[string]float64{
		`xsvc_verifier_requests_total{caller="frontend",outcome="admitted",scheme="v1"}`:               1,
		`xsvc_verifier_requests_total{caller="frontend",outcome="service_not_authorized",scheme="v1"}`: 1,
		`xsvc_verifier_requests_total{caller="unknown",outcome="admitted",scheme="unsigned"}`:          2,
		`xsvc_verifier_requests_total{caller="unknown",outcome="unsigned_request",scheme="unsigned"}`:  1,
		`xsvc_verifier_duration_seconds{class="admitted"}`:                                             3,
		`xsvc_verifier_duration_seconds{class="refused"}`:                                              2,
	}, gather(t, reg).nonZero())
}

type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header       { return w.h }
func (*nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (*nopWriter) WriteHeader(int)             {}

// TestMetricsNoAllocations: Metrics and Hooks add no allocation to an
// admitted request, and neither does leaving them nil.
func TestMetricsNoAllocations(t *testing.T) {
	d := newDeployment(t)
	allocs := func(m *transport.Metrics, hooks transport.Hooks) float64 {
		cfg := d.config(time.Now)
		cfg.ReplayStore, cfg.Metrics, cfg.Hooks = alwaysFresh{}, m, hooks
		v, err := transport.New(cfg)
		require.NoError(t, err)
		h := v.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		req := httptest.NewRequest("GET", "/v1/x", nil)
		req.RemoteAddr = "127.0.0.1:1"
		require.NoError(t, newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", time.Now).Sign(req))
		w := &nopWriter{h: http.Header{}}
		h.ServeHTTP(w, req) // creates the series
		return testing.AllocsPerRun(2000, func() { h.ServeHTTP(w, req) })
	}
	n := 0
	hooks := transport.Hooks{
		OnAdmitted: func(transport.AdmitInfo) { n++ },
		OnRefused:  func(transport.RefusalInfo) { n++ },
	}
	without := allocs(nil, transport.Hooks{})
	with := allocs(transport.NewMetrics(""), hooks)
	require.Positive(t, n)
	t.Logf("allocations per admitted request: %v without Metrics and Hooks, %v with", without, with)
	// sync.Pool drops some items under -race: compare, with a margin.
	require.InDelta(t, without, with, 0.5, "without %v, with %v", without, with)
}
