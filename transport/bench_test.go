package transport_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/lifenavigator/crossservice/transport"
)

// Floors first, then the code they bound. Goals (issue 3):
//   - SignVerify1KiB at most 2× FloorTwoHMAC1KiB (time per op);
//   - Sign1MiB and Verify1MiB at least 0.9× FloorSHA256_1MiB throughput;
//     SignVerify1MiB hashes the body once on each side, so its floor is
//     half the SHA-256 throughput.
// b.ReportAllocs everywhere: allocations per verify are Verify1KiB's.

var benchKeySecret = []byte(secretFrontend1)

func benchBody(n int) []byte { return bytes.Repeat([]byte("0123456789abcdef"), n/16) }

// FloorTwoHMAC1KiB: two raw HMAC-SHA256 computations over the same 1 KiB,
// each with a fresh crypto/hmac (one to sign, one to verify).
func BenchmarkFloorTwoHMAC1KiB(b *testing.B) {
	body := benchBody(1 << 10)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var sum [32]byte
	for b.Loop() {
		for range 2 {
			m := hmac.New(sha256.New, benchKeySecret)
			m.Write(body)
			m.Sum(sum[:0])
		}
	}
}

// FloorSHA256_1MiB: one SHA-256 pass over 1 MiB.
func BenchmarkFloorSHA256_1MiB(b *testing.B) {
	body := benchBody(1 << 20)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		sha256.Sum256(body)
	}
}

// FloorHMAC1MiB: one raw HMAC-SHA256 pass over 1 MiB.
func BenchmarkFloorHMAC1MiB(b *testing.B) {
	body := benchBody(1 << 20)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var sum [32]byte
	for b.Loop() {
		m := hmac.New(sha256.New, benchKeySecret)
		m.Write(body)
		m.Sum(sum[:0])
	}
}

type benchEnv struct {
	signer *transport.Signer
	clk    *clock
	h      http.Handler
	u      *url.URL
	body   []byte
	tls    *tls.ConnectionState
	w      discardWriter
}

type discardWriter struct {
	h      http.Header
	status int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(s int)           { d.status = s }

// benchStep is how far the benchmark clock moves per iteration: with the
// 2 s replay ttl of newBenchEnv the store holds a steady 100,000 live ids,
// pruning one and adding one per request, as a busy server's store does.
const benchStep = 20 * time.Microsecond

func newBenchEnv(b *testing.B, size int, scheme transport.Scheme, store transport.ReplayStore) *benchEnv {
	k, err := transport.NewKey("f1", benchKeySecret)
	if err != nil {
		b.Fatal(err)
	}
	clk := newClock(time.Now())
	if store == nil {
		store, err = transport.NewMemoryReplayStore(transport.MemoryReplayConfig{MaxEntries: 1 << 20, Clock: clk.Now})
		if err != nil {
			b.Fatal(err)
		}
	}
	cfg := transport.Config{Service: "financial-api", Environment: transport.Production,
		Keys: []transport.KeyEntry{{Caller: "frontend", Key: k}}, MaxBodyBytes: 2 << 20, ReplayStore: store,
		Window: time.Second, Clock: clk.Now}
	if scheme == transport.SchemeLegacy {
		cfg.LegacyCallers = []string{"frontend"}
	}
	v, err := transport.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	s, err := transport.NewSigner(transport.SignerConfig{Caller: "frontend", Target: "financial-api",
		Environment: transport.Production, Key: k, Scheme: scheme, Clock: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	u, _ := url.Parse("https://financial.internal/v1/accounts/42/transfers?dry_run=true")
	return &benchEnv{signer: s, clk: clk, h: v.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})),
		u: u, body: benchBody(size), tls: &tls.ConnectionState{Version: tls.VersionTLS13},
		w: discardWriter{h: http.Header{}}}
}

// request is what a client builds and what net/http's server hands over:
// one *http.Request stands for both here.
func (e *benchEnv) request() *http.Request {
	r := &http.Request{Method: "POST", URL: e.u, Header: http.Header{"Content-Type": {"application/json"}},
		ContentLength: int64(len(e.body)), RequestURI: "/v1/accounts/42/transfers?dry_run=true",
		RemoteAddr: "10.0.0.9:5000", TLS: e.tls}
	r.Body = &readerCloser{bytes.NewReader(e.body)}
	r.GetBody = func() (io.ReadCloser, error) { return &readerCloser{bytes.NewReader(e.body)}, nil }
	return r
}

