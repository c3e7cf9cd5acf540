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

// b64URLStrict decodes the b64u of section 2: base64url without padding,
// unused bits zero. One value for every call: Strict returns a copy of the
// whole Encoding.
var b64URLStrict = base64.RawURLEncoding.Strict()

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

// parsed is an Envelope with room for its tag, so that opening one costs
// one allocation less.
type parsed struct {
	Envelope
	tag [tagSize]byte
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
	e := new(Envelope)
	if err := parseInto(e, nil, b, maxSize, true); err != nil {
		return nil, err
	}
	return e, nil
}

// parseInto is parse into *e. The tag is decoded into tag when it is not
// nil. With scanData false, the caller takes on checking that data is
// exactly one JSON object (see parseCanonical); everything else is checked
// either way.
func parseInto(e *Envelope, tag *[tagSize]byte, b []byte, maxSize int, scanData bool) error {
	if len(b) > maxSize {
		return parseErr("envelope too large")
	}
	if !utf8.Valid(b) {
		return parseErr("invalid UTF-8")
	}
	if parseCanonical(e, tag, b, scanData) {
		return nil
	}
	return parseGeneral(e, tag, b)
}

// parseGeneral is parseInto's parser for any layout, once b is known to be
// valid UTF-8 of an acceptable size.
func parseGeneral(e *Envelope, tag *[tagSize]byte, b []byte) error {
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
			if end, ok := skipValue(b, s.i, 1); ok {
				s.i = end
			} else if err := s.value(1); err != nil {
				return err // why it is refused
			}
			e.Data, haveData = b[start:s.i:s.i], true
		case "tag":
			var dst []byte
			if tag != nil {
				dst = tag[:0]
			}
			tag, err := s.b64To(dst)
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
		return err
	}
	if !haveHdr || !haveData || !haveTag {
		return parseErr("missing member")
	}
	s.ws()
	if !s.eof() {
		return parseErr("trailing data after the envelope")
	}
	return nil
}

// Canonical form of an envelope, around its values (sections 4.1, 5.3).
const (
	canonHdr  = `{"hdr":`
	canonID   = `{"v":1,"id":"`
	canonSnd  = `","snd":"`
	canonRcp  = `","rcp":"`
	canonTyp  = `","typ":"`
	canonIat  = `","iat":"`
	canonAlg  = `","key":{"alg":"`
	canonKid  = `","kid":"`
	canonWk   = `","wk":"`
	canonData = `,"data":`
	canonTag  = `,"tag":"`
	canonEnd  = `"}`
	tagB64Len = (tagSize*8 + 5) / 6 // b64u of the tag, without padding
)

// parseCanonical reads an envelope in the canonical form a sealer writes,
// with no escape in any header string: what parseGeneral makes of such an
// input, checked the same way, without its member-by-member walk, and with
// the header's strings sharing one allocation. For anything else it reports
// false and leaves e as it was, for parseGeneral to judge.
//
// With scanData false, data is not walked: it is what lies between
// `"data":` and the fixed-length tail `,"tag":"TAG"}`, and only its first
// and last bytes are checked. The caller must then refuse data that is not
// one JSON object exactly as skipValue would: fieldcrypt's decoder, which
// walks all of it with the same grammar (through internal/sealhook), and
// refuses more (unknown and duplicate members, depth beyond its own,
// smaller, limit).
func parseCanonical(e *Envelope, tag *[tagSize]byte, b []byte, scanData bool) bool {
	i := 0
	lit := func(l string) bool {
		if len(b)-i < len(l) || string(b[i:i+len(l)]) != l {
			return false
		}
		i += len(l)
		return true
	}
	// str reads a string body without escapes up to its closing quote,
	// which it leaves.
	str := func() (int, int, bool) {
		j := plainRun(b, i)
		if j >= len(b) || b[j] != '"' {
			return 0, 0, false
		}
		lo := i
		i = j
		return lo, j, true
	}
	var v [8][2]int // id, snd, rcp, typ, iat, alg, kid, wk
	if !lit(canonHdr) {
		return false
	}
	hdrStart := i
	for k, l := range [...]string{canonID, canonSnd, canonRcp, canonTyp, canonIat, canonAlg, canonKid, canonWk} {
		var ok bool
		if !lit(l) {
			return false
		}
		if v[k][0], v[k][1], ok = str(); !ok {
			return false
		}
	}
	if !lit(`"}}`) {
		return false
	}
	hdrEnd := i
	if !lit(canonData) || i >= len(b) || b[i] != '{' {
		return false
	}
	dataStart := i
	var dataEnd int
	if scanData {
		end, ok := skipValue(b, i, 1)
		if !ok {
			return false
		}
		dataEnd = end
	} else {
		dataEnd = len(b) - len(canonTag) - tagB64Len - len(canonEnd)
		if dataEnd <= dataStart+1 || b[dataEnd-1] != '}' {
			return false
		}
	}
	i = dataEnd
	if !lit(canonTag) {
		return false
	}
	tagLo, tagHi, ok := str()
	if !ok || !lit(canonEnd) || i != len(b) {
		return false
	}
	for _, c := range b[tagLo:tagHi] {
		if !isB64URL(c) {
			return false
		}
	}
	for _, c := range b[v[7][0]:v[7][1]] {
		if !isB64URL(c) {
			return false
		}
	}
	var dst []byte
	if tag != nil {
		dst = tag[:0]
	}
	t, err := b64URLStrict.AppendDecode(dst, b[tagLo:tagHi])
	if err != nil || len(t) != tagSize {
		return false
	}
	wk, err := b64URLStrict.AppendDecode(nil, b[v[7][0]:v[7][1]])
	if err != nil || len(wk) == 0 {
		return false
	}
	if v[4][1]-v[4][0] != len(iatLayout) {
		return false
	}
	iat, ok := parseIssuedAtFast(b[v[4][0]:v[4][1]])
	if !ok {
		return false
	}
	hs := string(b[hdrStart:hdrEnd]) // one copy for all the header's strings
	sub := func(k int) string { return hs[v[k][0]-hdrStart : v[k][1]-hdrStart] }
	var h Header
	h.ID, h.Sender, h.Recipient, h.Type, h.Key.KeyID = sub(0), sub(1), sub(2), sub(3), sub(6)
	switch string(b[v[5][0]:v[5][1]]) {
	case AlgHPKE:
		h.Key.Alg = AlgHPKE
	case AlgAEAD:
		h.Key.Alg = AlgAEAD
	default:
		return false
	}
	if !validUUIDv7(h.ID) || !names.Valid(h.Sender) || !names.Valid(h.Recipient) || !validType(h.Type) || !validKeyID(h.Key.KeyID) {
		return false
	}
	h.IssuedAt, h.Key.Wrapped = iat, wk
	e.Header = h
	e.RawHeader = b[hdrStart:hdrEnd:hdrEnd]
	e.Data = b[dataStart:dataEnd:dataEnd]
	e.Tag = t
	return true
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
			if raw, ok := s.plainStr(); ok {
				h.IssuedAt, err = parseIssuedAt(raw)
				break
			}
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
func (s *scanner) b64() ([]byte, error) { return s.b64To(nil) }

// b64To is b64 appending to dst.
func (s *scanner) b64To(dst []byte) ([]byte, error) {
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
	out, err := b64URLStrict.AppendDecode(dst, s.b[start:end])
	if err != nil {
		return nil, parseErr("invalid base64url")
	}
	s.i = end + 1
	return out, nil
}

func isB64URL(c byte) bool { return b64URLByte[c] }

var b64URLByte = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
	}
	return t
}()

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
	dst = appendType(dst, h.Type)
	dst = append(dst, `","iat":"`...)
	dst = appendIssuedAt(dst, h.IssuedAt)
	dst = append(dst, `","key":{"alg":"`...)
	dst = append(dst, h.Key.Alg...)
	dst = append(dst, `","kid":"`...)
	dst = append(dst, h.Key.KeyID...)
	dst = append(dst, `","wk":"`...)
	dst = base64.RawURLEncoding.AppendEncode(dst, h.Key.Wrapped)
	return append(dst, `"}}`...)
}

