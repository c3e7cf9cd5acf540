package transport_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/lifenavigator/crossservice/transport"
)

// inProcess signs a request with s and serves it through h as net/http's
// server would hand it over (RequestURI set, RemoteAddr given).
func inProcess(t *testing.T, h http.Handler, s *transport.Signer, method, target, remote string, body []byte, tlsOn bool) (*httptest.ResponseRecorder, *transport.Problem) {
	t.Helper()
	req := newRequest(t, method, "https://financial.internal"+target, "application/json", body)
	if s != nil {
		require.NoError(t, s.Sign(req))
	}
	srvReq := httptest.NewRequest(method, target, bytes.NewReader(body))
	srvReq.Header = req.Header
	srvReq.RemoteAddr = remote
	srvReq.TLS = nil
	if tlsOn {
		srvReq.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, srvReq)
	if rec.Code >= 400 {
		p, err := transport.ParseProblem(rec.Result())
		require.NoError(t, err)
		return rec, p
	}
	return rec, nil
}

func TestConfigValidation(t *testing.T) {
	d := newDeployment(t)
	base := func() transport.Config { return d.config(nil) }
	for name, mut := range map[string]func(*transport.Config){
		"no service":                  func(c *transport.Config) { c.Service = "" },
		"invalid service":             func(c *transport.Config) { c.Service = "Financial" },
		"no environment":              func(c *transport.Config) { c.Environment = "" },
		"unknown environment":         func(c *transport.Config) { c.Environment = "prod" },
		"non-strict in production":    func(c *transport.Config) { c.NonStrict = true },
		"negative window":             func(c *transport.Config) { c.Window = -time.Second },
		"future skew above window":    func(c *transport.Config) { c.Window, c.FutureSkew = time.Minute, 2*time.Minute },
		"negative body limit":         func(c *transport.Config) { c.MaxBodyBytes = -1 },
		"no keys":                     func(c *transport.Config) { c.Keys = nil },
		"only keys for other targets": func(c *transport.Config) { c.Keys = c.Keys[5:] },
		"zero key":                    func(c *transport.Config) { c.Keys = append(c.Keys, transport.KeyEntry{Caller: "x"}) },
		"bad caller name":             func(c *transport.Config) { c.Keys[0].Caller = "front_end" },
		"duplicate key id per caller": func(c *transport.Config) { c.Keys = append(c.Keys, c.Keys[0]) },
		"legacy caller without keys":  func(c *transport.Config) { c.LegacyCallers = []string{"legacy-gatway"} },
	} {
		t.Run(name, func(t *testing.T) {
			c := base()
			mut(&c)
			_, err := transport.New(c)
			require.ErrorIs(t, err, transport.ErrInvalidConfig)
		})
	}
	v, err := transport.New(base())
	require.NoError(t, err)
	_, err = v.Require()
	require.ErrorIs(t, err, transport.ErrInvalidConfig)
	_, err = v.Require("analytics-servce") // typo: refused, not silently locking out
	require.ErrorIs(t, err, transport.ErrInvalidConfig)
	_, err = v.Require("intruder") // keys only for another target
	require.ErrorIs(t, err, transport.ErrInvalidConfig)
}

func TestNonStrict(t *testing.T) {
	d := newDeployment(t)
	cfg := d.config(time.Now)
	cfg.Environment = transport.Development
	cfg.NonStrict = true
	logs := &logBuffer{}
	cfg.Logger = logs.logger()
	v, err := transport.New(cfg)
	require.NoError(t, err)
	var sawCaller bool
	var got []byte
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, sawCaller = transport.CallerFrom(r.Context())
		got, _ = io.ReadAll(r.Body)
	}))
	rec, _ := inProcess(t, h, nil, "POST", "/v1/x", "10.1.2.3:5000", []byte("plain"), false)
	require.Equal(t, 200, rec.Code)
	require.False(t, sawCaller, "unsigned requests carry no caller")
	require.Equal(t, []byte("plain"), got)
	require.Contains(t, logs.String(), "unsigned request admitted")

	// A signed request is still verified: a bad signature is never admitted.
	wrong := newSigner(t, "frontend", "financial-api", transport.Development, mustKey(t, "f1", secretOtherValid), "", time.Now)
	rec, p := inProcess(t, h, wrong, "POST", "/v1/x", "10.1.2.3:5000", []byte("x"), false)
	require.Equal(t, 401, rec.Code)
	require.Equal(t, transport.CodeSignatureInvalid, p.Code)

	good := newSigner(t, "frontend", "financial-api", transport.Development, d.frontend1, "", time.Now)
	rec, _ = inProcess(t, h, good, "POST", "/v1/x", "10.1.2.3:5000", []byte("x"), false)
	require.Equal(t, 200, rec.Code)
	require.True(t, sawCaller)

	// Staging allows it too; production is refused in New (TestConfigValidation).
	cfg.Environment = transport.Staging
	_, err = transport.New(cfg)
	require.NoError(t, err)
}

