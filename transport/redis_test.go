package transport_test

// Tests against a real redis-server (internal/testredis): skipped with a
// how-to when it is not installed, failing under CI=true.

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/lifenavigator/crossservice/internal/testcerts"
	"github.com/lifenavigator/crossservice/internal/testredis"
	"github.com/lifenavigator/crossservice/transport"
)

// newRedisClient connects to rs through transport.NewRedisClient and closes
// the client when the test ends (before rs stops: cleanups run last first).
func newRedisClient(t testing.TB, rs *testredis.Server, hooks ...redis.Hook) *redis.Client {
	t.Helper()
	c, err := transport.NewRedisClient(rs.URL())
	require.NoError(t, err)
	for _, h := range hooks {
		c.AddHook(h)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newRedisStore(t testing.TB, c redis.UniversalClient, timeout time.Duration) *transport.RedisReplayStore {
	t.Helper()
	s, err := transport.NewRedisReplayStore(transport.RedisReplayConfig{Client: c, Timeout: timeout})
	require.NoError(t, err)
	return s
}

func newRedisLimiter(t testing.TB, c redis.UniversalClient, r transport.Rate) *transport.RedisLimiter {
	t.Helper()
	l, err := transport.NewRedisLimiter(transport.RedisLimiterConfig{Client: c, Service: "financial-api",
		Environment: transport.Production, Default: r, Timeout: 2 * time.Second})
	require.NoError(t, err)
	return l
}

// replica is one instance of financial-api: a verifier behind its own TLS 1.3
// server, with a handler that counts its runs.
type replica struct {
	srv    *httptest.Server
	client *http.Client
	ran    *counter
}

func startReplica(t *testing.T, ca *testcerts.CA, cfg transport.Config) *replica {
	t.Helper()
	v, err := transport.New(cfg)
	require.NoError(t, err)
	cnt := &counter{}
	srv, c := tlsServer(t, v.Middleware(cnt), ca, false, nil)
	return &replica{srv: srv, client: c, ran: cnt}
}

// signedHeader signs one request and returns its headers: sending them again,
// to any replica, is a replay.
func signedHeader(t testing.TB, s *transport.Signer, method, path string, body []byte) http.Header {
	t.Helper()
	req := newRequest(t, method, "https://financial.internal"+path, "application/json", body)
	require.NoError(t, s.Sign(req))
	return req.Header
}

func (r *replica) request(t testing.TB, method, path string, h http.Header, body []byte) *http.Request {
	req := newRequest(t, method, r.srv.URL+path, "", body)
	req.Header = h.Clone()
	return req
}

// send sends h and body to the replica and returns the status and the
// problem (nil on success).
func (r *replica) send(t testing.TB, method, path string, h http.Header, body []byte) (int, *transport.Problem) {
	t.Helper()
	st, p, _ := send(t, r.client, r.request(t, method, path, h, body))
	return st, p
}

// sendNew signs a new request and sends it.
func (r *replica) sendNew(t testing.TB, s *transport.Signer, path string) (int, *transport.Problem) {
	t.Helper()
	body := []byte(`{"amount":1}`)
	return r.send(t, "POST", path, signedHeader(t, s, "POST", path, body), body)
}

func TestRedisReplayAcrossReplicas(t *testing.T) {
	rs := testredis.Start(t)
	ca, err := testcerts.NewCA("test-ca")
	require.NoError(t, err)
	d := newDeployment(t)
	mk := func() *replica {
		cfg := d.config(time.Now)
		cfg.ReplayStore = newRedisStore(t, newRedisClient(t, rs), 2*time.Second) // -race on 2 shared cores
		return startReplica(t, ca, cfg)
	}
	a, b := mk(), mk()
	fe := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", time.Now)

	body := []byte(`{"amount":100}`)
	h := signedHeader(t, fe, "POST", "/v1/transfers", body)
	st, _ := a.send(t, "POST", "/v1/transfers", h, body)
	require.Equal(t, 200, st)
	for _, r := range []*replica{b, a} {
		st, p := r.send(t, "POST", "/v1/transfers", h, body)
		require.Equal(t, 401, st)
		require.Equal(t, transport.CodeReplayDetected, p.Code)
	}
	require.EqualValues(t, 1, a.ran.n.Load())
	require.Zero(t, b.ran.n.Load())

	// Distinct requests are all admitted, whichever replica gets them.
	for i := range 6 {
		st, _ := []*replica{a, b}[i%2].sendNew(t, fe, "/v1/transfers")
		require.Equal(t, 200, st)
	}

	// N concurrent copies of one request, spread over both replicas: exactly
	// one is admitted.
	const n = 50
	h = signedHeader(t, fe, "POST", "/v1/transfers", body)
	before := a.ran.n.Load() + b.ran.n.Load()
	type outcome struct {
		status int
		code   transport.Code
		err    error
	}
	out := make([]outcome, n)
	reqs := make([]*http.Request, n)
	for i := range reqs {
		reqs[i] = []*replica{a, b}[i%2].request(t, "POST", "/v1/transfers", h, body)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			r := []*replica{a, b}[i%2]
			resp, err := r.client.Do(reqs[i])
			if err != nil {
				out[i].err = err
				return
			}
			defer resp.Body.Close()
			out[i].status = resp.StatusCode
			if resp.StatusCode >= 400 {
				p, err := transport.ParseProblem(resp)
				out[i].err = err
				if p != nil {
					out[i].code = p.Code
				}
			}
		})
	}
	close(start)
	wg.Wait()
	admitted := 0
	for i, o := range out {
		require.NoError(t, o.err, "request %d", i)
		if o.status == 200 {
			admitted++
			continue
		}
		require.Equal(t, 401, o.status, "request %d", i)
		require.Equal(t, transport.CodeReplayDetected, o.code, "request %d", i)
	}
	require.Equal(t, 1, admitted)
	require.Equal(t, before+1, a.ran.n.Load()+b.ran.n.Load(), "the handler ran once")
}

