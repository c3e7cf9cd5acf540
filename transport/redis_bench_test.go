package transport_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/lifenavigator/crossservice/internal/testredis"
	"github.com/lifenavigator/crossservice/transport"
)

// roundTrips is a go-redis hook counting round trips twice: n, one per
// command sent alone and one per pipeline (what go-redis does); writes, the
// Write calls on its connections (what reaches the wire; go-redis flushes a
// command or pipeline in one). It also records command names when asked to.
type roundTrips struct {
	n, writes, dials atomic.Int64
	mu               sync.Mutex
	names            []string // nil: not recording
}

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		h.dials.Add(1)
		c, err := next(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, writes: &h.writes}, nil
	}
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		h.record(cmd.Name())
		return next(ctx, cmd)
	}
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		h.record("pipeline")
		return next(ctx, cmds)
	}
}

func (h *roundTrips) record(name string) {
	h.mu.Lock()
	if h.names != nil {
		h.names = append(h.names, name)
	}
	h.mu.Unlock()
}

// take returns the names recorded since the last call and starts afresh.
func (h *roundTrips) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	got := h.names
	h.names = []string{}
	return got
}

var cmdstatRE = regexp.MustCompile(`(?m)^cmdstat_(\w+):calls=(\d+)`)

// commandCalls reads INFO commandstats: calls per command, server side.
func commandCalls(t testing.TB, c *redis.Client) map[string]int {
	t.Helper()
	info, err := c.Info(t.Context(), "commandstats").Result()
	require.NoError(t, err)
	m := map[string]int{}
	for _, s := range cmdstatRE.FindAllStringSubmatch(info, -1) {
		m[s[1]], _ = strconv.Atoi(s[2])
	}
	return m
}

// TestRedisRoundTrips: each check costs one round trip per request: SET for
// the replay, EVALSHA for the limit; EVAL follows only when Redis lost the
// script (first use, restart, SCRIPT FLUSH).
func TestRedisRoundTrips(t *testing.T) {
	rs := testredis.Start(t)
	hook := &roundTrips{names: []string{}}
	c := newRedisClient(t, rs, hook)
	admin := newRedisClient(t, rs)
	d := newDeployment(t)
	cfg := d.config(time.Now)
	cfg.ReplayStore = newRedisStore(t, c, 2*time.Second)
	cfg.Limiter = newRedisLimiter(t, c, transport.Rate{Limit: 1000, Burst: 1000})
	v, err := transport.New(cfg)
	require.NoError(t, err)
	h := v.Middleware(&counter{})
	fe := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", time.Now)
	get := func() {
		t.Helper()
		rec, _ := inProcess(t, h, fe, "GET", "/v1/x", "127.0.0.1:1", nil, true)
		require.Equal(t, 200, rec.Code)
	}

	get() // dial, handshake, script loaded by EVAL after NOSCRIPT
	require.Subset(t, hook.take(), []string{"set", "evalsha", "eval"})
	before, writes := commandCalls(t, admin), hook.writes.Load()
	const n = 20
	for range n {
		get()
		require.Equal(t, []string{"set", "evalsha"}, hook.take(), "one round trip per check")
	}
	after := commandCalls(t, admin)
	require.EqualValues(t, 2*n, hook.writes.Load()-writes, "two writes on the wire per request")
	require.Equal(t, n, after["evalsha"]-before["evalsha"], "server side: one EVALSHA per request")
	require.Equal(t, before["eval"], after["eval"], "and no EVAL")
	// SET: the replay store's SET NX, and the one inside the GCRA script.
	require.Equal(t, 2*n, after["set"]-before["set"])

	require.NoError(t, admin.ScriptFlush(t.Context()).Err())
	get()
	require.Equal(t, []string{"set", "evalsha", "eval"}, hook.take(), "the script reloaded once")
	get()
	require.Equal(t, []string{"set", "evalsha"}, hook.take())
}