func TestEnvironmentTransportRules(t *testing.T) {
	d := newDeployment(t)
	for _, tc := range []struct {
		env    transport.Environment
		remote string
		tls    bool
		want   int
	}{
		{transport.Production, "10.0.0.7:443", false, 403},
		{transport.Production, "[2001:db8::1]:443", false, 403},
		{transport.Production, "127.0.0.1:5555", false, 200},
		{transport.Production, "[::1]:5555", false, 200},
		{transport.Production, "10.0.0.7:443", true, 200},
		{transport.Production, "garbage", false, 403},
		{transport.Staging, "10.0.0.7:443", false, 403},
		{transport.Development, "10.0.0.7:443", false, 200},
	} {
		t.Run(string(tc.env)+" "+tc.remote, func(t *testing.T) {
			cfg := d.config(time.Now)
			cfg.Environment = tc.env
			v, err := transport.New(cfg)
			require.NoError(t, err)
			s := newSigner(t, "frontend", "financial-api", tc.env, d.frontend1, "", time.Now)
			rec, p := inProcess(t, v.Middleware(&counter{}), s, "GET", "/v1/x", tc.remote, nil, tc.tls)
			require.Equal(t, tc.want, rec.Code)
			if tc.want == 403 {
				require.Equal(t, transport.CodeInsecureTransport, p.Code)
			}
		})
	}
	require.False(t, transport.Production.AllowsNonStrict())
	require.False(t, transport.Production.AllowsPlainHTTP())
	require.True(t, transport.Staging.AllowsNonStrict())
	require.False(t, transport.Staging.AllowsPlainHTTP())
	require.True(t, transport.Development.AllowsPlainHTTP())
}

func TestCheckListener(t *testing.T) {
	pub := &net.TCPAddr{IP: net.IPv4zero, Port: 8080}
	lo := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}
	unix := &net.UnixAddr{Name: "/run/svc.sock", Net: "unix"}
	require.ErrorIs(t, transport.CheckListener(transport.Production, pub, false), transport.ErrInsecureListener)
	require.ErrorIs(t, transport.CheckListener(transport.Staging, pub, false), transport.ErrInsecureListener)
	require.NoError(t, transport.CheckListener(transport.Production, pub, true))
	require.NoError(t, transport.CheckListener(transport.Production, lo, false))
	require.NoError(t, transport.CheckListener(transport.Production, unix, false))
	require.NoError(t, transport.CheckListener(transport.Development, pub, false))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	require.NoError(t, transport.CheckListener(transport.Production, ln.Addr(), false))
}

func TestRateLimit(t *testing.T) {
	d := newDeployment(t)
	clk := newClock(time.Now())
	lim, err := transport.NewMemoryLimiter(transport.MemoryLimiterConfig{
		Default: transport.Rate{Limit: rate.Every(10 * time.Second), Burst: 2},
		Callers: map[string]transport.Rate{"analytics-service": {Limit: rate.Inf, Burst: 1}},
		Clock:   clk.Now,
	})
	require.NoError(t, err)
	cfg := d.config(clk.Now)
	cfg.Limiter = lim
	v, err := transport.New(cfg)
	require.NoError(t, err)
	h := v.Middleware(&counter{})
	fe := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", clk.Now)
	for range 2 {
		rec, _ := inProcess(t, h, fe, "GET", "/v1/x", "127.0.0.1:1", nil, true)
		require.Equal(t, 200, rec.Code)
	}
	rec, p := inProcess(t, h, fe, "GET", "/v1/x", "127.0.0.1:1", nil, true)
	require.Equal(t, 429, rec.Code)
	require.Equal(t, transport.CodeRateLimited, p.Code)
	require.Equal(t, "10", rec.Header().Get("Retry-After"))
	require.Equal(t, 10*time.Second, p.RetryAfter)
	an := newSigner(t, "analytics-service", "financial-api", transport.Production, d.analytics, "", clk.Now)
	for range 5 {
		rec, _ := inProcess(t, h, an, "GET", "/v1/x", "127.0.0.1:1", nil, true)
		require.Equal(t, 200, rec.Code, "per-caller override")
	}
	clk.Add(10 * time.Second)
	rec, _ = inProcess(t, h, fe, "GET", "/v1/x", "127.0.0.1:1", nil, true)
	require.Equal(t, 200, rec.Code, "bucket refilled")

	_, err = transport.NewMemoryLimiter(transport.MemoryLimiterConfig{})
	require.ErrorIs(t, err, transport.ErrInvalidConfig)
}