func TestRedisKeyLayout(t *testing.T) {
	rs := testredis.Start(t)
	c := newRedisClient(t, rs)
	d := newDeployment(t)
	store, err := transport.NewRedisReplayStore(transport.RedisReplayConfig{Client: c, Prefix: "billing:", Timeout: 2 * time.Second})
	require.NoError(t, err)
	cfg := d.config(time.Now) // Window 5m (default), FutureSkew 30s
	cfg.ReplayStore = store
	v, err := transport.New(cfg)
	require.NoError(t, err)
	h := v.Middleware(&counter{})
	ctx := t.Context()
	ttl := (5*time.Minute + 30*time.Second + time.Millisecond).Milliseconds()

	fe := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", time.Now)
	rec, _ := inProcess(t, h, fe, "GET", "/v1/x", "127.0.0.1:1", nil, true)
	require.Equal(t, 200, rec.Code)
	keys, err := c.Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.Len(t, keys, 1)
	require.Regexp(t, `^billing:xsvc:replay:v1:production:financial-api:frontend:[0-9a-f-]{36}$`, keys[0])
	pttl, err := c.PTTL(ctx, keys[0]).Result()
	require.NoError(t, err)
	require.LessOrEqual(t, pttl.Milliseconds(), ttl, "TTL = window + future skew + 1 ms")
	require.Greater(t, pttl.Milliseconds(), ttl-5000, "TTL = window + future skew + 1 ms")
	require.Equal(t, "1", c.Get(ctx, keys[0]).Val())

	// Legacy: keyed on the signature, the legacy request id and caller name
	// being unsigned.
	lg := newSigner(t, "legacy-gateway", "financial-api", transport.Production, d.legacy, transport.SchemeLegacy, time.Now)
	rec, _ = inProcess(t, h, lg, "GET", "/v1/x", "127.0.0.1:1", nil, true)
	require.Equal(t, 200, rec.Code)
	keys, err = c.Keys(ctx, "billing:xsvc:replay:legacy:*").Result()
	require.NoError(t, err)
	require.Len(t, keys, 1)
	require.Regexp(t, `^billing:xsvc:replay:legacy:production:financial-api:[0-9a-f]{64}$`, keys[0])

	// The store on its own: ttl rounded up to whole milliseconds, never down.
	fresh, err := store.Consume(ctx, "k", 1500*time.Microsecond)
	require.NoError(t, err)
	require.True(t, fresh)
	fresh, err = store.Consume(ctx, "k", time.Second)
	require.NoError(t, err)
	require.False(t, fresh)
	_, err = store.Consume(ctx, "k2", 0)
	require.ErrorIs(t, err, transport.ErrInvalidConfig)
}

