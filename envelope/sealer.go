package envelope

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/tink-crypto/tink-go/v2/aead/subtle"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/lifenavigator/crossservice/internal/names"
)

// Reuse bounds how long a sealer keeps one wrapped data key. Reuse trades a
// wrap per message (an HPKE encapsulation, or a KMS call) for a larger blast
// radius: whoever obtains one data key reads every message sealed under it,
// up to MaxMessages messages or MaxAge. Field associated data and the tag
// still differ per message (each has its own id).
type Reuse struct {
	MaxMessages int           // messages per data key; 0: 1000; negative: an error
	MaxAge      time.Duration // age of a data key; 0: 5 minutes; negative: an error
	Disabled    bool          // true: a fresh data key (and one wrap) per message
}

const (
	defaultReuseMessages = 1000
	defaultReuseAge      = 5 * time.Minute
)

// SealerConfig configures a [Sealer]: one sender, one recipient.
type SealerConfig struct {
	Sender, Recipient string           // service names; required
	To                Recipient        // wraps data keys for Recipient; required
	Deterministic     *keyset.Handle   // recipient's AES-SIV keyset (TINK prefix); nil: deterministic fields are refused
	Reuse             Reuse            // zero value: reuse up to 1000 messages / 5 minutes
	Clock             func() time.Time // nil: time.Now
	Rand              io.Reader        // data keys and message ids; nil: crypto/rand
}

// Sealer seals messages from one sender to one recipient. It is safe for
// concurrent use; the [Message] values it begins are not.
type Sealer struct {
	snd, rcp string
	to       Recipient
	det      tink.DeterministicAEAD
	reuse    Reuse
	clock    func() time.Time
	wrapCtx  []byte

	mu   sync.Mutex // guards cur and every read of rand
	rand io.Reader
	cur  *dataKey
}

// dataKey is one data key as the sealer holds it: never the raw bytes, only
// the AEAD built from them and the wrapped form.
type dataKey struct {
	aead    *subtle.AESGCM
	info    KeyInfo
	created time.Time
	uses    int
}

