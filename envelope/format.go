package envelope

import (
	"bytes"
	"encoding/base64"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/lifenavigator/crossservice/internal/names"
)

// Version is the only format version this package reads and writes.
const Version = 1

// DefaultMaxSize is the largest envelope Parse and an [Opener] accept unless
// configured otherwise: 16 MiB.
const DefaultMaxSize = 16 << 20

// Algorithm names of [KeyInfo.Alg].
const (
	AlgHPKE = "hpke" // data key wrapped with Tink HPKE for a public keyset
	AlgAEAD = "aead" // data key wrapped with a Tink AEAD (keyset or KMS)
)

const (
	maxTypeLen  = 256
	maxKeyIDLen = 64
	dataKeySize = 32
	tagSize     = 28 // GCM nonce (12) || GCM tag (16) over an empty plaintext
	iatLayout   = "2006-01-02T15:04:05.000Z"
)

// KeyInfo says how the data key of a message is wrapped: the algorithm
// ([AlgHPKE] or [AlgAEAD]), the recipient key's id and the wrapped key.
type KeyInfo struct {
	Alg     string
	KeyID   string
	Wrapped []byte
}

// Header is the decoded "hdr" member of an envelope.
type Header struct {
	ID        string    // UUIDv7, canonical lowercase
	Sender    string    // service name; NOT authenticated with a public-key recipient, see the package doc
	Recipient string    // service name
	Type      string    // type name, 1..256 bytes of printable ASCII
	IssuedAt  time.Time // UTC, millisecond precision
	Key       KeyInfo
}

// Envelope is the wire form of a sealed message, as [Parse] reads it and
// [Envelope.Marshal] writes it. Parsing checks form only: nothing in an
// Envelope is authenticated until an [Opener] has opened it.
type Envelope struct {
	Header    Header
	RawHeader []byte // exact bytes of "hdr", first '{' to its matching '}'
	Data      []byte // exact bytes of "data"
	Tag       []byte // decoded "tag", 28 bytes
}

// Parse reads an envelope of at most [DefaultMaxSize] bytes. It is strict:
// unknown or duplicate members, a missing member, anything after the object,
// invalid UTF-8, non-canonical base64url and an unsupported version are all
// refused with a [*ParseError]. The result does not alias b.
func Parse(b []byte) (*Envelope, error) {
	e, err := parse(b, DefaultMaxSize)
	if err != nil {
		return nil, err
	}
	e.RawHeader = bytes.Clone(e.RawHeader)
	e.Data = bytes.Clone(e.Data)
	return e, nil
}

// Marshal returns the canonical wire form: {"hdr":…,"data":…,"tag":"…"} with
// no whitespace outside hdr and data. RawHeader is written as is; when it is
// nil the header is marshalled from Header. Marshal(Parse(b)) == b whenever b
// was written by this package. Marshal does not validate: marshalling an
// Envelope that Parse did not produce can give bytes Parse refuses.
func (e *Envelope) Marshal() []byte {
	hdr := e.RawHeader
	if hdr == nil {
		hdr = appendHeader(nil, &e.Header)
	}
	return appendEnvelope(make([]byte, 0, len(hdr)+len(e.Data)+64), hdr, e.Data, e.Tag)
}

func appendEnvelope(dst, hdr, data, tag []byte) []byte {
	dst = append(dst, `{"hdr":`...)
	dst = append(dst, hdr...)
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	dst = append(dst, `,"tag":"`...)
	dst = base64.RawURLEncoding.AppendEncode(dst, tag)
	return append(dst, `"}`...)
}

