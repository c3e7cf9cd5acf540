package fieldcrypt

import (
	"bytes"
	"encoding"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/lifenavigator/crossservice/envelope"
	"github.com/lifenavigator/crossservice/schema"
)

// b64StdStrict decodes []byte values as encoding/json writes them (one
// value: Strict returns a copy of the whole Encoding).
var b64StdStrict = base64.StdEncoding.Strict()

// errBadData is every decoding refusal; Open reports it as
// envelope.ErrCannotOpen and never says which member or byte failed.
var errBadData = errors.New("fieldcrypt: data does not match the plan")

// decoder reads the authenticated data object of an envelope into a value
// as one recipient's projection says. It is strict where encoding/json is
// lenient: a member not in the projection, a duplicate member, a clear
// value where a marker is due (or a marker-like object where a clear value
// is due), trailing data, invalid UTF-8 and numbers that do not fit are all
// refusals.
type decoder struct {
	data     []byte
	pos      int
	opened   *envelope.Opened
	path     []byte
	spath    []byte
	depth    int
	maxDepth int
	checkUTF bool   // data is a decrypted plaintext, not yet checked for UTF-8
	buf      []byte // unescaped strings
}

func (d *decoder) ws() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// expect consumes c after optional whitespace.
func (d *decoder) expect(c byte) bool {
	d.ws()
	if d.pos < len(d.data) && d.data[d.pos] == c {
		d.pos++
		return true
	}
	return false
}

func (d *decoder) enter() error {
	d.depth++
	if d.depth > d.maxDepth {
		return errBadData
	}
	return nil
}

// literal consumes the literal lit ("true", "false", "null").
func (d *decoder) literal(lit string) bool {
	if len(d.data)-d.pos >= len(lit) && string(d.data[d.pos:d.pos+len(lit)]) == lit {
		d.pos += len(lit)
		return true
	}
	return false
}

// rawString reads a JSON string at d.pos and returns its bytes between the
// quotes and whether they hold escapes. It checks the escapes and refuses
// control characters.
func (d *decoder) rawString() (raw []byte, escaped bool, err error) {
	if d.pos >= len(d.data) || d.data[d.pos] != '"' {
		return nil, false, errBadData
	}
	start := d.pos + 1
	for i := start; i < len(d.data); i++ {
		switch c := d.data[i]; {
		case c == '"':
			d.pos = i + 1
			raw = d.data[start:i]
			if d.checkUTF && !utf8.Valid(raw) {
				return nil, false, errBadData
			}
			return raw, escaped, nil
		case c == '\\':
			escaped = true
			i++
			if i >= len(d.data) {
				return nil, false, errBadData
			}
			switch d.data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(d.data) {
					return nil, false, errBadData
				}
				for _, h := range d.data[i+1 : i+5] {
					if hexVal(h) < 0 {
						return nil, false, errBadData
					}
				}
				i += 4
			default:
				return nil, false, errBadData
			}
		case c < 0x20:
			return nil, false, errBadData
		}
	}
	return nil, false, errBadData
}

func hexVal(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// str reads a JSON string and returns its value; the result aliases d.data
// or d.buf and is valid until the next call.
func (d *decoder) str() ([]byte, error) {
	raw, esc, err := d.rawString()
	if err != nil || !esc {
		return raw, err
	}
	d.buf = unescape(d.buf[:0], raw)
	return d.buf, nil
}

// unescape decodes the escapes of a string body already checked by
// rawString. Lone surrogates become U+FFFD, as in encoding/json.
func unescape(dst, raw []byte) []byte {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		switch raw[i] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(raw[i+1:])
			i += 4
			if r >= 0xD800 && r < 0xDC00 {
				if i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
					if r2 := hex4(raw[i+3:]); r2 >= 0xDC00 && r2 < 0xE000 {
						r = (r-0xD800)<<10 | (r2 - 0xDC00) + 0x10000
						i += 6
						dst = utf8.AppendRune(dst, r)
						continue
					}
				}
				r = utf8.RuneError
			} else if r >= 0xDC00 && r < 0xE000 {
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, raw[i])
		}
	}
	return dst
}

