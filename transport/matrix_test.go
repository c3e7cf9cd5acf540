package transport_test

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lifenavigator/crossservice/internal/testcerts"
	"github.com/lifenavigator/crossservice/transport"
)

// matrixEnv is financial-api in production behind a real TLS 1.3 server:
// "/" admits any known caller, "/admin/" only analytics-service.
type matrixEnv struct {
	t      *testing.T
	d      *deployment
	url    string
	client *http.Client
	count  *counter
}

func newMatrixEnv(t *testing.T) *matrixEnv {
	d := newDeployment(t)
	v, err := transport.New(d.config(time.Now))
	require.NoError(t, err)
	cnt := &counter{}
	admin, err := v.Require("analytics-service")
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/", v.Middleware(cnt))
	mux.Handle("/admin/", admin(cnt))
	srv, client := tlsServer(t, mux, nil, false, nil)
	return &matrixEnv{t: t, d: d, url: srv.URL, client: client, count: cnt}
}

func (m *matrixEnv) signer(caller string, k transport.Key, opts ...func(*transport.SignerConfig)) *transport.Signer {
	cfg := transport.SignerConfig{Caller: caller, Target: "financial-api", Environment: transport.Production, Key: k}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := transport.NewSigner(cfg)
	require.NoError(m.t, err)
	return s
}

// signed returns a request signed by s.
func (m *matrixEnv) signed(s *transport.Signer, method, path, ctype string, body []byte) *http.Request {
	req := newRequest(m.t, method, m.url+path, ctype, body)
	require.NoError(m.t, s.Sign(req))
	return req
}

// resend builds a new request carrying the signing headers of signed.
func (m *matrixEnv) resend(signed *http.Request, method, path, ctype string, body []byte) *http.Request {
	req := newRequest(m.t, method, m.url+path, ctype, body)
	for _, k := range []string{transport.HeaderRequestID, transport.HeaderTimestamp, transport.HeaderServiceName,
		transport.HeaderSignature, transport.HeaderKeyID} {
		if v := signed.Header.Values(k); len(v) > 0 {
			req.Header[http.CanonicalHeaderKey(k)] = append([]string(nil), v...)
		}
	}
	return req
}

func (m *matrixEnv) edit(req *http.Request, f func(h http.Header)) *http.Request {
	f(req.Header)
	return req
}

