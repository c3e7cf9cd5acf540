package fieldcrypt

import (
	"encoding"
	"encoding/base64"
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lifenavigator/crossservice/envelope"
	"github.com/lifenavigator/crossservice/schema"
)

// encoder writes the JSON of one value as one recipient's projection says,
// replacing each sensitive value by the marker envelope.Message.AppendField
// makes of it. Its output is byte for byte what encoding/json writes for
// the same (filtered) value: the same escaping, float format, map key order
// and omitempty rules. One choice does not follow the toolchain: invalid
// UTF-8 in a clear string is written as \ufffd (Go 1.26 and earlier; Go
// 1.27 writes the three bytes of U+FFFD), so the bytes sealed never depend
// on the Go version that built the sender.
type encoder struct {
	msg      *envelope.Message
	path     []byte // concrete JSON Pointer of the value being written
	spath    []byte // the same with indices and map keys as "*"
	scratch  []byte // plaintext of a sensitive value
	out      []byte // the data object, reused across messages
	depth    int
	maxDepth int
}

// encodeError is a value Seal cannot write. Its text names no value.
type encodeError string

func (e encodeError) Error() string { return "fieldcrypt: cannot seal: " + string(e) }

const (
	errTooDeep     = encodeError("value nested deeper than Config.MaxDepth")
	errUnsupported = encodeError("NaN or infinite float (not representable in JSON)")
	errMarkerKey   = encodeError(`a clear map whose first key is "$enc" would read as an encrypted-value marker`)
)

var timeType = reflect.TypeFor[time.Time]()

