package transport_test

// Regression tests for the findings of the security review of package
// transport (caller impersonation through shared keys, replays, guards,
// body handling, logs, identities, key files). Each fails on the reviewed
// code.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lifenavigator/crossservice/internal/testcerts"
	"github.com/lifenavigator/crossservice/transport"
)

// deliver hands a client-side signed request to h as net/http's server
// would (loopback peer, TLS 1.3) and returns the response.
func deliver(t testing.TB, h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader
	if req.GetBody != nil {
		b, err := req.GetBody()
		require.NoError(t, err)
		body = b
	}
	r := httptest.NewRequest(req.Method, req.URL.RequestURI(), body)
	r.Header = req.Header.Clone()
	r.RemoteAddr = "127.0.0.1:5555"
	r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// problemCode is the problem code of a refusal, "" for a success.
func problemCode(t testing.TB, w *httptest.ResponseRecorder) transport.Code {
	t.Helper()
	if w.Code < 400 {
		return ""
	}
	p, err := transport.ParseProblem(w.Result())
	require.NoError(t, err)
	return p.Code
}

// recordingStore is a ReplayStore that records what the verifier asks.
type recordingStore struct {
	mu   sync.Mutex
	keys []string
	ttls []time.Duration
	next transport.ReplayStore
}

func (s *recordingStore) Consume(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	s.keys = append(s.keys, key)
	s.ttls = append(s.ttls, ttl)
	s.mu.Unlock()
	return s.next.Consume(ctx, key, ttl)
}

func newRecordingStore(t testing.TB, now func() time.Time) *recordingStore {
	m, err := transport.NewMemoryReplayStore(transport.MemoryReplayConfig{Clock: now})
	require.NoError(t, err)
	return &recordingStore{next: m}
}

// Finding 1: a key configured for two callers lets either sign as the other.
func TestNewRefusesKeySharedByCallers(t *testing.T) {
	shared := mustKey(t, "env", secretLegacy)
	sameBytes := mustKey(t, "other-id", secretLegacy)
	cfg := transport.Config{Service: "financial-api", Environment: transport.Production,
		Keys: []transport.KeyEntry{
			{Caller: "frontend", Key: shared},
			{Caller: "analytics-service", Key: mustKey(t, "a1", secretAnalytics)},
			{Caller: "ops-console", Key: sameBytes},
			// Another target's entries are not this verifier's concern.
			{Caller: "intruder", Target: "document-store", Key: shared},
		}}
	_, err := transport.New(cfg)
	require.ErrorIs(t, err, transport.ErrSharedKey)
	require.ErrorIs(t, err, transport.ErrInvalidConfig)
	var se *transport.SharedKeyError
	require.ErrorAs(t, err, &se)
	require.Equal(t, []string{"frontend", "ops-console"}, se.Callers)
	require.NotContains(t, err.Error(), secretLegacy)

	// The impersonation it prevents: frontend signs as ops-console.
	cfg.Environment, cfg.AllowSharedKeys = transport.Staging, true
	v, err := transport.New(cfg)
	require.NoError(t, err, "AllowSharedKeys is an explicit, non-production opt-in")
	only, err := v.Require("ops-console")
	require.NoError(t, err)
	s := newSigner(t, "ops-console", "financial-api", transport.Staging, sameBytes, "", nil)
	req := newRequest(t, "POST", "https://financial.internal/admin", "", nil)
	require.NoError(t, s.Sign(req))
	require.Empty(t, problemCode(t, deliver(t, only(&counter{}), req)))

	cfg.Environment = transport.Production
	_, err = transport.New(cfg)
	require.ErrorIs(t, err, transport.ErrInvalidConfig, "AllowSharedKeys is refused in production")
	require.NotErrorIs(t, err, transport.ErrSharedKey)

	// One caller with the same secret under two ids is a rotation mistake,
	// not an impersonation: allowed.
	_, err = transport.New(transport.Config{Service: "financial-api", Environment: transport.Production,
		Keys: []transport.KeyEntry{{Caller: "frontend", Key: shared}, {Caller: "frontend", Key: sameBytes}}})
	require.NoError(t, err)
}

// Finding 1: the INTERNAL_API_KEY fallback gave every caller without its own
// variable the same key.
func TestCallerKeysFromEnvRefusesSharedFallback(t *testing.T) {
	env := envMap(map[string]string{"INTERNAL_API_KEY": secretLegacy, "ANALYTICS_SERVICE_API_KEY": secretAnalytics})
	_, err := transport.CallerKeysFromEnv(env, "frontend", "analytics-service", "ops-console")
	require.ErrorIs(t, err, transport.ErrSharedKey)
	var se *transport.SharedKeyError
	require.ErrorAs(t, err, &se)
	require.Equal(t, []string{"frontend", "ops-console"}, se.Callers)
	require.Equal(t, []string{"FRONTEND_API_KEY", "OPS_CONSOLE_API_KEY"}, se.Variables)
	require.NotContains(t, err.Error(), secretLegacy)

	// One caller on the fallback is the original set-up, still fine.
	entries, err := transport.CallerKeysFromEnv(env, "frontend", "analytics-service")
	require.NoError(t, err)
	require.Len(t, entries, 2)
}

// Finding 2: the legacy replay key named the caller, which legacy does not
// sign: a captured request was replayed once per caller sharing the key.
func TestLegacyReplayKeyIgnoresCallerName(t *testing.T) {
	k := mustKey(t, "env", secretLegacy)
	now := fixedClock(t0)
	store := newRecordingStore(t, now)
	v, err := transport.New(transport.Config{Service: "financial-api", Environment: transport.Staging,
		Keys:          []transport.KeyEntry{{Caller: "gateway-a", Key: k}, {Caller: "billing-batch", Key: k}},
		LegacyCallers: []string{"gateway-a", "billing-batch"}, AllowSharedKeys: true,
		ReplayStore: store, Clock: now})
	require.NoError(t, err)
	only, err := v.Require("billing-batch")
	require.NoError(t, err)
	h := only(&counter{})
	s := newSigner(t, "gateway-a", "financial-api", transport.Staging, k, transport.SchemeLegacy, now)
	req := newRequest(t, "POST", "https://financial.internal/v1/payouts", "application/json", []byte(`{"amount":100}`))
	require.NoError(t, s.Sign(req))
	require.Equal(t, transport.CodeServiceNotAuthorized, problemCode(t, deliver(t, h, req)))
	require.Equal(t, transport.CodeReplayDetected, problemCode(t, deliver(t, h, req)))
	req.Header.Set(transport.HeaderServiceName, "billing-batch")
	require.Equal(t, transport.CodeReplayDetected, problemCode(t, deliver(t, h, req)),
		"a captured gateway-a request replayed as billing-batch")
	require.Equal(t, "xsvc:replay:legacy:staging:financial-api:"+req.Header.Get(transport.HeaderSignature), store.keys[0])
}

// Finding 3: non-strict mode turned every Require route's access list off.
func TestRequireRefusesUnsignedInNonStrictMode(t *testing.T) {
	v, err := transport.New(transport.Config{Service: "financial-api", Environment: transport.Staging,
		Keys: []transport.KeyEntry{{Caller: "ops-console", Key: mustKey(t, "k1", secretFrontend1)}}, NonStrict: true})
	require.NoError(t, err)
	only, err := v.Require("ops-console")
	require.NoError(t, err)
	cnt := &counter{}
	req := newRequest(t, "POST", "https://financial.internal/admin/rotate-keys", "", []byte("x"))
	req.Header.Set(transport.HeaderServiceName, "ops-console")
	w := deliver(t, only(cnt), req)
	require.Equal(t, 401, w.Code)
	require.Equal(t, transport.CodeUnsignedRequest, problemCode(t, w))
	require.Zero(t, cnt.n.Load())

	// Middleware still admits it, for migrations, but not into a Require
	// route nested inside.
	w = deliver(t, v.Middleware(cnt), req)
	require.Equal(t, 200, w.Code)
	w = deliver(t, v.Middleware(only(cnt)), req)
	require.Equal(t, transport.CodeUnsignedRequest, problemCode(t, w))
	require.EqualValues(t, 1, cnt.n.Load())
}

// Finding 3: a request admitted unsigned must not carry caller headers that a
// handler could mistake for verified ones.
func TestNonStrictStripsSigningHeaders(t *testing.T) {
	v, err := transport.New(transport.Config{Service: "financial-api", Environment: transport.Development,
		Keys: []transport.KeyEntry{{Caller: "ops-console", Key: mustKey(t, "k1", secretFrontend1)}}, NonStrict: true})
	require.NoError(t, err)
	var seen http.Header
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.Header.Clone() }))
	req := newRequest(t, "GET", "https://financial.internal/v1/x", "", nil)
	for _, name := range []string{transport.HeaderServiceName, transport.HeaderKeyID, transport.HeaderRequestID, transport.HeaderTimestamp} {
		req.Header.Set(name, "spoofed")
	}
	req.Header.Set("X-Other", "kept")
	require.Equal(t, 200, deliver(t, h, req).Code)
	for _, name := range []string{transport.HeaderServiceName, transport.HeaderKeyID, transport.HeaderRequestID,
		transport.HeaderTimestamp, transport.HeaderSignature} {
		require.Empty(t, seen.Values(name), name)
	}
	require.Equal(t, "kept", seen.Get("X-Other"))
}