func TestRedisDownFailsClosed(t *testing.T) {
	rs := testredis.Start(t)
	ca, err := testcerts.NewCA("test-ca")
	require.NoError(t, err)
	d := newDeployment(t)
	logs := &logBuffer{}
	// Replica a checks replays on Redis; replica b keeps replays in memory
	// and its rate limit on Redis.
	cfgA := d.config(time.Now)
	cfgA.ReplayStore = newRedisStore(t, newRedisClient(t, rs), time.Second)
	cfgA.Logger = logs.logger()
	a := startReplica(t, ca, cfgA)
	cfgB := d.config(time.Now)
	cfgB.Limiter = newRedisLimiter(t, newRedisClient(t, rs), transport.Rate{Limit: 1000, Burst: 1000})
	b := startReplica(t, ca, cfgB)
	fe := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", time.Now)

	for _, r := range []*replica{a, b} {
		st, _ := r.sendNew(t, fe, "/v1/x")
		require.Equal(t, 200, st)
	}

	rs.Stop()
	// More failures than the pool has connections (10 × GOMAXPROCS): go-redis
	// then stops dialling per request and probes once a second instead.
	for range 25 {
		for _, tc := range []struct {
			r    *replica
			code transport.Code
		}{{a, transport.CodeReplayStoreUnavailable}, {b, transport.CodeRateLimiterUnavailable}} {
			st, p := tc.r.sendNew(t, fe, "/v1/x")
			require.Equal(t, 503, st)
			require.Equal(t, tc.code, p.Code)
			require.Equal(t, time.Second, p.RetryAfter)
		}
	}
	require.EqualValues(t, 1, a.ran.n.Load(), "no request admitted without its replay check")
	require.EqualValues(t, 1, b.ran.n.Load(), "no request admitted without its rate limit")
	require.Contains(t, logs.String(), `"check":"replay_store_error"`)
	require.Contains(t, logs.String(), transport.ErrRedisUnavailable.Error(), "the log says why")

	// Redis back: the same verifiers admit again, nothing rebuilt. go-redis
	// probes a server it failed to dial once a second.
	rs.Restart(t)
	restarted := time.Now()
	for _, r := range []*replica{a, b} {
		for {
			st, p := r.sendNew(t, fe, "/v1/x")
			if st == 200 {
				break
			}
			require.Equal(t, 503, st)
			require.Contains(t, []transport.Code{transport.CodeReplayStoreUnavailable, transport.CodeRateLimiterUnavailable}, p.Code)
			require.Less(t, time.Since(restarted), 15*time.Second, "no recovery")
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("recovered %v after the restart", time.Since(restarted).Round(time.Millisecond))
	require.EqualValues(t, 2, a.ran.n.Load())
	require.EqualValues(t, 2, b.ran.n.Load())
	// And replays are refused again.
	body := []byte(`{}`)
	h := signedHeader(t, fe, "POST", "/v1/x", body)
	st, _ := a.send(t, "POST", "/v1/x", h, body)
	require.Equal(t, 200, st)
	st, p := a.send(t, "POST", "/v1/x", h, body)
	require.Equal(t, 401, st)
	require.Equal(t, transport.CodeReplayDetected, p.Code)
}

// busyScript keeps Redis busy for ARGV[1] milliseconds: Lua scripts run
// atomically, so every other client waits.
const busyScript = `
local t = redis.call('TIME')
local stop = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(ARGV[1]) * 1000
while true do
  local n = redis.call('TIME')
  if tonumber(n[1]) * 1000000 + tonumber(n[2]) >= stop then break end
end
return 1`

func TestRedisSlowFailsClosed(t *testing.T) {
	rs := testredis.Start(t)
	d := newDeployment(t)
	cfg := d.config(time.Now)
	cfg.ReplayStore = newRedisStore(t, newRedisClient(t, rs), 0) // DefaultRedisTimeout
	v, err := transport.New(cfg)
	require.NoError(t, err)
	cnt := &counter{}
	h := v.Middleware(cnt)
	fe := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", time.Now)
	admit := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			rec, _ := inProcess(t, h, fe, "GET", "/v1/x", "127.0.0.1:1", nil, true)
			if rec.Code == 200 {
				return
			}
			require.True(t, time.Now().Before(deadline), "no request admitted")
			time.Sleep(10 * time.Millisecond)
		}
	}
	admit() // connection established

	blocker := newRedisClient(t, rs)
	busy := make(chan error, 1)
	go func() { busy <- blocker.Eval(context.Background(), busyScript, nil, 2000).Err() }()
	for {
		select {
		case err := <-busy:
			t.Fatalf("the script ended (%v) before a request was refused", err)
		default:
		}
		ran := cnt.n.Load()
		start := time.Now()
		rec, p := inProcess(t, h, fe, "GET", "/v1/x", "127.0.0.1:1", nil, true)
		took := time.Since(start)
		if rec.Code == 200 {
			time.Sleep(20 * time.Millisecond) // the script has not started yet
			continue
		}
		require.Equal(t, 503, rec.Code)
		require.Equal(t, transport.CodeReplayStoreUnavailable, p.Code)
		require.Less(t, took, time.Second, "answered at the timeout, not when Redis was done")
		require.Equal(t, ran, cnt.n.Load(), "the handler did not run")
		break
	}
	require.NoError(t, <-busy)
	admit()
}

