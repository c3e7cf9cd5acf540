package soak_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tink-crypto/tink-go/v2/daead"
	"github.com/tink-crypto/tink-go/v2/hybrid"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/lifenavigator/crossservice/envelope"
	"github.com/lifenavigator/crossservice/fieldcrypt"
	"github.com/lifenavigator/crossservice/internal/refdto"
	"github.com/lifenavigator/crossservice/internal/testcerts"
	"github.com/lifenavigator/crossservice/internal/testredis"
	"github.com/lifenavigator/crossservice/transport"
	"github.com/lifenavigator/crossservice/transport/client"
)

// The deployment: billing (two replicas) verifies; checkout seals orders for
// it and may POST and GET; reporting may only GET; ops alone may read
// /admin/stats and never calls.
const (
	service     = refdto.Recipient // "billing"
	checkout    = refdto.Sender    // "checkout"
	reporting   = "reporting"
	ops         = "ops"
	trustDomain = "soak.internal"

	// Bookkeeping headers of the harness, not signed: the handler counts its
	// runs by them, and nothing else reads them.
	hdrSeq  = "X-Soak-Seq"
	hdrKind = "X-Soak-Kind"
)

// Timeouts, generous for -race on two shared cores.
const (
	callTimeout   = 4 * time.Second        // one client call, retries included
	perTryTimeout = 2 * time.Second        // one attempt
	rawTimeout    = 3 * time.Second        // one raw request
	redisTimeout  = time.Second            // each Redis call of the verifier (default 100 ms)
	breakerOpen   = 500 * time.Millisecond // how long an open breaker waits before probing
)

// maxConnsPerHost bounds each caller's connections to each replica.
const maxConnsPerHost = 16

// kind is what a request is, which decides its expected outcome.
type kind uint8

const (
	kindPost    kind = iota // valid sealed POST /orders through the client
	kindGet                 // valid GET /orders/{id} through the client
	kindGenuine             // the untampered original of a tampered request, sent raw after it
	kindReplay              // a captured accepted request, sent raw to the other replica
	kindTamper              // one body byte or one signed header changed
	kindUnauth              // a valid signature on a route that does not admit the caller
	kindStale               // signed with the retired key
	numKinds
)

var kindNames = [numKinds]string{"post", "get", "genuine", "replay", "tamper", "unauth", "stale"}

func (k kind) String() string { return kindNames[k] }

// valid: the request must be accepted, except while Redis is down.
func (k kind) valid() bool { return k <= kindGenuine }

func parseKind(s string) (kind, bool) {
	for k, n := range kindNames {
		if n == s {
			return kind(k), true
		}
	}
	return 0, false
}

// receipt is billing's sealed answer to POST /orders.
type receipt struct {
	OrderID string `json:"order_id" share:"checkout"`
	Seq     int64  `json:"seq" share:"checkout"`
}

// orderView is billing's plain answer to GET /orders/{id}.
type orderView struct {
	ID     string `json:"id"`
	Caller string `json:"caller"`
}

func orderID(seq int64) string { return "soak-" + strconv.FormatInt(seq, 10) }

// ledger is what the handlers saw, per request sequence number. Sized at
// the start for the maximum request count, so that it does not grow.
type ledger struct {
	kinds      []kind         // written by the request's sender; numKinds: never sent
	posted     []bool         // written by the request's sender: a POST /orders
	clientOK   []bool         // written by the request's sender: a checked 2xx
	admitted   []atomic.Int32 // handler runs for this request
	admittedBy [numKinds]atomic.Int64
	noSeq      atomic.Int64 // handler runs without a usable sequence number
	opened     atomic.Int64 // sealed bodies POST /orders opened
	openFailed atomic.Int64
}

func newLedger(n int) *ledger {
	l := &ledger{kinds: make([]kind, n), posted: make([]bool, n), clientOK: make([]bool, n), admitted: make([]atomic.Int32, n)}
	for i := range l.kinds {
		l.kinds[i] = numKinds
	}
	return l
}

