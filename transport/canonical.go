package transport

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/url"
	"strconv"

	"github.com/lifenavigator/crossservice/internal/names"
)

// Scheme is a signing algorithm.
type Scheme string

const (
	// SchemeV1 is the default: HMAC-SHA256 over the v1 canonical string,
	// whose first line is this label.
	SchemeV1 Scheme = "XSVC-HMAC-SHA256-V1"
	// SchemeLegacy is the original system's algorithm
	// (METHOD\nREQUEST_PATH\nTIMESTAMP\nBODY), for callers and targets that
	// have not moved to v1. Deprecated by design: every accepted legacy
	// request is logged at WARN.
	SchemeLegacy Scheme = "legacy"
)

// Header names on the wire. Each appears exactly once on a signed request.
const (
	HeaderRequestID   = "X-Request-ID"
	HeaderTimestamp   = "X-Timestamp"
	HeaderServiceName = "X-Service-Name"
	HeaderSignature   = "X-Signature"
	HeaderKeyID       = "X-Key-ID" // v1 only; its presence selects v1
)

// Limits of the header grammar (see SPEC.md part 2).
const (
	// MaxKeyIDLen is the longest key id: 1..64 bytes of [A-Za-z0-9._:-].
	MaxKeyIDLen = 64
	// MaxTimestampDigits keeps X-Timestamp below 2^53 so that JavaScript
	// numbers hold it exactly.
	MaxTimestampDigits = 15
	// MaxLegacyRequestIDLen bounds the (unsigned) legacy X-Request-ID:
	// 1..128 bytes of visible ASCII 0x21..0x7e.
	MaxLegacyRequestIDLen = 128
	// MaxMethodLen bounds the method: an uppercase token [A-Z][A-Z_-]*.
	MaxMethodLen = 32
)

// Components are the values a signature covers. [Components.Canonical]
// renders the exact bytes that are MACed; the same function serves the
// signer, the test vectors and diagnostics, while the verifier renders the
// identical bytes from the wire without building strings.
type Components struct {
	Scheme      Scheme      // zero: SchemeV1
	Environment Environment // v1 only
	Caller      string      // v1 only (X-Service-Name)
	Target      string      // v1 only: the verifying service's own name
	KeyID       string      // v1 only (X-Key-ID)
	Timestamp   string      // X-Timestamp: decimal Unix milliseconds
	RequestID   string      // v1 only (X-Request-ID, canonical lowercase UUID)
	Method      string      // uppercase token, as on the wire
	Path        string      // escaped path as on the wire, "/" if empty
	Query       string      // raw query as on the wire, without '?', "" if none
	ContentType string      // v1 only: Content-Type value as received (no surrounding whitespace), "" if absent
	Body        []byte      // exact body bytes
}

// Canonical returns the exact string that is MACed, or a [ComponentError]
// when a component is outside its grammar or holds a control byte.
func (c *Components) Canonical() ([]byte, error) {
	switch c.scheme() {
	case SchemeV1:
		if err := c.checkV1(); err != nil {
			return nil, err
		}
		sum := sha256.Sum256(c.Body)
		return appendV1(nil, string(c.Environment), c.Caller, c.Target, c.KeyID, c.Timestamp,
			c.RequestID, c.Method, c.Path, c.Query, c.ContentType, &sum), nil
	case SchemeLegacy:
		if err := c.checkLegacy(); err != nil {
			return nil, err
		}
		b := appendLegacyPrefix(nil, c.Method, c.Path, c.Query, c.Timestamp)
		return append(b, c.Body...), nil
	default:
		return nil, &ComponentError{Component: "scheme", Reason: "unknown scheme"}
	}
}

// Signature returns the lowercase hex HMAC-SHA256 of the canonical string
// under k.
func (c *Components) Signature(k Key) (string, error) {
	if k.s == nil {
		return "", ErrInvalidKey
	}
	canon, err := c.Canonical()
	if err != nil {
		return "", err
	}
	m := k.s.getMAC()
	m.Write(canon)
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	k.s.putMAC(m)
	return hex.EncodeToString(sum[:]), nil
}

func (c *Components) scheme() Scheme {
	if c.Scheme == "" {
		return SchemeV1
	}
	return c.Scheme
}

func (c *Components) checkV1() error {
	if _, err := ParseEnvironment(string(c.Environment)); err != nil {
		return &ComponentError{Component: "environment", Reason: "not development, staging or production"}
	}
	if !names.Valid(c.Caller) {
		return &ComponentError{Component: "caller", Reason: "not a service name"}
	}
	if !names.Valid(c.Target) {
		return &ComponentError{Component: "target", Reason: "not a service name"}
	}
	if !validKeyID(c.KeyID) {
		return &ComponentError{Component: "key id", Reason: "not 1..64 bytes of [A-Za-z0-9._:-]"}
	}
	if !validUUID(c.RequestID) {
		return &ComponentError{Component: "request id", Reason: "not a canonical lowercase UUID"}
	}
	if hasControl(c.ContentType) {
		return &ComponentError{Component: "content type", Reason: "contains a control byte"}
	}
	if ct := c.ContentType; ct != "" && (ct[0] == ' ' || ct[len(ct)-1] == ' ') {
		return &ComponentError{Component: "content type", Reason: "leading or trailing space (receivers strip it)"}
	}
	return checkCommon(c.Timestamp, c.Method, c.Path, c.Query)
}