func TestNegativeMatrix(t *testing.T) {
	m := newMatrixEnv(t)
	d := m.d
	fe := m.signer("frontend", d.frontend1)
	body := []byte(`{"amount":100}`)
	const json = "application/json"
	withClock := func(off time.Duration) func(*transport.SignerConfig) {
		return func(c *transport.SignerConfig) { c.Clock = func() time.Time { return time.Now().Add(off) } }
	}
	fixedID := func(id string) func(*transport.SignerConfig) {
		return func(c *transport.SignerConfig) { c.RequestID = func() (string, error) { return id, nil } }
	}

	// Positive controls: the matrix can fail.
	accepted := m.signed(fe, "POST", "/v1/things?a=1&b=2", json, body)
	st, p, got := send(t, m.client, accepted)
	require.Equal(t, 200, st, "%v", p)
	require.Equal(t, body, got)
	legacyOK := m.signed(m.signer("legacy-gateway", d.legacy, func(c *transport.SignerConfig) { c.Scheme = transport.SchemeLegacy }),
		"POST", "/v1/legacy", json, body)
	st, p, _ = send(t, m.client, legacyOK)
	require.Equal(t, 200, st, "%v", p)
	sharedID := "019b7a3e-8c00-7d2a-9f3b-5e6d7c8b9aff"
	an := m.signer("analytics-service", d.analytics, fixedID(sharedID))
	st, p, _ = send(t, m.client, m.signed(an, "GET", "/v1/reports", "", nil))
	require.Equal(t, 200, st, "%v", p)
	// Escapes and the raw query are signed as on the wire, not decoded.
	st, p, _ = send(t, m.client, m.signed(fe, "GET", "/v1/things/a%2Fb/caf%C3%A9?q=x%20y+z&q=1", "", nil))
	require.Equal(t, 200, st, "%v", p)
	require.EqualValues(t, 4, m.count.n.Load())

	big := bytes.Repeat([]byte("x"), 5<<10)

	cases := []struct {
		name   string
		req    func() *http.Request
		status int
		code   transport.Code
	}{
		{"method changed", func() *http.Request {
			return m.resend(m.signed(fe, "POST", "/v1/things", json, body), "PATCH", "/v1/things", json, body)
		}, 401, transport.CodeSignatureInvalid},
		{"path changed", func() *http.Request {
			return m.resend(m.signed(fe, "POST", "/v1/things", json, body), "POST", "/v1/thing2", json, body)
		}, 401, transport.CodeSignatureInvalid},
		{"escaped path decoded (%2F to /)", func() *http.Request {
			return m.resend(m.signed(fe, "GET", "/v1/things/a%2Fb", "", nil), "GET", "/v1/things/a/b", "", nil)
		}, 401, transport.CodeSignatureInvalid},
		{"escaped path case (%2f vs %2F)", func() *http.Request {
			return m.resend(m.signed(fe, "GET", "/v1/things/a%2Fb", "", nil), "GET", "/v1/things/a%2fb", "", nil)
		}, 401, transport.CodeSignatureInvalid},
		{"query parameter added", func() *http.Request {
			return m.resend(m.signed(fe, "GET", "/v1/things?a=1", "", nil), "GET", "/v1/things?a=1&admin=true", "", nil)
		}, 401, transport.CodeSignatureInvalid},
		{"query parameter changed", func() *http.Request {
			return m.resend(m.signed(fe, "GET", "/v1/things?a=1", "", nil), "GET", "/v1/things?a=2", "", nil)
		}, 401, transport.CodeSignatureInvalid},
		{"query parameters reordered", func() *http.Request {
			return m.resend(m.signed(fe, "GET", "/v1/things?a=1&b=2", "", nil), "GET", "/v1/things?b=2&a=1", "", nil)
		}, 401, transport.CodeSignatureInvalid},
		{"query removed", func() *http.Request {
			return m.resend(m.signed(fe, "GET", "/v1/things?a=1", "", nil), "GET", "/v1/things", "", nil)
		}, 401, transport.CodeSignatureInvalid},
		{"body byte changed", func() *http.Request {
			return m.resend(m.signed(fe, "POST", "/v1/things", json, body), "POST", "/v1/things", json, []byte(`{"amount":900}`))
		}, 401, transport.CodeSignatureInvalid},
		{"body byte appended", func() *http.Request {
			return m.resend(m.signed(fe, "POST", "/v1/things", json, body), "POST", "/v1/things", json, append(body[:len(body):len(body)], ' '))
		}, 401, transport.CodeSignatureInvalid},
		{"content type changed", func() *http.Request {
			return m.resend(m.signed(fe, "POST", "/v1/things", json, body), "POST", "/v1/things", "text/plain", body)
		}, 401, transport.CodeSignatureInvalid},
		{"content type removed", func() *http.Request {
			return m.resend(m.signed(fe, "POST", "/v1/things", json, body), "POST", "/v1/things", "", body)
		}, 401, transport.CodeSignatureInvalid},
		{"timestamp too old", func() *http.Request {
			return m.signed(m.signer("frontend", d.frontend1, withClock(-5*time.Minute-5*time.Second)), "GET", "/v1/things", "", nil)
		}, 401, transport.CodeTimestampOutOfWindow},
		{"timestamp too far in the future", func() *http.Request {
			return m.signed(m.signer("frontend", d.frontend1, withClock(35*time.Second)), "GET", "/v1/things", "", nil)
		}, 401, transport.CodeTimestampOutOfWindow},
		{"timestamp edited within window", func() *http.Request {
			r := m.signed(fe, "GET", "/v1/things", "", nil)
			return m.edit(r, func(h http.Header) {
				h.Set(transport.HeaderTimestamp, itoa(time.Now().Add(-time.Second).UnixMilli()))
			})
		}, 401, transport.CodeSignatureInvalid},
		{"timestamp in seconds with a fraction", func() *http.Request {
			return m.edit(m.signed(fe, "GET", "/v1/things", "", nil), func(h http.Header) { h.Set(transport.HeaderTimestamp, "1767225600.5") })
		}, 400, transport.CodeHeaderMalformed},
		{"request id changed", func() *http.Request {
			return m.edit(m.signed(fe, "GET", "/v1/things", "", nil), func(h http.Header) {
				h.Set(transport.HeaderRequestID, "019b7a3e-8c00-7d2a-9f3b-000000000000")
			})
		}, 401, transport.CodeSignatureInvalid},
		{"request id not canonical (uppercase)", func() *http.Request {
			return m.edit(m.signed(fe, "GET", "/v1/things", "", nil), func(h http.Header) {
				h.Set(transport.HeaderRequestID, strings.ToUpper(h.Get(transport.HeaderRequestID)))
			})
		}, 400, transport.CodeHeaderMalformed},
		{"caller changed to another known caller", func() *http.Request {
			return m.edit(m.signed(fe, "GET", "/v1/things", "", nil), func(h http.Header) {
				h.Set(transport.HeaderServiceName, "analytics-service")
				h.Set(transport.HeaderKeyID, "a1")
			})
		}, 401, transport.CodeSignatureInvalid},
		{"unknown caller (keys only for another target)", func() *http.Request {
			return m.signed(m.signer("intruder", d.analytics), "GET", "/v1/things", "", nil)
		}, 401, transport.CodeSignatureInvalid},
		{"signed for another target", func() *http.Request {
			return m.signed(m.signer("frontend", d.frontend1, func(c *transport.SignerConfig) { c.Target = "document-store" }), "GET", "/v1/things", "", nil)
		}, 401, transport.CodeSignatureInvalid},
		{"signed for another environment", func() *http.Request {
			return m.signed(m.signer("frontend", d.frontend1, func(c *transport.SignerConfig) { c.Environment = transport.Staging }), "GET", "/v1/things", "", nil)
		}, 401, transport.CodeSignatureInvalid},
		{"key id swapped to the caller's other active key", func() *http.Request {
			return m.edit(m.signed(fe, "GET", "/v1/things", "", nil), func(h http.Header) { h.Set(transport.HeaderKeyID, "f2") })
		}, 401, transport.CodeSignatureInvalid},
		{"key id unknown", func() *http.Request {
			return m.edit(m.signed(fe, "GET", "/v1/things", "", nil), func(h http.Header) { h.Set(transport.HeaderKeyID, "f9") })
		}, 401, transport.CodeSignatureInvalid},
		{"retired key", func() *http.Request {
			return m.signed(m.signer("frontend", d.frontendRetired), "GET", "/v1/things", "", nil)
		}, 401, transport.CodeSignatureInvalid},
		{"key of right length but wrong secret", func() *http.Request {
			return m.signed(m.signer("frontend", mustKey(t, "f1", secretOtherValid)), "GET", "/v1/things", "", nil)
		}, 401, transport.CodeSignatureInvalid},
		{"signature uppercase hex", func() *http.Request {
			return m.edit(m.signed(fe, "GET", "/v1/things", "", nil), func(h http.Header) {
				h.Set(transport.HeaderSignature, strings.ToUpper(h.Get(transport.HeaderSignature)))
			})
		}, 400, transport.CodeHeaderMalformed},
		{"signature truncated to 63 chars", func() *http.Request {
			return m.edit(m.signed(fe, "GET", "/v1/things", "", nil), func(h http.Header) {
				h.Set(transport.HeaderSignature, h.Get(transport.HeaderSignature)[:63])
			})
		}, 400, transport.CodeHeaderMalformed},
		{"signature extended to 66 chars", func() *http.Request {
			return m.edit(m.signed(fe, "GET", "/v1/things", "", nil), func(h http.Header) {
				h.Set(transport.HeaderSignature, h.Get(transport.HeaderSignature)+"00")
			})
		}, 400, transport.CodeHeaderMalformed},
		{"signature base64 instead of hex", func() *http.Request {
			return m.edit(m.signed(fe, "GET", "/v1/things", "", nil), func(h http.Header) {
				raw, _ := hex.DecodeString(h.Get(transport.HeaderSignature))
				h.Set(transport.HeaderSignature, base64.StdEncoding.EncodeToString(raw))
			})
		}, 400, transport.CodeHeaderMalformed},
		{"signature one hex digit flipped", func() *http.Request {
			return m.edit(m.signed(fe, "GET", "/v1/things", "", nil), func(h http.Header) {
				s := []byte(h.Get(transport.HeaderSignature))
				if s[10] == '0' {
					s[10] = '1'
				} else {
					s[10] = '0'
				}
				h.Set(transport.HeaderSignature, string(s))
			})
		}, 401, transport.CodeSignatureInvalid},
		{"X-Request-ID missing", func() *http.Request {
			return m.edit(m.signed(fe, "GET", "/v1/things", "", nil), func(h http.Header) { h.Del(transport.HeaderRequestID) })
		}, 401, transport.CodeHeaderMissing},
		{"X-Timestamp missing", func() *http.Request {
			return m.edit(m.signed(fe, "GET", "/v1/things", "", nil), func(h http.Header) { h.Del(transport.HeaderTimestamp) })
		}, 401, transport.CodeHeaderMissing},
		{"X-Service-Name missing", func() *http.Request {
			return m.edit(m.signed(fe, "GET", "/v1/things", "", nil), func(h http.Header) { h.Del(transport.HeaderServiceName) })
		}, 401, transport.CodeHeaderMissing},
		{"X-Signature missing (strict)", func() *http.Request {
			return m.edit(m.signed(fe, "GET", "/v1/things", "", nil), func(h http.Header) { h.Del(transport.HeaderSignature) })
		}, 401, transport.CodeUnsignedRequest},
		{"X-Key-ID missing (v1 caller, legacy form: no downgrade)", func() *http.Request {
			return m.edit(m.signed(fe, "GET", "/v1/things", "", nil), func(h http.Header) { h.Del(transport.HeaderKeyID) })
		}, 401, transport.CodeSchemeNotAllowed},
		{"X-Signature duplicated", func() *http.Request {
			return m.edit(m.signed(fe, "GET", "/v1/things", "", nil), func(h http.Header) { h.Add(transport.HeaderSignature, h.Get(transport.HeaderSignature)) })
		}, 400, transport.CodeHeaderMalformed},
		{"X-Timestamp duplicated", func() *http.Request {
			return m.edit(m.signed(fe, "GET", "/v1/things", "", nil), func(h http.Header) { h.Add(transport.HeaderTimestamp, h.Get(transport.HeaderTimestamp)) })
		}, 400, transport.CodeHeaderMalformed},
		{"X-Service-Name duplicated", func() *http.Request {
			return m.edit(m.signed(fe, "GET", "/v1/things", "", nil), func(h http.Header) { h.Add(transport.HeaderServiceName, "analytics-service") })
		}, 400, transport.CodeHeaderMalformed},
		{"Content-Type duplicated", func() *http.Request {
			return m.edit(m.signed(fe, "POST", "/v1/things", json, body), func(h http.Header) { h.Add("Content-Type", "text/plain") })
		}, 400, transport.CodeHeaderMalformed},
		{"replay of an accepted request", func() *http.Request {
			return m.resend(accepted, "POST", "/v1/things?a=1&b=2", json, body)
		}, 401, transport.CodeReplayDetected},
		{"replay of an accepted legacy request", func() *http.Request {
			return m.resend(legacyOK, "POST", "/v1/legacy", json, body)
		}, 401, transport.CodeReplayDetected},
		{"replay of an accepted request to a second route", func() *http.Request {
			return m.resend(accepted, "POST", "/admin/things?a=1&b=2", json, body)
		}, 401, transport.CodeSignatureInvalid},
		{"consumed request id re-signed for a second route", func() *http.Request {
			return m.signed(an, "GET", "/admin/report", "", nil) // same id as the accepted /v1/reports call
		}, 401, transport.CodeReplayDetected},
		{"caller not allowed on route (requiredServices)", func() *http.Request {
			return m.signed(fe, "GET", "/admin/report", "", nil)
		}, 403, transport.CodeServiceNotAuthorized},
		{"oversized body (Content-Length)", func() *http.Request {
			return m.signed(fe, "POST", "/v1/things", json, big)
		}, 413, transport.CodeBodyTooLarge},
		{"oversized body (chunked)", func() *http.Request {
			r := m.signed(fe, "POST", "/v1/things", json, big)
			r.ContentLength = -1
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(big)))
			return r
		}, 413, transport.CodeBodyTooLarge},
		{"control byte (TAB) in Content-Type", func() *http.Request {
			return m.resend(m.signed(fe, "POST", "/v1/things", "text/plain; charset=utf-8", body), "POST", "/v1/things", "text/plain;\tcharset=utf-8", body)
		}, 400, transport.CodeHeaderMalformed},
		{"legacy signature from a v1-registered caller", func() *http.Request {
			return m.signed(m.signer("frontend", d.frontend1, func(c *transport.SignerConfig) { c.Scheme = transport.SchemeLegacy }), "POST", "/v1/things", json, body)
		}, 401, transport.CodeSchemeNotAllowed},
		{"v1 signature from a legacy-registered caller", func() *http.Request {
			return m.signed(m.signer("legacy-gateway", d.legacy), "POST", "/v1/things", json, body)
		}, 401, transport.CodeSchemeNotAllowed},
		{"legacy signature with a body byte changed", func() *http.Request {
			ls := m.signer("legacy-gateway", d.legacy, func(c *transport.SignerConfig) { c.Scheme = transport.SchemeLegacy })
			return m.resend(m.signed(ls, "POST", "/v1/legacy", json, body), "POST", "/v1/legacy", json, []byte(`{"amount":101}`))
		}, 401, transport.CodeSignatureInvalid},
		{"lowercase method on the wire", func() *http.Request {
			return m.resend(m.signed(fe, "POST", "/v1/things", json, body), "post", "/v1/things", json, body)
		}, 400, transport.CodeRequestMalformed},
	}
	require.GreaterOrEqual(t, len(cases), 25)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := m.count.n.Load()
			req := tc.req()
			status, p, _ := send(t, m.client, req)
			require.Equal(t, tc.status, status)
			require.NotNil(t, p)
			require.Equal(t, tc.code, p.Code)
			require.Equal(t, tc.status, p.Status)
			require.Equal(t, tc.code.Status(), p.Status)
			require.Equal(t, transport.ProblemTypeBase+string(tc.code), p.Type)
			if id := req.Header.Values(transport.HeaderRequestID); len(id) == 1 && tc.code != transport.CodeHeaderMalformed {
				require.Equal(t, id[0], p.RequestID)
			}
			require.Equal(t, before, m.count.n.Load(), "handler ran for a refused request")
		})
	}
	t.Logf("%d tamperings refused", len(cases))
}