// faults is the state of the fault schedule that raw replays depend on.
type faults struct {
	// mu: replays hold it for reading while they pick a capture and send
	// it; the schedule holds it for writing to bump gen or retire the key,
	// so that a replay's expected outcome cannot change under it.
	mu sync.RWMutex
	// gen changes just before Redis is stopped and just before it is
	// restarted: a request that saw the same gen before and after its 2xx
	// consumed its id in the Redis instance that the same gen now reaches.
	gen     atomic.Int64
	retired atomic.Bool  // the old keys are retired on both replicas
	stopAt  atomic.Int64 // Unix ns of Redis's stop, 0 before
	backAt  atomic.Int64 // Unix ns at which Redis answered again, 0 before
	// firstOK is the end of the first accepted valid request begun after
	// backAt: how long recovery took.
	firstOK atomic.Int64
	grace   time.Duration
}

// outage reports whether a request that ran from start to end overlapped
// Redis's outage, extended by grace after its return (go-redis redials
// within about a second; an open client breaker probes after breakerOpen).
func (f *faults) outage(start, end time.Time) bool {
	s := f.stopAt.Load()
	if s == 0 || end.UnixNano() < s {
		return false
	}
	b := f.backAt.Load()
	return b == 0 || start.UnixNano() <= b+int64(f.grace)
}

// rotation tracks the calls that may still sign with an old key.
type rotation struct {
	mu      sync.Mutex
	rotated bool
	old     sync.WaitGroup // calls begun before the switch
}

// begin registers a call that signs; call the result when it is over.
func (r *rotation) begin() func() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rotated {
		return func() {}
	}
	r.old.Add(1)
	return r.old.Done
}

// rotate runs switchKeys with no call beginning meanwhile: every call begun
// after it signs with the new keys.
func (r *rotation) rotate(switchKeys func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switchKeys()
	r.rotated = true
}

// drain waits for the calls begun before the switch.
func (r *rotation) drain() { r.old.Wait() }

// capture is one accepted request as it went on the wire.
type capture struct {
	caller       string
	replica      int
	method, path string
	header       http.Header
	body         []byte
	gen          int64
	replays      int // guarded by the ring's mu
}

// ring keeps the last captures, a fixed number.
type ring struct {
	mu   sync.Mutex
	buf  [128]*capture
	next int
}

func (r *ring) put(c *capture) {
	r.mu.Lock()
	r.buf[r.next%len(r.buf)] = c
	r.next++
	r.mu.Unlock()
}

// pick returns a capture of generation gen, starting at a random slot, one
// never replayed if there is one (a first replay is the one that tests the
// store shared by the replicas); nil if there is none. first: it was never
// replayed.
func (r *ring) pick(gen int64, start int) (c *capture, first bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range len(r.buf) {
		x := r.buf[(start+i)%len(r.buf)]
		if x == nil || x.gen != gen {
			continue
		}
		if x.replays == 0 {
			c = x
			break
		}
		if c == nil {
			c = x
		}
	}
	if c == nil {
		return nil, false
	}
	c.replays++
	return c, c.replays == 1
}

func (r *ring) clear() {
	r.mu.Lock()
	r.buf = [len(r.buf)]*capture{}
	r.mu.Unlock()
}

// captureRT records every other request of valid kinds that gets a 2xx,
// as sent, for replays.
type captureRT struct {
	base   http.RoundTripper
	h      *harness
	caller string
}

func (c *captureRT) RoundTrip(req *http.Request) (*http.Response, error) {
	seq, err := strconv.ParseInt(req.Header.Get(hdrSeq), 10, 64)
	if err != nil || seq%2 != 0 {
		return c.base.RoundTrip(req)
	}
	gen := c.h.faults.gen.Load()
	var body []byte
	if req.Body != nil && req.Body != http.NoBody && req.GetBody != nil {
		if rc, err := req.GetBody(); err == nil {
			body, _ = io.ReadAll(rc)
			rc.Close()
		}
	}
	header := req.Header.Clone()
	resp, err := c.base.RoundTrip(req)
	if err == nil && resp.StatusCode/100 == 2 && c.h.faults.gen.Load() == gen {
		c.h.ring.put(&capture{caller: c.caller, replica: c.h.replicaOf(req.URL.Host), method: req.Method,
			path: req.URL.RequestURI(), header: header, body: body, gen: gen})
	}
	return resp, err
}

// refusalLog counts the verifiers' refusal log lines by code and check.
type refusalLog struct {
	mu sync.Mutex
	n  map[string]int
}

func (l *refusalLog) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelWarn }
func (l *refusalLog) WithAttrs([]slog.Attr) slog.Handler            { return l }
func (l *refusalLog) WithGroup(string) slog.Handler                 { return l }