// appendValue appends the JSON of v. sealed: v is inside a value being
// encrypted as a whole, so sensitive modes below it are ignored (share tags
// still filter) and no path is tracked.
func (e *encoder) appendValue(dst []byte, p *schema.Projection, v reflect.Value, sealed bool) ([]byte, error) {
	n := p.Node
	switch n.Kind {
	case schema.String:
		return appendString(dst, v.String()), nil
	case schema.Int:
		return strconv.AppendInt(dst, v.Int(), 10), nil
	case schema.Uint:
		return strconv.AppendUint(dst, v.Uint(), 10), nil
	case schema.Bool:
		if v.Bool() {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case schema.Float:
		return appendFloat(dst, v.Float(), n.Type.Bits())
	case schema.Bytes:
		if v.IsNil() {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, v.Bytes())
		return append(dst, '"'), nil
	case schema.JSON:
		start := len(dst)
		var err error
		dst, err = appendLeaf(dst, n, v)
		if err == nil && e.depth+nesting(dst[start:]) > e.maxDepth {
			return dst, errTooDeep // as the decoder counts it, and within the format's limit
		}
		return dst, err
	case schema.Struct:
		return e.appendStruct(dst, p, v, sealed)
	case schema.Pointer:
		for i := 0; ; i++ {
			if v.IsNil() {
				return append(dst, "null"...), nil
			}
			v, p = v.Elem(), p.Elem
			if p.Node.Kind != schema.Pointer {
				break
			}
			if i > e.maxDepth {
				return dst, errTooDeep
			}
		}
		return e.appendValue(dst, p, v, sealed)
	case schema.Slice:
		if v.IsNil() {
			return append(dst, "null"...), nil
		}
		return e.appendList(dst, p, v, sealed)
	case schema.Array:
		return e.appendList(dst, p, v, sealed)
	case schema.Map:
		if v.IsNil() {
			return append(dst, "null"...), nil
		}
		return e.appendMap(dst, p, v, sealed)
	}
	// schema refuses shared fields of any other kind.
	return dst, encodeError("internal error: unexpected kind " + n.Kind.String())
}

func (e *encoder) enter() error {
	e.depth++
	if e.depth > e.maxDepth {
		return errTooDeep
	}
	return nil
}

func (e *encoder) appendStruct(dst []byte, p *schema.Projection, v reflect.Value, sealed bool) ([]byte, error) {
	if err := e.enter(); err != nil {
		return dst, err
	}
	dst = append(dst, '{')
	first := true
	var err error
	for i := range p.Fields {
		f := &p.Fields[i]
		fv := v
		if len(f.Index) == 1 {
			fv = v.Field(f.Index[0])
		} else if fv = fieldByIndex(v, f.Index); !fv.IsValid() {
			continue // promoted through a nil embedded pointer
		}
		if (f.OmitEmpty || f.OmitZero) && f.Omitted(fv) {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, f.JSONKey...)
		if sealed || f.Mode == schema.Clear {
			if sealed || !f.Proj.Sensitive {
				dst, err = e.appendValue(dst, f.Proj, fv, sealed)
			} else {
				pl, sl := e.push(f.Token, f.Token)
				dst, err = e.appendValue(dst, f.Proj, fv, false)
				e.pop(pl, sl)
			}
		} else {
			pl, sl := e.push(f.Token, f.Token)
			dst, err = e.appendSealed(dst, f, fv)
			e.pop(pl, sl)
		}
		if err != nil {
			return dst, err
		}
	}
	e.depth--
	return append(dst, '}'), nil
}

// appendSealed writes the JSON of a sensitive field's value into the
// scratch buffer, encrypts it into a marker at the current path, and wipes
// the plaintext.
func (e *encoder) appendSealed(dst []byte, f *schema.ProjectedField, v reflect.Value) ([]byte, error) {
	pt, err := e.appendValue(e.scratch[:0], f.Proj, v, true)
	e.scratch = pt[:0]
	if err != nil {
		clear(pt)
		return dst, err
	}
	mode := envelope.Random
	if f.Mode == schema.Deterministic {
		mode = envelope.Deterministic
	}
	dst, err = e.msg.AppendField(dst, mode, e.path, e.spath, pt)
	clear(pt)
	return dst, err
}

func (e *encoder) push(token, stoken string) (int, int) {
	pl, sl := len(e.path), len(e.spath)
	e.path = append(e.path, token...)
	e.spath = append(e.spath, stoken...)
	return pl, sl
}

func (e *encoder) pop(pl, sl int) {
	e.path, e.spath = e.path[:pl], e.spath[:sl]
}

func (e *encoder) appendList(dst []byte, p *schema.Projection, v reflect.Value, sealed bool) ([]byte, error) {
	if err := e.enter(); err != nil {
		return dst, err
	}
	track := !sealed && p.Elem.Sensitive
	dst = append(dst, '[')
	var err error
	for i, n := 0, v.Len(); i < n; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		if track {
			pl, sl := len(e.path), len(e.spath)
			e.path = strconv.AppendInt(append(e.path, '/'), int64(i), 10)
			e.spath = append(e.spath, "/*"...)
			dst, err = e.appendValue(dst, p.Elem, v.Index(i), false)
			e.pop(pl, sl)
		} else {
			dst, err = e.appendValue(dst, p.Elem, v.Index(i), sealed)
		}
		if err != nil {
			return dst, err
		}
	}
	e.depth--
	return append(dst, ']'), nil
}

type mapEntry struct {
	key string
	val reflect.Value
}

func (e *encoder) appendMap(dst []byte, p *schema.Projection, v reflect.Value, sealed bool) ([]byte, error) {
	if err := e.enter(); err != nil {
		return dst, err
	}
	n := p.Node
	entries := make([]mapEntry, 0, v.Len())
	it := v.MapRange()
	for it.Next() {
		k, err := mapKeyString(n, it.Key())
		if err != nil {
			return dst, err
		}
		// Map values cannot be addressed; copy each so that pointer-receiver
		// marshalling methods below it are used (see schema.Node.AddrMarshal).
		val := reflect.New(n.Elem.Type).Elem()
		val.SetIterValue(it)
		entries = append(entries, mapEntry{k, val})
	}
	slices.SortFunc(entries, func(a, b mapEntry) int { return strings.Compare(a.key, b.key) })
	if !sealed && len(entries) > 0 && entries[0].key == schema.MarkerMember {
		// The reader would take this clear map for a marker and refuse it.
		return dst, errMarkerKey
	}
	track := !sealed && p.Elem.Sensitive
	dst = append(dst, '{')
	var err error
	for i, en := range entries {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, en.key)
		dst = append(dst, ':')
		if track {
			pl, sl := len(e.path), len(e.spath)
			e.path = schema.AppendPointerEscape(append(e.path, '/'), en.key)
			e.spath = append(e.spath, "/*"...)
			dst, err = e.appendValue(dst, p.Elem, en.val, false)
			e.pop(pl, sl)
		} else {
			dst, err = e.appendValue(dst, p.Elem, en.val, sealed)
		}
		if err != nil {
			return dst, err
		}
	}
	e.depth--
	return append(dst, '}'), nil
}