// parse is Parse without the copies: RawHeader and Data alias b.
func parse(b []byte, maxSize int) (*Envelope, error) {
	if len(b) > maxSize {
		return nil, parseErr("envelope too large")
	}
	if !utf8.Valid(b) {
		return nil, parseErr("invalid UTF-8")
	}
	e := new(Envelope)
	s := &scanner{b: b}
	s.ws()
	var haveHdr, haveData, haveTag bool
	err := s.members(func(name string) error {
		switch name {
		case "hdr":
			start := s.i
			if err := parseHeader(s, &e.Header); err != nil {
				return err
			}
			e.RawHeader, haveHdr = b[start:s.i:s.i], true
		case "data":
			if s.next() != '{' {
				return parseErr("data is not an object")
			}
			start := s.i
			if err := s.value(1); err != nil {
				return err
			}
			e.Data, haveData = b[start:s.i:s.i], true
		case "tag":
			tag, err := s.b64()
			if err != nil {
				return err
			}
			if len(tag) != tagSize {
				return parseErr("tag has the wrong length")
			}
			e.Tag, haveTag = tag, true
		default:
			return parseErr("unknown member")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !haveHdr || !haveData || !haveTag {
		return nil, parseErr("missing member")
	}
	s.ws()
	if !s.eof() {
		return nil, parseErr("trailing data after the envelope")
	}
	return e, nil
}

// parseHeader reads the "hdr" object at s. All members are required, in any
// order; unknown and duplicate ones are refused.
func parseHeader(s *scanner, h *Header) error {
	const (
		fV = 1 << iota
		fID
		fSnd
		fRcp
		fTyp
		fIat
		fKey
		fAll = 1<<iota - 1
	)
	seen := 0
	err := s.members(func(name string) error {
		var err error
		switch name {
		case "v":
			seen |= fV
			var num []byte
			if s.next() == '-' || (s.next() >= '0' && s.next() <= '9') {
				num, err = s.number()
			} else {
				err = parseErr("v is not a number")
			}
			if err == nil && string(num) != "1" {
				err = parseErr("unsupported version")
			}
		case "id":
			seen |= fID
			h.ID, err = s.str()
			if err == nil && !validUUIDv7(h.ID) {
				err = parseErr("id is not a canonical UUIDv7")
			}
		case "snd":
			seen |= fSnd
			h.Sender, err = s.str()
			if err == nil && !names.Valid(h.Sender) {
				err = parseErr("snd is not a service name")
			}
		case "rcp":
			seen |= fRcp
			h.Recipient, err = s.str()
			if err == nil && !names.Valid(h.Recipient) {
				err = parseErr("rcp is not a service name")
			}
		case "typ":
			seen |= fTyp
			h.Type, err = s.str()
			if err == nil && !validType(h.Type) {
				err = parseErr("typ is not a type name")
			}
		case "iat":
			seen |= fIat
			var v string
			if v, err = s.str(); err == nil {
				h.IssuedAt, err = parseIssuedAt(v)
			}
		case "key":
			seen |= fKey
			err = parseKeyInfo(s, &h.Key)
		default:
			err = parseErr("unknown member in hdr")
		}
		return err
	})
	if err != nil {
		return err
	}
	if seen != fAll {
		return parseErr("missing member in hdr")
	}
	return nil
}

func parseKeyInfo(s *scanner, k *KeyInfo) error {
	const (
		fAlg = 1 << iota
		fKid
		fWk
		fAll = 1<<iota - 1
	)
	seen := 0
	err := s.members(func(name string) error {
		var err error
		switch name {
		case "alg":
			seen |= fAlg
			k.Alg, err = s.str()
			if err == nil && k.Alg != AlgHPKE && k.Alg != AlgAEAD {
				err = parseErr("unknown alg")
			}
		case "kid":
			seen |= fKid
			k.KeyID, err = s.str()
			if err == nil && !validKeyID(k.KeyID) {
				err = parseErr("kid is not a key id")
			}
		case "wk":
			seen |= fWk
			k.Wrapped, err = s.b64()
			if err == nil && len(k.Wrapped) == 0 {
				err = parseErr("wk is empty")
			}
		default:
			err = parseErr("unknown member in key")
		}
		return err
	})
	if err != nil {
		return err
	}
	if seen != fAll {
		return parseErr("missing member in key")
	}
	return nil
}

// b64 reads a JSON string holding strict base64url without padding. The
// alphabet is checked first because encoding/base64 skips '\r' and '\n'.
func (s *scanner) b64() ([]byte, error) {
	if s.next() != '"' {
		return nil, parseErr("expected a string")
	}
	start := s.i + 1
	end := start
	for end < len(s.b) && isB64URL(s.b[end]) {
		end++
	}
	if end >= len(s.b) || s.b[end] != '"' {
		return nil, parseErr("invalid base64url")
	}
	out, err := base64.RawURLEncoding.Strict().AppendDecode(nil, s.b[start:end])
	if err != nil {
		return nil, parseErr("invalid base64url")
	}
	s.i = end + 1
	return out, nil
}

func isB64URL(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// appendHeader writes the canonical "hdr" object: members in spec order, no
// whitespace, '"' and '\' in typ escaped as \" and \\ (the only characters
// the grammar allows that JSON requires escaping).
func appendHeader(dst []byte, h *Header) []byte {
	dst = append(dst, `{"v":1,"id":"`...)
	dst = append(dst, h.ID...)
	dst = append(dst, `","snd":"`...)
	dst = append(dst, h.Sender...)
	dst = append(dst, `","rcp":"`...)
	dst = append(dst, h.Recipient...)
	dst = append(dst, `","typ":"`...)
	for i := 0; i < len(h.Type); i++ {
		if c := h.Type[i]; c == '"' || c == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, h.Type[i])
	}
	dst = append(dst, `","iat":"`...)
	dst = h.IssuedAt.UTC().AppendFormat(dst, iatLayout)
	dst = append(dst, `","key":{"alg":"`...)
	dst = append(dst, h.Key.Alg...)
	dst = append(dst, `","kid":"`...)
	dst = append(dst, h.Key.KeyID...)
	dst = append(dst, `","wk":"`...)
	dst = base64.RawURLEncoding.AppendEncode(dst, h.Key.Wrapped)
	return append(dst, `"}}`...)
}

// validUUIDv7 accepts only the canonical lowercase 8-4-4-4-12 form with
// version 7 and the RFC 9562 variant (10xx).
func validUUIDv7(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return s[14] == '7' && (s[19] == '8' || s[19] == '9' || s[19] == 'a' || s[19] == 'b')
}

func validType(s string) bool {
	if len(s) == 0 || len(s) > maxTypeLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func validKeyID(s string) bool {
	if len(s) == 0 || len(s) > maxKeyIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// parseIssuedAt accepts exactly YYYY-MM-DDTHH:MM:SS.mmmZ: the layout fixes
// every digit, time.Parse range-checks each part, and the length check
// refuses anything after the Z.
func parseIssuedAt(v string) (time.Time, error) {
	if len(v) != len(iatLayout) {
		return time.Time{}, parseErr("iat is not RFC 3339 UTC with milliseconds")
	}
	t, err := time.Parse(iatLayout, v)
	if err != nil {
		return time.Time{}, parseErr("iat is not RFC 3339 UTC with milliseconds")
	}
	return t.UTC(), nil
}

// formatTinkKeyID and parseTinkKeyID convert a Tink key id to and from its
// canonical decimal "kid" (no sign, no leading zeros).
func formatTinkKeyID(id uint32) string { return strconv.FormatUint(uint64(id), 10) }

func parseTinkKeyID(kid string) (uint32, bool) {
	if len(kid) == 0 || len(kid) > 10 || (kid[0] == '0' && len(kid) > 1) {
		return 0, false
	}
	for i := 0; i < len(kid); i++ {
		if kid[i] < '0' || kid[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(kid, 10, 32)
	return uint32(v), err == nil
}