func (l *refusalLog) Handle(_ context.Context, r slog.Record) error {
	code, check := r.Message, ""
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "code":
			code = a.Value.String()
		case "check":
			check = a.Value.String()
		}
		return true
	})
	l.mu.Lock()
	l.n[code+"/"+check]++
	l.mu.Unlock()
	return nil
}

// redisLog counts go-redis's log lines (a failed dial per connection
// attempt while Redis is down) instead of printing them.
type redisLog struct{ n atomic.Int64 }

func (l *redisLog) Printf(context.Context, string, ...any) { l.n.Add(1) }

// replica is one instance of billing: a server whose handler (a verifier
// and its routes) can be replaced while it runs.
type replica struct {
	srv     *httptest.Server
	rdb     *redis.Client
	store   *transport.RedisReplayStore
	limiter *transport.RedisLimiter
	mux     atomic.Pointer[http.ServeMux]
}

func (r *replica) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.mux.Load().ServeHTTP(w, req) }

// caller is one calling service: its keys, signer, connections and clients.
type caller struct {
	name     string
	old, new transport.Key
	signer   *transport.Signer
	base     *http.Transport // shared by its clients and its raw requests
	raw      *http.Client
	clients  [2]*client.Client // one per replica, plain JSON (GET)
	sealed   [2]*client.Client // checkout only: sealing for billing
}

// harness is the whole deployment and the bookkeeping of one soak run.
type harness struct {
	cfg      config
	rs       *testredis.Server
	ca       *testcerts.CA
	replicas [2]*replica
	callers  map[string]*caller
	opsKey   transport.Key
	stale    *transport.Signer // checkout with its old key, once retired
	checkout *fieldcrypt.Codec // seals orders for billing, opens receipts
	billing  *fieldcrypt.Codec // opens orders, seals receipts

	t0       time.Time // start of the load, for offsets in reports
	seq      atomic.Int64
	led      *ledger
	faults   faults
	rot      rotation
	ring     ring
	refusals refusalLog
	redisLog redisLog
	st       stats
}