// Finding 4: one authenticated caller, admitted on no route, filled the
// shared replay store and locked every other caller out.
func TestReplayStorePerCallerShare(t *testing.T) {
	ka := mustKey(t, "a1", secretAnalytics)
	kf := mustKey(t, "f1", secretFrontend1)
	store, err := transport.NewMemoryReplayStore(transport.MemoryReplayConfig{MaxEntries: 100})
	require.NoError(t, err)
	lim, err := transport.NewMemoryLimiter(transport.MemoryLimiterConfig{Default: transport.Rate{Limit: 1, Burst: 1}})
	require.NoError(t, err)
	v, err := transport.New(transport.Config{Service: "financial-api", Environment: transport.Production,
		Keys:        []transport.KeyEntry{{Caller: "analytics-service", Key: ka}, {Caller: "frontend", Key: kf}},
		ReplayStore: store, Limiter: lim})
	require.NoError(t, err)
	only, err := v.Require("frontend")
	require.NoError(t, err)
	h := only(&counter{})
	sa := newSigner(t, "analytics-service", "financial-api", transport.Production, ka, "", nil)
	codes := map[transport.Code]int{}
	for range 100 {
		req := newRequest(t, "GET", "https://financial.internal/v1/x", "", nil)
		require.NoError(t, sa.Sign(req))
		codes[problemCode(t, deliver(t, h, req))]++
	}
	require.Equal(t, map[transport.Code]int{transport.CodeServiceNotAuthorized: 25, transport.CodeReplayStoreFull: 75}, codes,
		"the default share is MaxEntries/4")
	sf := newSigner(t, "frontend", "financial-api", transport.Production, kf, "", nil)
	req := newRequest(t, "GET", "https://financial.internal/v1/x", "", nil)
	require.NoError(t, sf.Sign(req))
	require.Empty(t, problemCode(t, deliver(t, h, req)), "other callers are unaffected")
}

