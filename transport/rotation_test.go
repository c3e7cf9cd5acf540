package transport_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lifenavigator/crossservice/internal/testcerts"
	"github.com/lifenavigator/crossservice/transport"
)

// TestKeyRotationUnderLoad: old and new keys are both active; signers switch
// to the new key mid-run; not one request fails. Afterwards the old key is
// retired and refused with its own log reason.
func TestKeyRotationUnderLoad(t *testing.T) {
	oldKey := mustKey(t, "2026-01", secretFrontend1)
	newKey := mustKey(t, "2026-04", secretFrontend2)
	logs := &logBuffer{}
	v, err := transport.New(transport.Config{
		Service: "financial-api", Environment: transport.Production,
		Keys: []transport.KeyEntry{
			{Caller: "frontend", Key: oldKey},
			{Caller: "frontend", Target: "financial-api", Key: newKey},
		},
		Logger: logs.logger(),
	})
	require.NoError(t, err)
	cnt := &counter{}
	srv, client := tlsServer(t, v.Middleware(cnt), nil, false, nil)

	signer := newSigner(t, "frontend", "financial-api", transport.Production, oldKey, "", time.Now)
	const workers, perWorker = 8, 60
	var failures atomic.Int64
	var sent atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				if sent.Add(1) == workers*perWorker/2 {
					require.NoError(t, signer.SetKey(newKey)) // mid-run switch
				}
				body := fmt.Appendf(nil, `{"w":%d,"i":%d}`, w, i)
				req, err := http.NewRequest("POST", srv.URL+"/v1/transfers", bytes.NewReader(body))
				if err != nil {
					failures.Add(1)
					continue
				}
				req.Header.Set("Content-Type", "application/json")
				if err := signer.Sign(req); err != nil {
					failures.Add(1)
					continue
				}
				resp, err := client.Do(req)
				if err != nil {
					failures.Add(1)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	require.Zero(t, failures.Load(), "requests lost during rotation")
	require.EqualValues(t, workers*perWorker, cnt.n.Load())
	require.Positive(t, cnt.keys["2026-01"], "old key used before the switch")
	require.Positive(t, cnt.keys["2026-04"], "new key used after the switch")
	require.Equal(t, "2026-04", signer.KeyID())

	// Phase 3: the old key is retired. A straggler still signing with it is
	// refused as signature_invalid, and the log says key_retired.
	v2, err := transport.New(transport.Config{
		Service: "financial-api", Environment: transport.Production,
		Keys: []transport.KeyEntry{
			{Caller: "frontend", Key: oldKey, Retired: true},
			{Caller: "frontend", Key: newKey},
		},
		Logger: logs.logger(),
	})
	require.NoError(t, err)
	srv2, client2 := tlsServer(t, v2.Middleware(cnt), nil, false, nil)
	straggler := newSigner(t, "frontend", "financial-api", transport.Production, oldKey, "", time.Now)
	req := newRequest(t, "GET", srv2.URL+"/v1/x", "", nil)
	require.NoError(t, straggler.Sign(req))
	st, p, _ := send(t, client2, req)
	require.Equal(t, 401, st)
	require.Equal(t, transport.CodeSignatureInvalid, p.Code)
	require.Contains(t, logs.String(), `"check":"key_retired"`)
	require.Contains(t, logs.String(), `"key_id":"2026-01"`)
}

// TestMTLSIdentity: with client CAs, the certificate's SPIFFE identity must
// equal the signed caller.
func TestMTLSIdentity(t *testing.T) {
	d := newDeployment(t)
	v, err := transport.New(d.config(time.Now))
	require.NoError(t, err)
	ca, err := testcerts.NewCA("mesh-ca")
	require.NoError(t, err)
	feCert, err := ca.Client("lifenavigator.internal", "frontend")
	require.NoError(t, err)
	anCert, err := ca.Client("lifenavigator.internal", "analytics-service")
	require.NoError(t, err)
	cnt := &counter{}
	fe := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", time.Now)

	srv, good := tlsServer(t, v.Middleware(cnt), ca, true, &feCert)
	do := func(c *http.Client) (int, *transport.Problem) {
		req := newRequest(t, "GET", srv.URL+"/v1/x", "", nil)
		require.NoError(t, fe.Sign(req))
		st, p, _ := send(t, c, req)
		return st, p
	}
	st, p := do(good)
	require.Equal(t, 200, st, "%v", p)

	// A valid certificate for another service, signing as frontend.
	other, err := transport.ClientTLSConfig(ca.Pool, &anCert)
	require.NoError(t, err)
	st, p = do(newClient(t, other))
	require.Equal(t, 403, st)
	require.Equal(t, transport.CodeIdentityMismatch, p.Code)
	require.EqualValues(t, 1, cnt.n.Load())

	// No certificate at all: the handshake fails.
	none, err := transport.ClientTLSConfig(ca.Pool, nil)
	require.NoError(t, err)
	req := newRequest(t, "GET", srv.URL+"/v1/x", "", nil)
	require.NoError(t, fe.Sign(req))
	resp, err := newClient(t, none).Do(req)
	if resp != nil {
		resp.Body.Close()
	}
	require.Error(t, err)
	require.EqualValues(t, 1, cnt.n.Load())
}

func TestServerTLSConfigPinsTLS13(t *testing.T) {
	ca, err := testcerts.NewCA("ca")
	require.NoError(t, err)
	cert, err := ca.Server(nil, nil)
	require.NoError(t, err)
	c, err := transport.ServerTLSConfig([]tls.Certificate{cert}, nil)
	require.NoError(t, err)
	require.Equal(t, uint16(tls.VersionTLS13), c.MinVersion)
	require.Equal(t, uint16(tls.VersionTLS13), c.MaxVersion)
	require.Equal(t, tls.NoClientCert, c.ClientAuth)
	c, err = transport.ServerTLSConfig([]tls.Certificate{cert}, ca.Pool)
	require.NoError(t, err)
	require.Equal(t, tls.RequireAndVerifyClientCert, c.ClientAuth)
	_, err = transport.ServerTLSConfig(nil, nil)
	require.ErrorIs(t, err, transport.ErrInvalidConfig)
	cc, err := transport.ClientTLSConfig(ca.Pool, nil)
	require.NoError(t, err)
	require.Equal(t, uint16(tls.VersionTLS13), cc.MinVersion)
	require.Equal(t, uint16(tls.VersionTLS13), cc.MaxVersion)
}

func TestSPIFFEIdentity(t *testing.T) {
	ca, err := testcerts.NewCA("ca")
	require.NoError(t, err)
	ok, err := ca.Client("example.org", "ns/prod/sa/frontend")
	require.NoError(t, err)
	id, err := transport.SPIFFEIdentity(ok.Leaf)
	require.NoError(t, err)
	require.Equal(t, "frontend", id)
	for _, bad := range []string{"Frontend", "ns/front--end", "ns/"} {
		c, err := ca.Client("example.org", bad)
		require.NoError(t, err)
		_, err = transport.SPIFFEIdentity(c.Leaf)
		require.ErrorIs(t, err, transport.ErrNoPeerIdentity, bad)
	}
	srvCert, err := ca.Server(nil, nil) // DNS/IP SANs only: no identity
	require.NoError(t, err)
	_, err = transport.SPIFFEIdentity(srvCert.Leaf)
	require.ErrorIs(t, err, transport.ErrNoPeerIdentity)
}

// TestConcurrentReplay: N identical signed requests at once through the TLS
// server; exactly one reaches the handler.
func TestConcurrentReplay(t *testing.T) {
	d := newDeployment(t)
	v, err := transport.New(d.config(time.Now))
	require.NoError(t, err)
	cnt := &counter{}
	srv, client := tlsServer(t, v.Middleware(cnt), nil, false, nil)
	client.Transport.(*http.Transport).MaxConnsPerHost = 0
	fe := newSigner(t, "frontend", "financial-api", transport.Production, d.frontend1, "", time.Now)
	body := []byte(`{"pay":1}`)
	signed := newRequest(t, "POST", srv.URL+"/v1/pay", "application/json", body)
	require.NoError(t, fe.Sign(signed))

	const n = 48
	var ok, replay, other atomic.Int64
	var start, wg sync.WaitGroup
	start.Add(1)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := newRequest(t, "POST", srv.URL+"/v1/pay", "application/json", body)
			for k, vs := range signed.Header {
				req.Header[k] = vs
			}
			start.Wait()
			resp, err := client.Do(req)
			if err != nil {
				other.Add(1)
				return
			}
			defer resp.Body.Close()
			switch resp.StatusCode {
			case 200:
				ok.Add(1)
			case 401:
				p, err := transport.ParseProblem(resp)
				if err == nil && p.Code == transport.CodeReplayDetected {
					replay.Add(1)
					return
				}
				other.Add(1)
			default:
				other.Add(1)
			}
		}()
	}
	start.Done()
	wg.Wait()
	require.EqualValues(t, 1, ok.Load())
	require.EqualValues(t, n-1, replay.Load())
	require.Zero(t, other.Load())
	require.EqualValues(t, 1, cnt.n.Load())
}