func newHarness(t *testing.T, cfg config) *harness {
	t.Helper()
	rs := testredis.Start(t)
	h := &harness{cfg: cfg, rs: rs, callers: map[string]*caller{}, led: newLedger(cfg.maxRequests), t0: time.Now()}
	h.faults.grace = 3 * time.Second
	h.refusals.n = map[string]int{}
	redis.SetLogger(&h.redisLog) // process-wide: this test binary holds only the soak
	h.st.init()
	var err error
	if h.ca, err = testcerts.NewCA("soak-ca"); err != nil {
		t.Fatal(err)
	}
	h.opsKey = newKey(t, "ops-1")
	for _, name := range []string{checkout, reporting} {
		c := &caller{name: name, old: newKey(t, name+"-2025"), new: newKey(t, name+"-2026")}
		if c.signer, err = transport.NewSigner(transport.SignerConfig{Caller: name, Target: service,
			Environment: transport.Production, Key: c.old}); err != nil {
			t.Fatal(err)
		}
		h.callers[name] = c
	}
	if h.stale, err = transport.NewSigner(transport.SignerConfig{Caller: checkout, Target: service,
		Environment: transport.Production, Key: h.callers[checkout].old}); err != nil {
		t.Fatal(err)
	}
	h.checkout, h.billing = newCodecs(t)

	serverCert, err := h.ca.Server(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range h.replicas {
		r := &replica{}
		if r.rdb, err = transport.NewRedisClient(rs.URL()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.rdb.Close() })
		if r.store, err = transport.NewRedisReplayStore(transport.RedisReplayConfig{Client: r.rdb, Timeout: redisTimeout}); err != nil {
			t.Fatal(err)
		}
		if r.limiter, err = transport.NewRedisLimiter(transport.RedisLimiterConfig{Client: r.rdb, Service: service,
			Environment: transport.Production, Default: transport.Rate{Limit: 1e6, Burst: 1e6}, Timeout: redisTimeout}); err != nil {
			t.Fatal(err)
		}
		mux, err := h.newMux(r, false)
		if err != nil {
			t.Fatal(err)
		}
		r.mux.Store(mux)
		r.srv = httptest.NewUnstartedServer(r)
		r.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		if r.srv.TLS, err = transport.ServerTLSConfig([]tls.Certificate{serverCert}, h.ca.Pool); err != nil {
			t.Fatal(err)
		}
		r.srv.StartTLS()
		t.Cleanup(r.srv.Close)
		h.replicas[i] = r
	}

	for _, c := range h.callers {
		cert, err := h.ca.Client(trustDomain, c.name)
		if err != nil {
			t.Fatal(err)
		}
		tlsCfg, err := transport.ClientTLSConfig(h.ca.Pool, &cert)
		if err != nil {
			t.Fatal(err)
		}
		c.base = &http.Transport{
			TLSClientConfig:     tlsCfg,
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			TLSHandshakeTimeout: 2 * time.Second,
			MaxConnsPerHost:     maxConnsPerHost, // excess requests wait for one
			MaxIdleConnsPerHost: maxConnsPerHost,
			IdleConnTimeout:     30 * time.Second,
		}
		t.Cleanup(c.base.CloseIdleConnections)
		c.raw = &http.Client{Transport: c.base, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		for i, r := range h.replicas {
			newClient := func(codec client.Codec) *client.Client {
				cl, err := client.New(client.Config{BaseURL: r.srv.URL, Codec: codec, Transport: client.TransportConfig{
					Target:        service,
					Base:          &captureRT{base: c.base, h: h, caller: c.name},
					Signer:        c.signer,
					Retry:         client.RetryPolicy{MaxAttempts: 3},
					Breaker:       client.BreakerPolicy{OpenTimeout: breakerOpen},
					PerTryTimeout: perTryTimeout,
					Hooks:         client.Hooks{OnRetry: h.st.retry, OnBreakerStateChange: h.breaker},
				}})
				if err != nil {
					t.Fatal(err)
				}
				return cl
			}
			c.clients[i] = newClient(nil)
			if c.name == checkout {
				c.sealed[i] = newClient(h.checkout)
			}
		}
	}
	return h
}

func newKey(t *testing.T, id string) transport.Key {
	t.Helper()
	var b [32]byte
	rand.Read(b[:])
	k, err := transport.NewKey(id, []byte(hex.EncodeToString(b[:])))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newCodecs returns checkout's and billing's codecs, on fresh keysets.
func newCodecs(t *testing.T) (checkoutCodec, billingCodec *fieldcrypt.Codec) {
	t.Helper()
	hpke := func() (envelope.Identity, envelope.Recipient) {
		priv, err := keyset.NewHandle(hybrid.DHKEM_X25519_HKDF_SHA256_HKDF_SHA256_AES_256_GCM_Key_Template())
		if err != nil {
			t.Fatal(err)
		}
		pub, err := priv.Public()
		if err != nil {
			t.Fatal(err)
		}
		id, err := envelope.NewHPKEIdentity(priv)
		if err != nil {
			t.Fatal(err)
		}
		to, err := envelope.NewHPKERecipient(pub)
		if err != nil {
			t.Fatal(err)
		}
		return id, to
	}
	checkoutID, toCheckout := hpke()
	billingID, toBilling := hpke()
	det, err := keyset.NewHandle(daead.AESSIVKeyTemplate())
	if err != nil {
		t.Fatal(err)
	}
	if checkoutCodec, err = fieldcrypt.New(fieldcrypt.Config{Self: checkout, Identity: checkoutID,
		Recipients: map[string]fieldcrypt.Recipient{service: {To: toBilling, Deterministic: det}}}); err != nil {
		t.Fatal(err)
	}
	if billingCodec, err = fieldcrypt.New(fieldcrypt.Config{Self: service, Identity: billingID, Deterministic: det,
		Recipients: map[string]fieldcrypt.Recipient{checkout: {To: toCheckout}}}); err != nil {
		t.Fatal(err)
	}
	return checkoutCodec, billingCodec
}

// keyEntries is billing's keyring: each caller's old and new key, the old
// ones retired once retired is set.
func (h *harness) keyEntries(retired bool) []transport.KeyEntry {
	var e []transport.KeyEntry
	for _, name := range []string{checkout, reporting} {
		c := h.callers[name]
		e = append(e, transport.KeyEntry{Caller: name, Key: c.old, Retired: retired}, transport.KeyEntry{Caller: name, Key: c.new})
	}
	return append(e, transport.KeyEntry{Caller: ops, Key: h.opsKey})
}

// newMux builds a replica's verifier and routes.
func (h *harness) newMux(r *replica, retired bool) (*http.ServeMux, error) {
	v, err := transport.New(transport.Config{
		Service:     service,
		Environment: transport.Production,
		Keys:        h.keyEntries(retired),
		ReplayStore: r.store,
		Limiter:     r.limiter,
		TrustDomain: trustDomain,
		Logger:      slog.New(&h.refusals),
	})
	if err != nil {
		return nil, err
	}
	onlyCheckout, err := v.Require(checkout)
	if err != nil {
		return nil, err
	}
	readers, err := v.Require(checkout, reporting)
	if err != nil {
		return nil, err
	}
	onlyOps, err := v.Require(ops)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /orders", onlyCheckout(http.HandlerFunc(h.postOrder)))
	mux.Handle("GET /orders/{id}", readers(http.HandlerFunc(h.getOrder)))
	mux.Handle("GET /admin/stats", onlyOps(http.HandlerFunc(h.adminStats)))
	return mux, nil
}

func (h *harness) replicaOf(host string) int {
	if h.replicas[1].srv.Listener.Addr().String() == host {
		return 1
	}
	return 0
}

// admit records a handler run and returns the request's sequence number.
func (h *harness) admit(r *http.Request) int64 {
	k, ok := parseKind(r.Header.Get(hdrKind))
	seq, err := strconv.ParseInt(r.Header.Get(hdrSeq), 10, 64)
	if !ok || err != nil || seq < 0 || seq >= int64(len(h.led.admitted)) {
		h.led.noSeq.Add(1)
		return -1
	}
	h.led.admittedBy[k].Add(1)
	h.led.admitted[seq].Add(1)
	return seq
}

func (h *harness) postOrder(w http.ResponseWriter, r *http.Request) {
	seq := h.admit(r)
	var o refdto.Order
	if _, err := transport.OpenRequest(r, h.billing, &o); err != nil {
		h.led.openFailed.Add(1)
		var oe *transport.OpenError
		if errors.As(err, &oe) {
			oe.WriteProblem(w, r)
			return
		}
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h.led.opened.Add(1)
	if err := transport.WriteSealed(w, r, h.billing, http.StatusCreated, &receipt{OrderID: o.ID, Seq: seq}); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
	}
}

func (h *harness) getOrder(w http.ResponseWriter, r *http.Request) {
	h.admit(r)
	c, _ := transport.CallerFrom(r.Context())
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(orderView{ID: r.PathValue("id"), Caller: c.Service})
}

func (h *harness) adminStats(w http.ResponseWriter, r *http.Request) {
	h.admit(r)
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, "{}\n")
}

// next returns a fresh sequence number, or -1 once the maximum is reached.
func (h *harness) next() int64 {
	s := h.seq.Add(1) - 1
	if s >= int64(h.cfg.maxRequests) {
		return -1
	}
	return s
}

// result is what one request got.
type result struct {
	status int    // 0: no response
	label  string // "2xx", "401 replay_detected", "breaker_open"...
	ok     bool   // a 2xx whose body is what was asked for
	redis  bool   // refused because Redis was unavailable (or a breaker such refusals opened)
}

func isRedisCode(c transport.Code) bool {
	return c == transport.CodeReplayStoreUnavailable || c == transport.CodeRateLimiterUnavailable
}

// clientResult classifies what a client call returned; ok tells whether a
// nil error came with the expected body.
func clientResult(err error, ok bool) result {
	if err == nil {
		if !ok {
			return result{status: 200, label: "2xx with an unexpected body"}
		}
		return result{status: 200, label: "2xx", ok: true}
	}
	var ce *client.Error
	switch {
	case !errors.As(err, &ce):
		return result{label: "local error: " + err.Error()}
	case ce.Kind == client.KindBreakerOpen:
		return result{label: "breaker_open", redis: true}
	case ce.Problem != nil && ce.Problem.Code != "":
		return result{status: ce.Status, label: fmt.Sprintf("%d %s", ce.Status, ce.Problem.Code), redis: isRedisCode(ce.Problem.Code)}
	case ce.Status/100 == 2:
		return result{status: ce.Status, label: "2xx with a bad body: " + ce.Error()}
	}
	return result{status: ce.Status, label: ce.Kind.String() + ": " + ce.Error()}
}

// sendRaw sends one prepared request through caller's connections and
// returns the result and, for a 2xx, the body.
func (h *harness) sendRaw(c *caller, rep int, method, path string, header http.Header, body []byte) (result, []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), rawTimeout)
	defer cancel()
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.replicas[rep].srv.URL+path, rd)
	if err != nil {
		return result{label: "local error: " + err.Error()}, nil
	}
	req.Header = header
	resp, err := c.raw.Do(req)
	if err != nil {
		return result{label: "transport error: " + err.Error()}, nil
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return result{status: resp.StatusCode, label: "2xx, body unreadable"}, nil
		}
		return result{status: resp.StatusCode, label: "2xx"}, b
	}
	p, err := transport.ParseProblem(resp)
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return result{status: resp.StatusCode, label: strconv.Itoa(resp.StatusCode) + " without a problem document"}, nil
	}
	return result{status: resp.StatusCode, label: fmt.Sprintf("%d %s", resp.StatusCode, p.Code), redis: isRedisCode(p.Code)}, nil
}