func hex4(b []byte) rune {
	return hexVal(b[0])<<12 | hexVal(b[1])<<8 | hexVal(b[2])<<4 | hexVal(b[3])
}

// number reads a JSON number and returns its bytes; isInt reports that it
// has neither fraction nor exponent.
func (d *decoder) number() (num []byte, isInt bool, err error) {
	b, i := d.data, d.pos
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return nil, false, errBadData
	}
	isInt = true
	if i < len(b) && b[i] == '.' {
		isInt = false
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return nil, false, errBadData
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		isInt = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return nil, false, errBadData
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	d.pos = i
	return b[start:i], isInt, nil
}

// skip reads any JSON value and returns its bytes.
func (d *decoder) skip() ([]byte, error) {
	d.ws()
	start := d.pos
	if err := d.skipValue(); err != nil {
		return nil, err
	}
	return d.data[start:d.pos], nil
}

func (d *decoder) skipValue() error {
	if d.pos >= len(d.data) {
		return errBadData
	}
	switch c := d.data[d.pos]; c {
	case '{', '[':
		if err := d.enter(); err != nil {
			return err
		}
		d.pos++
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		if d.expect(end) {
			d.depth--
			return nil
		}
		for {
			d.ws()
			if c == '{' {
				if _, _, err := d.rawString(); err != nil {
					return err
				}
				if !d.expect(':') {
					return errBadData
				}
				d.ws()
			}
			if err := d.skipValue(); err != nil {
				return err
			}
			if d.expect(',') {
				continue
			}
			if d.expect(end) {
				d.depth--
				return nil
			}
			return errBadData
		}
	case '"':
		_, _, err := d.rawString()
		return err
	case 't':
		return d.lit("true")
	case 'f':
		return d.lit("false")
	case 'n':
		return d.lit("null")
	default:
		_, _, err := d.number()
		return err
	}
}

func (d *decoder) lit(s string) error {
	if d.literal(s) {
		return nil
	}
	return errBadData
}

// value reads the value at d.pos into v (settable, zero) as p says.
// sealed: inside a decrypted value, where no markers are expected.
func (d *decoder) value(p *schema.Projection, v reflect.Value, sealed bool) error {
	d.ws()
	if d.pos >= len(d.data) {
		return errBadData
	}
	n := p.Node
	if d.data[d.pos] == 'n' && n.Kind != schema.JSON {
		// null leaves the zero value, as encoding/json does.
		return d.lit("null")
	}
	switch n.Kind {
	case schema.String:
		s, err := d.str()
		if err != nil {
			return err
		}
		v.SetString(string(s))
		return nil
	case schema.Int:
		num, isInt, err := d.number()
		if err != nil || !isInt {
			return errBadData
		}
		i, err := strconv.ParseInt(string(num), 10, 64)
		if err != nil || v.OverflowInt(i) {
			return errBadData
		}
		v.SetInt(i)
		return nil
	case schema.Uint:
		num, isInt, err := d.number()
		if err != nil || !isInt {
			return errBadData
		}
		u, err := strconv.ParseUint(string(num), 10, 64)
		if err != nil || v.OverflowUint(u) {
			return errBadData
		}
		v.SetUint(u)
		return nil
	case schema.Float:
		num, _, err := d.number()
		if err != nil {
			return errBadData
		}
		f, err := strconv.ParseFloat(string(num), n.Type.Bits())
		if err != nil {
			return errBadData
		}
		v.SetFloat(f)
		return nil
	case schema.Bool:
		switch {
		case d.literal("true"):
			v.SetBool(true)
		case d.literal("false"):
		default:
			return errBadData
		}
		return nil
	case schema.Bytes:
		raw, esc, err := d.rawString()
		if err != nil || esc {
			return errBadData // base64 never needs escapes
		}
		b := make([]byte, base64.StdEncoding.DecodedLen(len(raw)))
		k, err := b64StdStrict.Decode(b, raw)
		if err != nil {
			return errBadData
		}
		v.SetBytes(b[:k])
		return nil
	case schema.JSON:
		raw, err := d.skip()
		if err != nil {
			return err
		}
		return decodeLeaf(n, v, raw)
	case schema.Struct:
		return d.object(p, v, sealed)
	case schema.Pointer:
		nv := reflect.New(n.Type.Elem())
		if err := d.value(p.Elem, nv.Elem(), sealed); err != nil {
			return err
		}
		v.Set(nv)
		return nil
	case schema.Slice, schema.Array:
		return d.array(p, v, sealed)
	case schema.Map:
		return d.mapObject(p, v, sealed)
	}
	return errBadData
}