// TestSignerRefusesControlBytes: the client side refuses what the server would.
func TestSignerRefusesControlBytes(t *testing.T) {
	d := newDeployment(t)
	s := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", time.Now)
	for name, mk := range map[string]func() *http.Request{
		"CR LF in query": func() *http.Request {
			r := newRequest(t, "GET", "https://x/a", "", nil)
			r.URL.RawQuery = "a=1\r\nX-Evil: 1"
			return r
		},
		"TAB in content type": func() *http.Request { return newRequest(t, "POST", "https://x/a", "text/plain;\tq=1", []byte("x")) },
		"lowercase method":    func() *http.Request { return newRequest(t, "get", "https://x/a", "", nil) },
		"opaque URL": func() *http.Request {
			r := newRequest(t, "GET", "https://x/a", "", nil)
			r.URL.Opaque = "//x/a"
			return r
		},
		"two content types": func() *http.Request {
			r := newRequest(t, "POST", "https://x/a", "a/b", []byte("x"))
			r.Header.Add("Content-Type", "c/d")
			return r
		},
	} {
		t.Run(name, func(t *testing.T) {
			req := mk()
			err := s.Sign(req)
			var ce *transport.ComponentError
			require.ErrorAs(t, err, &ce)
			require.ErrorIs(t, err, transport.ErrInvalidComponent)
			require.Empty(t, req.Header.Get(transport.HeaderSignature))
		})
	}
	// A clock or a request id source the signer cannot sign with.
	for name, cfg := range map[string]transport.SignerConfig{
		"clock before 1970":      {Clock: func() time.Time { return time.UnixMilli(-1) }},
		"clock after 33658":      {Clock: func() time.Time { return time.UnixMilli(1_000_000_000_000_000) }},
		"v1 id not a UUID":       {RequestID: func() (string, error) { return "req-1", nil }},
		"v1 id in uppercase":     {RequestID: func() (string, error) { return "019B7A3E-8C00-7D2A-9F3B-5E6D7C8B9A01", nil }},
		"legacy id with a space": {Scheme: transport.SchemeLegacy, RequestID: func() (string, error) { return "req 1", nil }},
	} {
		t.Run(name, func(t *testing.T) {
			cfg.Caller, cfg.Target, cfg.Environment, cfg.Key = "frontend", "financial-api", transport.Production, d.frontend1
			s, err := transport.NewSigner(cfg)
			require.NoError(t, err)
			req := newRequest(t, "GET", "https://x/a", "", nil)
			err = s.Sign(req)
			var ce *transport.ComponentError
			require.ErrorAs(t, err, &ce)
			require.Empty(t, req.Header.Get(transport.HeaderSignature))
		})
	}
	// At the edges: the first and the last millisecond a timestamp can name.
	for _, ms := range []int64{0, 999_999_999_999_999} {
		s, err := transport.NewSigner(transport.SignerConfig{Caller: "frontend", Target: "financial-api",
			Environment: transport.Production, Key: d.frontend1, Clock: func() time.Time { return time.UnixMilli(ms) }})
		require.NoError(t, err)
		req := newRequest(t, "GET", "https://x/a", "", nil)
		require.NoError(t, s.Sign(req))
		require.Equal(t, strconv.FormatInt(ms, 10), req.Header.Get(transport.HeaderTimestamp))
	}
}

