package transport

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math/bits"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lifenavigator/crossservice/internal/names"
)

// Canonical header keys, as net/http stores them.
const (
	hdrRequestID   = "X-Request-Id"
	hdrTimestamp   = "X-Timestamp"
	hdrServiceName = "X-Service-Name"
	hdrSignature   = "X-Signature"
	hdrKeyID       = "X-Key-Id"
	hdrContentType = "Content-Type"
)

// Defaults of [Config].
const (
	DefaultWindow       = 5 * time.Minute
	DefaultMaxBodyBytes = 1 << 20
)

// Config configures [New]. Every zero value is documented; invalid values
// make New fail rather than being replaced.
type Config struct {
	// Service is this service's own name: the target every v1 signature
	// must name. Required. Never taken from the request.
	Service string
	// Environment is this deployment's stage, signed by v1 and deciding the
	// rules of [Environment]. Required (see [EnvironmentFromEnv]).
	Environment Environment
	// Keys are the callers' keys. Entries whose Target is set to another
	// service are ignored, so one key file may serve several services. A
	// caller is known when it has at least one entry here. Within one
	// caller, key ids must be unique across the entries this service uses.
	// Required: at least one caller.
	Keys []KeyEntry
	// LegacyCallers registers callers for the legacy algorithm instead of
	// v1. A caller is one or the other: a legacy-form request from a v1
	// caller, or the reverse, is refused (scheme_not_allowed), never
	// downgraded. Each name must have keys. Zero: every caller is v1.
	LegacyCallers []string
	// Window is how old X-Timestamp may be (zero: 5 minutes).
	Window time.Duration
	// FutureSkew is how far ahead of this server's clock X-Timestamp may be
	// (zero: Window, the original ±window). Must not exceed Window.
	FutureSkew time.Duration
	// MaxBodyBytes bounds the request body (zero: 1 MiB); larger bodies get
	// 413 body_too_large, before any is read when Content-Length says so.
	MaxBodyBytes int64
	// ReplayStore records accepted request ids for Window + FutureSkew (nil:
	// a [MemoryReplayStore] with its defaults, right for one replica only;
	// replicas share a [RedisReplayStore]).
	ReplayStore ReplayStore
	// Limiter limits each verified caller (nil: no rate limit).
	Limiter Limiter
	// LimitPerRoute gives each caller one budget per route instead of one
	// in all: the verifier calls [RouteLimiter.AllowRoute] with the
	// [http.ServeMux] pattern that routed the request, so wrap each route's
	// handler (mux.Handle(pattern, v.Middleware(h))), not the mux. Requires
	// a Limiter that implements [RouteLimiter]. Zero: per caller only.
	LimitPerRoute bool
	// FailOpen admits a request whose replay check or rate limit could not
	// be answered (the store or limiter returned an error other than
	// [ErrReplayStoreFull]), with an ERROR log line each time, instead of
	// answering 503. Such a request has no replay protection. Development
	// only: New refuses it in staging and production. Zero: fail closed.
	FailOpen bool
	// NonStrict admits requests without X-Signature (logged at WARN, no
	// caller in the context) for migrations. Refused in production. A
	// request that carries X-Signature is always fully verified. Zero:
	// strict, unsigned requests get 401 unsigned_request.
	NonStrict bool
	// PeerIdentity extracts the service name from a verified client
	// certificate (nil: [SPIFFEIdentity]). Used whenever the request came
	// over TLS with a verified client certificate.
	PeerIdentity func(*x509.Certificate) (string, error)
	// Clock returns the current time (nil: time.Now).
	Clock func() time.Time
	// Logger receives one line per refusal and per deprecated or unsigned
	// admission (nil: discard). Lines carry the failed check, caller,
	// request id, measured skew and a hash of the canonical string; never a
	// key, a signature or a body.
	Logger *slog.Logger
}

// Verifier checks signed requests; its [Verifier.Middleware] and
// [Verifier.Require] wrap handlers. Safe for concurrent use; the replay
// store and limiter are shared by every handler it wraps.
type Verifier struct {
	self      string
	env       Environment
	callers   map[string]*callerState
	windowMS  int64
	futureMS  int64
	ttl       time.Duration
	maxBody   int64
	replay    ReplayStore
	limiter   Limiter
	routeLim  RouteLimiter // non-nil with Config.LimitPerRoute
	failOpen  bool
	nonStrict bool
	peerID    func(*x509.Certificate) (string, error)
	clock     func() time.Time
	log       *slog.Logger
}

