package fieldcrypt

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lifenavigator/crossservice/schema"
)

// RedactedText is what [Redacted] shows in place of a value it hides.
const RedactedText = "[redacted]"

// Redact returns a view of v for logs, error messages and fmt that shows
// only what already travels in the clear: a field is shown when its plan
// shares it with at least one service and does not mark it sensitive. A
// sensitive field, whatever its type, and a field shared with no service
// read [RedactedText]: a field that never leaves cannot carry a sensitive
// tag, so nothing says it is harmless. Share tags below a shown field
// filter its members the same way.
//
// v is a struct of an annotated type, a pointer to one, or a slice, array
// or map of them. Anything else and a type whose annotations do not plan
// (a [*schema.TagError]) read [RedactedText] as a whole, and so does
// whatever lies deeper than [DefaultMaxDepth] (a pointer cycle): Redact
// fails closed.
//
// The fields shown are those encoding/json sees (unexported and json:"-"
// fields never leave, and are left out). Values that marshal themselves
// (time.Time, json.RawMessage...) are shown as the JSON they send.
//
// Redacted renders itself when it is formatted, logged or marshalled, not
// when Redact is called: log it at once, or pass a copy.
func Redact(v any) Redacted { return Redacted{v: v} }

// Redacted is the view of a value returned by [Redact]. It renders with
// every fmt verb (%v and %s as fmt prints a struct, %+v with field names,
// %#v with type names; every other verb like %v), with String, with
// log/slog (LogValue: a group of JSON member names) and with encoding/json
// (MarshalJSON: the JSON the value is sent as, hidden values as
// "[redacted]").
type Redacted struct{ v any }

var (
	_ slog.LogValuer = Redacted{}
	_ fmt.Formatter  = Redacted{}
	_ fmt.Stringer   = Redacted{}
	_ json.Marshaler = Redacted{}
)

// String renders r like %v.
func (r Redacted) String() string { return fmt.Sprint(r) }

// Format implements fmt.Formatter.
func (r Redacted) Format(f fmt.State, verb rune) {
	m := fmtPlain
	if verb == 'v' && f.Flag('#') {
		m = fmtGo
	} else if verb == 'v' && f.Flag('+') {
		m = fmtNames
	}
	var b []byte
	b = r.tree().appendFmt(b, m)
	f.Write(b)
}

// LogValue implements slog.LogValuer.
func (r Redacted) LogValue() slog.Value { return r.tree().slogValue() }

// MarshalJSON implements json.Marshaler.
func (r Redacted) MarshalJSON() ([]byte, error) { return r.tree().appendJSON(nil), nil }

// tree builds the redacted rendering of r.v. A panic while walking it (a
// method of the value's own types) hides the whole value.
func (r Redacted) tree() (n *rnode) {
	defer func() {
		if recover() != nil {
			n = hidden
		}
	}()
	return buildTop(reflect.ValueOf(r.v), 0)
}

type rkind uint8

const (
	rHidden   rkind = iota // shown as RedactedText
	rNil                   // a nil pointer, or a nil interface at the top
	rLeaf                  // a scalar or []byte, in leaf
	rJSONLeaf              // a value that marshals itself, as its JSON
	rStruct
	rPtr
	rList
	rMap
)

// rnode is one value as Redacted shows it.
type rnode struct {
	kind   rkind
	typ    reflect.Type // for %#v; nil for a nil interface
	leaf   any          // rLeaf: string, int64, uint64, float32, float64, bool or []byte
	raw    []byte       // rJSONLeaf: its JSON
	t      *time.Time   // rJSONLeaf of type time.Time, for slog
	nilv   bool         // rList, rMap: a nil slice or map
	fields []rfield     // rStruct
	elems  []*rnode     // rPtr (one), rList, rMap (the values)
	keys   []rkey       // rMap, sorted
}

type rfield struct {
	goName, jsonName string
	val              *rnode
}

type rkey struct {
	json string // the member name encoding/json writes
	fmt  any    // the key as fmt prints it
}

var hidden = &rnode{kind: rHidden}

var textMarshalerT = reflect.TypeFor[encoding.TextMarshaler]()