type failingStore struct{ err error }

func (f failingStore) Consume(context.Context, string, time.Duration) (bool, error) {
	return false, f.err
}

type failingLimiter struct{}

func (failingLimiter) Allow(context.Context, string) (bool, time.Duration, error) {
	return false, 0, errors.New("redis down")
}

func TestFailClosed(t *testing.T) {
	d := newDeployment(t)
	for _, tc := range []struct {
		name  string
		mut   func(*transport.Config)
		code  transport.Code
		retry string
	}{
		{"replay store unreachable", func(c *transport.Config) { c.ReplayStore = failingStore{errors.New("dial tcp: refused")} },
			transport.CodeReplayStoreUnavailable, "1"},
		{"replay store full", func(c *transport.Config) { c.ReplayStore = failingStore{transport.ErrReplayStoreFull} },
			transport.CodeReplayStoreFull, "1"},
		{"rate limiter unreachable", func(c *transport.Config) { c.Limiter = failingLimiter{} },
			transport.CodeRateLimiterUnavailable, "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := d.config(time.Now)
			tc.mut(&cfg)
			v, err := transport.New(cfg)
			require.NoError(t, err)
			cnt := &counter{}
			fe := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", time.Now)
			rec, p := inProcess(t, v.Middleware(cnt), fe, "GET", "/v1/x", "127.0.0.1:1", nil, true)
			require.Equal(t, 503, rec.Code)
			require.Equal(t, tc.code, p.Code)
			require.Equal(t, tc.retry, rec.Header().Get("Retry-After"))
			require.Zero(t, cnt.n.Load())
		})
	}

	// The real in-memory store, full: 503 replay_store_full, and the request
	// that was already recorded is still a replay.
	store, err := transport.NewMemoryReplayStore(transport.MemoryReplayConfig{MaxEntries: 1})
	require.NoError(t, err)
	cfg := d.config(time.Now)
	cfg.ReplayStore = store
	v, err := transport.New(cfg)
	require.NoError(t, err)
	fe := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", time.Now)
	rec, _ := inProcess(t, v.Middleware(&counter{}), fe, "GET", "/v1/x", "127.0.0.1:1", nil, true)
	require.Equal(t, 200, rec.Code)
	rec, p := inProcess(t, v.Middleware(&counter{}), fe, "GET", "/v1/x", "127.0.0.1:1", nil, true)
	require.Equal(t, 503, rec.Code)
	require.Equal(t, transport.CodeReplayStoreFull, p.Code)
}

func TestBodyRestoredAndCaller(t *testing.T) {
	d := newDeployment(t)
	v, err := transport.New(d.config(time.Now))
	require.NoError(t, err)
	body := bytes.Repeat([]byte{0, 1, 2, 0xff, '\r', '\n'}, 600) // 3600 bytes, not UTF-8
	var got []byte
	var who transport.Caller
	var cl int64
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		who, _ = transport.CallerFrom(r.Context())
		cl = r.ContentLength
	}))
	fe := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend2, "", time.Now)
	rec, _ := inProcess(t, h, fe, "PUT", "/v1/blob?x=1", "127.0.0.1:1", body, true)
	require.Equal(t, 200, rec.Code)
	require.Equal(t, body, got)
	require.EqualValues(t, len(body), cl)
	require.Equal(t, transport.Caller{Service: "frontend", KeyID: "f2", Scheme: transport.SchemeV1,
		RequestID: who.RequestID}, who)
	require.Len(t, who.RequestID, 36)
	_, ok := transport.CallerFrom(context.Background())
	require.False(t, ok)

	// Exactly the limit passes; one more byte does not.
	atLimit := bytes.Repeat([]byte("a"), 4<<10)
	rec, _ = inProcess(t, h, fe, "PUT", "/v1/blob", "127.0.0.1:1", atLimit, true)
	require.Equal(t, 200, rec.Code)
	rec, p := inProcess(t, h, fe, "PUT", "/v1/blob", "127.0.0.1:1", append(atLimit, 'a'), true)
	require.Equal(t, 413, rec.Code)
	require.Equal(t, transport.CodeBodyTooLarge, p.Code)

	// A body that fails mid-read.
	req := newRequest(t, "PUT", "https://financial.internal/v1/blob", "", []byte("abc"))
	require.NoError(t, fe.Sign(req))
	srvReq := httptest.NewRequest("PUT", "/v1/blob", iotest.ErrReader(errors.New("connection reset")))
	srvReq.Header = req.Header
	srvReq.RemoteAddr = "127.0.0.1:1"
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, srvReq)
	require.Equal(t, 400, rec.Code)
}