type callerState struct {
	name         string
	legacy       bool
	keys         map[string]keyRef // v1, by id
	all          []keyRef          // legacy candidates, in Config order
	replayPrefix string            // "xsvc:replay:<scheme>:<env>:<target>:<caller>:"
}

type keyRef struct {
	s       *keyState
	retired bool
}

// New validates cfg and returns a verifier.
func New(cfg Config) (*Verifier, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("transport: Config: "+format+": %w", append(a, ErrInvalidConfig)...)
	}
	if !names.Valid(cfg.Service) {
		return nil, bad("Service %q is not a service name", cfg.Service)
	}
	if _, err := ParseEnvironment(string(cfg.Environment)); err != nil {
		return nil, fmt.Errorf("transport: Config.Environment: %w", err)
	}
	if cfg.NonStrict && !cfg.Environment.AllowsNonStrict() {
		return nil, bad("NonStrict is not allowed in %s", cfg.Environment)
	}
	if cfg.FailOpen && cfg.Environment != Development {
		return nil, bad("FailOpen is not allowed in %s", cfg.Environment)
	}
	if cfg.Window < 0 || cfg.FutureSkew < 0 || cfg.MaxBodyBytes < 0 {
		return nil, bad("Window, FutureSkew and MaxBodyBytes must not be negative")
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.FutureSkew == 0 {
		cfg.FutureSkew = cfg.Window
	}
	if cfg.FutureSkew > cfg.Window {
		return nil, bad("FutureSkew %v exceeds Window %v", cfg.FutureSkew, cfg.Window)
	}
	if cfg.Window < time.Millisecond {
		return nil, bad("Window %v below 1ms", cfg.Window)
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	v := &Verifier{
		self:      cfg.Service,
		env:       cfg.Environment,
		callers:   make(map[string]*callerState),
		windowMS:  cfg.Window.Milliseconds(),
		futureMS:  cfg.FutureSkew.Milliseconds(),
		ttl:       cfg.Window + cfg.FutureSkew,
		maxBody:   cfg.MaxBodyBytes,
		replay:    cfg.ReplayStore,
		limiter:   cfg.Limiter,
		failOpen:  cfg.FailOpen,
		nonStrict: cfg.NonStrict,
		peerID:    cfg.PeerIdentity,
		clock:     cfg.Clock,
		log:       cfg.Logger,
	}
	if cfg.LimitPerRoute {
		rl, ok := cfg.Limiter.(RouteLimiter)
		if !ok {
			return nil, bad("LimitPerRoute needs a Limiter that implements RouteLimiter")
		}
		v.routeLim = rl
	}
	if v.replay == nil {
		s, err := NewMemoryReplayStore(MemoryReplayConfig{Clock: cfg.Clock})
		if err != nil {
			return nil, err
		}
		v.replay = s
	}
	if v.peerID == nil {
		v.peerID = SPIFFEIdentity
	}
	if v.clock == nil {
		v.clock = time.Now
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	for i := range cfg.Keys {
		e := &cfg.Keys[i]
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("transport: Config.Keys[%d]: %w", i, err)
		}
		if e.Target != "" && e.Target != cfg.Service {
			continue
		}
		cs := v.callers[e.Caller]
		if cs == nil {
			cs = &callerState{name: e.Caller, keys: make(map[string]keyRef)}
			v.callers[e.Caller] = cs
		}
		id := e.Key.s.id
		if _, dup := cs.keys[id]; dup {
			return nil, bad("Keys[%d]: caller %s has key id %q twice", i, e.Caller, id)
		}
		ref := keyRef{s: e.Key.s, retired: e.Retired}
		cs.keys[id] = ref
		cs.all = append(cs.all, ref)
	}
	if len(v.callers) == 0 {
		return nil, bad("no keys for any caller of %s", cfg.Service)
	}
	for _, c := range cfg.LegacyCallers {
		cs := v.callers[c]
		if cs == nil {
			return nil, bad("LegacyCallers: %q has no keys", c)
		}
		cs.legacy = true
	}
	for _, cs := range v.callers {
		scheme := "v1"
		if cs.legacy {
			scheme = "legacy"
		}
		cs.replayPrefix = "xsvc:replay:" + scheme + ":" + string(v.env) + ":" + v.self + ":" + cs.name + ":"
	}
	return v, nil
}

// Middleware verifies every request and admits any known caller. The
// handler reads the exact body bytes from r.Body (r.ContentLength is their
// length) and the caller from [CallerFrom]. As net/http requires anyway, the
// body must not be read after the handler returns: the buffers of large
// bodies are reused, and such a read fails with http.ErrBodyReadAfterClose.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return &guard{v: v, next: next}
}