// decodeLeaf reads a value that unmarshals itself (time.Time directly,
// anything else through encoding/json). Its errors are not returned: they
// may quote the data.
func decodeLeaf(n *schema.Node, v reflect.Value, raw []byte) error {
	var err error
	if n.Type == timeType {
		err = v.Addr().Interface().(*time.Time).UnmarshalJSON(raw)
	} else {
		// A type's own UnmarshalJSON gets its own copy: raw may lie in a
		// buffer the next Open reuses (see openScratch), and a method that
		// keeps its input against encoding/json's contract must not see it
		// change.
		err = json.Unmarshal(bytes.Clone(raw), v.Addr().Interface())
	}
	if err != nil {
		return errBadData
	}
	return nil
}

// openObject starts an object: it consumes '{' and reports an empty object
// (consumed whole). Its callers refuse a clear object whose first member is
// "$enc": that is a marker where the plan expects a clear value.
func (d *decoder) openObject() (empty bool, err error) {
	if d.data[d.pos] != '{' {
		return false, errBadData
	}
	if err := d.enter(); err != nil {
		return false, err
	}
	d.pos++
	if d.expect('}') {
		d.depth--
		return true, nil
	}
	return false, nil
}

// endMember consumes ',' (more members follow) or '}' (done).
func (d *decoder) endMember() (more bool, err error) {
	if d.expect(',') {
		return true, nil
	}
	if d.expect('}') {
		d.depth--
		return false, nil
	}
	return false, errBadData
}

func (d *decoder) object(p *schema.Projection, v reflect.Value, sealed bool) error {
	empty, err := d.openObject()
	if err != nil || empty {
		return err
	}
	var seen uint64
	var seenMany []bool
	if len(p.Fields) > 64 {
		seenMany = make([]bool, len(p.Fields))
	}
	for first := true; ; first = false {
		d.ws()
		key, err := d.str()
		if err != nil {
			return err
		}
		if first && !sealed && string(key) == schema.MarkerMember {
			return errBadData
		}
		i := p.Index(key)
		if i < 0 {
			return errBadData // not shared with this recipient
		}
		if seenMany != nil {
			if seenMany[i] {
				return errBadData
			}
			seenMany[i] = true
		} else {
			if seen&(1<<i) != 0 {
				return errBadData
			}
			seen |= 1 << i
		}
		if !d.expect(':') {
			return errBadData
		}
		f := &p.Fields[i]
		fv := v
		if len(f.Index) == 1 {
			fv = v.Field(f.Index[0])
		} else {
			fv = fieldByIndexAlloc(v, f.Index)
		}
		switch {
		case sealed || (f.Mode == schema.Clear && !f.Proj.Sensitive):
			err = d.value(f.Proj, fv, sealed)
		case f.Mode == schema.Clear:
			pl, sl := len(d.path), len(d.spath)
			d.path = append(d.path, f.Token...)
			d.spath = append(d.spath, f.Token...)
			err = d.value(f.Proj, fv, false)
			d.path, d.spath = d.path[:pl], d.spath[:sl]
		default:
			pl, sl := len(d.path), len(d.spath)
			d.path = append(d.path, f.Token...)
			d.spath = append(d.spath, f.Token...)
			err = d.sealedValue(f, fv)
			d.path, d.spath = d.path[:pl], d.spath[:sl]
		}
		if err != nil {
			return err
		}
		more, err := d.endMember()
		if err != nil || !more {
			return err
		}
	}
}