// TestAbsoluteFormTarget: a request-target in absolute-form (as sent to a
// proxy) is canonicalised from its path and query.
func TestAbsoluteFormTarget(t *testing.T) {
	d := newDeployment(t)
	v, err := transport.New(d.config(time.Now))
	require.NoError(t, err)
	fe := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", time.Now)
	req := newRequest(t, "GET", "https://financial.internal/v1/a%2Fb?z=1&a=2", "", nil)
	require.NoError(t, fe.Sign(req))
	srvReq := httptest.NewRequest("GET", "https://financial.internal/v1/a%2Fb?z=1&a=2", nil)
	srvReq.RequestURI = "https://financial.internal/v1/a%2Fb?z=1&a=2"
	srvReq.Header = req.Header
	srvReq.RemoteAddr = "127.0.0.1:1"
	rec := httptest.NewRecorder()
	v.Middleware(&counter{}).ServeHTTP(rec, srvReq)
	require.Equal(t, 200, rec.Code, rec.Body.String())

	srvReq = httptest.NewRequest("OPTIONS", "/", nil)
	srvReq.RequestURI = "*"
	srvReq.Header = req.Header.Clone()
	srvReq.RemoteAddr = "127.0.0.1:1"
	rec = httptest.NewRecorder()
	v.Middleware(&counter{}).ServeHTTP(rec, srvReq)
	require.Equal(t, 400, rec.Code)
}

// TestLogs: a refusal log line says which check failed, the measured skew
// and the canonical hash, and never holds a key, the signature or the body.
func TestLogs(t *testing.T) {
	d := newDeployment(t)
	logs := &logBuffer{}
	cfg := d.config(time.Now)
	cfg.Logger = logs.logger()
	v, err := transport.New(cfg)
	require.NoError(t, err)
	h := v.Middleware(&counter{})
	body := []byte(`{"ssn":"123-45-6789"}`)

	wrong := newSigner(t, "frontend", "financial-api", transport.Production, mustKey(t, "f1", secretOtherValid), "", time.Now)
	req := newRequest(t, "POST", "https://financial.internal/v1/x", "application/json", body)
	require.NoError(t, wrong.Sign(req))
	canon := transport.Components{
		Environment: transport.Production, Caller: "frontend", Target: "financial-api", KeyID: "f1",
		Timestamp: req.Header.Get(transport.HeaderTimestamp), RequestID: req.Header.Get(transport.HeaderRequestID),
		Method: "POST", Path: "/v1/x", ContentType: "application/json", Body: body,
	}
	c, err := canon.Canonical()
	require.NoError(t, err)
	srvReq := httptest.NewRequest("POST", "/v1/x", bytes.NewReader(body))
	srvReq.Header = req.Header
	srvReq.RemoteAddr = "127.0.0.1:1"
	h.ServeHTTP(httptest.NewRecorder(), srvReq)

	old := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", func() time.Time { return time.Now().Add(-time.Hour) })
	inProcess(t, h, old, "GET", "/v1/x", "127.0.0.1:1", nil, true)
	ls := newSigner(t, "legacy-gateway", "financial-api", transport.Production, d.legacy, transport.SchemeLegacy, time.Now)
	inProcess(t, h, ls, "POST", "/v1/x", "127.0.0.1:1", body, true)

	out := logs.String()
	require.Contains(t, out, `"check":"signature_mismatch"`)
	require.Contains(t, out, `"canonical_sha256":"`+transport.CanonicalHash(c)+`"`)
	require.Contains(t, out, `"check":"timestamp_out_of_window"`)
	require.Regexp(t, `"skew_ms":36\d\d\d\d\d`, out)
	require.Contains(t, out, `deprecated legacy signature accepted`)
	for _, secret := range []string{secretFrontend1, secretOtherValid, secretLegacy, "123-45-6789",
		req.Header.Get(transport.HeaderSignature)} {
		require.NotContains(t, out, secret)
	}
}