// NewSealer checks cfg and returns a Sealer. Invalid values are errors, never
// silently replaced.
func NewSealer(cfg SealerConfig) (*Sealer, error) {
	if !names.Valid(cfg.Sender) {
		return nil, errors.New("envelope: SealerConfig.Sender is not a valid service name")
	}
	if !names.Valid(cfg.Recipient) {
		return nil, errors.New("envelope: SealerConfig.Recipient is not a valid service name")
	}
	if cfg.To == nil {
		return nil, errors.New("envelope: SealerConfig.To is nil")
	}
	r := cfg.Reuse
	if r.MaxMessages < 0 || r.MaxAge < 0 {
		return nil, errors.New("envelope: SealerConfig.Reuse bounds must not be negative")
	}
	if r.MaxMessages == 0 {
		r.MaxMessages = defaultReuseMessages
	}
	if r.MaxAge == 0 {
		r.MaxAge = defaultReuseAge
	}
	s := &Sealer{
		snd: cfg.Sender, rcp: cfg.Recipient, to: cfg.To, reuse: r,
		clock: cfg.Clock, rand: cfg.Rand,
		wrapCtx: wrapContext(cfg.Sender, cfg.Recipient),
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if cfg.Deterministic != nil {
		d, err := newDetKeys(cfg.Deterministic, false)
		if err != nil {
			return nil, fmt.Errorf("envelope: SealerConfig.Deterministic: %w", err)
		}
		s.det = d.primary
	}
	return s, nil
}

// Begin starts a message of the given type (1..256 bytes of printable ASCII,
// for example a Go type name). It picks the data key (reusing the current
// one within the [Reuse] bounds) and fixes the header.
func (s *Sealer) Begin(typeName string) (*Message, error) {
	if s == nil || s.to == nil {
		return nil, errNotConstructed
	}
	if !validType(typeName) {
		return nil, errors.New("envelope: type name must be 1..256 bytes of printable ASCII")
	}
	now := s.clock()
	iat := now.UTC().Truncate(time.Millisecond)
	if y := iat.Year(); y < 1970 || y > 9999 {
		return nil, errors.New("envelope: clock is outside years 1970..9999")
	}
	k, id, err := s.keyAndID(now, iat)
	if err != nil {
		return nil, err
	}
	m := &Message{
		hdr: Header{
			ID: id, Sender: s.snd, Recipient: s.rcp, Type: typeName,
			IssuedAt: iat, Key: k.info,
		},
		aead: k.aead,
		det:  s.det,
	}
	m.rawHdr = appendHeader(make([]byte, 0, 192+len(typeName)+len(k.info.KeyID)+len(k.info.Wrapped)*4/3), &m.hdr)
	m.fieldAD = fieldADPrefix(&m.hdr)
	return m, nil
}

func (s *Sealer) keyAndID(now, iat time.Time) (*dataKey, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.cur
	if k == nil || s.reuse.Disabled || k.uses >= s.reuse.MaxMessages ||
		now.Before(k.created) || now.Sub(k.created) >= s.reuse.MaxAge {
		var err error
		if k, err = s.newKey(now); err != nil {
			return nil, "", err
		}
		if !s.reuse.Disabled {
			s.cur = k
		}
	}
	id, err := s.newID(iat)
	if err != nil {
		return nil, "", err
	}
	k.uses++
	return k, id, nil
}

// newKey draws a data key and wraps it. Called with s.mu held.
func (s *Sealer) newKey(now time.Time) (*dataKey, error) {
	dk := make([]byte, dataKeySize)
	if _, err := io.ReadFull(s.rand, dk); err != nil {
		return nil, fmt.Errorf("envelope: reading random data key: %w", err)
	}
	defer clear(dk)
	info, err := s.to.Wrap(dk, s.wrapCtx)
	if err != nil {
		return nil, fmt.Errorf("envelope: wrapping data key: %w", err)
	}
	if !validKeyInfo(&info) {
		return nil, errors.New("envelope: Recipient returned an invalid KeyInfo")
	}
	a, err := subtle.NewAESGCM(dk)
	if err != nil {
		return nil, fmt.Errorf("envelope: data key AEAD: %w", err)
	}
	info.Wrapped = append([]byte(nil), info.Wrapped...)
	return &dataKey{aead: a, info: info, created: now}, nil
}

// newID returns a UUIDv7 whose timestamp is iat's and whose 74 random bits
// come from s.rand, so that both come from the injected clock and reader.
// Called with s.mu held (a caller's Rand need not be safe for concurrent
// use).
func (s *Sealer) newID(iat time.Time) (string, error) {
	u, err := uuid.NewRandomFromReader(s.rand) // version 4 and RFC 9562 variant set
	if err != nil {
		return "", fmt.Errorf("envelope: reading random message id: %w", err)
	}
	ms := uint64(iat.UnixMilli())
	u[0], u[1], u[2] = byte(ms>>40), byte(ms>>32), byte(ms>>24)
	u[3], u[4], u[5] = byte(ms>>16), byte(ms>>8), byte(ms)
	u[6] = 0x70 | u[6]&0x0f
	return u.String(), nil
}

// Message is one message being sealed: [Sealer.Begin], then
// [Message.AppendField] for each sensitive value, then [Message.Finish] with
// the data object. A Message is used by one goroutine.
type Message struct {
	hdr      Header
	rawHdr   []byte
	aead     *subtle.AESGCM
	det      tink.DeterministicAEAD
	fieldAD  []byte // LP(label) || LP(id) || LP(snd) || LP(rcp) || LP(typ)
	scratch  []byte
	finished bool
}

// Header returns the message's header.
func (m *Message) Header() Header {
	h := m.hdr
	h.Key.Wrapped = append([]byte(nil), h.Key.Wrapped...)
	return h
}

// AppendField encrypts plaintext (the JSON encoding of the value) and appends
// the marker object {"$enc":"…","ct":"…"} to dst. path is the concrete JSON
// Pointer of the value's place in the data object ("/owners/3/ssn");
// schemaPath is the same pointer with every array index and map key replaced
// by "*" ("/owners/*/ssn"). Random fields are bound to path, deterministic
// ones to schemaPath.
func (m *Message) AppendField(dst []byte, mode Mode, path, schemaPath, plaintext []byte) ([]byte, error) {
	if m == nil || m.aead == nil {
		return dst, errNotConstructed
	}
	if m.finished {
		return dst, errors.New("envelope: AppendField after Finish")
	}
	if !validPointer(path) || !validPointer(schemaPath) {
		return dst, errors.New("envelope: field path is not a non-empty JSON Pointer")
	}
	if !json.Valid(plaintext) {
		// The opener refuses non-JSON plaintext; refusing it here too
		// keeps a caller's bug from producing an envelope nobody can open.
		return dst, errors.New("envelope: field plaintext is not a JSON value")
	}
	var ct []byte
	var err error
	switch mode {
	case Random:
		m.scratch = appendLP(append(m.scratch[:0], m.fieldAD...), path)
		ct, err = m.aead.Encrypt(plaintext, m.scratch)
	case Deterministic:
		if m.det == nil {
			return dst, errors.New("envelope: deterministic field without SealerConfig.Deterministic")
		}
		m.scratch = detAD(m.scratch[:0], m.hdr.Type, schemaPath)
		ct, err = m.det.EncryptDeterministically(plaintext, m.scratch)
	default:
		return dst, errors.New("envelope: invalid Mode")
	}
	if err != nil {
		return dst, fmt.Errorf("envelope: encrypting field: %w", err)
	}
	return appendMarker(dst, mode, ct), nil
}

// Finish computes the tag over the exact header and data bytes and returns
// the whole envelope. data must be a JSON object (the value with its
// sensitive fields replaced by markers); it is embedded byte for byte.
func (m *Message) Finish(data []byte) ([]byte, error) {
	if m == nil || m.aead == nil {
		return nil, errNotConstructed
	}
	if m.finished {
		return nil, errors.New("envelope: Finish called twice")
	}
	if !utf8.Valid(data) {
		return nil, errors.New("envelope: data is not valid UTF-8")
	}
	s := &scanner{b: data}
	if s.next() != '{' {
		return nil, errors.New("envelope: data is not a JSON object")
	}
	if err := s.value(1); err != nil || !s.eof() {
		return nil, errors.New("envelope: data is not a JSON object")
	}
	ad, _, _ := envelopeAD(m.rawHdr, data)
	tag, err := m.aead.Encrypt(nil, ad)
	if err != nil {
		return nil, fmt.Errorf("envelope: computing tag: %w", err)
	}
	m.finished = true
	out := make([]byte, 0, len(m.rawHdr)+len(data)+len(`{"hdr":,"data":,"tag":""}`)+38)
	return appendEnvelope(out, m.rawHdr, data, tag), nil
}

// String describes the sealer without key material.
func (s *Sealer) String() string {
	return "envelope.Sealer(" + s.snd + " -> " + s.rcp + ")"
}
