package transport_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lifenavigator/crossservice/internal/testcerts"
	"github.com/lifenavigator/crossservice/transport"
)

// t0 is the fixed "now" of most tests: 2026-01-01T00:00:00Z.
var t0 = time.UnixMilli(1767225600000)

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// clock is a settable clock, safe for concurrent use.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock    { c := &clock{}; c.ns.Store(t.UnixNano()); return c }
func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

func mustKey(t testing.TB, id, secret string) transport.Key {
	t.Helper()
	k, err := transport.NewKey(id, []byte(secret))
	require.NoError(t, err)
	return k
}

// Keys of the test deployment.
const (
	secretFrontend1  = "frontend-key-one-0123456789abcdef0123456789abcdef"
	secretFrontend2  = "frontend-key-two-0123456789abcdef0123456789abcdef"
	secretFrontendR  = "frontend-key-retired-0123456789abcdef0123456789ab"
	secretAnalytics  = "analytics-key-0123456789abcdef0123456789abcdef012"
	secretLegacy     = "legacy-gateway-key-0123456789abcdef0123456789abcd"
	secretOtherValid = "some-other-valid-key-0123456789abcdef0123456789a"
)

type deployment struct {
	frontend1, frontend2, frontendRetired, analytics, legacy transport.Key
}

func newDeployment(t testing.TB) *deployment {
	return &deployment{
		frontend1:       mustKey(t, "f1", secretFrontend1),
		frontend2:       mustKey(t, "f2", secretFrontend2),
		frontendRetired: mustKey(t, "f0", secretFrontendR),
		analytics:       mustKey(t, "a1", secretAnalytics),
		legacy:          mustKey(t, "env", secretLegacy),
	}
}

func (d *deployment) entries() []transport.KeyEntry {
	return []transport.KeyEntry{
		{Caller: "frontend", Key: d.frontend1},
		{Caller: "frontend", Target: "financial-api", Key: d.frontend2},
		{Caller: "frontend", Key: d.frontendRetired, Retired: true},
		{Caller: "analytics-service", Key: d.analytics},
		{Caller: "legacy-gateway", Key: d.legacy},
		// For another service: ignored by financial-api's verifier.
		{Caller: "intruder", Target: "document-store", Key: d.analytics},
	}
}

// config is financial-api's verifier configuration in production.
func (d *deployment) config(now func() time.Time) transport.Config {
	return transport.Config{
		Service:       "financial-api",
		Environment:   transport.Production,
		Keys:          d.entries(),
		LegacyCallers: []string{"legacy-gateway"},
		FutureSkew:    30 * time.Second,
		MaxBodyBytes:  4 << 10,
		Clock:         now,
	}
}

func newSigner(t testing.TB, caller, target string, env transport.Environment, k transport.Key, scheme transport.Scheme, now func() time.Time) *transport.Signer {
	t.Helper()
	s, err := transport.NewSigner(transport.SignerConfig{
		Caller: caller, Target: target, Environment: env, Key: k, Scheme: scheme, Clock: now,
	})
	require.NoError(t, err)
	return s
}

// counter is a handler that counts its runs and echoes caller and body.
type counter struct {
	n    atomic.Int64
	mu   sync.Mutex
	keys map[string]int
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.n.Add(1)
	who, ok := transport.CallerFrom(r.Context())
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	if c.keys == nil {
		c.keys = map[string]int{}
	}
	c.keys[who.KeyID]++
	c.mu.Unlock()
	if ok {
		w.Header().Set("X-Caller", who.Service)
	}
	w.Write(body)
}

// tlsServer starts a TLS 1.3 httptest server with ServerTLSConfig and
// returns it with a client built by ClientTLSConfig.
func tlsServer(t testing.TB, h http.Handler, ca *testcerts.CA, clientCAs bool, clientCert *tls.Certificate) (*httptest.Server, *http.Client) {
	t.Helper()
	if ca == nil {
		var err error
		ca, err = testcerts.NewCA("test-ca")
		require.NoError(t, err)
	}
	cert, err := ca.Server(nil, nil)
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	var pool = ca.Pool
	if !clientCAs {
		pool = nil
	}
	srv.TLS, err = transport.ServerTLSConfig([]tls.Certificate{cert}, pool)
	require.NoError(t, err)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ccfg, err := transport.ClientTLSConfig(ca.Pool, clientCert)
	require.NoError(t, err)
	return srv, newClient(t, ccfg)
}

// send performs req and returns status, parsed problem (nil on success) and body.
func send(t testing.TB, c *http.Client, req *http.Request) (int, *transport.Problem, []byte) {
	t.Helper()
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		p, err := transport.ParseProblem(resp)
		require.NoError(t, err)
		return resp.StatusCode, p, nil
	}
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, nil, b
}

func newRequest(t testing.TB, method, url, ctype string, body []byte) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	return req
}

// logBuffer is a slog JSON handler writing to a buffer, safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// newClient returns a client whose idle connections are closed when the test
// ends (goleak checks).
func newClient(t testing.TB, c *tls.Config) *http.Client {
	tr := &http.Transport{TLSClientConfig: c, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}