func TestMemoryReplayStorePerCallerBound(t *testing.T) {
	ctx := t.Context()
	clk := newClock(t0)
	s, err := transport.NewMemoryReplayStore(transport.MemoryReplayConfig{MaxEntries: 5, MaxEntriesPerCaller: 2, Clock: clk.Now})
	require.NoError(t, err)
	consume := func(caller, key string) error {
		fresh, err := s.ConsumeFor(ctx, caller, key, time.Minute)
		if err == nil && !fresh {
			return errors.New("replay")
		}
		return err
	}
	require.NoError(t, consume("a", "1"))
	require.NoError(t, consume("a", "2"))
	require.ErrorIs(t, consume("a", "3"), transport.ErrReplayStoreFull, "a's share is used up")
	require.EqualError(t, consume("a", "1"), "replay", "a replay is reported as such over the share")
	require.EqualError(t, consume("b", "1"), "replay", "keys are shared across callers")
	require.NoError(t, consume("b", "3"))
	require.NoError(t, consume("b", "4"))
	require.NoError(t, consume("c", "5"))
	require.ErrorIs(t, consume("c", "6"), transport.ErrReplayStoreFull, "the whole store is full")
	clk.Add(time.Minute) // all expire: shares are given back
	require.NoError(t, consume("a", "3"))
	require.NoError(t, consume("a", "7"))
	require.Equal(t, 2, s.Len())

	for _, bad := range []transport.MemoryReplayConfig{{MaxEntriesPerCaller: -1}, {MaxEntries: 4, MaxEntriesPerCaller: 5}} {
		_, err := transport.NewMemoryReplayStore(bad)
		require.ErrorIs(t, err, transport.ErrInvalidConfig)
	}
}

