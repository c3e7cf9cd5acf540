package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/lifenavigator/crossservice/transport"
	"github.com/lifenavigator/crossservice/transport/client"
	"github.com/lifenavigator/crossservice/transport/devcert"
)

// certs is one development CA with certificates for the test services, and a
// second, unrelated CA: made once, shared by the TLS tests.
var certs = sync.OnceValues(func() ([2]*devcert.Set, error) {
	a, err := devcert.Generate([]string{"frontend", "financial-service"}, devcert.Options{})
	if err != nil {
		return [2]*devcert.Set{}, err
	}
	b, err := devcert.Generate([]string{"financial-service"}, devcert.Options{TrustDomain: "other.example"})
	return [2]*devcert.Set{a, b}, err
})

// tlsServer starts h over TLS 1.3 (transport.ServerTLSConfig) with the
// financial-service certificate of set i.
func tlsServer(t testing.TB, i int, h http.Handler, mod func(*tls.Config)) *httptest.Server {
	t.Helper()
	sets, err := certs()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := transport.ServerTLSConfig([]tls.Certificate{sets[i].Services["financial-service"]}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if mod != nil {
		mod(cfg)
	}
	s := httptest.NewUnstartedServer(h)
	s.TLS = cfg
	s.Config.ErrorLog = discardLog
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// tlsBase is a keep-alive transport trusting CA set 0, TLS 1.3 only
// (transport.ClientTLSConfig).
func tlsBase(t testing.TB, mod func(*tls.Config)) *http.Transport {
	t.Helper()
	sets, err := certs()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := transport.ClientTLSConfig(sets[0].Pool(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if mod != nil {
		mod(cfg)
	}
	tr := &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 64, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// TestFailureKinds maps each failure to its Kind and Retryable flag, through
// the typed Client and through a plain http.Client (whose *url.Error must
// still lead errors.As to the *client.Error).
func TestFailureKinds(t *testing.T) {
	type setup struct {
		url string
		mod func(*client.Config)
		ctx func() (context.Context, context.CancelFunc)
		// warm runs on the client before the call under test.
		warm func(t *testing.T, c *client.Client)
	}
	deadline := func(d time.Duration) func() (context.Context, context.CancelFunc) {
		return func() (context.Context, context.CancelFunc) { return context.WithTimeout(context.Background(), d) }
	}
	single := func(c *client.Config) { c.Transport.Retry.MaxAttempts = 1 }
	statusServer := func(t *testing.T, status int, code string, header ...string) string {
		return server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i+1 < len(header); i += 2 {
				w.Header().Set(header[i], header[i+1])
			}
			problem(w, status, code)
		})).URL
	}
	var h hits
	for _, tc := range []struct {
		name      string
		setup     func(t *testing.T) setup
		kind      client.Kind
		retryable bool
		status    int  // expected Error.Status
		response  bool // a plain http.Client gets a response, not an error
		is        error
	}{
		{"connection refused", func(t *testing.T) setup { return setup{url: "http://" + closedPort(t)} },
			client.KindTransport, true, 0, false, nil},
		{"connection reset", func(t *testing.T) setup { return setup{url: "http://" + resetListener(t, &h)} },
			client.KindTransport, true, 0, false, nil},
		{"503", func(t *testing.T) setup { return setup{url: statusServer(t, 503, "unavailable"), mod: single} },
			client.KindRemote, true, 503, true, nil},
		{"500", func(t *testing.T) setup { return setup{url: statusServer(t, 500, "internal")} },
			client.KindRemote, false, 500, true, nil},
		{"404", func(t *testing.T) setup { return setup{url: statusServer(t, 404, "not_found")} },
			client.KindRemote, false, 404, true, nil},
		{"401 signature_invalid", func(t *testing.T) setup { return setup{url: statusServer(t, 401, "signature_invalid")} },
			client.KindRemote, false, 401, true, nil},
		{"429 not retried (MaxAttempts 1)", func(t *testing.T) setup {
			return setup{url: statusServer(t, 429, "rate_limited", "Retry-After", "1"), mod: single}
		}, client.KindRateLimited, true, 429, true, nil},
		{"429 Retry-After beyond cap", func(t *testing.T) setup {
			return setup{url: statusServer(t, 429, "rate_limited", "Retry-After", "60")}
		}, client.KindRateLimited, true, 429, false, client.ErrRetryAfterTooLong},
		{"breaker open", func(t *testing.T) setup {
			return setup{url: statusServer(t, 502, "bad_gateway"), mod: func(c *client.Config) {
				single(c)
				c.Transport.Breaker.Failures = 1
			}, warm: func(t *testing.T, c *client.Client) {
				if e := asError(t, c.Get(context.Background(), "/", nil)); e.Status != 502 {
					t.Fatalf("warm-up: %v", e)
				}
			}}
		}, client.KindBreakerOpen, true, 0, false, client.ErrBreakerOpen},
		{"client-side rate limit", func(t *testing.T) setup {
			return setup{url: server(t, always(200, &h)).URL, ctx: deadline(50 * time.Millisecond), mod: func(c *client.Config) {
				c.Transport.RateLimit = client.RateLimit{PerSecond: 0.001, Burst: 1}
			}, warm: func(t *testing.T, c *client.Client) {
				if err := c.Get(context.Background(), "/", nil); err != nil {
					t.Fatalf("warm-up: %v", err)
				}
			}}
		}, client.KindRateLimited, true, 0, false, client.ErrLocalRateLimit},
		{"per-try timeout", func(t *testing.T) setup {
			return setup{url: server(t, hangFirst(1000, &h)).URL, mod: func(c *client.Config) {
				single(c)
				c.Transport.PerTryTimeout = 50 * time.Millisecond
			}}
		}, client.KindTimeout, true, 0, false, client.ErrPerTryTimeout},
		{"caller deadline", func(t *testing.T) setup {
			return setup{url: server(t, hangFirst(1000, &h)).URL, ctx: deadline(50 * time.Millisecond)}
		}, client.KindTimeout, true, 0, false, context.DeadlineExceeded},
		{"canceled", func(t *testing.T) setup {
			return setup{url: server(t, hangFirst(1000, &h)).URL, ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(50*time.Millisecond, cancel)
				return ctx, cancel
			}}
		}, client.KindCanceled, false, 0, false, context.Canceled},
		{"TLS untrusted certificate", func(t *testing.T) setup {
			u := tlsServer(t, 1, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ok(w) }), nil).URL
			return setup{url: u, mod: func(c *client.Config) { c.Transport.Base = tlsBase(t, nil) }}
		}, client.KindTLS, false, 0, false, nil},
		{"TLS name mismatch", func(t *testing.T) setup {
			u := tlsServer(t, 0, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ok(w) }), nil).URL
			return setup{url: u, mod: func(c *client.Config) {
				c.Transport.Base = tlsBase(t, func(tc *tls.Config) { tc.ServerName = "analytics-service" })
			}}
		}, client.KindTLS, false, 0, false, nil},
		{"TLS 1.2 server", func(t *testing.T) setup {
			u := tlsServer(t, 0, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ok(w) }),
				func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12 }).URL
			return setup{url: u, mod: func(c *client.Config) { c.Transport.Base = tlsBase(t, nil) }}
		}, client.KindTLS, false, 0, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.setup(t)
			newCtx := s.ctx
			if newCtx == nil {
				newCtx = func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }
			}
			check := func(via string, err error) {
				t.Helper()
				e := asError(t, err)
				if e.Kind != tc.kind || e.Retryable() != tc.retryable || e.Status != tc.status {
					t.Errorf("%s: kind %v retryable %v status %d; want %v %v %d (%v)", via, e.Kind, e.Retryable(), e.Status,
						tc.kind, tc.retryable, tc.status, err)
				}
				if tc.is != nil && !errors.Is(err, tc.is) {
					t.Errorf("%s: %v is not %v", via, err, tc.is)
				}
				if e.Target != "financial-service" || e.Method != http.MethodGet {
					t.Errorf("%s: target %q method %q", via, e.Target, e.Method)
				}
				if tc.status != 0 && (e.Problem == nil || e.Problem.Status != tc.status || e.Problem.Code == "") {
					t.Errorf("%s: problem %+v", via, e.Problem)
				}
				t.Logf("%s: %v", via, err)
			}

			prepare := func() *client.Client {
				c := newClient(t, s.url, s.mod)
				if s.warm != nil {
					s.warm(t, c)
				}
				return c
			}
			c := prepare()
			ctx, cancel := newCtx()
			err := c.Get(ctx, "/accounts", nil)
			cancel()
			check("Client.Get", err)

			// The same through http.Client.Do: *url.Error around the *Error.
			c = prepare()
			ctx, cancel = newCtx()
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/accounts", nil)
			resp, err := (&http.Client{Transport: c.Transport()}).Do(req)
			if tc.response {
				if err != nil {
					t.Fatalf("http.Client: %v, want a response", err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.status {
					t.Fatalf("http.Client: status %d", resp.StatusCode)
				}
				return
			}
			var ue *url.Error
			if !errors.As(err, &ue) {
				t.Fatalf("http.Client returned %T, want *url.Error", err)
			}
			check("http.Client.Do", err)
		})
	}
}

var discardLog = log.New(io.Discard, "", 0)