func TestRedisLimiterSharedByReplicas(t *testing.T) {
	rs := testredis.Start(t)
	ca, err := testcerts.NewCA("test-ca")
	require.NoError(t, err)
	d := newDeployment(t)
	lim := transport.Rate{Limit: 2, Burst: 4} // alone, each replica would admit 4 at once
	mk := func() *replica {
		c := newRedisClient(t, rs)
		cfg := d.config(time.Now)
		cfg.ReplayStore = newRedisStore(t, c, 2*time.Second)
		cfg.Limiter = newRedisLimiter(t, c, lim)
		return startReplica(t, ca, cfg)
	}
	a, b := mk(), mk()
	fe := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", time.Now)

	const n = 40
	reqs := make([]*http.Request, n)
	for i := range reqs {
		body := []byte(`{}`)
		reqs[i] = []*replica{a, b}[i%2].request(t, "POST", "/v1/x", signedHeader(t, fe, "POST", "/v1/x", body), body)
	}
	var admitted, limited atomic.Int64
	errs := make(chan error, n)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				resp, err := []*replica{a, b}[i%2].client.Do(reqs[i])
				if err != nil {
					errs <- err
					return
				}
				switch resp.StatusCode {
				case 200:
					admitted.Add(1)
				case 429:
					p, err := transport.ParseProblem(resp)
					switch {
					case err != nil:
						errs <- err
					case p.Code != transport.CodeRateLimited || p.RetryAfter < time.Second:
						errs <- p
					}
					limited.Add(1)
				default:
					errs <- &transport.Problem{Status: resp.StatusCode}
				}
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	bound := int64(lim.Burst) + int64(float64(lim.Limit)*elapsed.Seconds())
	t.Logf("%d admitted, %d limited in %v (bound %d)", admitted.Load(), limited.Load(), elapsed.Round(time.Millisecond), bound)
	require.Positive(t, admitted.Load())
	require.LessOrEqual(t, admitted.Load(), bound, "total admitted over the window ≤ burst + limit × window")
	require.Equal(t, int64(n), admitted.Load()+limited.Load())
	require.Equal(t, admitted.Load(), a.ran.n.Load()+b.ran.n.Load())
}

