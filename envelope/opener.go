package envelope

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead/subtle"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/lifenavigator/crossservice/internal/names"
)

// OpenerConfig configures an [Opener]: the receiving side of one service.
type OpenerConfig struct {
	Self          string           // own service name; envelopes for others are refused. Required.
	Identity      Identity         // unwraps data keys. Required.
	Deterministic *keyset.Handle   // own AES-SIV keyset (TINK prefix); nil: deterministic markers are refused
	Cache         Cache            // zero value: 1024 keys for 10 minutes; a hit skips Identity.Unwrap (see Cache, KeyChecker)
	MaxSize       int              // largest envelope in bytes; 0: DefaultMaxSize (16 MiB); negative: an error
	Clock         func() time.Time // for the cache's TTL; nil: time.Now
}

// Opener opens envelopes addressed to one service. It is safe for concurrent
// use.
type Opener struct {
	self    string
	id      Identity
	checker KeyChecker // id's own check before the cache, when it has one
	det     *detKeys
	cache   *keyCache // nil: disabled
	maxSize int
	clock   func() time.Time
}

// NewOpener checks cfg and returns an Opener.
func NewOpener(cfg OpenerConfig) (*Opener, error) {
	if !names.Valid(cfg.Self) {
		return nil, errors.New("envelope: OpenerConfig.Self is not a valid service name")
	}
	if cfg.Identity == nil {
		return nil, errors.New("envelope: OpenerConfig.Identity is nil")
	}
	if cfg.MaxSize < 0 {
		return nil, errors.New("envelope: OpenerConfig.MaxSize must not be negative")
	}
	if cfg.Cache.Size < 0 || cfg.Cache.TTL < 0 {
		return nil, errors.New("envelope: OpenerConfig.Cache bounds must not be negative")
	}
	o := &Opener{self: cfg.Self, id: cfg.Identity, maxSize: cfg.MaxSize, clock: cfg.Clock}
	o.checker, _ = cfg.Identity.(KeyChecker)
	if o.maxSize == 0 {
		o.maxSize = DefaultMaxSize
	}
	if o.clock == nil {
		o.clock = time.Now
	}
	if !cfg.Cache.Disabled {
		size, ttl := cfg.Cache.Size, cfg.Cache.TTL
		if size == 0 {
			size = defaultCacheSize
		}
		if ttl == 0 {
			ttl = defaultCacheTTL
		}
		o.cache = newKeyCache(size, ttl)
	}
	if cfg.Deterministic != nil {
		d, err := newDetKeys(cfg.Deterministic, true)
		if err != nil {
			return nil, fmt.Errorf("envelope: OpenerConfig.Deterministic: %w", err)
		}
		o.det = d
	}
	return o, nil
}

// Opened is an envelope whose tag has been verified. Its fields are still
// encrypted: [Opened.OpenField] decrypts them one by one. It is safe for
// concurrent use.
//
// With an HPKE recipient, a verified envelope proves only that its sender
// knew the recipient's public key: compare Header.Sender with the caller the
// transport authenticated before trusting it (see the package doc).
type Opened struct {
	Header Header
	Data   []byte // exact bytes of "data", authenticated; markers still in place

	aead    *subtle.AESGCM
	fieldAD []byte
	det     *detKeys
}

// Open parses envelope, checks that it is addressed to this service and that
// its key is known and not retired (with [KeyChecker], when the Identity
// implements it), unwraps the data key (or finds it in the cache, without
// calling Unwrap), and verifies the tag over the exact header and data
// bytes, in that order. Only then is anything returned. Every refusal matches
// [ErrCannotOpen]; malformed input is a [*ParseError], a retired key a
// [*KeyRetiredError]. The result does not alias envelope.
func (o *Opener) Open(envelope []byte) (*Opened, error) {
	m := new(Opened)
	if err := o.openInto(m, envelope, nil, true); err != nil {
		return nil, err
	}
	return m, nil
}

// openInto is Open writing its result to m. With buf nil, the verified copy
// of the header and data (and the random fields' AD prefix after it) is a
// new allocation; otherwise it is built in *buf, grown as needed, and m is
// valid only while the caller keeps *buf unchanged (package fieldcrypt,
// through internal/sealhook, which decodes m.Data at once). With scanData
// false, the caller takes on refusing data that is not one JSON object (see
// parseCanonical); an envelope refused for another reason is refused with
// the error a full parse gives.
func (o *Opener) openInto(m *Opened, envelope []byte, buf *[]byte, scanData bool) error {
	if o == nil || o.id == nil {
		return errNotConstructed
	}
	var p parsed
	if err := parseInto(&p.Envelope, &p.tag, envelope, o.maxSize, scanData); err != nil {
		return err
	}
	err := o.verifyInto(m, &p, buf)
	if err != nil && !scanData {
		// As Open would have: malformed data is a *ParseError before
		// anything else.
		if perr := dataParseError(envelope, p.Envelope.Data); perr != nil {
			return perr
		}
	}
	return err
}

// dataParseError returns the *ParseError a full parse gives envelope when
// its data, as parseCanonical found it without scanning, is not one JSON
// object; nil when it is.
func dataParseError(envelope, data []byte) error {
	if end, ok := skipValue(data, 0, 1); ok && end == len(data) {
		return nil
	}
	if err := parseGeneral(new(Envelope), nil, envelope); err != nil {
		return err
	}
	return parseErr("data is not one JSON object") // unreachable: parseGeneral scans data as skipValue does
}