// Require returns a middleware that verifies like [Verifier.Middleware] and
// then admits only the listed callers (the original requiredServices);
// others get 403 service_not_authorized. Every name must be a caller known
// to the verifier, so a misspelt name fails here instead of locking a
// service out (or in) at run time.
func (v *Verifier) Require(services ...string) (func(http.Handler) http.Handler, error) {
	if len(services) == 0 {
		return nil, fmt.Errorf("transport: Require: no services (use Middleware to admit any caller): %w", ErrInvalidConfig)
	}
	allowed := make(map[string]bool, len(services))
	for _, s := range services {
		if v.callers[s] == nil {
			return nil, fmt.Errorf("transport: Require: %q is not a known caller: %w", s, ErrInvalidConfig)
		}
		allowed[s] = true
	}
	return func(next http.Handler) http.Handler {
		return &guard{v: v, next: next, allowed: allowed}
	}, nil
}

// Caller is the verified identity of a request, found by [CallerFrom].
type Caller struct {
	Service   string // the verified X-Service-Name
	KeyID     string // id of the key that verified
	Scheme    Scheme
	RequestID string // X-Request-ID (unsigned for SchemeLegacy)
}

type callerCtxKey struct{}

// CallerFrom returns the caller the verifier authenticated for this request.
// ok is false for a request admitted unsigned in non-strict mode, and for a
// context that never went through a verifier.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerCtxKey{}).(*Caller)
	if !ok {
		return Caller{}, false
	}
	return *c, true
}

// callerCtx is context.WithValue(parent, callerCtxKey{}, &caller) in one
// allocation.
type callerCtx struct {
	context.Context
	caller Caller
}

func (c *callerCtx) Value(key any) any {
	if key == (callerCtxKey{}) {
		return &c.caller
	}
	return c.Context.Value(key)
}

type guard struct {
	v       *Verifier
	next    http.Handler
	allowed map[string]bool // nil: any known caller
}

// check carries what a refusal log line reports.
type check struct {
	reason    string
	caller    string
	requestID string
	keyID     string
	scheme    Scheme
	skewMS    int64
	hasSkew   bool
	canonHash string
	err       error // of the replay store or limiter
}

var sha256Pool = sync.Pool{New: func() any { return sha256.New() }}