func TestRedisLimiterRetryAfter(t *testing.T) {
	rs := testredis.Start(t)
	d := newDeployment(t)
	c := newRedisClient(t, rs)
	l, err := transport.NewRedisLimiter(transport.RedisLimiterConfig{Client: c, Service: "financial-api",
		Environment: transport.Production, Default: transport.Rate{Limit: rate.Every(4 * time.Second), Burst: 1},
		Callers: map[string]transport.Rate{"analytics-service": {Limit: rate.Inf, Burst: 1}}, Timeout: 2 * time.Second})
	require.NoError(t, err)
	cfg := d.config(time.Now)
	cfg.Limiter = l
	v, err := transport.New(cfg)
	require.NoError(t, err)
	h := v.Middleware(&counter{})
	fe := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", time.Now)
	rec, _ := inProcess(t, h, fe, "GET", "/v1/x", "127.0.0.1:1", nil, true)
	require.Equal(t, 200, rec.Code)
	rec, p := inProcess(t, h, fe, "GET", "/v1/x", "127.0.0.1:1", nil, true)
	require.Equal(t, 429, rec.Code)
	require.Equal(t, transport.CodeRateLimited, p.Code)
	// The limiter says a little under 4 s; Retry-After rounds up, never down.
	require.Equal(t, "4", rec.Header().Get("Retry-After"))
	ok, retry, err := l.Allow(t.Context(), "frontend")
	require.NoError(t, err)
	require.False(t, ok)
	require.Greater(t, retry, 3*time.Second)
	require.LessOrEqual(t, retry, 4*time.Second)

	// rate.Inf: no limit, no Redis key.
	an := newSigner(t, "analytics-service", "financial-api", transport.Production, d.analytics, "", time.Now)
	for range 5 {
		rec, _ := inProcess(t, h, an, "GET", "/v1/x", "127.0.0.1:1", nil, true)
		require.Equal(t, 200, rec.Code)
	}
	keys, err := c.Keys(t.Context(), "rate:*").Result()
	require.NoError(t, err)
	require.Equal(t, []string{"rate:xsvc:limit:production:financial-api:frontend"}, keys)
}

// TestLimitPerRoute: with Config.LimitPerRoute each ServeMux route has its
// own budget per caller, on Redis and in memory alike.
func TestLimitPerRoute(t *testing.T) {
	d := newDeployment(t)
	perMinute := transport.Rate{Limit: rate.Every(time.Minute), Burst: 1}
	mem := func(t *testing.T) transport.Limiter {
		l, err := transport.NewMemoryLimiter(transport.MemoryLimiterConfig{Default: perMinute})
		require.NoError(t, err)
		return l
	}
	for _, tc := range []struct {
		name     string
		limiter  func(t *testing.T) transport.Limiter
		perRoute bool
	}{
		{"redis per route", func(t *testing.T) transport.Limiter {
			return newRedisLimiter(t, newRedisClient(t, testredis.Start(t)), perMinute)
		}, true},
		{"memory per route", mem, true},
		{"memory per caller", mem, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := d.config(time.Now)
			cfg.Limiter = tc.limiter(t)
			cfg.LimitPerRoute = tc.perRoute
			v, err := transport.New(cfg)
			require.NoError(t, err)
			mux := http.NewServeMux()
			mux.Handle("GET /v1/a", v.Middleware(&counter{}))
			mux.Handle("GET /v1/b/{id}", v.Middleware(&counter{}))
			fe := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", time.Now)
			an := newSigner(t, "analytics-service", "financial-api", transport.Production, d.analytics, "", time.Now)
			get := func(s *transport.Signer, path string) int {
				rec, _ := inProcess(t, mux, s, "GET", path, "127.0.0.1:1", nil, true)
				return rec.Code
			}
			require.Equal(t, 200, get(fe, "/v1/a"))
			require.Equal(t, 429, get(fe, "/v1/a"))
			if tc.perRoute {
				require.Equal(t, 200, get(fe, "/v1/b/1"), "another route, another budget")
				require.Equal(t, 429, get(fe, "/v1/b/2"), "one budget per pattern, not per path")
			} else {
				require.Equal(t, 429, get(fe, "/v1/b/1"), "one budget per caller")
			}
			require.Equal(t, 200, get(an, "/v1/a"), "another caller, another budget")
		})
	}
	// LimitPerRoute needs a RouteLimiter.
	cfg := d.config(time.Now)
	cfg.LimitPerRoute = true
	_, err := transport.New(cfg)
	require.ErrorIs(t, err, transport.ErrInvalidConfig, "no limiter")
	cfg.Limiter = failingLimiter{}
	_, err = transport.New(cfg)
	require.ErrorIs(t, err, transport.ErrInvalidConfig, "a Limiter without AllowRoute")
}