// sealedValue reads a marker, decrypts it at the current path and decodes
// the plaintext into v. The plaintext is wiped afterwards.
func (d *decoder) sealedValue(f *schema.ProjectedField, v reflect.Value) error {
	d.ws()
	if d.pos >= len(d.data) || d.data[d.pos] != '{' {
		return errBadData // a clear value where a marker is due
	}
	mode := envelope.Random
	if f.Mode == schema.Deterministic {
		mode = envelope.Deterministic
	}
	marker, ok := d.canonicalMarker(mode)
	if !ok {
		// Not in the sealer's exact form: read it whole. As on the fast
		// path, the marker is not a level of the value's nesting, so its
		// object may lie one level past maxDepth (at most at the format's
		// 1000, MaxDepth being at most 999).
		var err error
		d.maxDepth++
		marker, err = d.skip()
		d.maxDepth--
		if err != nil {
			return err
		}
	}
	pt, err := d.opened.OpenField(marker, mode, d.path, d.spath)
	if err != nil {
		return err
	}
	sub := decoder{data: pt, depth: d.depth, maxDepth: d.maxDepth, checkUTF: true, buf: d.buf}
	err = sub.value(f.Proj, v, true)
	if err == nil {
		sub.ws()
		if sub.pos != len(sub.data) {
			err = errBadData
		}
	}
	d.buf = sub.buf
	clear(sub.buf)
	clear(pt)
	return err
}

// canonicalMarker finds the end of a marker written as the sealer writes it
// ({"$enc":"<mode>","ct":"<base64url>"}) without scanning it as JSON: a
// base64url ciphertext holds no '"'. Any other form (whitespace, another
// member order) is left to skip. OpenField checks the marker either way, so
// these prefixes (envelope's appendMarker writes the same) only decide
// which path finds the marker's end, never whether it is accepted.
func (d *decoder) canonicalMarker(mode envelope.Mode) ([]byte, bool) {
	prefix := randomMarkerPrefix
	if mode == envelope.Deterministic {
		prefix = deterministicMarkerPrefix
	}
	rest := d.data[d.pos:]
	if len(rest) < len(prefix)+2 || string(rest[:len(prefix)]) != prefix {
		return nil, false
	}
	q := bytes.IndexByte(rest[len(prefix):], '"')
	end := len(prefix) + q + 2 // past the closing quote and brace
	if q < 0 || end > len(rest) || rest[end-1] != '}' {
		return nil, false
	}
	d.pos += end
	return rest[:end], true
}

const (
	randomMarkerPrefix        = `{"` + schema.MarkerMember + `":"random","ct":"`
	deterministicMarkerPrefix = `{"` + schema.MarkerMember + `":"deterministic","ct":"`
)

func fieldByIndexAlloc(v reflect.Value, index []int) reflect.Value {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v
}