// scratch holds the per-request working memory of signing and verifying.
// Pooled because the arrays would otherwise escape to the heap through the
// hash.Hash interface calls.
type scratch struct {
	buf   [1024]byte // canonical string; a longer one grows onto the heap
	sum   [sha256.Size]byte
	mac   [sha256.Size]byte
	want  [sha256.Size]byte
	hex   [2 * sha256.Size]byte
	probe [1]byte
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v := g.v
	var c check

	// 0. Transport.
	if r.TLS == nil && !v.env.AllowsPlainHTTP() && !isLocalRequest(r) {
		c.reason = "plain_http"
		v.refuse(w, r, CodeInsecureTransport, &c, 0)
		return
	}

	// 1. Headers present and well formed.
	h := r.Header
	if ids := h[hdrRequestID]; len(ids) == 1 && validLegacyRequestID(ids[0]) {
		c.requestID = ids[0] // echoed only when well formed (visible ASCII)
	}
	sigs := h[hdrSignature]
	if len(sigs) == 0 {
		if v.nonStrict {
			v.log.LogAttrs(r.Context(), slog.LevelWarn, "transport: unsigned request admitted (non-strict mode)",
				slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("remote", r.RemoteAddr))
			if r.Body != nil {
				r.Body = http.MaxBytesReader(w, r.Body, v.maxBody)
			}
			g.next.ServeHTTP(w, r)
			return
		}
		c.reason = "unsigned"
		v.refuse(w, r, CodeUnsignedRequest, &c, 0)
		return
	}
	var hv [5]string
	for i, k := range [...]string{hdrSignature, hdrServiceName, hdrTimestamp, hdrRequestID, hdrKeyID} {
		vals := h[k]
		switch {
		case len(vals) == 0 && k == hdrKeyID: // legacy form
		case len(vals) == 0:
			c.reason = "missing " + k
			v.refuse(w, r, CodeHeaderMissing, &c, 0)
			return
		case len(vals) > 1:
			c.reason = "duplicate " + k
			v.refuse(w, r, CodeHeaderMalformed, &c, 0)
			return
		default:
			hv[i] = vals[0]
		}
	}
	sigHex, caller, tsStr, reqID, keyID := hv[0], hv[1], hv[2], hv[3], hv[4]
	legacyForm := len(h[hdrKeyID]) == 0
	c.scheme = SchemeV1
	if legacyForm {
		c.scheme = SchemeLegacy
	}
	ts, tsOK := parseTimestamp(tsStr)
	switch {
	case !validSignature(sigHex):
		c.reason = "malformed " + hdrSignature
	case !names.Valid(caller):
		c.reason = "malformed " + hdrServiceName
	case !tsOK:
		c.reason = "malformed " + hdrTimestamp
	case !legacyForm && !validUUID(reqID), legacyForm && !validLegacyRequestID(reqID):
		c.reason = "malformed " + hdrRequestID
	case !legacyForm && !validKeyID(keyID):
		c.reason = "malformed " + hdrKeyID
	}
	if c.reason != "" {
		v.refuse(w, r, CodeHeaderMalformed, &c, 0)
		return
	}
	c.caller, c.keyID = caller, keyID
	var ctype string
	switch vals := h[hdrContentType]; len(vals) {
	case 0:
	case 1:
		ctype = textproto.TrimString(vals[0]) // a no-op behind net/http's parser
	default:
		c.reason = "duplicate Content-Type"
		v.refuse(w, r, CodeHeaderMalformed, &c, 0)
		return
	}
	if hasControl(ctype) {
		c.reason = "control byte in Content-Type"
		v.refuse(w, r, CodeHeaderMalformed, &c, 0)
		return
	}
	path, query, ok := requestTarget(r)
	if !ok || !validMethod(r.Method) || hasControl(path) || hasControl(query) {
		c.reason = "method or request target"
		v.refuse(w, r, CodeRequestMalformed, &c, 0)
		return
	}

	// 2. Caller known, scheme as registered, certificate identity.
	cs := v.callers[caller]
	if cs == nil {
		c.reason = "caller_unknown"
		v.refuse(w, r, CodeSignatureInvalid, &c, 0)
		return
	}
	if cs.legacy != legacyForm {
		c.reason = "scheme_mismatch"
		v.refuse(w, r, CodeSchemeNotAllowed, &c, 0)
		return
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		id, err := v.peerID(r.TLS.VerifiedChains[0][0])
		if err != nil || id != caller {
			c.reason = "peer_identity_mismatch"
			v.refuse(w, r, CodeIdentityMismatch, &c, 0)
			return
		}
	}

	// 3. Freshness.
	c.skewMS, c.hasSkew = v.clock().UnixMilli()-ts, true
	if c.skewMS > v.windowMS || -c.skewMS > v.futureMS {
		c.reason = "timestamp_out_of_window"
		v.refuse(w, r, CodeTimestampOutOfWindow, &c, 0)
		return
	}

	// 4. Body, bounded, hashed (v1) or MACed (legacy) in the same pass.
	if r.ContentLength > v.maxBody {
		c.reason = "content_length_over_limit"
		v.refuse(w, r, CodeBodyTooLarge, &c, 0)
		return
	}
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	buf := sc.buf[:0]
	var sink io.Writer
	var bodyDigest hash.Hash
	var legacyMACs []hash.Hash
	if legacyForm {
		prefix := appendLegacyPrefix(buf, r.Method, path, query, tsStr)
		legacyMACs = make([]hash.Hash, len(cs.all))
		for i, k := range cs.all {
			legacyMACs[i] = k.s.getMAC()
			legacyMACs[i].Write(prefix)
		}
		defer func() {
			for i, k := range cs.all {
				k.s.putMAC(legacyMACs[i])
			}
		}()
		sink = multiWriter(legacyMACs)
	} else {
		bodyDigest = sha256Pool.Get().(hash.Hash)
		bodyDigest.Reset()
		defer sha256Pool.Put(bodyDigest)
		sink = bodyDigest
	}
	body, tooLarge, err := readBody(r, v.maxBody, sink, sc.probe[:])
	defer putBodyBuf(body)
	if tooLarge {
		c.reason = "body_over_limit"
		v.refuse(w, r, CodeBodyTooLarge, &c, 0)
		return
	}
	if err != nil {
		c.reason = "body_read_error"
		v.refuse(w, r, CodeBodyUnreadable, &c, 0)
		return
	}

	// 5. Signature, constant time.
	want, got := sc.want[:], sc.mac[:0]
	hex.Decode(want, []byte(sigHex)) // validSignature checked the alphabet
	var used keyRef
	if legacyForm {
		for i, k := range cs.all {
			if hmac.Equal(legacyMACs[i].Sum(got), want) {
				used = k
				break
			}
		}
		if used.s == nil {
			c.reason = "signature_mismatch"
			c.canonHash = canonHash(appendLegacyPrefix(buf, r.Method, path, query, tsStr), body)
			v.refuse(w, r, CodeSignatureInvalid, &c, 0)
			return
		}
		c.keyID = used.s.id
		if used.retired {
			c.reason = "key_retired"
			v.refuse(w, r, CodeSignatureInvalid, &c, 0)
			return
		}
	} else {
		ref, ok := cs.keys[keyID]
		if !ok {
			c.reason = "key_unknown"
			v.refuse(w, r, CodeSignatureInvalid, &c, 0)
			return
		}
		if ref.retired {
			c.reason = "key_retired"
			v.refuse(w, r, CodeSignatureInvalid, &c, 0)
			return
		}
		bodyDigest.Sum(sc.sum[:0])
		canon := appendV1(buf, string(v.env), caller, v.self, keyID, tsStr, reqID, r.Method, path, query, ctype, &sc.sum)
		m := ref.s.getMAC()
		m.Write(canon)
		got = m.Sum(got)
		ref.s.putMAC(m)
		if !hmac.Equal(got, want) {
			c.reason = "signature_mismatch"
			c.canonHash = canonHash(canon, nil)
			v.refuse(w, r, CodeSignatureInvalid, &c, 0)
			return
		}
		used = ref
	}

	// 6. Replay, consumed only now that the request is authentic.
	replayID := reqID
	if legacyForm {
		replayID = sigHex // the legacy request id is not signed
	}
	var fresh bool
	if ms, ok := v.replay.(*MemoryReplayStore); ok {
		// The built-in store keeps a hash, not the key: no string needed.
		key := append(append(sc.buf[:0], cs.replayPrefix...), replayID...)
		fresh, err = ms.consume(maphashKey(ms, key), v.ttl)
	} else {
		fresh, err = v.replay.Consume(r.Context(), cs.replayPrefix+replayID, v.ttl)
	}
	switch {
	case errors.Is(err, ErrReplayStoreFull):
		c.reason = "replay_store_full"
		v.refuse(w, r, CodeReplayStoreFull, &c, time.Second)
		return
	case err != nil:
		c.reason, c.err = "replay_store_error", err
		if !v.failOpen {
			v.refuse(w, r, CodeReplayStoreUnavailable, &c, time.Second)
			return
		}
		v.failedOpen(r, &c)
	case !fresh:
		c.reason = "replay"
		v.refuse(w, r, CodeReplayDetected, &c, 0)
		return
	}

	// 7. Route access (requiredServices).
	if g.allowed != nil && !g.allowed[caller] {
		c.reason = "service_not_allowed_on_route"
		v.refuse(w, r, CodeServiceNotAuthorized, &c, 0)
		return
	}

	// 8. Rate limit.
	if v.limiter != nil {
		var ok bool
		var retry time.Duration
		if v.routeLim != nil {
			ok, retry, err = v.routeLim.AllowRoute(r.Context(), caller, r.Pattern)
		} else {
			ok, retry, err = v.limiter.Allow(r.Context(), caller)
		}
		switch {
		case err != nil:
			c.reason, c.err = "rate_limiter_error", err
			if !v.failOpen {
				v.refuse(w, r, CodeRateLimiterUnavailable, &c, time.Second)
				return
			}
			v.failedOpen(r, &c)
		case !ok:
			if retry < time.Second {
				retry = time.Second
			}
			c.reason = "rate_limited"
			v.refuse(w, r, CodeRateLimited, &c, retry)
			return
		}
	}

	// 9. The handler, with the exact body and the caller.
	if legacyForm {
		v.log.LogAttrs(r.Context(), slog.LevelWarn, "transport: deprecated legacy signature accepted",
			slog.String("caller", caller), slog.String("key_id", used.s.id), slog.String("request_id", reqID))
	}
	a := &admitted{ctx: callerCtx{Context: r.Context(),
		caller: Caller{Service: caller, KeyID: used.s.id, Scheme: c.scheme, RequestID: reqID}}}
	a.body.b = body
	r2 := r.WithContext(&a.ctx)
	defer a.body.closed.Store(true) // before the deferred putBodyBuf
	r2.Body = &a.body
	r2.ContentLength = int64(len(body))
	g.next.ServeHTTP(w, r2)
}

