package transport

import (
	"bytes"
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
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"slices"
	"strings"
	"sync"
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
	//
	// Two callers must not have the same secret: a key shared by two
	// callers cannot tell them apart, so each could sign as the other (and
	// pass the other's Require routes). New refuses it with a
	// [*SharedKeyError] unless AllowSharedKeys is set.
	Keys []KeyEntry
	// AllowSharedKeys lets several callers have the same secret, for a
	// migration from the original system's single INTERNAL_API_KEY. A
	// caller holding the shared key can then sign as any other that has it.
	// Refused in production. Zero: refused everywhere.
	AllowSharedKeys bool
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
	// ReplayStore records accepted request ids for Window + FutureSkew +
	// 1 ms, the whole interval in which a request is acceptable (nil: a
	// [MemoryReplayStore] with its defaults, right for one replica only;
	// replicas share a [RedisReplayStore]). A store that implements
	// [CallerReplayStore] is told the caller, and may bound each caller's
	// share (the MemoryReplayStore does).
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
	// NonStrict lets [Verifier.Middleware] admit requests without
	// X-Signature (logged at WARN, no caller in the context) for
	// migrations; the signing headers (X-Service-Name, X-Key-ID,
	// X-Request-ID, X-Timestamp) are removed from such a request, so that
	// no handler mistakes an unverified name for a caller. Routes guarded by
	// [Verifier.Require] still refuse them: a route that names its callers
	// needs one. Refused in production. A request that carries X-Signature
	// is always fully verified. Zero: strict, unsigned requests get 401
	// unsigned_request.
	NonStrict bool
	// PeerIdentity extracts the service name from a verified client
	// certificate (nil: [SPIFFEIdentity], checking TrustDomain). Used
	// whenever the request came over TLS with a verified client certificate.
	PeerIdentity func(*x509.Certificate) (string, error)
	// TrustDomain is the SPIFFE trust domain every client certificate's
	// spiffe:// ID must belong to (e.g. "lifenavigator.internal"), with the
	// default PeerIdentity; it must be a trust domain name (lowercase
	// letters, digits, '.', '-', '_'), and cannot be combined with a custom
	// PeerIdentity, which does its own checks. Zero: any trust domain, so
	// that, if the client CAs also issue certificates for other trust
	// domains (federation, a shared corporate CA), a certificate of
	// spiffe://other.example/frontend counts as frontend. Set it whenever
	// the client CAs are not dedicated to this one trust domain.
	TrustDomain string
	// Clock returns the current time (nil: time.Now).
	Clock func() time.Time
	// Logger receives one line per refusal and per deprecated or unsigned
	// admission (nil: discard). Lines carry the failed check, caller,
	// request id, measured skew, the body's length and a hash of the
	// canonical string without its body ([CanonicalHash]); never a key, a
	// signature or a body.
	Logger *slog.Logger
	// Metrics receives the Prometheus observations: requests by outcome,
	// verification latency, replay store and limiter errors (see
	// [Metrics]). One Metrics may be shared by many verifiers. nil: none
	// are recorded, at no cost.
	Metrics *Metrics
	// Hooks are called synchronously once per request the verifier admits
	// or refuses (see [Hooks]). Zero: none.
	Hooks Hooks
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
	memReplay *MemoryReplayStore // replay, when it is one
	callerRep CallerReplayStore  // replay, when it is one
	limiter   Limiter
	routeLim  RouteLimiter // non-nil with Config.LimitPerRoute
	failOpen  bool
	nonStrict bool
	peerID    func(*x509.Certificate) (string, error)
	clock     func() time.Time
	log       *slog.Logger
	metrics   *Metrics
	hooks     Hooks
	observe   bool // metrics or a hook is set
}

