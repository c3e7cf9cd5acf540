package transport

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lifenavigator/crossservice/internal/names"
)

// SignerConfig configures [NewSigner]: one signer per (caller, target).
type SignerConfig struct {
	Caller      string      // this service's name, sent as X-Service-Name; required
	Target      string      // the service called; required (v1 signs it)
	Environment Environment // required (v1 signs it)
	Key         Key         // required; replace later with [Signer.SetKey]
	// Scheme zero: SchemeV1. SchemeLegacy only for a target that still
	// verifies the original algorithm.
	Scheme Scheme
	// Clock returns the current time (nil: time.Now).
	Clock func() time.Time
	// RequestID returns a fresh request id per call (nil: a UUIDv7 whose
	// time is the request's timestamp). For v1 it must return a canonical
	// lowercase UUID.
	RequestID func() (string, error)
}

// Signer signs outgoing requests. It is safe for concurrent use and meant to
// be called once per attempt: every call takes a new timestamp and a new
// request id, so a retry is a new request for the server's replay check.
type Signer struct {
	caller, target string
	env            Environment
	scheme         Scheme
	clock          func() time.Time
	newID          func() (string, error)
	key            atomic.Pointer[keyState]
}

// NewSigner validates cfg and returns a signer.
func NewSigner(cfg SignerConfig) (*Signer, error) {
	if !names.Valid(cfg.Caller) {
		return nil, fmt.Errorf("transport: SignerConfig.Caller %q is not a service name: %w", cfg.Caller, ErrInvalidConfig)
	}
	if !names.Valid(cfg.Target) {
		return nil, fmt.Errorf("transport: SignerConfig.Target %q is not a service name: %w", cfg.Target, ErrInvalidConfig)
	}
	if _, err := ParseEnvironment(string(cfg.Environment)); err != nil {
		return nil, fmt.Errorf("transport: SignerConfig.Environment: %w", err)
	}
	if cfg.Key.s == nil {
		return nil, fmt.Errorf("transport: SignerConfig.Key is zero: %w", ErrInvalidConfig)
	}
	switch cfg.Scheme {
	case "":
		cfg.Scheme = SchemeV1
	case SchemeV1, SchemeLegacy:
	default:
		return nil, fmt.Errorf("transport: SignerConfig.Scheme %q unknown: %w", cfg.Scheme, ErrInvalidConfig)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	s := &Signer{caller: cfg.Caller, target: cfg.Target, env: cfg.Environment, scheme: cfg.Scheme,
		clock: cfg.Clock, newID: cfg.RequestID}
	s.key.Store(cfg.Key.s)
	return s, nil
}

// appendUUIDv7 appends a UUIDv7 (RFC 9562 §5.7) in canonical lowercase
// form: the 48-bit Unix millisecond timestamp X-Timestamp also carries, then
// 74 random bits from math/rand/v2's runtime source (ChaCha8, seeded from
// the OS per thread). Request ids must be unique, not secret: they are
// signed, and a collision within the replay window costs one refused request.
func appendUUIDv7(b []byte, ms int64) []byte {
	var u [16]byte
	binary.BigEndian.PutUint64(u[:8], uint64(ms)<<16|rand.Uint64()&0x0fff|0x7000)
	binary.BigEndian.PutUint64(u[8:], rand.Uint64()&^(0xc0<<56)|0x80<<56)
	var x [32]byte
	hex.Encode(x[:], u[:])
	b = append(b, x[:8]...)
	b = append(b, '-')
	b = append(b, x[8:12]...)
	b = append(b, '-')
	b = append(b, x[12:16]...)
	b = append(b, '-')
	b = append(b, x[16:20]...)
	b = append(b, '-')
	return append(b, x[20:]...)
}

// SetKey makes k the key for every later Sign call (rotation: add the new
// key on the verifier first, switch signers, then retire the old key).
// Calls already in flight finish with the key they started with.
func (s *Signer) SetKey(k Key) error {
	if k.s == nil {
		return fmt.Errorf("transport: SetKey: zero Key: %w", ErrInvalidConfig)
	}
	s.key.Store(k.s)
	return nil
}

// KeyID returns the id of the current key.
func (s *Signer) KeyID() string { return s.key.Load().id }

// Sign sets X-Request-ID, X-Timestamp, X-Service-Name, X-Signature and (v1)
// X-Key-ID on req, replacing any earlier values: call it on the per-attempt
// clone (req.Clone) inside a RoundTripper, never on the caller's request.
//
// The body is read through req.GetBody, hashed in one pass and not consumed:
// req.Body is left for the transport to send. A request with a body but no
// GetBody returns [ErrBodyNotRewindable] (http.NewRequest sets GetBody for
// bytes.Buffer, bytes.Reader and strings.Reader bodies). A component that
// cannot be signed (control byte, lowercase method, opaque URL, two
// Content-Type values) returns a [ComponentError].
func (s *Signer) Sign(req *http.Request) error {
	ks := s.key.Load()
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	if req.URL == nil {
		return &ComponentError{Component: "url", Reason: "nil"}
	}
	if req.URL.Opaque != "" {
		return &ComponentError{Component: "path", Reason: "opaque URLs are not supported"}
	}
	path, verbatim := escapedPath(req.URL)
	if path == "" {
		path = "/"
	}
	query := req.URL.RawQuery
	if err := checkRequestLine(method, path, query, verbatim); err != nil {
		return err
	}
	var ctype string
	// The key is canonical already: index the map as Header.Values would
	// after canonicalising it.
	switch v := req.Header[hdrContentType]; len(v) {
	case 0:
	case 1:
		// net/http writes header values trimmed, and receivers strip
		// surrounding whitespace: sign what arrives.
		ctype = textproto.TrimString(v[0])
	default:
		return &ComponentError{Component: "content type", Reason: "more than one Content-Type header"}
	}
	if hasControl(ctype) {
		return &ComponentError{Component: "content type", Reason: "contains a control byte"}
	}
	return s.sign(req, ks, method, path, query, ctype)
}

// sign is Sign once the request's components are checked. Its few returns
// let the compiler open-code its deferred calls.
func (s *Signer) sign(req *http.Request, ks *keyState, method, path, query, ctype string) error {
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	now := s.clock().UnixMilli()
	// The request id, the timestamp and the signature share one allocation:
	// strings taken from a Builder stay valid and unchanged as it grows.
	var meta strings.Builder
	var reqID, ts string
	if s.newID == nil {
		meta.Grow(36 + MaxTimestampDigits + 2*sha256.Size)
		meta.Write(appendUUIDv7(sc.buf[:0], now))
		meta.Write(strconv.AppendInt(sc.buf[:0], now, 10))
		m := meta.String()
		reqID, ts = m[:36], m[36:]
	} else {
		id, err := s.newID()
		if err != nil {
			return err
		}
		meta.Grow(MaxTimestampDigits + 2*sha256.Size)
		meta.Write(strconv.AppendInt(sc.buf[:0], now, 10))
		reqID, ts = id, meta.String()
	}
	// An id of our own making is a canonical UUID by construction; one from
	// SignerConfig.RequestID is checked.
	if s.newID != nil {
		if s.scheme == SchemeV1 && !validUUID(reqID) {
			return &ComponentError{Component: "request id", Reason: "not a canonical lowercase UUID"}
		}
		if s.scheme == SchemeLegacy && !validLegacyRequestID(reqID) {
			return &ComponentError{Component: "request id", Reason: "not 1..128 bytes of visible ASCII"}
		}
	}
	// What parseTimestamp accepts: 0 to MaxTimestampDigits digits.
	if now < 0 || now > maxTimestamp {
		return &ComponentError{Component: "timestamp", Reason: "clock before 1970 or after year 33658"}
	}

	mac := ks.getMAC()
	defer ks.putMAC(mac)
	if s.scheme == SchemeV1 {
		if sc.digest == nil {
			sc.digest = sha256.New()
		}
		bh := sc.digest
		bh.Reset()
		err := hashBody(req, bh)
		bh.Sum(sc.sum[:0])
		if err != nil {
			return err
		}
		mac.Write(appendV1(sc.buf[:0], string(s.env), s.caller, s.target, ks.id, ts, reqID,
			method, path, query, ctype, &sc.sum))
	} else {
		mac.Write(appendLegacyPrefix(sc.buf[:0], method, path, query, ts))
		if err := hashBody(req, mac); err != nil {
			return err
		}
	}
	hex.Encode(sc.hex[:], mac.Sum(sc.mac[:0]))
	clear(sc.mac[:])
	n := meta.Len()
	meta.Write(sc.hex[:])
	sig := meta.String()[n:]

	h := req.Header
	if h == nil {
		h = make(http.Header, 5)
		req.Header = h
	}
	// One backing array for the five values.
	n = len(signingHeaders)
	if s.scheme != SchemeV1 {
		n--
		delete(h, hdrKeyID)
	}
	all := make([]string, n)
	copy(all, []string{reqID, ts, s.caller, sig, ks.id})
	for i := range all {
		h[signingHeaders[i]] = all[i : i+1 : i+1]
	}
	return nil
}

var signingHeaders = [...]string{hdrRequestID, hdrTimestamp, hdrServiceName, hdrSignature, hdrKeyID}

// hashBody writes the request body, read through GetBody, to w.
func hashBody(req *http.Request, w io.Writer) error {
	if req.Body == nil || req.Body == http.NoBody {
		return nil
	}
	if req.GetBody == nil {
		return ErrBodyNotRewindable
	}
	rc, err := req.GetBody()
	if err != nil {
		return fmt.Errorf("transport: GetBody: %w", err)
	}
	defer rc.Close()
	n, err := io.Copy(w, rc)
	if err != nil {
		return fmt.Errorf("transport: reading body to sign: %w", err)
	}
	if req.ContentLength > 0 && n != req.ContentLength {
		return &ComponentError{Component: "body", Reason: "GetBody length differs from ContentLength"}
	}
	return nil
}
