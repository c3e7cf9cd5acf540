package envelope

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/tink-crypto/tink-go/v2/aead/subtle"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/lifenavigator/crossservice/internal/names"
	"github.com/lifenavigator/crossservice/internal/sealhook"
)

// Reuse bounds how long a sealer keeps one wrapped data key. Reuse trades a
// wrap per message (an HPKE encapsulation, or a KMS call) for a larger blast
// radius: whoever obtains one data key reads every message sealed under it,
// up to MaxMessages messages or MaxAge. Field associated data and the tag
// still differ per message (each has its own id).
//
// Both bounds have a ceiling, [MaxReuseMessages] (2^20) and [MaxReuseAge]
// (1 hour); larger values are refused by [NewSealer], never lowered
// silently. Reuse must stay bounded for two reasons:
//
//   - AES-GCM with random nonces. Every random field and every tag is one
//     AES-256-GCM encryption under the data key with a random 96-bit nonce;
//     NIST SP 800-38D allows at most 2^32 of them per key, past which a
//     nonce collision (which reveals the XOR of two plaintexts and lets
//     an attacker forge under that key) becomes likelier than 2^-32. So
//     messages per key × (random fields per message + 1) must stay far
//     below 2^32. At the default 1000 messages that holds for any
//     realistic message; at the ceiling of 2^20 messages, 2^32 is reached
//     at about 4000 random fields per message, so a sealer of messages
//     with many random fields must keep MaxMessages well below it.
//   - Blast radius. One leaked data key exposes every message sealed
//     under it: at most MaxMessages messages, at most MaxAge of traffic.
type Reuse struct {
	MaxMessages int           // messages per data key; 0: 1000; negative or above MaxReuseMessages: an error
	MaxAge      time.Duration // age of a data key; 0: 5 minutes; negative or above MaxReuseAge: an error
	Disabled    bool          // true: a fresh data key (and one wrap) per message
}

// Ceilings of [Reuse]: see there for why.
const (
	MaxReuseMessages = 1 << 20   // largest Reuse.MaxMessages: 1 048 576 messages per data key
	MaxReuseAge      = time.Hour // largest Reuse.MaxAge
)

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
	hdrNames []byte // `","snd":"SND","rcp":"RCP","typ":"`: the header between id and typ
	adNames  []byte // LP(snd) || LP(rcp): the field AD between id and typ

	mu   sync.Mutex // guards cur, ids and every read of rand
	rand io.Reader
	ids  *idBlock // nil with an injected Rand: ids are then read from it directly
	cur  *dataKey
}

// idBlock holds message-id randomness read from crypto/rand sixteen ids at
// a time, so that a message does not pay for a call into crypto/rand. Ids
// must be unique, not secret (each is in the clear in its header), so
// handing out bytes read ahead is safe. Data keys never come from here:
// each is read from crypto/rand (or the injected Rand) when it is drawn.
type idBlock struct {
	b   [16 * 16]byte
	off int
}