// stallReader announces its first Read, then blocks until released.
type stallReader struct {
	started chan<- struct{}
	release <-chan struct{}
	once    sync.Once
}

func (s *stallReader) Read([]byte) (int, error) {
	s.once.Do(func() { s.started <- struct{}{} })
	<-s.release
	return 0, io.ErrUnexpectedEOF
}

// Finding 5: Content-Length sized a buffer before any body byte arrived.
func TestContentLengthDoesNotPreallocate(t *testing.T) {
	kf := mustKey(t, "f1", secretFrontend1)
	v, err := transport.New(transport.Config{Service: "financial-api", Environment: transport.Production,
		Keys: []transport.KeyEntry{{Caller: "frontend", Key: kf}}})
	require.NoError(t, err)
	h := v.Middleware(&counter{})
	// A valid key id, so that the body is read; a wrong signature.
	wrong := newSigner(t, "frontend", "financial-api", transport.Production, mustKey(t, "f1", secretOtherValid), "", nil)
	const n = 16
	started := make(chan struct{}, n)
	release := make(chan struct{})
	var wg sync.WaitGroup
	var before, during runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		signed := newRequest(t, "POST", "https://financial.internal/v1/x", "", nil)
		require.NoError(t, wrong.Sign(signed))
		r := httptest.NewRequest("POST", "/v1/x", &stallReader{started: started, release: release})
		r.ContentLength = transport.DefaultMaxBodyBytes
		r.Header = signed.Header
		r.RemoteAddr = "127.0.0.1:1"
		wg.Add(1)
		go func() { defer wg.Done(); h.ServeHTTP(httptest.NewRecorder(), r) }()
	}
	for range n {
		<-started
	}
	runtime.ReadMemStats(&during)
	close(release)
	wg.Wait()
	grown := during.TotalAlloc - before.TotalAlloc
	require.Less(t, grown, uint64(n*256<<10),
		"%d stalled requests announcing 1 MiB and sending nothing allocated %d KiB", n, grown>>10)
}