type callerState struct {
	name         string
	legacy       bool
	keys         map[string]keyRef // v1, by id
	all          []keyRef          // legacy candidates, in Config order
	replayPrefix string            // v1: "xsvc:replay:v1:<env>:<target>:<caller>:"; legacy: "xsvc:replay:legacy:<env>:<target>:"
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
	if cfg.AllowSharedKeys && cfg.Environment == Production {
		return nil, bad("AllowSharedKeys is not allowed in %s", cfg.Environment)
	}
	if cfg.TrustDomain != "" {
		if !validTrustDomain(cfg.TrustDomain) {
			return nil, bad("TrustDomain %q is not a SPIFFE trust domain name (lowercase letters, digits, '.', '-', '_')", cfg.TrustDomain)
		}
		if cfg.PeerIdentity != nil {
			return nil, bad("TrustDomain is checked by the default PeerIdentity only: check it in yours")
		}
		td := cfg.TrustDomain
		cfg.PeerIdentity = func(c *x509.Certificate) (string, error) { return spiffeIdentity(c, td) }
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
		self:     cfg.Service,
		env:      cfg.Environment,
		callers:  make(map[string]*callerState),
		windowMS: cfg.Window.Milliseconds(),
		futureMS: cfg.FutureSkew.Milliseconds(),
		// A request is acceptable while now_ms - timestamp lies in
		// [-FutureSkew, Window], now_ms being whole milliseconds: that is
		// Window + FutureSkew + 1 ms of real time, which the id must
		// outlive wherever in it the request arrived.
		ttl:       cfg.Window + cfg.FutureSkew + time.Millisecond,
		maxBody:   cfg.MaxBodyBytes,
		replay:    cfg.ReplayStore,
		limiter:   cfg.Limiter,
		failOpen:  cfg.FailOpen,
		nonStrict: cfg.NonStrict,
		peerID:    cfg.PeerIdentity,
		clock:     cfg.Clock,
		log:       cfg.Logger,
		metrics:   cfg.Metrics,
		hooks:     cfg.Hooks,
		observe:   cfg.Metrics != nil || cfg.Hooks.OnAdmitted != nil || cfg.Hooks.OnRefused != nil,
	}
	if cfg.LimitPerRoute {
		rl, ok := cfg.Limiter.(RouteLimiter)
		if !ok {
			return nil, bad("LimitPerRoute needs a Limiter that implements RouteLimiter")
		}
		v.routeLim = rl
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
	if err := sharedKeys(cfg.Keys, cfg.Service); err != nil && !cfg.AllowSharedKeys {
		return nil, err
	}
	for _, c := range cfg.LegacyCallers {
		cs := v.callers[c]
		if cs == nil {
			return nil, bad("LegacyCallers: %q has no keys", c)
		}
		cs.legacy = true
	}
	if v.replay == nil {
		// The per-caller share keeps one caller from locking the others out:
		// an equal share each, and at least a quarter of the store (a sole
		// caller has nobody to lock out, so it gets the whole store).
		rc := MemoryReplayConfig{Clock: cfg.Clock,
			MaxEntriesPerCaller: DefaultReplayEntries / min(len(v.callers), 4)}
		s, err := NewMemoryReplayStore(rc)
		if err != nil {
			return nil, err
		}
		v.replay = s
	}
	v.memReplay, _ = v.replay.(*MemoryReplayStore)
	v.callerRep, _ = v.replay.(CallerReplayStore)
	for _, cs := range v.callers {
		if cs.legacy {
			// Legacy signs neither the caller nor the request id: the key is
			// the signature alone, so that a captured request cannot be
			// replayed under the name of another caller with the same key.
			cs.replayPrefix = "xsvc:replay:legacy:" + string(v.env) + ":" + v.self + ":"
		} else {
			cs.replayPrefix = "xsvc:replay:v1:" + string(v.env) + ":" + v.self + ":" + cs.name + ":"
		}
	}
	return v, nil
}

// sharedKeys returns a [*SharedKeyError] when two callers of service have
// the same secret among the entries it uses. Secrets are compared through
// their SHA-256, at start-up only, so timing does not matter.
func sharedKeys(entries []KeyEntry, service string) error {
	type group struct{ callers []string }
	bySecret := make(map[[sha256.Size]byte]*group)
	var order []*group
	for i := range entries {
		e := &entries[i]
		if e.Target != "" && e.Target != service {
			continue
		}
		sum := sha256.Sum256(e.Key.s.secret)
		g := bySecret[sum]
		if g == nil {
			g = &group{}
			bySecret[sum] = g
			order = append(order, g)
		}
		if !slices.Contains(g.callers, e.Caller) {
			g.callers = append(g.callers, e.Caller)
		}
	}
	for _, g := range order {
		if len(g.callers) > 1 {
			return &SharedKeyError{Callers: g.callers}
		}
	}
	return nil
}

// Middleware verifies every request and admits any known caller. The
// handler reads the exact body bytes from r.Body (r.ContentLength is their
// length) and the caller from [CallerFrom]. As net/http requires anyway, the
// body must not be read after the handler returns: the buffers of large
// bodies are reused, and such a read fails with http.ErrBodyReadAfterClose.
//
// Guards of one verifier nest: a guard (Middleware or [Verifier.Require])
// that finds a request this verifier already verified, in an outer guard,
// only applies its own route check, so v.Middleware(mux) around routes
// wrapped by v.Require works, and so does the reverse. The outer guard does
// everything else (replay, rate limit) once. Guards of two different
// verifiers each verify fully.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return &guard{v: v, next: next}
}