// appendType writes a type name as the header's typ string body: '"' and
// '\' escaped, nothing else.
func appendType(dst []byte, typ string) []byte {
	for i := 0; i < len(typ); i++ {
		if c := typ[i]; c == '"' || c == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, typ[i])
	}
	return dst
}

// appendIssuedAt writes t in UTC as YYYY-MM-DDTHH:MM:SS.mmmZ: the bytes of
// t.UTC().AppendFormat(dst, iatLayout), without the layout interpreter.
func appendIssuedAt(dst []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		return t.AppendFormat(dst, iatLayout)
	}
	h, mi, s := t.Clock()
	ms := t.Nanosecond() / 1e6
	return append(dst,
		byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+int(mo)/10), byte('0'+int(mo)%10), '-',
		byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+h/10), byte('0'+h%10), ':',
		byte('0'+mi/10), byte('0'+mi%10), ':',
		byte('0'+s/10), byte('0'+s%10), '.',
		byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
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

// parseIssuedAt accepts exactly YYYY-MM-DDTHH:MM:SS.mmmZ (SPEC.md part 1,
// section 5.1): 24 bytes, an ASCII digit at every digit place, '-', '-',
// 'T', ':', ':', '.' and 'Z' at theirs, and a real calendar date and time
// (no month 13, no 30 February, no hour 24, no second 60). Nothing else:
// in particular none of what time.Parse also takes for this layout, such
// as a comma before the milliseconds or a sign among their digits.
func parseIssuedAt[S string | []byte](v S) (time.Time, error) {
	t, ok := parseIssuedAtFast(v)
	if !ok {
		return time.Time{}, parseErr("iat is not RFC 3339 UTC with milliseconds")
	}
	return t, nil
}

// parseIssuedAtFast is parseIssuedAt reporting success as a bool, for
// parseCanonical. It is the only iat parser: there is no lenient fallback.
func parseIssuedAtFast[S string | []byte](v S) (time.Time, bool) {
	if len(v) != len(iatLayout) {
		return time.Time{}, false
	}
	if v[4] != '-' || v[7] != '-' || v[10] != 'T' || v[13] != ':' || v[16] != ':' || v[19] != '.' || v[23] != 'Z' {
		return time.Time{}, false
	}
	num := func(i, n int) int {
		x := 0
		for _, c := range []byte(v[i : i+n]) {
			if c < '0' || c > '9' {
				return -1
			}
			x = x*10 + int(c-'0')
		}
		return x
	}
	y, mo, d := num(0, 4), num(5, 2), num(8, 2)
	h, mi, s, ms := num(11, 2), num(14, 2), num(17, 2), num(20, 3)
	if y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 59 || ms < 0 {
		return time.Time{}, false
	}
	days := [...]int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[mo-1]
	if mo == 2 && y%4 == 0 && (y%100 != 0 || y%400 == 0) {
		days = 29
	}
	if d > days {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(mo), d, h, mi, s, ms*1e6, time.UTC), true
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