// Finding 6: a late reader of a pooled body buffer raced with its reuse.
// Under -race the reviewed code fails here within a few rounds.
func TestLateBodyReadNeverSeesAnotherRequest(t *testing.T) {
	k := mustKey(t, "k1", secretFrontend1)
	v, err := transport.New(transport.Config{Service: "financial-api", Environment: transport.Production,
		Keys: []transport.KeyEntry{{Caller: "frontend", Key: k}}})
	require.NoError(t, err)
	type result struct {
		got []byte
		err error
	}
	const rounds = 20
	results := make(chan result, rounds)
	var wg sync.WaitGroup
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("late") == "" {
			io.Copy(io.Discard, r.Body)
			return
		}
		body := r.Body
		started := make(chan struct{})
		wg.Add(1)
		go func() { // a reader that outlives the handler (a misbehaving proxy)
			defer wg.Done()
			var got []byte
			p := make([]byte, 64)
			for {
				n, err := body.Read(p)
				got = append(got, p[:n]...)
				if len(got) == n && n > 0 {
					close(started)
				}
				if err != nil {
					results <- result{got, err}
					return
				}
			}
		}()
		<-started
	}))
	s := newSigner(t, "frontend", "financial-api", transport.Production, k, "", nil)
	for range rounds {
		for i, fill := range []byte{'A', 'B', 'B', 'B'} {
			u := "https://financial.internal/v1/x"
			if i == 0 {
				u += "?late=1"
			}
			req := newRequest(t, "POST", u, "", bytes.Repeat([]byte{fill}, 200<<10))
			require.NoError(t, s.Sign(req))
			require.Equal(t, 200, deliver(t, h, req).Code)
		}
	}
	wg.Wait()
	close(results)
	for res := range results {
		require.Equal(t, -1, bytes.IndexByte(res.got, 'B'), "the late reader saw another request's body")
		if !errors.Is(res.err, io.EOF) {
			require.ErrorIs(t, res.err, http.ErrBodyReadAfterClose)
		}
	}
}