// mapKeyString resolves a map key as encoding/json does.
func mapKeyString(n *schema.Node, k reflect.Value) (string, error) {
	switch n.Key {
	case schema.KeyString:
		return k.String(), nil
	case schema.KeyText:
		if k.Kind() == reflect.Pointer && k.IsNil() {
			return "", nil
		}
		b, err := k.Interface().(encoding.TextMarshaler).MarshalText()
		if err != nil {
			return "", encodeError("a map key's MarshalText failed")
		}
		return string(b), nil
	case schema.KeyInt:
		return strconv.FormatInt(k.Int(), 10), nil
	case schema.KeyUint:
		return strconv.FormatUint(k.Uint(), 10), nil
	}
	return "", encodeError("internal error: unexpected map key kind")
}

// fieldByIndex follows a promoted field's index path; the zero Value means a
// nil embedded pointer on the way.
func fieldByIndex(v reflect.Value, index []int) reflect.Value {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v
}

// appendLeaf writes a value that marshals itself. time.Time has a fast path
// equal to its MarshalJSON; anything else goes through encoding/json, which
// also compacts and HTML-escapes the method's output.
func appendLeaf(dst []byte, n *schema.Node, v reflect.Value) ([]byte, error) {
	if n.Type == timeType {
		var t time.Time
		if v.CanAddr() {
			t = *v.Addr().Interface().(*time.Time)
		} else {
			t = v.Interface().(time.Time)
		}
		if y := t.Year(); y >= 0 && y <= 9999 {
			if _, off := t.Zone(); off > -24*3600 && off < 24*3600 {
				dst = append(dst, '"')
				dst = t.AppendFormat(dst, time.RFC3339Nano)
				return append(dst, '"'), nil
			}
		}
	}
	var x any
	switch {
	case !n.AddrMarshal:
		x = v.Interface()
	case v.CanAddr():
		x = v.Addr().Interface()
	default:
		c := reflect.New(v.Type())
		c.Elem().Set(v)
		x = c.Interface()
	}
	b, err := json.Marshal(x)
	if err != nil {
		// Marshaller errors can quote the value: keep only their kind.
		return dst, encodeError(n.Type.String() + " failed to marshal itself")
	}
	return append(dst, b...), nil
}

// nesting returns how deep arrays and objects nest in b, compact JSON as
// appendLeaf writes it: a value that marshals itself (json.RawMessage, a
// MarshalJSON) is not walked by the encoder, and encoding/json lets
// thousands of levels through.
func nesting(b []byte) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inString:
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

// appendFloat is encoding/json's float encoder.
func appendFloat(dst []byte, f float64, bits int) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, errUnsupported
	}
	abs := math.Abs(f)
	fmt := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			fmt = 'e'
		}
	}
	dst = strconv.AppendFloat(dst, f, fmt, -1, bits)
	if fmt == 'e' {
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

const hexDigits = "0123456789abcdef"

// htmlSafe[b] is true for the ASCII bytes encoding/json writes as they are
// (with HTML escaping on, its default).
var htmlSafe = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\' && b != '<' && b != '>' && b != '&'
	}
	return t
}()

// appendString is encoding/json's string encoder with HTML escaping:
// invalid UTF-8 becomes U+FFFD, U+2028 and U+2029 are escaped.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if htmlSafe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