// Require returns a middleware that verifies like [Verifier.Middleware] and
// then admits only the listed callers (the original requiredServices);
// others get 403 service_not_authorized. Unsigned requests are refused (401
// unsigned_request) even in non-strict mode: such a request has no caller
// to check. Every name must be a caller known to the verifier, so a
// misspelt name fails here instead of locking a service out (or in) at run
// time.
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

// verifiedCtxKey finds the *callerCtx of the innermost guard that admitted
// the request.
type verifiedCtxKey struct{}

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

// callerCtx is what a guard adds to the context of a request it admits,
// in one allocation: the caller (for CallerFrom) and the verifier (for
// nested guards).
type callerCtx struct {
	context.Context
	v        *Verifier
	unsigned bool // admitted unsigned in non-strict mode: no caller
	caller   Caller
}

func (c *callerCtx) Value(key any) any {
	switch key {
	case callerCtxKey{}:
		if !c.unsigned {
			return &c.caller
		}
	case verifiedCtxKey{}:
		return c
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
	bodyLen   int64
	hasBody   bool
	err       error // of the replay store or limiter
	// For Config.Metrics and Config.Hooks only (start is zero without them).
	start      time.Time
	verified   bool // the signature verified: caller is authentic
	failedOpen bool
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
	body  body
	// small holds the body of a request whose first chunk fits, so that
	// common small bodies cost no allocation; cleared after use.
	small [smallBody]byte
	// digest hashes the body a Signer signs: made on first use, then kept
	// with the scratch (one pool round trip fewer per signature).
	digest hash.Hash
}

// smallBody is the largest first chunk read into scratch.small.
const smallBody = 4 << 10

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v := g.v
	if vc, ok := r.Context().Value(verifiedCtxKey{}).(*callerCtx); ok && vc.v == v {
		g.nested(w, r, vc)
		return
	}
	var c check
	if v.observe {
		c.start = time.Now()
	}

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
		if v.nonStrict && g.allowed == nil {
			g.admitUnsigned(w, r, &c)
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

	// 4. Body: announced size, then (v1) the key, before any byte is read,
	// then the body, bounded, hashed (v1) or MACed (legacy) in one pass.
	if r.ContentLength > v.maxBody {
		c.reason = "content_length_over_limit"
		v.refuse(w, r, CodeBodyTooLarge, &c, 0)
		return
	}
	var used keyRef
	if !legacyForm {
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
		used = ref
	}
	st := verifying{c: c, cs: cs, used: used, legacyForm: legacyForm, caller: caller, sigHex: sigHex,
		tsStr: tsStr, reqID: reqID, keyID: keyID, ctype: ctype, path: path, query: query}
	g.verifyBody(w, r, &st)
}

// verifying carries a request from the header checks of [guard.ServeHTTP]
// to the body and signature checks of [guard.admit], and what release
// gives back once the handler has returned.
type verifying struct {
	c                                                       check
	cs                                                      *callerState
	used                                                    keyRef
	legacyForm                                              bool
	caller, sigHex, tsStr, reqID, keyID, ctype, path, query string

	sc         *scratch
	a          *admitted   // set once admitted: its body is closed first
	bodyDigest hash.Hash   // v1, from sha256Pool
	legacyMACs []hash.Hash // legacy, one per candidate key of cs
}

// verifyBody runs admit with the request's scratch memory and gives it
// back however admit ends (panics included). One deferred call and one
// return: the compiler open-codes it.
func (g *guard) verifyBody(w http.ResponseWriter, r *http.Request, st *verifying) {
	st.sc = scratchPool.Get().(*scratch)
	defer st.release()
	g.admit(w, r, st)
}

// release returns what the request borrowed. In this order: no reader can
// reach the body buffers once they are back in their pool.
func (st *verifying) release() {
	if st.bodyDigest != nil {
		sha256Pool.Put(st.bodyDigest)
	}
	for i, m := range st.legacyMACs {
		if m != nil {
			st.cs.all[i].s.putMAC(m)
		}
	}
	if st.a != nil {
		st.a.body.close()
	}
	sc := st.sc
	sc.body.release(sc.small[:])
	clear(sc.mac[:]) // the MAC this request should have carried
	scratchPool.Put(sc)
}

// admit checks the body, the signature, replay, route access and rate
// limit of a request whose headers ServeHTTP checked, and serves it.
func (g *guard) admit(w http.ResponseWriter, r *http.Request, st *verifying) {
	v, sc := g.v, st.sc
	c, cs, used, legacyForm := st.c, st.cs, st.used, st.legacyForm
	caller, sigHex, tsStr, reqID, keyID, ctype, path, query := st.caller, st.sigHex, st.tsStr, st.reqID, st.keyID, st.ctype, st.path, st.query
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
		st.legacyMACs = legacyMACs // put back by release
		sink = multiWriter(legacyMACs)
	} else {
		bodyDigest = sha256Pool.Get().(hash.Hash)
		bodyDigest.Reset()
		st.bodyDigest = bodyDigest // put back by release
		sink = bodyDigest
	}
	tooLarge, err := readBody(r.Body, r.ContentLength, v.maxBody, sink, sc.probe[:], sc.small[:], &sc.body)
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
	c.bodyLen, c.hasBody = sc.body.n, true

	// 5. Signature, constant time.
	want, got := sc.want[:], sc.mac[:0]
	hex.Decode(want, []byte(sigHex)) // validSignature checked the alphabet
	if legacyForm {
		for i, k := range cs.all {
			if hmac.Equal(legacyMACs[i].Sum(got), want) {
				used = k
				break
			}
		}
		if used.s == nil {
			c.reason = "signature_mismatch"
			c.canonHash = CanonicalHash(appendLegacyPrefix(buf, r.Method, path, query, tsStr))
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
		bodyDigest.Sum(sc.sum[:0])
		canon := appendV1(buf, string(v.env), caller, v.self, keyID, tsStr, reqID, r.Method, path, query, ctype, &sc.sum)
		m := used.s.getMAC()
		m.Write(canon)
		got = m.Sum(got)
		used.s.putMAC(m)
		if !hmac.Equal(got, want) {
			c.reason = "signature_mismatch"
			c.canonHash = CanonicalHash(canon)
			v.refuse(w, r, CodeSignatureInvalid, &c, 0)
			return
		}
	}

	c.verified = true

	// 6. Replay, consumed only now that the request is authentic.
	replayID := reqID
	if legacyForm {
		replayID = sigHex // the legacy request id is not signed
	}
	var fresh bool
	switch {
	case v.memReplay != nil:
		// The built-in store keeps a hash, not the key: no string needed.
		key := append(append(sc.buf[:0], cs.replayPrefix...), replayID...)
		fresh, err = v.memReplay.consume(maphashKey(v.memReplay, key), caller, true, v.ttl)
	case v.callerRep != nil:
		fresh, err = v.callerRep.ConsumeFor(r.Context(), caller, cs.replayPrefix+replayID, v.ttl)
	default:
		fresh, err = v.replay.Consume(r.Context(), cs.replayPrefix+replayID, v.ttl)
	}
	if err != nil {
		v.metrics.backendError(backendReplay, err)
	}
	switch {
	case errors.Is(err, ErrReplayStoreFull):
		c.reason, c.err = "replay_store_full", err
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
			v.metrics.backendError(backendLimiter, err)
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
	a := &admitted{ctx: callerCtx{Context: r.Context(), v: v,
		caller: Caller{Service: caller, KeyID: used.s.id, Scheme: c.scheme, RequestID: reqID}}}
	st.a = a // its body is closed by release
	a.body.chunks = sc.body.chunks
	r2 := r.WithContext(&a.ctx)
	r2.Body = &a.body
	r2.ContentLength = sc.body.n
	if v.observe {
		v.observeAdmission(&c, &a.ctx.caller)
	}
	g.next.ServeHTTP(w, r2)
}

// nested handles a request that an outer guard of the same verifier
// already admitted: everything was checked and consumed once, only this
// guard's route access remains.
func (g *guard) nested(w http.ResponseWriter, r *http.Request, vc *callerCtx) {
	if g.allowed != nil {
		c := check{caller: vc.caller.Service, requestID: vc.caller.RequestID, keyID: vc.caller.KeyID, scheme: vc.caller.Scheme,
			verified: !vc.unsigned}
		if g.v.observe {
			c.start = time.Now()
		}
		switch {
		case vc.unsigned:
			c.reason = "unsigned"
			g.v.refuse(w, r, CodeUnsignedRequest, &c, 0)
			return
		case !g.allowed[vc.caller.Service]:
			c.reason = "service_not_allowed_on_route"
			g.v.refuse(w, r, CodeServiceNotAuthorized, &c, 0)
			return
		}
	}
	g.next.ServeHTTP(w, r)
}

// admitUnsigned passes an unsigned request on in non-strict mode, without
// the signing headers (signingHeaders, of any case), which nothing verified.
func (g *guard) admitUnsigned(w http.ResponseWriter, r *http.Request, c *check) {
	v := g.v
	v.log.LogAttrs(r.Context(), slog.LevelWarn, "transport: unsigned request admitted (non-strict mode)",
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("remote", r.RemoteAddr))
	r2 := r.WithContext(&callerCtx{Context: r.Context(), v: v, unsigned: true})
	r2.Header = r.Header.Clone()
	for k := range r2.Header {
		for _, s := range signingHeaders {
			if strings.EqualFold(k, s) {
				delete(r2.Header, k)
			}
		}
	}
	if r2.Body != nil {
		r2.Body = http.MaxBytesReader(w, r.Body, v.maxBody)
	}
	if v.observe {
		v.observeAdmission(c, nil)
	}
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
// reused. A read after that returns http.ErrBodyReadAfterClose instead of
// another request's bytes: the lock is held across the check and the copy,
// and taken by close before the buffers go back to their pool. It has no
// WriteTo, so no slice of the buffers is ever handed out.
type bodyReader struct {
	mu     sync.Mutex
	chunks [][]byte // unread chunks; chunks[0][off:] comes next
	off    int
	closed bool
}

func (r *bodyReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	n := 0
	for n < len(p) && len(r.chunks) > 0 {
		k := copy(p[n:], r.chunks[0][r.off:])
		n += k
		r.off += k
		if r.off == len(r.chunks[0]) {
			r.chunks, r.off = r.chunks[1:], 0
		}
	}
	if n == 0 && len(r.chunks) == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (*bodyReader) Close() error { return nil }

// close ends every read; it returns once no Read is copying.
func (r *bodyReader) close() {
	r.mu.Lock()
	r.closed, r.chunks = true, nil
	r.mu.Unlock()
}

// A body is read into chunks. The first is at most bodyChunk bytes, sized by
// Content-Length (512 bytes when unknown), so that a request announcing a
// large body costs no more than bodyChunk before its bytes arrive; the next
// ones are bodyChunk bytes each, taken as data keeps coming. Chunks of
// exactly bodyChunk bytes are recycled, so that a stream of large requests
// does not cost a fresh zeroed allocation, and a garbage collection, each;
// no byte is ever copied to grow a buffer.
const bodyChunk = 64 << 10

var chunkPool sync.Pool // of *[bodyChunk]byte

// body is a request body as read: len(chunks[i]) bytes of each chunk, all
// of them full except the last.
type body struct {
	chunks [][]byte
	n      int64
}

func newChunk(n int64) []byte {
	if n < bodyChunk {
		return make([]byte, 0, n)
	}
	if p, ok := chunkPool.Get().(*[bodyChunk]byte); ok {
		return p[:0]
	}
	return make([]byte, 0, bodyChunk)
}

func (b *body) push(c []byte) {
	b.chunks = append(b.chunks, c)
	b.n += int64(len(c))
}

// release recycles the pooled chunks and empties b, clearing what was read
// into small (the first chunk when it fitted there). The caller guarantees
// that no reader holds them.
func (b *body) release(small []byte) {
	for i, c := range b.chunks {
		if cap(c) == bodyChunk {
			chunkPool.Put((*[bodyChunk]byte)(c[:bodyChunk]))
		} else if i == 0 && cap(c) > 0 && cap(c) <= len(small) && &c[:1][0] == &small[0] {
			clear(c)
		}
		b.chunks[i] = nil
	}
	b.chunks, b.n = b.chunks[:0], 0
}

const readChunk = 32 << 10

// maxEmptyReads bounds consecutive (0, nil) reads, as bufio does.
const maxEmptyReads = 100

// readBody reads at most max bytes of rd into b, writing each piece to sink
// as it arrives. tooLarge: the body exceeds max. contentLength < 0: unknown.
// probe is a one-byte scratch slice; small, when the first chunk fits in
// it, holds that chunk instead of an allocation. What was read is in b even
// on error, for b.release.
func readBody(rd io.Reader, contentLength, max int64, sink io.Writer, probe, small []byte, b *body) (tooLarge bool, err error) {
	if rd == nil || rd == http.NoBody {
		return false, nil
	}
	size := int64(512)
	if contentLength > 0 {
		size = contentLength
	}
	var buf []byte
	if n := min(size, max+1, bodyChunk); n <= int64(len(small)) {
		buf = small[:0:n]
	} else {
		buf = newChunk(n)
	}
	defer func() { b.push(buf) }()
	empty := 0
	for {
		if len(buf) == cap(buf) {
			// Full: look for EOF before taking a chunk, so that a body of
			// exactly the announced length needs no more memory.
			n, rerr := readNonEmpty(rd, probe[:1])
			if n == 0 {
				if rerr == io.EOF {
					return false, nil
				}
				return false, rerr
			}
			if b.n+int64(len(buf)) >= max {
				return true, nil
			}
			b.push(buf)
			buf = append(newChunk(min(bodyChunk, max+1-b.n)), probe[0])
			sink.Write(probe[:1])
			if rerr == io.EOF {
				return false, nil
			}
			if rerr != nil {
				return false, rerr
			}
			continue
		}
		// Read and hash at most readChunk at a time, so that the hash
		// reads bytes that are still in cache.
		end := min(cap(buf), len(buf)+readChunk)
		n, rerr := rd.Read(buf[len(buf):end])
		if n > 0 {
			sink.Write(buf[len(buf) : len(buf)+n])
			buf = buf[:len(buf)+n]
			empty = 0
		} else if rerr == nil {
			if empty++; empty >= maxEmptyReads {
				return false, io.ErrNoProgress
			}
		}
		if b.n+int64(len(buf)) > max {
			return true, nil
		}
		if rerr == io.EOF {
			return false, nil
		}
		if rerr != nil {
			return false, rerr
		}
	}
}

// readNonEmpty is Read that retries a (0, nil) result a few times.
func readNonEmpty(rd io.Reader, p []byte) (int, error) {
	for range maxEmptyReads {
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

// CanonicalHash returns what a verifier logs as canonical_sha256 on a
// signature mismatch, for a canonical string as [Components.Canonical]
// renders it: the first 16 lowercase hex digits of the SHA-256 of the
// canonical string without its body component and the newline before it.
// v1: lines 1 to 11 (the body hash line left out); legacy: METHOD, "\n",
// REQUEST_PATH, "\n", TIMESTAMP (the body left out). `xsvc sign --explain`
// prints the same on the client side, so the two sides compare everything
// but the body without showing either string; the verifier logs the body's
// length beside it (body_bytes).
//
// The body is left out because this hash is unkeyed and short: from a
// hash that covered a low-entropy body (or its SHA-256), anyone reading
// the log could recover the body by trying candidates. What remains is in
// the log line anyway, except the query and the content type.
func CanonicalHash(canonical []byte) string {
	d := sha256.New()
	d.Write(withoutBody(canonical))
	var sum [sha256.Size]byte
	return hex.EncodeToString(d.Sum(sum[:0])[:8])
}

// withoutBody cuts a canonical string before the newline that precedes its
// body component: v1 before its last newline; legacy (whose first line, a
// method, is never the v1 label) before its third.
func withoutBody(canon []byte) []byte {
	if len(canon) > len(SchemeV1) && string(canon[:len(SchemeV1)]) == string(SchemeV1) && canon[len(SchemeV1)] == '\n' {
		if i := bytes.LastIndexByte(canon, '\n'); i >= 0 {
			return canon[:i]
		}
	}
	lines := 0
	for i, b := range canon {
		if b == '\n' {
			if lines++; lines == 3 {
				return canon[:i]
			}
		}
	}
	return canon
}

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
		if c.hasBody {
			attrs = append(attrs, slog.Int64("body_bytes", c.bodyLen))
		}
		if c.err != nil {
			attrs = append(attrs, slog.String("error", c.err.Error()))
		}
		v.log.LogAttrs(r.Context(), slog.LevelWarn, "transport: request refused", attrs...)
	}
	p := newProblem(code, c.requestID)
	p.RetryAfter = retry
	p.write(w)
	if v.observe {
		v.observeRefusal(r, code, c, retry)
	}
}

// failedOpen logs a check skipped under Config.FailOpen (development only)
// and clears it from c, for the checks that follow.
func (v *Verifier) failedOpen(r *http.Request, c *check) {
	v.log.LogAttrs(r.Context(), slog.LevelError, "transport: check failed open (FailOpen, development)",
		slog.String("check", c.reason), slog.String("caller", c.caller),
		slog.String("request_id", c.requestID), slog.String("error", c.err.Error()))
	c.reason, c.err, c.failedOpen = "", nil, true
}