func (d *decoder) array(p *schema.Projection, v reflect.Value, sealed bool) error {
	if d.data[d.pos] != '[' {
		return errBadData
	}
	if err := d.enter(); err != nil {
		return err
	}
	d.pos++
	isArray := p.Node.Kind == schema.Array
	track := !sealed && p.Elem.Sensitive
	n := 0
	if d.expect(']') {
		d.depth--
		if isArray && p.Node.Len != 0 {
			return errBadData
		}
		if !isArray {
			v.Set(reflect.MakeSlice(p.Node.Type, 0, 0))
		}
		return nil
	}
	for ; ; n++ {
		var ev reflect.Value
		if isArray {
			if n >= p.Node.Len {
				return errBadData
			}
			ev = v.Index(n)
		} else {
			if n >= v.Cap() {
				// Room for four small elements at first (encoding/json
				// grows by one, and so allocates three times for three).
				if n == 0 && p.Node.Type.Elem().Size() <= 64 {
					v.Grow(4)
				} else {
					v.Grow(1)
				}
			}
			v.SetLen(n + 1)
			ev = v.Index(n)
		}
		var err error
		if track {
			pl, sl := len(d.path), len(d.spath)
			d.path = strconv.AppendInt(append(d.path, '/'), int64(n), 10)
			d.spath = append(d.spath, "/*"...)
			err = d.value(p.Elem, ev, false)
			d.path, d.spath = d.path[:pl], d.spath[:sl]
		} else {
			err = d.value(p.Elem, ev, sealed)
		}
		if err != nil {
			return err
		}
		if d.expect(',') {
			continue
		}
		if d.expect(']') {
			d.depth--
			if isArray && n+1 != p.Node.Len {
				return errBadData
			}
			return nil
		}
		return errBadData
	}
}

func (d *decoder) mapObject(p *schema.Projection, v reflect.Value, sealed bool) error {
	empty, err := d.openObject()
	if err != nil {
		return err
	}
	n := p.Node
	m := reflect.MakeMap(n.Type)
	v.Set(m)
	if empty {
		return nil
	}
	track := !sealed && p.Elem.Sensitive
	elem := reflect.New(n.Type.Elem()).Elem()
	for first := true; ; first = false {
		d.ws()
		key, err := d.str()
		if err != nil {
			return err
		}
		if first && !sealed && string(key) == schema.MarkerMember {
			return errBadData
		}
		kv, err := mapKey(n, key)
		if err != nil {
			return err
		}
		if m.MapIndex(kv).IsValid() {
			return errBadData // duplicate key (after conversion, "1" and "01" too)
		}
		if !d.expect(':') {
			return errBadData
		}
		elem.SetZero()
		if track {
			pl, sl := len(d.path), len(d.spath)
			d.path = schema.AppendPointerEscape(append(d.path, '/'), string(key))
			d.spath = append(d.spath, "/*"...)
			err = d.value(p.Elem, elem, false)
			d.path, d.spath = d.path[:pl], d.spath[:sl]
		} else {
			err = d.value(p.Elem, elem, sealed)
		}
		if err != nil {
			return err
		}
		m.SetMapIndex(kv, elem)
		more, err := d.endMember()
		if err != nil || !more {
			return err
		}
	}
}

// mapKey converts a member name to a map key as encoding/json does.
func mapKey(n *schema.Node, key []byte) (reflect.Value, error) {
	kt := n.Type.Key()
	if n.KeyTextUnmarshal {
		kp := reflect.New(kt)
		// A copy, as for decodeLeaf: key may lie in a reused buffer.
		if err := kp.Interface().(encoding.TextUnmarshaler).UnmarshalText(bytes.Clone(key)); err != nil {
			return reflect.Value{}, errBadData
		}
		return kp.Elem(), nil
	}
	kv := reflect.New(kt).Elem()
	switch n.Key {
	case schema.KeyString:
		kv.SetString(string(key))
	case schema.KeyInt:
		i, err := strconv.ParseInt(string(key), 10, 64)
		if err != nil || kv.OverflowInt(i) {
			return reflect.Value{}, errBadData
		}
		kv.SetInt(i)
	case schema.KeyUint:
		u, err := strconv.ParseUint(string(key), 10, 64)
		if err != nil || kv.OverflowUint(u) {
			return reflect.Value{}, errBadData
		}
		kv.SetUint(u)
	default:
		return reflect.Value{}, errBadData
	}
	return kv, nil
}