// buildTop walks a value reached without a plan: only structs (through
// their plan), pointers to them and containers of them are shown.
func buildTop(v reflect.Value, depth int) *rnode {
	if !v.IsValid() {
		return &rnode{kind: rNil}
	}
	if depth > DefaultMaxDepth {
		return hidden
	}
	switch v.Kind() {
	case reflect.Interface:
		if v.IsNil() {
			return &rnode{kind: rNil}
		}
		return buildTop(v.Elem(), depth+1)
	case reflect.Pointer:
		if v.IsNil() {
			return &rnode{kind: rNil, typ: v.Type()}
		}
		return &rnode{kind: rPtr, typ: v.Type(), elems: []*rnode{buildTop(v.Elem(), depth+1)}}
	case reflect.Struct:
		plan, err := schema.For(v.Type())
		if err != nil {
			return hidden
		}
		return build(v, plan.Root, depth)
	case reflect.Slice, reflect.Array:
		n := &rnode{kind: rList, typ: v.Type(), nilv: v.Kind() == reflect.Slice && v.IsNil()}
		for i := range v.Len() {
			n.elems = append(n.elems, buildTop(v.Index(i), depth+1))
		}
		return n
	case reflect.Map:
		n := &rnode{kind: rMap, typ: v.Type(), nilv: v.IsNil()}
		type entry struct {
			k rkey
			v *rnode
		}
		var es []entry
		it := v.MapRange()
		for it.Next() {
			k, ok := topKey(it.Key())
			if !ok {
				return hidden
			}
			es = append(es, entry{k, buildTop(it.Value(), depth+1)})
		}
		slices.SortFunc(es, func(a, b entry) int { return compareKeys(a.k, b.k) })
		for _, e := range es {
			n.keys, n.elems = append(n.keys, e.k), append(n.elems, e.v)
		}
		return n
	}
	return hidden
}

// topKey renders a map key met outside any plan: strings and integers only.
func topKey(k reflect.Value) (rkey, bool) {
	switch k.Kind() {
	case reflect.String:
		return rkey{k.String(), k.String()}, true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rkey{strconv.FormatInt(k.Int(), 10), k.Int()}, true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return rkey{strconv.FormatUint(k.Uint(), 10), k.Uint()}, true
	}
	return rkey{}, false
}

// compareKeys orders map keys as fmt does for the kinds a key can have:
// integers numerically, strings and text keys lexically.
func compareKeys(a, b rkey) int {
	switch x := a.fmt.(type) {
	case int64:
		if y, ok := b.fmt.(int64); ok {
			return cmpOrdered(x, y)
		}
	case uint64:
		if y, ok := b.fmt.(uint64); ok {
			return cmpOrdered(x, y)
		}
	}
	return strings.Compare(a.json, b.json)
}