// BenchmarkRedisVerifier: sign + verify one request per op, with the replay
// store (and limiter) in memory or on a loopback redis-server, run in
// parallel by 4×GOMAXPROCS goroutines. redis-rt/op counts round trips per
// request; x-memory is ns/op over the in-memory variant's (run -bench with
// both in one run for it to show).
func BenchmarkRedisVerifier(b *testing.B) {
	rs := testredis.Start(b)
	nsPerOp := map[string]float64{}
	for _, tc := range []struct {
		name, baseline string
		redisStore     bool
		limit          bool
	}{
		{"memory", "", false, false},
		{"redis", "memory", true, false},
		{"memory+limit", "", false, true},
		{"redis+limit", "memory+limit", true, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			hook := &roundTrips{}
			c := newRedisClient(b, rs, hook)
			k, err := transport.NewKey("f1", benchKeySecret)
			require.NoError(b, err)
			cfg := transport.Config{Service: "financial-api", Environment: transport.Production,
				Keys: []transport.KeyEntry{{Caller: "frontend", Key: k}}}
			unlimited := transport.Rate{Limit: 1e8, Burst: 1 << 30}
			if tc.redisStore {
				cfg.ReplayStore = newRedisStore(b, c, 0)
				if tc.limit {
					cfg.Limiter = newRedisLimiter(b, c, unlimited)
				}
			} else {
				cfg.ReplayStore, err = transport.NewMemoryReplayStore(transport.MemoryReplayConfig{MaxEntries: 1 << 22})
				require.NoError(b, err)
				if tc.limit {
					cfg.Limiter, err = transport.NewMemoryLimiter(transport.MemoryLimiterConfig{Default: unlimited})
					require.NoError(b, err)
				}
			}
			v, err := transport.New(cfg)
			require.NoError(b, err)
			h := v.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			s, err := transport.NewSigner(transport.SignerConfig{Caller: "frontend", Target: "financial-api",
				Environment: transport.Production, Key: k})
			require.NoError(b, err)
			u, _ := url.Parse("https://financial.internal/v1/accounts/42/transfers")
			body := benchBody(256)
			state := &tls.ConnectionState{Version: tls.VersionTLS13}
			var refused atomic.Int64
			run := func(pb interface{ Next() bool }) {
				r := &http.Request{Method: "POST", URL: u, Header: http.Header{"Content-Type": {"application/json"}},
					ContentLength: int64(len(body)), RequestURI: "/v1/accounts/42/transfers",
					RemoteAddr: "10.0.0.9:5000", TLS: state}
				r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
				w := &discardWriter{h: http.Header{}}
				for pb.Next() {
					r.Body = io.NopCloser(bytes.NewReader(body))
					if err := s.Sign(r); err != nil {
						refused.Add(1)
						continue
					}
					w.status = 0
					h.ServeHTTP(w, r)
					if w.status != 0 {
						refused.Add(1)
					}
				}
			}
			b.SetParallelism(4)
			// Warm up: connections dialled, script loaded.
			var wg sync.WaitGroup
			for range 4 * 2 {
				wg.Go(func() { run(&countdown{n: 20}) })
			}
			wg.Wait()
			require.Zero(b, refused.Load())
			hook.n.Store(0)
			hook.writes.Store(0)
			hook.dials.Store(0)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) { run(pb) })
			b.StopTimer()
			if n := refused.Load(); n > 0 {
				b.Fatalf("%d requests refused", n)
			}
			ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			nsPerOp[tc.name] = ns
			b.ReportMetric(float64(hook.n.Load())/float64(b.N), "redis-rt/op")
			b.ReportMetric(float64(hook.writes.Load())/float64(b.N), "redis-writes/op")
			b.ReportMetric(float64(hook.dials.Load()), "dials")
			if base := nsPerOp[tc.baseline]; base > 0 {
				b.ReportMetric(ns/base, "x-memory")
			}
			require.NoError(b, c.FlushDB(context.Background()).Err())
		})
	}
}

// countdown is a testing.PB stand-in for the warm-up.
type countdown struct{ n int }

func (c *countdown) Next() bool { c.n--; return c.n >= 0 }