// verifyInto is openInto once the envelope is parsed.
func (o *Opener) verifyInto(m *Opened, p *parsed, buf *[]byte) error {
	e := &p.Envelope
	h := &e.Header
	if h.Recipient != o.self {
		return ErrCannotOpen
	}
	if o.checker != nil {
		// Before the cache: a hit skips Unwrap, never this check.
		if err := o.checker.CheckKey(h.Key, h.Sender); err != nil {
			return cannotOpen(err)
		}
	}
	a, err := o.dataKey(h)
	if err != nil {
		return err
	}
	// Copy before verifying, so the bytes returned are the bytes verified
	// even if the caller reuses its buffer. The random fields' AD prefix
	// goes in the same buffer, after the copy.
	var dst []byte
	if buf != nil {
		dst = (*buf)[:0]
	}
	ad, _, data := appendEnvelopeAD(dst, e.RawHeader, e.Data, fieldADPrefixLen(h))
	if buf != nil {
		*buf = ad[:0]
	}
	pt, err := a.Decrypt(e.Tag, ad)
	if err != nil || len(pt) != 0 {
		return ErrCannotOpen
	}
	fieldAD := ad[len(ad):] // spare capacity after the data copy, reserved by appendEnvelopeAD
	fieldAD = appendLP(fieldAD, labelField)
	fieldAD = appendLP(fieldAD, h.ID)
	fieldAD = appendLP(fieldAD, h.Sender)
	fieldAD = appendLP(fieldAD, h.Recipient)
	fieldAD = appendLP(fieldAD, h.Type)
	*m = Opened{Header: *h, Data: data, aead: a, fieldAD: fieldAD[:len(fieldAD):len(fieldAD)], det: o.det}
	return nil
}

// dataKey returns the AEAD of the message's data key, from the cache or by
// unwrapping.
func (o *Opener) dataKey(h *Header) (*subtle.AESGCM, error) {
	var stack [256]byte
	var ck []byte
	var now time.Time
	if o.cache != nil {
		ck = appendCacheKey(stack[:0], &h.Key, h.Sender, h.Recipient)
		now = o.clock()
		if a := o.cache.get(ck, now); a != nil {
			return a, nil
		}
	}
	dk, err := o.id.Unwrap(h.Key, wrapContext(h.Sender, h.Recipient))
	if err != nil {
		return nil, cannotOpen(err)
	}
	defer clear(dk)
	if len(dk) != dataKeySize {
		return nil, ErrCannotOpen
	}
	a, err := subtle.NewAESGCM(dk)
	if err != nil {
		return nil, ErrCannotOpen
	}
	if o.cache != nil {
		o.cache.put(ck, a, now)
	}
	return a, nil
}

// OpenField parses one marker object (the raw JSON value found at path in
// Data) of the given mode and returns the plaintext, the JSON encoding of
// the value. path and schemaPath are as in [Message.AppendField]. A marker
// of the other mode, moved from another place, message or recipient, or
// altered in any way, is [ErrCannotOpen]; a malformed one is a
// [*ParseError]; a deterministic one under a retired key is a
// [*KeyRetiredError]. The plaintext is checked to be one JSON value in
// valid UTF-8 (otherwise [ErrCannotOpen]), so it can be spliced into a
// document without changing its structure or its encoding.
func (m *Opened) OpenField(marker []byte, mode Mode, path, schemaPath []byte) ([]byte, error) {
	if m == nil || m.aead == nil {
		return nil, errNotConstructed
	}
	if mode != Random && mode != Deterministic {
		return nil, errors.New("envelope: invalid Mode")
	}
	if !validPointer(path) || !validPointer(schemaPath) {
		return nil, errors.New("envelope: field path is not a non-empty JSON Pointer")
	}
	// The decoded ciphertext and the associated data go in one pooled
	// buffer: neither is kept by the AEAD, and neither is secret.
	bp := scratchPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledScratch {
			scratchPool.Put(bp)
		}
	}()
	buf, err := appendMarkerCT((*bp)[:0], marker, mode)
	if err != nil {
		return nil, err
	}
	n := len(buf) // buf[:n] is the ciphertext, buf[n:] the associated data
	var pt []byte
	switch mode {
	case Random:
		buf = appendLP(append(buf, m.fieldAD...), path)
		pt, err = m.aead.Decrypt(buf[:n], buf[n:])
		if err != nil {
			err = ErrCannotOpen
		}
	case Deterministic:
		buf = detAD(buf, m.Header.Type, schemaPath)
		if m.det == nil {
			err = ErrCannotOpen
		} else {
			pt, err = m.det.open(buf[:n], buf[n:])
		}
	}
	*bp = buf[:0]
	if err != nil {
		return nil, err
	}
	if !validJSON(pt) {
		return nil, ErrCannotOpen
	}
	return pt, nil
}

// scratchPool holds OpenField's buffers; above maxPooledScratch bytes they
// are left to the collector.
var scratchPool = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledScratch = 16 << 10

// String describes the opener without key material.
func (o *Opener) String() string { return "envelope.Opener(" + o.self + ")" }