func cmpOrdered[T int64 | uint64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// build walks v of plan node n.
func build(v reflect.Value, n *schema.Node, depth int) *rnode {
	if depth > DefaultMaxDepth || n == nil {
		return hidden
	}
	switch n.Kind {
	case schema.String:
		return &rnode{kind: rLeaf, typ: v.Type(), leaf: v.String()}
	case schema.Int:
		return &rnode{kind: rLeaf, typ: v.Type(), leaf: v.Int()}
	case schema.Uint:
		return &rnode{kind: rLeaf, typ: v.Type(), leaf: v.Uint()}
	case schema.Float:
		if v.Type().Bits() == 32 {
			return &rnode{kind: rLeaf, typ: v.Type(), leaf: float32(v.Float())}
		}
		return &rnode{kind: rLeaf, typ: v.Type(), leaf: v.Float()}
	case schema.Bool:
		return &rnode{kind: rLeaf, typ: v.Type(), leaf: v.Bool()}
	case schema.Bytes:
		if v.IsNil() {
			return &rnode{kind: rNil, typ: v.Type()}
		}
		return &rnode{kind: rLeaf, typ: v.Type(), leaf: bytes.Clone(v.Bytes())}
	case schema.JSON:
		return buildJSONLeaf(v, n)
	case schema.Struct:
		s := &rnode{kind: rStruct, typ: v.Type()}
		for _, f := range n.Fields {
			fv := fieldByIndex(v, f.Index)
			if !fv.IsValid() {
				continue // promoted through a nil embedded pointer: not sent
			}
			val := hidden
			if f.Shared() && !f.Sensitive.Encrypted() {
				val = build(fv, f.Node, depth+1)
			}
			s.fields = append(s.fields, rfield{goName: f.GoName, jsonName: f.Name, val: val})
		}
		return s
	case schema.Pointer:
		if v.IsNil() {
			return &rnode{kind: rNil, typ: v.Type()}
		}
		return &rnode{kind: rPtr, typ: v.Type(), elems: []*rnode{build(v.Elem(), n.Elem, depth+1)}}
	case schema.Slice, schema.Array:
		l := &rnode{kind: rList, typ: v.Type(), nilv: n.Kind == schema.Slice && v.IsNil()}
		for i := range v.Len() {
			l.elems = append(l.elems, build(v.Index(i), n.Elem, depth+1))
		}
		return l
	case schema.Map:
		m := &rnode{kind: rMap, typ: v.Type(), nilv: v.IsNil()}
		type entry struct {
			k rkey
			v *rnode
		}
		var es []entry
		it := v.MapRange()
		for it.Next() {
			k, ok := planKey(n, it.Key())
			if !ok {
				return hidden
			}
			val := reflect.New(n.Elem.Type).Elem()
			val.SetIterValue(it)
			es = append(es, entry{k, build(val, n.Elem, depth+1)})
		}
		slices.SortFunc(es, func(a, b entry) int { return compareKeys(a.k, b.k) })
		for _, e := range es {
			m.keys, m.elems = append(m.keys, e.k), append(m.elems, e.v)
		}
		return m
	}
	return hidden // interfaces and unsupported kinds are never shared
}

// planKey renders a map key as the plan writes it.
func planKey(n *schema.Node, k reflect.Value) (rkey, bool) {
	switch n.Key {
	case schema.KeyString:
		return rkey{k.String(), k.String()}, true
	case schema.KeyInt:
		return rkey{strconv.FormatInt(k.Int(), 10), k.Int()}, true
	case schema.KeyUint:
		return rkey{strconv.FormatUint(k.Uint(), 10), k.Uint()}, true
	case schema.KeyText:
		if !k.CanInterface() || !k.Type().Implements(textMarshalerT) || k.Kind() == reflect.Pointer && k.IsNil() {
			return rkey{}, false
		}
		b, err := k.Interface().(encoding.TextMarshaler).MarshalText()
		if err != nil {
			return rkey{}, false
		}
		return rkey{string(b), string(b)}, true
	}
	return rkey{}, false
}

// buildJSONLeaf renders a value that marshals itself as the JSON it sends
// (never through fmt, which would print fields its JSON leaves out).
func buildJSONLeaf(v reflect.Value, n *schema.Node) *rnode {
	if !v.CanInterface() {
		return hidden
	}
	if v.Kind() == reflect.Pointer && v.IsNil() {
		return &rnode{kind: rNil, typ: v.Type()}
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
	raw, err := json.Marshal(x)
	if err != nil {
		return hidden // a marshaller's error may quote the value
	}
	l := &rnode{kind: rJSONLeaf, typ: v.Type(), raw: raw}
	if v.Type() == timeType {
		t := v.Interface().(time.Time)
		l.t = &t
	}
	return l
}

// fmt rendering.

type fmtMode uint8

const (
	fmtPlain fmtMode = iota // %v
	fmtNames                // %+v
	fmtGo                   // %#v
)

func (m fmtMode) verb() string {
	switch m {
	case fmtNames:
		return "%+v"
	case fmtGo:
		return "%#v"
	}
	return "%v"
}

func (n *rnode) appendFmt(b []byte, m fmtMode) []byte {
	switch n.kind {
	case rHidden:
		return append(b, RedactedText...)
	case rNil:
		switch {
		case m != fmtGo:
			return append(b, "<nil>"...)
		case n.typ == nil:
			return append(b, "<nil>"...)
		case n.typ.Kind() == reflect.Pointer:
			return append(b, "("+n.typ.String()+")(nil)"...)
		}
		return append(b, n.typ.String()+"(nil)"...)
	case rLeaf:
		return fmt.Appendf(b, m.verb(), n.leaf)
	case rJSONLeaf:
		var s string
		if len(n.raw) > 0 && n.raw[0] == '"' && json.Unmarshal(n.raw, &s) == nil {
			if m == fmtGo {
				return strconv.AppendQuote(b, s)
			}
			return append(b, s...)
		}
		return append(b, n.raw...)
	case rPtr:
		return n.elems[0].appendFmt(append(b, '&'), m)
	case rStruct:
		sep := " "
		if m == fmtGo {
			b = append(b, n.typ.String()...)
			sep = ", "
		}
		b = append(b, '{')
		for i, f := range n.fields {
			if i > 0 {
				b = append(b, sep...)
			}
			if m != fmtPlain {
				b = append(append(b, f.goName...), ':')
			}
			b = f.val.appendFmt(b, m)
		}
		return append(b, '}')
	case rList:
		if m == fmtGo {
			if n.nilv {
				return append(b, n.typ.String()+"(nil)"...)
			}
			b = append(append(b, n.typ.String()...), '{')
		} else {
			b = append(b, '[')
		}
		for i, e := range n.elems {
			if i > 0 {
				if m == fmtGo {
					b = append(b, ", "...)
				} else {
					b = append(b, ' ')
				}
			}
			b = e.appendFmt(b, m)
		}
		if m == fmtGo {
			return append(b, '}')
		}
		return append(b, ']')
	case rMap:
		if m == fmtGo {
			if n.nilv {
				return append(b, n.typ.String()+"(nil)"...)
			}
			b = append(append(b, n.typ.String()...), '{')
		} else {
			b = append(b, "map["...)
		}
		for i, k := range n.keys {
			if i > 0 {
				if m == fmtGo {
					b = append(b, ", "...)
				} else {
					b = append(b, ' ')
				}
			}
			b = fmt.Appendf(b, m.verb(), k.fmt)
			b = append(b, ':')
			b = n.elems[i].appendFmt(b, m)
		}
		if m == fmtGo {
			return append(b, '}')
		}
		return append(b, ']')
	}
	return append(b, RedactedText...)
}

// JSON rendering: what encoding/json would write for the shown values,
// hidden ones as the string "[redacted]".

func (n *rnode) appendJSON(b []byte) []byte {
	switch n.kind {
	case rNil:
		return append(b, "null"...)
	case rLeaf:
		if f, ok := n.leaf.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
			return strconv.AppendQuote(b, strconv.FormatFloat(f, 'g', -1, 64))
		}
		if f, ok := n.leaf.(float32); ok && (math.IsNaN(float64(f)) || math.IsInf(float64(f), 0)) {
			return strconv.AppendQuote(b, strconv.FormatFloat(float64(f), 'g', -1, 32))
		}
		j, err := json.Marshal(n.leaf)
		if err != nil {
			return appendJSONString(b, RedactedText)
		}
		return append(b, j...)
	case rJSONLeaf:
		return append(b, n.raw...)
	case rPtr:
		return n.elems[0].appendJSON(b)
	case rStruct:
		b = append(b, '{')
		for i, f := range n.fields {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, f.jsonName)
			b = f.val.appendJSON(append(b, ':'))
		}
		return append(b, '}')
	case rList:
		if n.nilv {
			return append(b, "null"...)
		}
		b = append(b, '[')
		for i, e := range n.elems {
			if i > 0 {
				b = append(b, ',')
			}
			b = e.appendJSON(b)
		}
		return append(b, ']')
	case rMap:
		if n.nilv {
			return append(b, "null"...)
		}
		b = append(b, '{')
		for i, k := range n.keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k.json)
			b = n.elems[i].appendJSON(append(b, ':'))
		}
		return append(b, '}')
	}
	return appendJSONString(b, RedactedText)
}