// stats are the client side's counts.
type stats struct {
	mu          sync.Mutex
	outcomes    [numKinds]map[string]int // by label
	outageLost  map[string]int           // valid requests refused in the outage, by label
	outageOther int                      // other requests refused for Redis in the outage
	falseAccept int
	unexpected  int
	samples     []string // the first unexpected outcomes
	lastLoss    time.Time
	retries     map[string]int // client retries by reason
	breakerOpen int            // client breakers opened
	breakerOdd  int            // of which outside the Redis outage
	fallbacks   int            // replays without a capture of the current Redis, sent as POSTs
}

func (s *stats) init() {
	for i := range s.outcomes {
		s.outcomes[i] = map[string]int{}
	}
	s.outageLost, s.retries = map[string]int{}, map[string]int{}
}

func (s *stats) retry(ri client.RetryInfo) {
	s.mu.Lock()
	s.retries[ri.Reason]++
	s.mu.Unlock()
}

func (h *harness) breaker(bc client.BreakerChange) {
	if bc.To != client.BreakerOpen {
		return
	}
	now := time.Now()
	odd := !h.faults.outage(now, now)
	h.st.mu.Lock()
	h.st.breakerOpen++
	if odd {
		h.st.breakerOdd++
	}
	h.st.mu.Unlock()
}