// TestTLS12ClientFails: the server helper refuses a TLS 1.2-only client, and
// the client helper refuses a TLS 1.2-only server.
func TestTLS12ClientFails(t *testing.T) {
	cnt := &counter{}
	ca, err := testcerts.NewCA("test-ca")
	require.NoError(t, err)
	srv, client := tlsServer(t, cnt, ca, false, nil)
	old := client.Transport.(*http.Transport).TLSClientConfig.Clone()
	old.MinVersion, old.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	c12 := newClient(t, old)
	_, err = c12.Get(srv.URL)
	require.Error(t, err)
	// The client receives the server's alert: OpError{Op: "remote error",
	// Err: protocol_version (70, RFC 8446 §6)}; crypto/tls does not export
	// the received alert's type, only its uint8 value.
	var opErr *net.OpError
	require.ErrorAs(t, err, &opErr)
	require.Equal(t, "remote error", opErr.Op)
	require.Equal(t, reflect.Uint8, reflect.ValueOf(opErr.Err).Kind())
	require.EqualValues(t, 70, reflect.ValueOf(opErr.Err).Uint())
	require.Zero(t, cnt.n.Load())

	// The helper client completes TLS 1.3.
	resp, err := client.Get(srv.URL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, uint16(tls.VersionTLS13), resp.TLS.Version)
	require.EqualValues(t, 1, cnt.n.Load())

	// ...and refuses a server that stops at TLS 1.2.
	srv12 := httpsServer12(t, ca, cnt)
	resp, err = newClient(t, client.Transport.(*http.Transport).TLSClientConfig).Get(srv12)
	if resp != nil {
		resp.Body.Close()
	}
	require.Error(t, err)
	require.EqualValues(t, 1, cnt.n.Load())
	// Control: a default client reaches it, so the refusal above is the version pin.
	ok := &tls.Config{RootCAs: ca.Pool}
	resp, err = newClient(t, ok).Get(srv12)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, uint16(tls.VersionTLS12), resp.TLS.Version)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// httpsServer12 serves TLS 1.2 at most, with a certificate from ca.
func httpsServer12(t *testing.T, ca *testcerts.CA, h http.Handler) string {
	cert, err := ca.Server(nil, nil)
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}