type readerCloser struct{ *bytes.Reader }

func (readerCloser) Close() error { return nil }

func (e *benchEnv) verify(b *testing.B, r *http.Request) {
	r.Body = &readerCloser{bytes.NewReader(e.body)}
	e.w.status = 0
	e.h.ServeHTTP(&e.w, r)
}

func benchSignVerify(b *testing.B, size int, scheme transport.Scheme) {
	benchSignVerifyStore(b, size, scheme, nil)
}

// benchSignVerify signs and verifies one request per iteration. The
// *http.Request is built once and re-signed: Sign replaces its five headers
// with a new timestamp, request id and signature, as on a retry, so building
// the request (the caller's cost, not signing's) stays out of the figure.
func benchSignVerifyStore(b *testing.B, size int, scheme transport.Scheme, store transport.ReplayStore) {
	e := newBenchEnv(b, size, scheme, store)
	r := e.request()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	step := benchStep
	if scheme == transport.SchemeLegacy {
		// Legacy signs no request id: two identical requests in one
		// millisecond are the same request, and the second is a replay.
		step = time.Millisecond
	}
	for b.Loop() {
		e.clk.Add(step)
		if err := e.signer.Sign(r); err != nil {
			b.Fatal(err)
		}
		e.verify(b, r)
	}
	if st := e.w.status; st != 0 && st != 200 {
		b.Fatalf("last request answered %d", st)
	}
}

// SignVerify: Sign plus the whole middleware (replay store included).
func BenchmarkSignVerify1KiB(b *testing.B) { benchSignVerify(b, 1<<10, transport.SchemeV1) }
func BenchmarkSignVerify1MiB(b *testing.B) { benchSignVerify(b, 1<<20, transport.SchemeV1) }
func BenchmarkSignVerifyNoReplay1KiB(b *testing.B) {
	benchSignVerifyStore(b, 1<<10, transport.SchemeV1, alwaysFresh{})
}
func BenchmarkSignVerifyLegacy1KiB(b *testing.B) { benchSignVerify(b, 1<<10, transport.SchemeLegacy) }

func benchSign(b *testing.B, size int) {
	e := newBenchEnv(b, size, transport.SchemeV1, nil)
	r := e.request()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if err := e.signer.Sign(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign1KiB(b *testing.B) { benchSign(b, 1<<10) }
func BenchmarkSign1MiB(b *testing.B) { benchSign(b, 1<<20) }

// Verify: the middleware alone on one signed request, replays admitted
// (alwaysFresh) so the same request can be verified b.N times.
func benchVerify(b *testing.B, size int) {
	e := newBenchEnv(b, size, transport.SchemeV1, alwaysFresh{})
	r := e.request()
	if err := e.signer.Sign(r); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		e.verify(b, r)
	}
	if e.w.status != 0 {
		b.Fatalf("answered %d", e.w.status)
	}
}

func BenchmarkVerify1KiB(b *testing.B) { benchVerify(b, 1<<10) }
func BenchmarkVerify1MiB(b *testing.B) { benchVerify(b, 1<<20) }

// BenchmarkMemoryReplayStoreSteady: one prune and one insert per op with
// 100,000 live ids, the steady state of a busy replica.
func BenchmarkMemoryReplayStoreSteady(b *testing.B) {
	clk := newClock(t0)
	s, err := transport.NewMemoryReplayStore(transport.MemoryReplayConfig{MaxEntries: 1 << 20, Clock: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	const live = 100_000
	ttl := live * benchStep
	keys := make([]string, 1<<18)
	for i := range keys {
		keys[i] = "xsvc:replay:v1:production:financial-api:frontend:019b7a3e-8c00-7d2a-9f3b-" + strconv.FormatInt(1e11+int64(i), 10)
	}
	ctx := b.Context()
	for i := range live {
		clk.Add(benchStep)
		s.Consume(ctx, keys[i%len(keys)]+"w", ttl)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		clk.Add(benchStep)
		if _, err := s.Consume(ctx, keys[i%len(keys)]+strconv.Itoa(i/len(keys)), ttl); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