// record judges one request: k its kind, want its expected label when it
// is refused (valid requests: "2xx").
func (h *harness) record(seq int64, k kind, start, end time.Time, res result, want string) {
	h.recordAs(seq, k, start, end, res, want, "")
}

// recordAs is record that counts the outcome under its label + detail.
func (h *harness) recordAs(seq int64, k kind, start, end time.Time, res result, want, detail string) {
	h.led.kinds[seq] = k
	outage := res.redis && h.faults.outage(start, end)
	if k.valid() && res.ok {
		h.led.clientOK[seq] = true
		if b := h.faults.backAt.Load(); b != 0 && start.UnixNano() > b {
			h.faults.firstOK.CompareAndSwap(0, end.UnixNano())
		}
	}
	s := &h.st
	s.mu.Lock()
	defer s.mu.Unlock()
	label := res.label + detail
	if outage {
		label += " (Redis outage)"
	}
	s.outcomes[k][label]++
	bad := ""
	switch {
	case !k.valid() && res.status/100 == 2:
		s.falseAccept++
		bad = "FALSE ACCEPT"
	case k.valid() && res.ok, !k.valid() && res.label == want:
	case outage && k.valid():
		s.outageLost[res.label]++
		s.lastLoss = end
	case outage:
		s.outageOther++
	case k.valid():
		bad = "valid request lost"
	default:
		bad = "unexpected outcome"
	}
	if bad != "" {
		s.unexpected++
		if len(s.samples) < 20 {
			s.samples = append(s.samples, fmt.Sprintf("%s: seq %d %s%s at +%v: got %q, want %q",
				bad, seq, k, detail, start.Sub(h.t0).Round(time.Millisecond), res.label, want))
		}
	}
}

// step sends the request(s) of sequence number seq; the mix is fixed per
// 20: 7 POST, 5 GET, 3 replays, 3 tampered (one of them stale once the old
// keys are retired), 2 unauthorized.
func (h *harness) step(seq int64, rnd uint64) {
	switch slot := seq % 20; {
	case slot < 7:
		h.post(seq, int(rnd&1))
	case slot < 12:
		c := checkout
		if rnd&2 != 0 {
			c = reporting
		}
		h.get(seq, h.callers[c], int(rnd&1))
	case slot < 15:
		h.replay(seq, rnd)
	case slot < 18:
		h.tamper(seq, rnd, slot == 17 && h.faults.retired.Load())
	default:
		h.unauth(seq, rnd)
	}
}