func TestRedisLimitPerRouteKeys(t *testing.T) {
	rs := testredis.Start(t)
	d := newDeployment(t)
	c := newRedisClient(t, rs)
	cfg := d.config(time.Now)
	cfg.Limiter = newRedisLimiter(t, c, transport.Rate{Limit: 10, Burst: 10})
	cfg.LimitPerRoute = true
	v, err := transport.New(cfg)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("GET /v1/b/{id}", v.Middleware(&counter{}))
	fe := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", time.Now)
	rec, _ := inProcess(t, mux, fe, "GET", "/v1/b/7", "127.0.0.1:1", nil, true)
	require.Equal(t, 200, rec.Code)
	// Wrapping the mux instead of each route: no pattern yet when the
	// verifier runs, so the caller's own budget.
	plain := http.NewServeMux()
	plain.Handle("GET /v1/b/{id}", &counter{})
	rec, _ = inProcess(t, v.Middleware(plain), fe, "GET", "/v1/b/8", "127.0.0.1:1", nil, true)
	require.Equal(t, 200, rec.Code)
	keys, err := c.Keys(t.Context(), "rate:*").Result()
	require.NoError(t, err)
	require.ElementsMatch(t, []string{
		"rate:xsvc:limit:production:financial-api:frontend:GET /v1/b/{id}",
		"rate:xsvc:limit:production:financial-api:frontend",
	}, keys)
}