// dataKey is one data key as the sealer holds it: never the raw bytes, only
// the AEAD built from them and the wrapped form.
type dataKey struct {
	aead    *subtle.AESGCM
	info    KeyInfo
	created time.Time
	uses    int
	hdrKey  []byte // `","key":{"alg":"…","kid":"…","wk":"…"}}`: the end of every header under this key
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
	if r.MaxMessages > MaxReuseMessages {
		return nil, fmt.Errorf("envelope: SealerConfig.Reuse.MaxMessages %d is above the ceiling of %d messages per data key (envelope.MaxReuseMessages)",
			r.MaxMessages, MaxReuseMessages)
	}
	if r.MaxAge > MaxReuseAge {
		return nil, fmt.Errorf("envelope: SealerConfig.Reuse.MaxAge %v is above the ceiling of %v per data key (envelope.MaxReuseAge)",
			r.MaxAge, MaxReuseAge)
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
	s.hdrNames = append(append(append(append(s.hdrNames,
		`","snd":"`...), cfg.Sender...), `","rcp":"`...), cfg.Recipient...)
	s.hdrNames = append(s.hdrNames, `","typ":"`...)
	s.adNames = appendLP(appendLP(s.adNames, cfg.Sender), cfg.Recipient)
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
		s.ids = &idBlock{off: len(idBlock{}.b)}
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
	k, u, err := s.keyAndUUID(now, iat)
	if err != nil {
		return nil, err
	}
	// The header and the random fields' AD prefix share one allocation; the
	// parts that do not change per message come precomputed from the
	// sealer and the data key. The bytes are exactly appendHeader's.
	esc := 0
	for i := 0; i < len(typeName); i++ {
		if c := typeName[i]; c == '"' || c == '\\' {
			esc++
		}
	}
	hdrLen := len(hdrStart) + 36 + len(s.hdrNames) + len(typeName) + esc + len(hdrIat) + len(iatLayout) + len(k.hdrKey)
	adLen := 4 + len(labelField) + 4 + 36 + len(s.adNames) + 4 + len(typeName) + fieldADSpare
	detLen := 0
	if s.det != nil {
		detLen = 4 + len(labelDet) + 4 + len(typeName) + fieldADSpare
	}
	m := &Message{
		hdr: Header{
			Sender: s.snd, Recipient: s.rcp, Type: typeName,
			IssuedAt: iat, Key: k.info,
		},
		aead: k.aead,
		det:  s.det,
	}
	m.buf = hdrPool.Get().(*[]byte)
	buf := *m.buf
	if cap(buf) < hdrLen+adLen+detLen {
		buf = make([]byte, 0, hdrLen+adLen+detLen)
	}
	buf = append(buf[:0], hdrStart...)
	buf = appendUUID(buf, &u)
	copy(m.id[:], buf[len(buf)-36:])
	buf = append(buf, s.hdrNames...)
	buf = appendType(buf, typeName)
	buf = append(buf, hdrIat...)
	buf = appendIssuedAt(buf, iat)
	buf = append(buf, k.hdrKey...)
	m.rawHdr = buf[:len(buf):len(buf)]
	// The field AD prefix keeps room after it for the path that completes
	// it (see AppendField); the deterministic fields' AD is built in the
	// rest of the buffer.
	ad := appendLP(buf[len(buf):len(buf):len(buf)+adLen], labelField)
	ad = appendLP(ad, m.id[:])
	ad = append(ad, s.adNames...)
	m.fieldAD = appendLP(ad, typeName)
	m.scratch = buf[len(buf)+adLen : len(buf)+adLen : cap(buf)]
	*m.buf = buf
	return m, nil
}

// hdrPool recycles the buffers that hold a message's header and field AD
// prefix from Begin to Finish: public bytes only. Buffers above
// maxPooledHeader are left to the collector.
var hdrPool = sync.Pool{New: func() any { return new([]byte) }}

const (
	maxPooledHeader = 4 << 10
	fieldADSpare    = 64 // room for LP(path) after the field AD prefix
)

const (
	hdrStart = `{"v":1,"id":"`
	hdrIat   = `","iat":"`
)

// keyAndID returns the data key for a message issued at iat and its id in
// canonical form.
func (s *Sealer) keyAndID(now, iat time.Time) (*dataKey, string, error) {
	k, u, err := s.keyAndUUID(now, iat)
	if err != nil {
		return nil, "", err
	}
	return k, string(appendUUID(make([]byte, 0, 36), &u)), nil
}

// keyAndUUID returns the data key for a message issued at iat (reusing the
// current one within the Reuse bounds) and the message's UUIDv7.
func (s *Sealer) keyAndUUID(now, iat time.Time) (*dataKey, [16]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.cur
	if k == nil || s.reuse.Disabled || k.uses >= s.reuse.MaxMessages ||
		now.Before(k.created) || now.Sub(k.created) >= s.reuse.MaxAge {
		var err error
		if k, err = s.newKey(now); err != nil {
			return nil, [16]byte{}, err
		}
		if !s.reuse.Disabled {
			s.cur = k
		}
	}
	u, err := s.newID(iat)
	if err != nil {
		return nil, u, err
	}
	k.uses++
	return k, u, nil
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
	hk := append(make([]byte, 0, 40+len(info.Alg)+len(info.KeyID)+base64.RawURLEncoding.EncodedLen(len(info.Wrapped))),
		`","key":{"alg":"`...)
	hk = append(append(hk, info.Alg...), `","kid":"`...)
	hk = append(append(hk, info.KeyID...), `","wk":"`...)
	hk = base64.RawURLEncoding.AppendEncode(hk, info.Wrapped)
	hk = append(hk, `"}}`...)
	return &dataKey{aead: a, info: info, created: now, hdrKey: hk}, nil
}

// newID returns a UUIDv7 whose timestamp is iat's and whose 74 random bits
// come from crypto/rand (read ahead in blocks, see idBlock) or, when one is
// injected, from s.rand, read exactly as uuid.NewRandomFromReader reads
// it, so that both come from the injected clock and reader. Called with
// s.mu held (a caller's Rand need not be safe for concurrent use).
func (s *Sealer) newID(iat time.Time) ([16]byte, error) {
	var u [16]byte
	if b := s.ids; b != nil {
		if b.off+len(u) > len(b.b) {
			if _, err := io.ReadFull(s.rand, b.b[:]); err != nil {
				return u, fmt.Errorf("envelope: reading random message id: %w", err)
			}
			b.off = 0
		}
		copy(u[:], b.b[b.off:])
		b.off += len(u)
	} else {
		var r [16]byte // not u: handed to an interface, it lives on the heap
		if _, err := io.ReadFull(s.rand, r[:]); err != nil {
			return u, fmt.Errorf("envelope: reading random message id: %w", err)
		}
		u = r
	}
	ms := uint64(iat.UnixMilli())
	u[0], u[1], u[2] = byte(ms>>40), byte(ms>>32), byte(ms>>24)
	u[3], u[4], u[5] = byte(ms>>16), byte(ms>>8), byte(ms)
	u[6] = 0x70 | u[6]&0x0f // version 7
	u[8] = 0x80 | u[8]&0x3f // RFC 9562 variant
	return u, nil
}

// appendUUID appends u in canonical lowercase 8-4-4-4-12 form.
func appendUUID(dst []byte, u *[16]byte) []byte {
	const hex = "0123456789abcdef"
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hex[c>>4], hex[c&0xf])
	}
	return dst
}