func (h *harness) post(seq int64, rep int) {
	done := h.rot.begin()
	defer done()
	h.led.posted[seq] = true
	o := refdto.Sample()
	o.ID = orderID(seq)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	s := strconv.FormatInt(seq, 10)
	var rc receipt
	start := time.Now()
	err := h.callers[checkout].sealed[rep].Post(ctx, "/orders", &o, &rc,
		client.IdempotencyKey(o.ID), client.Header(hdrSeq, s), client.Header(hdrKind, kindPost.String()))
	h.record(seq, kindPost, start, time.Now(), clientResult(err, rc.OrderID == o.ID && rc.Seq == seq), "2xx")
}

func (h *harness) get(seq int64, c *caller, rep int) {
	done := h.rot.begin()
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	var v orderView
	start := time.Now()
	err := c.clients[rep].Get(ctx, "/orders/"+orderID(seq), &v,
		client.Header(hdrSeq, strconv.FormatInt(seq, 10)), client.Header(hdrKind, kindGet.String()))
	h.record(seq, kindGet, start, time.Now(), clientResult(err, v.ID == orderID(seq) && v.Caller == c.name), "2xx")
}

// unauth: reporting POSTs an order, or checkout reads /admin/stats.
func (h *harness) unauth(seq int64, rnd uint64) {
	done := h.rot.begin()
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	opts := []client.CallOption{client.Header(hdrSeq, strconv.FormatInt(seq, 10)), client.Header(hdrKind, kindUnauth.String())}
	rep := int(rnd & 1)
	start := time.Now()
	var err error
	if rnd&2 != 0 {
		h.led.posted[seq] = true
		err = h.callers[reporting].clients[rep].Post(ctx, "/orders", &orderView{ID: orderID(seq)}, nil, opts...)
	} else {
		err = h.callers[checkout].clients[rep].Get(ctx, "/admin/stats", nil, opts...)
	}
	h.record(seq, kindUnauth, start, time.Now(), clientResult(err, false), "403 service_not_authorized")
}

// replay sends a captured accepted request again, to the other replica. It
// falls back to a valid POST when no capture of the current Redis instance
// exists (at the start, and after the restart).
func (h *harness) replay(seq int64, rnd uint64) {
	h.faults.mu.RLock()
	c, first := h.ring.pick(h.faults.gen.Load(), int(rnd%128))
	if c == nil {
		h.faults.mu.RUnlock()
		h.st.mu.Lock()
		h.st.fallbacks++
		h.st.mu.Unlock()
		h.post(seq, int(rnd&1))
		return
	}
	defer h.faults.mu.RUnlock()
	want := "401 replay_detected"
	if h.faults.retired.Load() && c.header.Get("X-Key-Id") == h.callers[c.caller].old.ID() {
		want = "401 signature_invalid" // refused for its key before its id is looked up
	}
	h.led.posted[seq] = c.method == http.MethodPost
	header := c.header.Clone()
	header.Set(hdrSeq, strconv.FormatInt(seq, 10))
	header.Set(hdrKind, kindReplay.String())
	start := time.Now()
	res, _ := h.sendRaw(h.callers[c.caller], 1-c.replica, c.method, c.path, header, c.body)
	detail := " (again)"
	if first {
		detail = " (first)"
	}
	h.recordAs(seq, kindReplay, start, time.Now(), res, want, detail)
}

// A tampering changes one thing that the signature covers.
type tampering uint8

const (
	tamperBody        tampering = iota // one byte of the sealed body
	tamperContentType                  // a parameter added
	tamperTimestamp                    // one millisecond earlier
	tamperRequestID                    // its last hex digit
	tamperPath                         // one byte appended
	tamperKeyID                        // the caller's other key id
	tamperCaller                       // the other caller's name (the mTLS certificate still names the sender)
	numTamperings
)

var tamperNames = [numTamperings]string{"body", "content_type", "timestamp", "request_id", "path", "key_id", "caller"}