func (c *Components) checkLegacy() error {
	return checkCommon(c.Timestamp, c.Method, c.Path, c.Query)
}

func checkCommon(ts, method, path, query string) error {
	if _, ok := parseTimestamp(ts); !ok {
		return &ComponentError{Component: "timestamp", Reason: "not 1..15 decimal digits without leading zeros"}
	}
	return checkRequestLine(method, path, query, false)
}

// checkRequestLine checks the components a signer takes from the request
// (the timestamp it makes itself). verbatim says that every byte of path is
// one escapedPath leaves as it is, none of which is a control byte or '?'.
func checkRequestLine(method, path, query string, verbatim bool) error {
	if !validMethod(method) {
		return &ComponentError{Component: "method", Reason: "not an uppercase token"}
	}
	if len(path) == 0 || path[0] != '/' || !verbatim && (hasControl(path) || indexByte(path, '?') >= 0) {
		return &ComponentError{Component: "path", Reason: "not an escaped path starting with '/' without control bytes"}
	}
	if hasControl(query) {
		return &ComponentError{Component: "query", Reason: "contains a control byte"}
	}
	return nil
}

// appendV1 appends the v1 canonical string. All arguments must have been
// checked: no component holds '\n', so the line structure is unambiguous.
func appendV1(b []byte, env, caller, target, keyID, ts, reqID, method, path, query, ctype string, bodySum *[sha256.Size]byte) []byte {
	b = append(b, SchemeV1...)
	for _, s := range [...]string{env, caller, target, keyID, ts, reqID, method, path, query, ctype} {
		b = append(b, '\n')
		b = append(b, s...)
	}
	b = append(b, '\n')
	return hex.AppendEncode(b, bodySum[:])
}

// appendLegacyPrefix appends METHOD\nREQUEST_PATH\nTIMESTAMP\n; the body
// follows. REQUEST_PATH carries "?"+query when the query is non-empty.
func appendLegacyPrefix(b []byte, method, path, query, ts string) []byte {
	b = append(b, method...)
	b = append(b, '\n')
	b = append(b, path...)
	if query != "" {
		b = append(b, '?')
		b = append(b, query...)
	}
	b = append(b, '\n')
	b = append(b, ts...)
	return append(b, '\n')
}

// hasControl reports a byte < 0x20 or 0x7f (CR, LF, TAB, NUL, DEL...).
// Eight bytes at a time: a word has a byte below 0x20 when
// (w - 0x20...) & ^w & 0x80... is non-zero, and a 0x7f byte when w ^ 0x7f...
// has a zero byte. Bytes of 0x80 and above are neither.
func hasControl(s string) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := binary.LittleEndian.Uint64([]byte(s[i : i+8]))
		d := w ^ (0x7f * lo)
		if ((w-0x20*lo)&^w|(d-lo)&^d)&hi != 0 {
			return true
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func validKeyID(s string) bool {
	if len(s) == 0 || len(s) > MaxKeyIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// lowerHex[c] is true for 0-9 and a-f.
var lowerHex = func() (t [256]bool) {
	for _, c := range "0123456789abcdef" {
		t[c] = true
	}
	return t
}()

func allLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !lowerHex[s[i]] {
			return false
		}
	}
	return true
}

// validUUID accepts exactly the canonical lowercase 8-4-4-4-12 form, any
// version (the Go signer sends version 7).
func validUUID(s string) bool {
	return len(s) == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-' &&
		allLowerHex(s[:8]) && allLowerHex(s[9:13]) && allLowerHex(s[14:18]) && allLowerHex(s[19:23]) && allLowerHex(s[24:])
}

func validLegacyRequestID(s string) bool {
	if len(s) == 0 || len(s) > MaxLegacyRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func validMethod(s string) bool {
	if len(s) == 0 || len(s) > MaxMethodLen || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func validSignature(s string) bool { return len(s) == 2*sha256.Size && allLowerHex(s) }

// maxTimestamp is the largest timestamp of MaxTimestampDigits digits.
const maxTimestamp = 999_999_999_999_999

// parseTimestamp accepts "0" or 1..15 digits without a leading zero.
func parseTimestamp(s string) (int64, bool) {
	if len(s) == 0 || len(s) > MaxTimestampDigits || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// escapedPath returns u.EscapedPath(). A path without RawPath made only of
// bytes that url.URL never escapes in a path is its own escaped form, found
// by one table lookup per byte instead of net/url's general escaper; then
// verbatim is true.
func escapedPath(u *url.URL) (path string, verbatim bool) {
	if u.RawPath == "" {
		i := 0
		for i < len(u.Path) && pathVerbatim[u.Path[i]] {
			i++
		}
		if i == len(u.Path) {
			return u.Path, true
		}
	}
	return u.EscapedPath(), false
}

// pathVerbatim holds the bytes net/url leaves as they are in a path:
// unreserved characters (RFC 3986 §2.3) and the sub-delimiters and
// separators it does not escape there ("$&+,/:;=@"). "*" is left out: a
// path of "*" alone has its own rule in EscapedPath.
var pathVerbatim = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-_.~$&+,/:;=@" {
		t[c] = true
	}
	return t
}()