func TestMemoryReplayStore(t *testing.T) {
	ctx := t.Context()
	clk := newClock(t0)
	s, err := transport.NewMemoryReplayStore(transport.MemoryReplayConfig{MaxEntries: 3, Clock: clk.Now})
	require.NoError(t, err)
	fresh := func(k string, ttl time.Duration) bool {
		f, err := s.Consume(ctx, k, ttl)
		require.NoError(t, err)
		return f
	}
	require.True(t, fresh("a", time.Minute))
	require.False(t, fresh("a", time.Minute))
	require.True(t, fresh("b", 2*time.Minute))
	require.True(t, fresh("c", 3*time.Minute))

	// Full: refuses, never evicts an unexpired id early.
	_, err = s.Consume(ctx, "d", time.Minute)
	require.ErrorIs(t, err, transport.ErrReplayStoreFull)
	require.False(t, fresh("a", time.Minute), "a replay is still a replay when full")
	clk.Add(time.Minute - time.Nanosecond)
	_, err = s.Consume(ctx, "d", time.Minute)
	require.ErrorIs(t, err, transport.ErrReplayStoreFull)
	require.False(t, fresh("a", time.Minute), "held for its whole ttl")

	// Expired entries are pruned and their room reused.
	clk.Add(time.Nanosecond)
	require.Equal(t, 2, s.Len())
	require.True(t, fresh("d", time.Minute)) // b, c, d held
	_, err = s.Consume(ctx, "a", time.Minute)
	require.ErrorIs(t, err, transport.ErrReplayStoreFull)
	clk.Add(time.Minute) // t0+2m: b expires; d (1m ttl) is held until c expires at t0+3m
	require.Equal(t, 2, s.Len())
	require.True(t, fresh("a", time.Minute), "expired, so fresh again")
	require.False(t, fresh("c", time.Minute))
	require.False(t, fresh("d", time.Minute), "held longer than asked, never shorter")
	clk.Add(time.Minute) // t0+3m: c and d expire
	require.True(t, fresh("d", time.Minute))
	clk.Add(10 * time.Minute)
	require.Zero(t, s.Len())

	_, err = transport.NewMemoryReplayStore(transport.MemoryReplayConfig{MaxEntries: -1})
	require.ErrorIs(t, err, transport.ErrInvalidConfig)
	_, err = s.Consume(ctx, "x", 0)
	require.ErrorIs(t, err, transport.ErrInvalidConfig)
}

func TestMemoryReplayStoreConcurrent(t *testing.T) {
	s, err := transport.NewMemoryReplayStore(transport.MemoryReplayConfig{})
	require.NoError(t, err)
	const goroutines, keys = 16, 200
	var fresh [keys]atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range keys {
				f, err := s.Consume(t.Context(), strings.Repeat("k", k%7)+fmt.Sprint(k), time.Minute)
				if err == nil && f {
					fresh[k].Add(1)
				}
			}
		}()
	}
	wg.Wait()
	for k := range keys {
		require.EqualValues(t, 1, fresh[k].Load(), "key %d", k)
	}
}