// signed returns a request signed by signer: method, path, headers, body.
func (h *harness) signed(signer *transport.Signer, seq int64, post bool) (string, string, http.Header, []byte, error) {
	method, path := http.MethodGet, "/orders/"+orderID(seq)
	var body []byte
	if post {
		o := refdto.Sample()
		o.ID = orderID(seq)
		var err error
		if body, err = h.checkout.Seal(&o, service); err != nil {
			return "", "", nil, nil, err
		}
		method, path = http.MethodPost, "/orders"
	}
	req, err := http.NewRequest(method, "https://"+service+".internal"+path, bytes.NewReader(body))
	if err != nil {
		return "", "", nil, nil, err
	}
	if post {
		req.Header.Set("Content-Type", transport.EnvelopeMediaType)
	}
	if err := signer.Sign(req); err != nil {
		return "", "", nil, nil, err
	}
	if !post {
		body = nil
	}
	return method, path, req.Header, body, nil
}

// tamper sends a tampered request, then its untampered original to the same
// replica, which must be accepted: the refusal consumed nothing. With stale,
// it sends instead a request signed with checkout's retired key.
func (h *harness) tamper(seq int64, rnd uint64, stale bool) {
	done := h.rot.begin()
	defer done()
	rep := int(rnd & 1)
	c := h.callers[checkout]
	post := rnd&2 != 0
	if !post && rnd&4 != 0 {
		c = h.callers[reporting]
	}
	signer := c.signer
	if stale {
		c, signer = h.callers[checkout], h.stale // its certificate must name the signer
	}
	method, path, header, body, err := h.signed(signer, seq, post)
	now := time.Now()
	if err != nil {
		h.record(seq, kindTamper, now, now, result{label: "local error: " + err.Error()}, "")
		return
	}
	header.Set(hdrSeq, strconv.FormatInt(seq, 10))
	h.led.posted[seq] = post
	if stale {
		header.Set(hdrKind, kindStale.String())
		start := time.Now()
		res, _ := h.sendRaw(c, rep, method, path, header, body)
		h.record(seq, kindStale, start, time.Now(), res, "401 signature_invalid")
		return
	}

	var applicable []tampering
	for tp := range numTamperings {
		if (tp == tamperBody || tp == tamperContentType) && !post || tp == tamperPath && post {
			continue
		}
		applicable = append(applicable, tp)
	}
	tp := applicable[int(rnd>>8)%len(applicable)]
	th, tbody, tpath := header.Clone(), body, path
	th.Set(hdrKind, kindTamper.String())
	want := "401 signature_invalid"
	switch tp {
	case tamperBody:
		tbody = bytes.Clone(body)
		tbody[len(tbody)/2] ^= 0x01
	case tamperContentType:
		th.Set("Content-Type", header.Get("Content-Type")+"; charset=utf-8")
	case tamperTimestamp:
		ts, _ := strconv.ParseInt(header.Get("X-Timestamp"), 10, 64)
		th.Set("X-Timestamp", strconv.FormatInt(ts-1, 10))
	case tamperRequestID:
		id := []byte(header.Get("X-Request-Id"))
		if id[len(id)-1] == '0' {
			id[len(id)-1] = '1'
		} else {
			id[len(id)-1] = '0'
		}
		th.Set("X-Request-Id", string(id))
	case tamperPath:
		tpath += "x"
	case tamperKeyID:
		other := c.new.ID()
		if header.Get("X-Key-Id") == other {
			other = c.old.ID()
		}
		th.Set("X-Key-Id", other)
	case tamperCaller:
		other := reporting
		if c.name == reporting {
			other = checkout
		}
		th.Set("X-Service-Name", other)
		want = "403 identity_mismatch"
	}
	start := time.Now()
	res, _ := h.sendRaw(c, rep, method, tpath, th, tbody)
	h.recordAs(seq, kindTamper, start, time.Now(), res, want, " ("+tamperNames[tp]+")")

	seq2 := h.next()
	if seq2 < 0 {
		return
	}
	// The original, renumbered for the ledger (the header is not signed).
	h.led.posted[seq2] = post
	header.Set(hdrSeq, strconv.FormatInt(seq2, 10))
	header.Set(hdrKind, kindGenuine.String())
	start = time.Now()
	res, b := h.sendRaw(c, rep, method, path, header, body)
	if res.status/100 == 2 {
		if post {
			var rc receipt
			_, err := h.checkout.OpenFrom(service, b, &rc)
			res.ok = err == nil && rc.OrderID == orderID(seq) && rc.Seq == seq2
		} else {
			var v orderView
			res.ok = json.Unmarshal(b, &v) == nil && v.ID == orderID(seq) && v.Caller == c.name
		}
		if !res.ok {
			res.label = "2xx with an unexpected body"
		}
	}
	h.record(seq2, kindGenuine, start, time.Now(), res, "2xx")
}