// TestFailOpen: development only, and then a store or limiter error admits
// the request with an ERROR line.
func TestFailOpen(t *testing.T) {
	d := newDeployment(t)
	for _, env := range []transport.Environment{transport.Production, transport.Staging} {
		cfg := d.config(time.Now)
		cfg.Environment = env
		cfg.FailOpen = true
		_, err := transport.New(cfg)
		require.ErrorIs(t, err, transport.ErrInvalidConfig, env)
	}
	for _, tc := range []struct {
		name, check string
		mut         func(*transport.Config)
	}{
		{"replay store", "replay_store_error", func(c *transport.Config) { c.ReplayStore = failingStore{transport.ErrRedisUnavailable} }},
		{"limiter", "rate_limiter_error", func(c *transport.Config) { c.Limiter = failingLimiter{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := d.config(time.Now)
			cfg.Environment = transport.Development
			cfg.FailOpen = true
			logs := &logBuffer{}
			cfg.Logger = logs.logger()
			tc.mut(&cfg)
			v, err := transport.New(cfg)
			require.NoError(t, err)
			cnt := &counter{}
			fe := newSigner(t, "frontend", "financial-api", transport.Development, d.frontend1, "", time.Now)
			rec, _ := inProcess(t, v.Middleware(cnt), fe, "GET", "/v1/x", "127.0.0.1:1", nil, true)
			require.Equal(t, 200, rec.Code)
			require.EqualValues(t, 1, cnt.n.Load())
			require.Contains(t, logs.String(), `"level":"ERROR"`)
			require.Contains(t, logs.String(), `"check":"`+tc.check+`"`)
		})
	}
	// A full in-memory store still refuses: that is not an outage.
	cfg := d.config(time.Now)
	cfg.Environment = transport.Development
	cfg.FailOpen = true
	cfg.ReplayStore = failingStore{transport.ErrReplayStoreFull}
	v, err := transport.New(cfg)
	require.NoError(t, err)
	fe := newSigner(t, "frontend", "financial-api", transport.Development, d.frontend1, "", time.Now)
	rec, p := inProcess(t, v.Middleware(&counter{}), fe, "GET", "/v1/x", "127.0.0.1:1", nil, true)
	require.Equal(t, 503, rec.Code)
	require.Equal(t, transport.CodeReplayStoreFull, p.Code)
}

// TestRedisURLPasswordAndDB: the password of the URL authenticates, its
// database number selects where the keys go.
func TestRedisURLPasswordAndDB(t *testing.T) {
	rs := testredis.Start(t)
	admin := newRedisClient(t, rs)
	ctx := t.Context()
	const pw = "s3cret/with:reserved@chars"
	require.NoError(t, admin.ConfigSet(ctx, "requirepass", pw).Err())

	d := newDeployment(t)
	fe := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", time.Now)
	verify := func(redisURL string) (int, *transport.Problem) {
		c, err := transport.NewRedisClient(redisURL)
		require.NoError(t, err)
		defer c.Close()
		cfg := d.config(time.Now)
		cfg.ReplayStore = newRedisStore(t, c, 2*time.Second)
		v, err := transport.New(cfg)
		require.NoError(t, err)
		rec, p := inProcess(t, v.Middleware(&counter{}), fe, "GET", "/v1/x", "127.0.0.1:1", nil, true)
		return rec.Code, p
	}
	st, p := verify("redis://" + rs.Addr + "/3")
	require.Equal(t, 503, st, "no password: NOAUTH, fail closed")
	require.Equal(t, transport.CodeReplayStoreUnavailable, p.Code)
	withPW := func(db string) string {
		u := url.URL{Scheme: "redis", User: url.UserPassword("default", pw), Host: rs.Addr, Path: "/" + db}
		return u.String()
	}
	st, _ = verify(withPW("3"))
	require.Equal(t, 200, st)

	keys := func(db string) []string {
		c, err := transport.NewRedisClient(withPW(db))
		require.NoError(t, err)
		defer c.Close()
		k, err := c.Keys(ctx, "xsvc:replay:*").Result()
		require.NoError(t, err)
		return k
	}
	require.Len(t, keys("3"), 1, "the key is in database 3")
	require.Empty(t, keys("0"), "not in database 0")
}

// tlsProxy terminates TLS with cfg in front of addr, recording the version
// of each handshake.
type tlsProxy struct {
	ln       net.Listener
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
	versions []uint16
}

func startTLSProxy(t *testing.T, cfg *tls.Config, addr string) *tlsProxy {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	require.NoError(t, err)
	p := &tlsProxy{ln: ln}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if tc.Handshake() != nil {
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.versions = append(p.versions, tc.ConnectionState().Version)
			p.mu.Unlock()
			p.wg.Go(func() { io.Copy(up, c); up.Close() })
			p.wg.Go(func() { io.Copy(c, up); c.Close() })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// TestRediss: rediss:// speaks TLS 1.3 and refuses a server that offers less.
func TestRediss(t *testing.T) {
	rs := testredis.Start(t)
	ca, err := testcerts.NewCA("redis-ca")
	require.NoError(t, err)
	cert, err := ca.Server(nil, nil)
	require.NoError(t, err)
	srvCfg, err := transport.ServerTLSConfig([]tls.Certificate{cert}, nil)
	require.NoError(t, err)
	tls13 := startTLSProxy(t, srvCfg, rs.Addr)
	old := srvCfg.Clone()
	old.MinVersion, old.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	tls12 := startTLSProxy(t, old, rs.Addr)

	ping := func(p *tlsProxy, roots bool) error {
		opt, err := transport.ParseRedisURL("rediss://" + p.ln.Addr().String() + "/0")
		require.NoError(t, err)
		if roots {
			opt.TLSConfig.RootCAs = ca.Pool
		}
		opt.DialTimeout = 2 * time.Second
		c := redis.NewClient(opt)
		defer c.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		return c.Ping(ctx).Err()
	}
	require.NoError(t, ping(tls13, true))
	tls13.mu.Lock()
	require.NotEmpty(t, tls13.versions)
	for _, v := range tls13.versions {
		require.Equal(t, uint16(tls.VersionTLS13), v)
	}
	tls13.mu.Unlock()
	require.Error(t, ping(tls13, false), "an unknown CA is refused")
	require.Error(t, ping(tls12, true), "TLS 1.2 is refused")
}