func appendJSONString(b []byte, s string) []byte {
	j, _ := json.Marshal(s) // a string always marshals
	return append(b, j...)
}

// slog rendering: structs are groups keyed by JSON member names; lists and
// maps are values that marshal to their JSON (JSONHandler) or text
// (TextHandler).

func (n *rnode) slogValue() slog.Value {
	switch n.kind {
	case rNil:
		return slog.AnyValue(nil)
	case rLeaf:
		switch x := n.leaf.(type) {
		case string:
			return slog.StringValue(x)
		case int64:
			return slog.Int64Value(x)
		case uint64:
			return slog.Uint64Value(x)
		case float64:
			return slog.Float64Value(x)
		case float32:
			return slog.Float64Value(float64(x))
		case bool:
			return slog.BoolValue(x)
		}
		return slog.AnyValue(jsonView{n})
	case rJSONLeaf:
		if n.t != nil {
			return slog.TimeValue(*n.t)
		}
		return slog.AnyValue(jsonView{n})
	case rPtr:
		return n.elems[0].slogValue()
	case rStruct:
		attrs := make([]slog.Attr, len(n.fields))
		for i, f := range n.fields {
			attrs[i] = slog.Attr{Key: f.jsonName, Value: f.val.slogValue()}
		}
		return slog.GroupValue(attrs...)
	case rList, rMap:
		return slog.AnyValue(jsonView{n})
	}
	return slog.StringValue(RedactedText)
}

// jsonView is a redacted value slog cannot express natively.
type jsonView struct{ n *rnode }

func (j jsonView) MarshalJSON() ([]byte, error) { return j.n.appendJSON(nil), nil }
func (j jsonView) MarshalText() ([]byte, error) { return j.n.appendJSON(nil), nil }