// admitted is what an admitted request carries, in one allocation.
type admitted struct {
	ctx  callerCtx
	body bodyReader
}

// bodyReader is the restored request body. Its bytes are valid until the
// handler returns, as net/http's Handler contract already requires ("it is
// not valid ... to read from the Request.Body after or concurrently with the
// completion of the ServeHTTP call"): buffers of large bodies are then
// reused, and a read after that returns http.ErrBodyReadAfterClose instead
// of another request's bytes. It has no WriteTo, so no slice of the buffer
// is ever handed out.
type bodyReader struct {
	b      []byte
	off    int
	closed atomic.Bool
}

func (r *bodyReader) Read(p []byte) (int, error) {
	if r.closed.Load() {
		return 0, http.ErrBodyReadAfterClose
	}
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

func (*bodyReader) Close() error { return nil }

// Bodies of at least minPooledBody bytes are read into buffers recycled
// by capacity class (powers of two), so that a stream of large requests does
// not cost a fresh zeroed allocation, and a garbage collection, each.
const minPooledBody = 64 << 10

var bodyPools [48]sync.Pool // index: log2(cap)

type pooledBuf struct{ b []byte }

// getBodyBuf returns an empty buffer with capacity at least n.
func getBodyBuf(n int64) []byte {
	if n < minPooledBody {
		return make([]byte, 0, n)
	}
	c := bits.Len64(uint64(n - 1)) // 1<<c >= n
	if c >= len(bodyPools) {
		return make([]byte, 0, n)
	}
	if pb, ok := bodyPools[c].Get().(*pooledBuf); ok {
		return pb.b[:0]
	}
	return make([]byte, 0, 1<<c)
}

// putBodyBuf recycles a buffer from getBodyBuf. Small ones are left to the
// garbage collector.
func putBodyBuf(b []byte) {
	c := cap(b)
	if c < minPooledBody || c&(c-1) != 0 || bits.Len64(uint64(c-1)) >= len(bodyPools) {
		return
	}
	bodyPools[bits.Len64(uint64(c-1))].Put(&pooledBuf{b: b[:0]})
}

const readChunk = 32 << 10

// readBody reads at most max bytes of r.Body into one buffer, writing each
// chunk to sink as it arrives. tooLarge: the body exceeds max. probe is a
// one-byte scratch slice.
func readBody(r *http.Request, max int64, sink io.Writer, probe []byte) (body []byte, tooLarge bool, err error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, false, nil
	}
	size := int64(512)
	if r.ContentLength > 0 {
		size = min(r.ContentLength, max+1)
	}
	buf := getBodyBuf(size)
	for {
		if len(buf) == cap(buf) {
			// Full: look for EOF before growing, so that a body of exactly
			// the announced length needs no second buffer.
			n, rerr := readNonEmpty(r.Body, probe[:1])
			if n == 0 {
				if rerr == io.EOF {
					return buf, false, nil
				}
				putBodyBuf(buf)
				return nil, false, rerr
			}
			if int64(len(buf)) >= max {
				putBodyBuf(buf)
				return nil, true, nil
			}
			nb := getBodyBuf(min(int64(cap(buf))*2, max+1))[:len(buf)]
			copy(nb, buf)
			putBodyBuf(buf)
			buf = append(nb, probe[0])
			sink.Write(probe[:1])
			if rerr == io.EOF {
				return buf, false, nil
			}
			if rerr != nil {
				putBodyBuf(buf)
				return nil, false, rerr
			}
			continue
		}
		// Read and hash at most readChunk at a time, so that the hash
		// reads bytes that are still in cache.
		end := min(cap(buf), len(buf)+readChunk)
		n, rerr := r.Body.Read(buf[len(buf):end])
		if n > 0 {
			sink.Write(buf[len(buf) : len(buf)+n])
			buf = buf[:len(buf)+n]
		}
		if int64(len(buf)) > max {
			putBodyBuf(buf)
			return nil, true, nil
		}
		if rerr == io.EOF {
			return buf, false, nil
		}
		if rerr != nil {
			putBodyBuf(buf)
			return nil, false, rerr
		}
	}
}