type countingReader struct {
	n atomic.Int64
	r io.Reader
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Finding 7: the body was read and hashed before the key id was looked up.
func TestUnknownKeyIDRefusedBeforeBody(t *testing.T) {
	d := newDeployment(t)
	logs := &logBuffer{}
	cfg := d.config(time.Now)
	cfg.MaxBodyBytes = 2 << 20
	cfg.Logger = logs.logger()
	v, err := transport.New(cfg)
	require.NoError(t, err)
	h := v.Middleware(&counter{})
	for keyID, reason := range map[string]string{"no-such-key": "key_unknown", "f0": "key_retired"} {
		signed := newRequest(t, "POST", "https://financial.internal/v1/x", "", nil)
		require.NoError(t, newSigner(t, "frontend", "financial-api", transport.Production,
			mustKey(t, keyID, secretOtherValid), "", time.Now).Sign(signed))
		cr := &countingReader{r: bytes.NewReader(make([]byte, 1<<20))}
		r := httptest.NewRequest("POST", "/v1/x", cr)
		r.Header = signed.Header
		r.RemoteAddr = "127.0.0.1:1"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		require.Equal(t, transport.CodeSignatureInvalid, problemCode(t, w), keyID)
		require.Zero(t, cr.n.Load(), "%s: body bytes read before refusing", keyID)
		require.Contains(t, logs.String(), `"check":"`+reason+`"`)
	}
}

// Finding 8: a request accepted at the future edge of the window was
// forgotten before it left the window at the other edge.
func TestReplayHeldThroughWindowEdge(t *testing.T) {
	k := mustKey(t, "k1", secretFrontend1)
	clk := newClock(t0.Add(-5 * time.Minute)) // the request arrives at the future edge
	store := newRecordingStore(t, clk.Now)
	v, err := transport.New(transport.Config{Service: "financial-api", Environment: transport.Production,
		Keys: []transport.KeyEntry{{Caller: "frontend", Key: k}}, Clock: clk.Now, ReplayStore: store})
	require.NoError(t, err)
	h := v.Middleware(&counter{})
	s := newSigner(t, "frontend", "financial-api", transport.Production, k, "", fixedClock(t0))
	req := newRequest(t, "GET", "https://financial.internal/v1/balance", "", nil)
	require.NoError(t, s.Sign(req))
	require.Empty(t, problemCode(t, deliver(t, h, req)))
	clk.Add(10*time.Minute + 999*time.Microsecond) // skew == window in whole milliseconds: still acceptable
	require.Equal(t, transport.CodeReplayDetected, problemCode(t, deliver(t, h, req)))
	require.Equal(t, 10*time.Minute+time.Millisecond, store.ttls[0], "window + future skew + 1 ms")
	clk.Add(time.Microsecond) // out of the window now
	require.Equal(t, transport.CodeTimestampOutOfWindow, problemCode(t, deliver(t, h, req)))
}

// Finding 9: Middleware around a mux of Require routes verified twice and
// refused everything as a replay.
func TestNestedGuards(t *testing.T) {
	d := newDeployment(t)
	v, err := transport.New(d.config(time.Now))
	require.NoError(t, err)
	onlyFrontend, err := v.Require("frontend")
	require.NoError(t, err)
	onlyAnalytics, err := v.Require("analytics-service")
	require.NoError(t, err)
	fe := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", time.Now)

	for name, build := range map[string]func(h http.Handler) http.Handler{
		"Middleware(mux(Require))": func(h http.Handler) http.Handler {
			mux := http.NewServeMux()
			mux.Handle("/v1/fe", onlyFrontend(h))
			mux.Handle("/v1/an", onlyAnalytics(h))
			return v.Middleware(mux)
		},
		"Require(mux(Middleware))": func(h http.Handler) http.Handler {
			mux := http.NewServeMux()
			mux.Handle("/v1/fe", v.Middleware(h))
			mux.Handle("/v1/an", onlyAnalytics(v.Middleware(h)))
			return onlyFrontend(mux)
		},
	} {
		t.Run(name, func(t *testing.T) {
			cnt := &counter{}
			h := build(cnt)
			req := newRequest(t, "POST", "https://financial.internal/v1/fe", "", []byte("body"))
			require.NoError(t, fe.Sign(req))
			w := deliver(t, h, req)
			require.Empty(t, problemCode(t, w))
			require.Equal(t, "body", w.Body.String(), "the inner guard passes the exact body on")
			require.Equal(t, transport.CodeReplayDetected, problemCode(t, deliver(t, h, req)))
			req = newRequest(t, "POST", "https://financial.internal/v1/an", "", []byte("body"))
			require.NoError(t, fe.Sign(req))
			require.Equal(t, transport.CodeServiceNotAuthorized, problemCode(t, deliver(t, h, req)))
			require.EqualValues(t, 1, cnt.n.Load())
		})
	}

	// A verified caller in the context counts only for the verifier that
	// put it there.
	other, err := transport.New(d.config(time.Now))
	require.NoError(t, err)
	otherOnly, err := other.Require("frontend")
	require.NoError(t, err)
	cnt := &counter{}
	h := v.Middleware(otherOnly(cnt))
	req := newRequest(t, "GET", "https://financial.internal/v1/x", "", nil)
	require.NoError(t, fe.Sign(req))
	require.Empty(t, problemCode(t, deliver(t, h, req)), "separate stores: verified twice")
	require.EqualValues(t, 1, cnt.n.Load())
}

// emptyReader returns (0, nil) until it has been called limit times.
type emptyReader struct {
	calls, limit int
}

func (e *emptyReader) Read([]byte) (int, error) {
	e.calls++
	if e.calls >= e.limit {
		return 0, io.ErrUnexpectedEOF
	}
	return 0, nil
}

// Finding 13: a body that returns (0, nil) forever spun the read loop.
func TestBodyWithoutProgress(t *testing.T) {
	d := newDeployment(t)
	v, err := transport.New(d.config(time.Now))
	require.NoError(t, err)
	h := v.Middleware(&counter{})
	for _, cl := range []int64{-1, 10} {
		signed := newRequest(t, "POST", "https://financial.internal/v1/x", "", []byte("0123456789"))
		require.NoError(t, newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", time.Now).Sign(signed))
		er := &emptyReader{limit: 1_000_000}
		r := httptest.NewRequest("POST", "/v1/x", er)
		r.ContentLength = cl
		r.Header = signed.Header
		r.RemoteAddr = "127.0.0.1:1"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		require.Equal(t, transport.CodeBodyUnreadable, problemCode(t, w))
		require.LessOrEqual(t, er.calls, 1000, "Content-Length %d", cl)
	}
}

// Finding 15: the logged canonical_sha256 covered the body (legacy) or its
// SHA-256 (v1), so a low-entropy body could be recovered from a log.
func TestCanonicalHashOmitsBody(t *testing.T) {
	short := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return hex.EncodeToString(sum[:8])
	}
	v1 := transport.Components{Environment: transport.Production, Caller: "frontend", Target: "financial-api",
		KeyID: "f1", Timestamp: "1767225600000", RequestID: "019b7a3e-8c00-7d2a-9f3b-5e6d7c8b9a01",
		Method: "POST", Path: "/v1/x", Query: "a=1", ContentType: "application/json"}
	legacy := transport.Components{Scheme: transport.SchemeLegacy, Timestamp: "1767225600000",
		Method: "POST", Path: "/v1/x", Query: "a=1"}
	for _, tc := range []struct {
		c    transport.Components
		want string
	}{
		{v1, short("XSVC-HMAC-SHA256-V1\nproduction\nfrontend\nfinancial-api\nf1\n1767225600000\n" +
			"019b7a3e-8c00-7d2a-9f3b-5e6d7c8b9a01\nPOST\n/v1/x\na=1\napplication/json")},
		{legacy, short("POST\n/v1/x?a=1\n1767225600000")},
	} {
		var hashes []string
		for _, body := range []string{"", `{"pin":"1234"}`, "line\nbreaks\n"} {
			tc.c.Body = []byte(body)
			canon, err := tc.c.Canonical()
			require.NoError(t, err)
			hashes = append(hashes, transport.CanonicalHash(canon))
		}
		require.Equal(t, []string{tc.want, tc.want, tc.want}, hashes, tc.c.Scheme)
	}

	// The verifier logs the same value, and the body's length beside it.
	d := newDeployment(t)
	logs := &logBuffer{}
	cfg := d.config(time.Now)
	cfg.Logger = logs.logger()
	v, err := transport.New(cfg)
	require.NoError(t, err)
	h := v.Middleware(&counter{})
	body := []byte(`{"pin":"1234"}`)
	lg := newSigner(t, "legacy-gateway", "financial-api", transport.Production, mustKey(t, "env", secretOtherValid), transport.SchemeLegacy, time.Now)
	req := newRequest(t, "POST", "https://financial.internal/v1/x?a=1", "", body)
	require.NoError(t, lg.Sign(req))
	require.Equal(t, transport.CodeSignatureInvalid, problemCode(t, deliver(t, h, req)))
	legacy.Timestamp, legacy.Body = req.Header.Get(transport.HeaderTimestamp), body
	canon, err := legacy.Canonical()
	require.NoError(t, err)
	require.Contains(t, logs.String(), `"canonical_sha256":"`+transport.CanonicalHash(canon)+`"`)
	require.Contains(t, logs.String(), `"body_bytes":`+strconv.Itoa(len(body)))
}

// Finding 16a: the SPIFFE identity's trust domain was not checked.
func TestTrustDomain(t *testing.T) {
	d := newDeployment(t)
	cfg := d.config(time.Now)
	cfg.TrustDomain = "lifenavigator.internal"
	v, err := transport.New(cfg)
	require.NoError(t, err)
	ca, err := testcerts.NewCA("shared-ca")
	require.NoError(t, err)
	fe := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", time.Now)
	srv, _ := tlsServer(t, v.Middleware(&counter{}), ca, true, nil)
	for domain, want := range map[string]int{"lifenavigator.internal": 200, "partner.example": 403} {
		cert, err := ca.Client(domain, "frontend")
		require.NoError(t, err)
		ccfg, err := transport.ClientTLSConfig(ca.Pool, &cert)
		require.NoError(t, err)
		req := newRequest(t, "GET", srv.URL+"/v1/x", "", nil)
		require.NoError(t, fe.Sign(req))
		st, p, _ := send(t, newClient(t, ccfg), req)
		require.Equal(t, want, st, domain)
		if want == 403 {
			require.Equal(t, transport.CodeIdentityMismatch, p.Code)
		}
	}

	for name, mut := range map[string]func(*transport.Config){
		"not a trust domain":             func(c *transport.Config) { c.TrustDomain = "Life Navigator" },
		"a SPIFFE ID, not a domain":      func(c *transport.Config) { c.TrustDomain = "spiffe://lifenavigator.internal" },
		"with a custom PeerIdentity too": func(c *transport.Config) { c.PeerIdentity = transport.SPIFFEIdentity },
	} {
		c := cfg
		mut(&c)
		_, err := transport.New(c)
		require.ErrorIs(t, err, transport.ErrInvalidConfig, name)
	}
}

// Finding 17a: encoding/json matched member names without regard to case and
// let the last of two duplicates win.
func TestParseKeyFileStrictMembers(t *testing.T) {
	ok := `{"caller":"a","id":"k","secret":"` + secretFrontend1 + `"}`
	_, err := transport.ParseKeyFile([]byte(`{"version":1,"keys":[` + ok + `]}`))
	require.NoError(t, err)
	for name, doc := range map[string]string{
		"member case":            `{"version":1,"Keys":[` + ok + `]}`,
		"entry member case":      `{"version":1,"keys":[{"caller":"a","id":"k","Secret":"` + secretFrontend1 + `"}]}`,
		"duplicate version":      `{"version":1,"version":2,"keys":[` + ok + `]}`,
		"duplicate keys":         `{"version":1,"keys":[` + ok + `],"keys":[]}`,
		"duplicate secret":       `{"version":1,"keys":[{"caller":"a","id":"k","secret":"` + secretFrontend1 + `","secret":"` + secretFrontend2 + `"}]}`,
		"duplicate caller":       `{"version":1,"keys":[{"caller":"a","caller":"b","id":"k","secret":"` + secretFrontend1 + `"}]}`,
		"case-variant duplicate": `{"version":1,"keys":[{"caller":"a","Caller":"b","id":"k","secret":"` + secretFrontend1 + `"}]}`,
		"retired case":           `{"version":1,"keys":[{"caller":"a","id":"k","secret":"` + secretFrontend1 + `","RETIRED":true}]}`,
	} {
		_, err := transport.ParseKeyFile([]byte(doc))
		require.ErrorIs(t, err, transport.ErrInvalidConfig, name)
		require.NotContains(t, err.Error(), secretFrontend1, name)
		require.NotContains(t, err.Error(), secretFrontend2, name)
	}
	_, err = transport.ParseKeyFile([]byte(`{"version":1,"keys":[{"caller":"a","id":"k","secret":"x","` + secretFrontend2 + `":1}]}`))
	require.ErrorIs(t, err, transport.ErrInvalidConfig)
	require.NotContains(t, err.Error(), secretFrontend2, "an unknown member name is not repeated: it may be a secret")
	require.False(t, strings.Contains(err.Error(), "\n"))

	// Found by FuzzParseKeyFile: a member name inside a value of no known
	// shape went into the error's path, and from there into its format
	// string ('%' garbled the message and dropped ErrInvalidConfig).
	for _, doc := range []string{
		`[{"%"0`,
		`[{"%w%s%d` + secretFrontend2 + `":{"x":[1,}}]`,
		`{"version":{"` + secretFrontend2 + `":[{"%v":1,"%v":2}]}}`,
	} {
		_, err := transport.ParseKeyFile([]byte(doc))
		require.ErrorIs(t, err, transport.ErrInvalidConfig, doc)
		require.NotContains(t, err.Error(), secretFrontend2, doc)
		require.NotContains(t, err.Error(), "%!", doc)
		require.NotContains(t, err.Error(), "%w", doc)
	}
}