// Message is one message being sealed: [Sealer.Begin], then
// [Message.AppendField] for each sensitive value, then [Message.Finish] with
// the data object. A Message is used by one goroutine.
type Message struct {
	hdr      Header // hdr.ID is empty when id holds it
	id       [36]byte
	rawHdr   []byte
	aead     *subtle.AESGCM
	det      tink.DeterministicAEAD
	fieldAD  []byte // LP(label) || LP(id) || LP(snd) || LP(rcp) || LP(typ)
	scratch  []byte
	buf      *[]byte // pooled storage of rawHdr and fieldAD, returned by Finish
	finished bool
}

// Header returns the message's header.
func (m *Message) Header() Header {
	h := m.hdr
	if h.ID == "" {
		h.ID = string(m.id[:])
	}
	h.Key.Wrapped = append([]byte(nil), h.Key.Wrapped...)
	return h
}

// AppendField encrypts plaintext (the JSON encoding of the value: exactly
// one JSON value, valid UTF-8 throughout, strings included) and appends the
// marker object {"$enc":"…","ct":"…"} to dst. Any other plaintext is
// refused with an error that does not match [ErrCannotOpen]. path is the concrete JSON
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
	if !validJSON(plaintext) {
		// The opener refuses a plaintext that is not one JSON value in
		// UTF-8; refusing it here too keeps a caller's bug from producing
		// an envelope nobody can open.
		return dst, errors.New("envelope: field plaintext is not one JSON value in valid UTF-8")
	}
	var ct []byte
	var err error
	switch mode {
	case Random:
		// Completed in place: the prefix is left as it is, and the room
		// after it holds each path in turn.
		ad := appendLP(m.fieldAD, path)
		ct, err = m.aead.Encrypt(plaintext, ad)
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
func (m *Message) Finish(data []byte) ([]byte, error) { return m.finish(data, true) }

func init() {
	sealhook.FinishEncoded = func(m any, data []byte) ([]byte, error) { return m.(*Message).finish(data, false) }
	sealhook.OpenInto = func(o, m any, envelope []byte, buf *[]byte) error {
		return o.(*Opener).openInto(m.(*Opened), envelope, buf, false)
	}
	sealhook.DataParseError = func(envelope, data []byte) error { return dataParseError(envelope, data) }
}

// finish is Finish; with check false (fieldcrypt's encoder, through
// internal/sealhook) the structure of data is not scanned, only required to
// start with '{'. Its UTF-8 is checked either way: a type's own MarshalJSON
// (or a json.RawMessage) can hold invalid UTF-8, which encoding/json lets
// through.
func (m *Message) finish(data []byte, check bool) ([]byte, error) {
	if m == nil || m.aead == nil {
		return nil, errNotConstructed
	}
	if m.finished {
		return nil, errors.New("envelope: Finish called twice")
	}
	if !utf8.Valid(data) {
		return nil, errors.New("envelope: data is not valid UTF-8")
	}
	if len(data) == 0 || data[0] != '{' {
		return nil, errors.New("envelope: data is not a JSON object")
	}
	if check {
		if end, ok := skipValue(data, 0, 1); !ok || end != len(data) {
			return nil, errors.New("envelope: data is not a JSON object")
		}
	}
	// The associated data is only read by the AEAD: a pooled buffer serves.
	// It holds the header and data, clear fields and markers, never a
	// plaintext of a sensitive value.
	bp := adPool.Get().(*[]byte)
	ad := appendLP(appendLP(appendLP((*bp)[:0], labelEnvelope), m.rawHdr), data)
	tag, err := m.aead.Encrypt(nil, ad)
	if cap(ad) <= maxPooledAD {
		*bp = ad[:0]
		adPool.Put(bp)
	}
	if err != nil {
		return nil, fmt.Errorf("envelope: computing tag: %w", err)
	}
	m.finished = true
	out := make([]byte, 0, len(m.rawHdr)+len(data)+len(`{"hdr":,"data":,"tag":""}`)+38)
	out = appendEnvelope(out, m.rawHdr, data, tag)
	if m.buf != nil {
		if cap(*m.buf) <= maxPooledHeader {
			hdrPool.Put(m.buf)
		}
		m.buf, m.rawHdr, m.fieldAD, m.scratch = nil, nil, nil, nil
	}
	return out, nil
}

// adPool recycles the buffers Finish builds the tag's associated data in;
// buffers above maxPooledAD are left to the collector.
var adPool = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledAD = 64 << 10

// String describes the sealer without key material.
func (s *Sealer) String() string {
	return "envelope.Sealer(" + s.snd + " -> " + s.rcp + ")"
}