// readNonEmpty is Read that retries a (0, nil) result a few times.
func readNonEmpty(rd io.Reader, p []byte) (int, error) {
	for range 100 {
		if n, err := rd.Read(p); n > 0 || err != nil {
			return n, err
		}
	}
	return 0, io.ErrNoProgress
}

// multiWriter feeds one body to the MACs of every candidate legacy key.
type multiWriter []hash.Hash

func (m multiWriter) Write(p []byte) (int, error) {
	for _, h := range m {
		h.Write(p)
	}
	return len(p), nil
}

// canonHash is what logs show of a canonical string: the first 16 hex
// digits of its SHA-256. `xsvc sign --explain` prints the same on the client
// side, so the two can be compared without showing either string.
func canonHash(a, b []byte) string {
	d := sha256.New()
	d.Write(a)
	d.Write(b)
	var sum [sha256.Size]byte
	return hex.EncodeToString(d.Sum(sum[:0])[:8])
}

// CanonicalHash returns the 16 hex digits a verifier logs as
// canonical_sha256 for a canonical string (see [Components.Canonical]).
func CanonicalHash(canonical []byte) string { return canonHash(canonical, nil) }

// requestTarget returns the escaped path ("/" if empty) and raw query of the
// request target exactly as received: origin-form or absolute-form. Without
// RequestURI (a handler called directly, not through net/http's server) it
// falls back to r.URL, which is what the client sent for any URL that
// net/http would send.
func requestTarget(r *http.Request) (path, query string, ok bool) {
	uri := r.RequestURI
	if uri == "" {
		if r.URL == nil || r.URL.Opaque != "" {
			return "", "", false
		}
		path = r.URL.EscapedPath()
		if path == "" {
			path = "/"
		}
		return path, r.URL.RawQuery, true
	}
	if uri[0] != '/' {
		i := strings.Index(uri, "://")
		if i <= 0 {
			return "", "", false // "*" or authority-form
		}
		rest := uri[i+3:]
		j := strings.IndexAny(rest, "/?")
		if j < 0 {
			rest = ""
		} else {
			rest = rest[j:]
		}
		uri = rest
	}
	path, query, _ = strings.Cut(uri, "?")
	if path == "" {
		path = "/"
	}
	return path, query, true
}