func TestParseProblem(t *testing.T) {
	resp := &http.Response{StatusCode: 502, Header: http.Header{"Content-Type": {"text/html"}},
		Body: io.NopCloser(strings.NewReader("<html>"))}
	_, err := transport.ParseProblem(resp)
	require.ErrorIs(t, err, transport.ErrNotProblem)
	require.Contains(t, err.Error(), `"text/html"`, "the Content-Type is named, for diagnosis")
	long := "text/" + strings.Repeat("x", 10<<10)
	resp = &http.Response{StatusCode: 502, Header: http.Header{"Content-Type": {long}}, Body: http.NoBody}
	_, err = transport.ParseProblem(resp)
	require.ErrorIs(t, err, transport.ErrNotProblem)
	require.Less(t, len(err.Error()), 200, "a remote's Content-Type is bounded in the error")
	resp = &http.Response{StatusCode: 401, Header: http.Header{"Content-Type": {"application/problem+json; charset=utf-8"}},
		Body: io.NopCloser(strings.NewReader("{not json"))}
	_, err = transport.ParseProblem(resp)
	require.ErrorIs(t, err, transport.ErrNotProblem)
	resp = &http.Response{StatusCode: 429, Header: http.Header{"Content-Type": {"application/problem+json"}, "Retry-After": {"7"}},
		Body: io.NopCloser(strings.NewReader(`{"type":"x","title":"t","status":429,"code":"rate_limited"}`))}
	p, err := transport.ParseProblem(resp)
	require.NoError(t, err)
	require.Equal(t, 7*time.Second, p.RetryAfter)
	var target *transport.Problem
	require.ErrorAs(t, error(p), &target)
	require.Equal(t, transport.CodeRateLimited, target.Code)
}

// TestLargeBodies: bodies read into recycled buffers come back exact, for
// known and unknown lengths, at and over the limit; the body cannot be read
// after the handler returned.
func TestLargeBodies(t *testing.T) {
	d := newDeployment(t)
	cfg := d.config(time.Now)
	cfg.MaxBodyBytes = 300 << 10
	v, err := transport.New(cfg)
	require.NoError(t, err)
	var kept io.Reader
	var got []byte
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(io.LimitReader(r.Body, 1<<10))
		rest, _ := io.ReadAll(r.Body)
		got = append(got, rest...)
		kept = r.Body
	}))
	fe := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", time.Now)
	for _, size := range []int{64 << 10, 100<<10 + 7, 300 << 10, 300<<10 + 1, 1} {
		for _, chunked := range []bool{false, true} {
			body := make([]byte, size)
			for i := range body {
				body[i] = byte(i*7 + size)
			}
			req := newRequest(t, "POST", "https://financial.internal/v1/blob", "", body)
			require.NoError(t, fe.Sign(req))
			var rd io.Reader = bytes.NewReader(body)
			if chunked {
				rd = iotest.HalfReader(rd) // unknown length, short reads
			}
			srvReq := httptest.NewRequest("POST", "/v1/blob", rd)
			if chunked {
				srvReq.ContentLength = -1
			}
			srvReq.Header = req.Header
			srvReq.RemoteAddr = "127.0.0.1:1"
			rec := httptest.NewRecorder()
			got = nil
			h.ServeHTTP(rec, srvReq)
			if size > 300<<10 {
				require.Equal(t, 413, rec.Code, "size %d chunked %v", size, chunked)
				continue
			}
			require.Equal(t, 200, rec.Code, "size %d chunked %v: %s", size, chunked, rec.Body)
			require.Equal(t, body, got, "size %d chunked %v", size, chunked)
			_, err := kept.Read(make([]byte, 1))
			require.ErrorIs(t, err, http.ErrBodyReadAfterClose)
		}
	}
}