// isLocalRequest: the peer is a loopback address or the listener a Unix
// socket.
func isLocalRequest(r *http.Request) bool {
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if _, unix := la.(*net.UnixAddr); unix {
			return true
		}
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	return ap.Addr().Unmap().IsLoopback()
}

func (v *Verifier) refuse(w http.ResponseWriter, r *http.Request, code Code, c *check, retry time.Duration) {
	if v.log.Enabled(r.Context(), slog.LevelWarn) {
		attrs := []slog.Attr{
			slog.String("code", string(code)),
			slog.String("check", c.reason),
			slog.String("caller", c.caller),
			slog.String("request_id", c.requestID),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.String("remote", r.RemoteAddr),
		}
		if c.scheme != "" {
			attrs = append(attrs, slog.String("scheme", string(c.scheme)))
		}
		if c.keyID != "" {
			attrs = append(attrs, slog.String("key_id", c.keyID))
		}
		if c.hasSkew {
			attrs = append(attrs, slog.Int64("skew_ms", c.skewMS))
		}
		if c.canonHash != "" {
			attrs = append(attrs, slog.String("canonical_sha256", c.canonHash))
		}
		if c.err != nil {
			attrs = append(attrs, slog.String("error", c.err.Error()))
		}
		v.log.LogAttrs(r.Context(), slog.LevelWarn, "transport: request refused", attrs...)
	}
	p := newProblem(code, c.requestID)
	p.RetryAfter = retry
	p.write(w)
}

// failedOpen logs a check skipped under Config.FailOpen (development only)
// and clears it from c, for the checks that follow.
func (v *Verifier) failedOpen(r *http.Request, c *check) {
	v.log.LogAttrs(r.Context(), slog.LevelError, "transport: check failed open (FailOpen, development)",
		slog.String("check", c.reason), slog.String("caller", c.caller),
		slog.String("request_id", c.requestID), slog.String("error", c.err.Error()))
	c.reason, c.err = "", nil
}
