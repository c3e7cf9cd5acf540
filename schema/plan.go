package schema

import (
	"cmp"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// A Plan is the parsed annotations of one message type: built once per Go
// type by [For], cached, immutable and safe for concurrent use.
type Plan struct {
	// Type is the struct type (never a pointer).
	Type reflect.Type
	// Name is the type name written in the envelope header and checked when
	// opening: Type.String() (such as "demo.Account"), or the result of the
	// type's CrossServiceType method. See [TypeNamer].
	Name string
	// Root is the node of Type.
	Root *Node

	projections sync.Map // recipient string → *Projection
}

// MarkerMember is the member name that starts an encrypted-value marker
// ({"$enc":…,"ct":…}) in an envelope. A shared field may not have it as its
// JSON name, so that a marker can never be mistaken for a clear value.
const MarkerMember = "$enc"

// TypeNamer is implemented by message types that choose their own envelope
// type name instead of the default reflect.Type.String() ("demo.Account").
// Implement it when two packages share a base name, when a type is renamed or
// moved but must still open old envelopes, or for generic types. The method
// is called once, on the zero value, when the plan is built: it must return a
// constant of 1 to 256 printable ASCII characters without spaces.
type TypeNamer interface {
	CrossServiceType() string
}

// A Node describes how the values of one Go type are written: one per type,
// shared by every plan that reaches it, and recursive types point back to
// themselves. Nodes are read-only.
type Node struct {
	Type reflect.Type
	Kind Kind
	// Elem is the element node of a Pointer, Slice or Array and the value
	// node of a Map.
	Elem *Node
	// Len is the length of an Array.
	Len int
	// Key is the key kind of a Map.
	Key KeyKind
	// KeyTextUnmarshal: the map key is read with UnmarshalText (through a
	// pointer), even for a KeyString, as encoding/json does.
	KeyTextUnmarshal bool
	// AddrMarshal: for a JSON leaf, its MarshalJSON or MarshalText method has a
	// pointer receiver, so the value must be marshalled through its address.
	// (encoding/json skips such methods on values it cannot address, such as
	// map values; this package always uses them.)
	AddrMarshal bool
	// Fields are, for a Struct, the fields encoding/json would see (embedded
	// fields promoted with its dominance rules), in encoding order, shared or
	// not.
	Fields []*Field

	reason string // why the node is Unsupported
}

// A Field is one JSON member of a struct node, with its annotations.
type Field struct {
	// Name is the JSON member name (the json tag name, else the Go name).
	Name string
	// GoName is the Go name of the field.
	GoName string
	// Type is the Go type of the field.
	Type reflect.Type
	// Declared is the struct type that declares the field (for a promoted
	// field, the embedded type).
	Declared reflect.Type
	// Index is the index sequence for reflect.Value.FieldByIndex, through
	// embedded structs.
	Index []int
	// Indirect: Index goes through an embedded pointer, which may be nil
	// when writing (the field is then left out, as encoding/json does) and
	// must be allocated when reading.
	Indirect bool
	// GoPath is the Go names along Index, dot-separated ("Base.ID"), as
	// go-playground/validator names the field.
	GoPath string
	// JSONKey is the member name as encoding/json writes it, quoted, escaped
	// and followed by a colon: `"name":`.
	JSONKey string
	// Token is the member name escaped for a JSON Pointer (RFC 6901: "~" as
	// "~0", "/" as "~1"), with its leading "/".
	Token string
	// OmitEmpty and OmitZero are the json tag options; see [Field.Omitted].
	OmitEmpty, OmitZero bool
	// Share lists the services the field is shared with; ShareAll is
	// share:"*". Both empty: the field is never sent.
	Share    []string
	ShareAll bool
	// Sensitive is Random or Deterministic for a sensitive field, Clear
	// otherwise.
	Sensitive Mode
	// Validate is the validate tag, for go-playground/validator.
	Validate string
	// Node describes the field's type. It is nil for a field that is not
	// shared: the types of fields that never leave are not examined.
	Node *Node

	isZero func(reflect.Value) bool // for OmitZero, when the type has IsZero
}

// Shared reports whether the field is sent to at least one service.
func (f *Field) Shared() bool { return f.ShareAll || len(f.Share) > 0 }

// ModeFor returns how the field reaches service: Stripped when it is not
// shared with it, else Clear or its sensitive mode.
func (f *Field) ModeFor(service string) Mode {
	if !f.ShareAll && !slices.Contains(f.Share, service) {
		return Stripped
	}
	if f.Sensitive != Stripped {
		return f.Sensitive
	}
	return Clear
}

// Omitted reports whether v, the value of the field, is left out of the
// JSON object by omitempty or omitzero, with encoding/json's rules.
func (f *Field) Omitted(v reflect.Value) bool {
	if f.OmitEmpty && isEmptyValue(v) {
		return true
	}
	if f.OmitZero {
		if f.isZero != nil {
			return f.isZero(v)
		}
		return v.IsZero()
	}
	return false
}

func isEmptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64,
		reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

var (
	plans sync.Map // reflect.Type → *planEntry
	nodes sync.Map // reflect.Type → *Node, only complete nodes

	marshalerType       = reflect.TypeFor[json.Marshaler]()
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textMarshalerType   = reflect.TypeFor[encoding.TextMarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	numberType          = reflect.TypeFor[json.Number]()
	typeNamerType       = reflect.TypeFor[TypeNamer]()
	isZeroerType        = reflect.TypeFor[interface{ IsZero() bool }]()
)

type planEntry struct {
	plan *Plan
	err  error
}

// For returns the plan of t, a struct type or a pointer to one, building and
// caching it on first use. All the annotations reachable through shared
// fields are checked here: a mistake is a [*TagError] (also [ErrTag]), and
// the same error is returned on every later call for that type.
func For(t reflect.Type) (*Plan, error) {
	if t == nil {
		return nil, fmt.Errorf("%w: nil type", ErrNotStruct)
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if e, ok := plans.Load(t); ok {
		e := e.(*planEntry)
		return e.plan, e.err
	}
	p, err := buildPlan(t, "")
	e, _ := plans.LoadOrStore(t, &planEntry{p, err})
	return e.(*planEntry).plan, e.(*planEntry).err
}

// buildPlan builds the plan of t; a non-empty name replaces the type name
// (only tests do that, for types made with reflect.StructOf, which have no
// name and can have no methods).
func buildPlan(t reflect.Type, name string) (*Plan, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%w: %v", ErrNotStruct, t)
	}
	b := &builder{nodes: map[reflect.Type]*Node{}}
	root, err := b.node(t)
	if err != nil {
		return nil, err
	}
	if root.Kind != Struct {
		return nil, fmt.Errorf("%w: %v has its own JSON marshalling, so its fields cannot be filtered", ErrNotStruct, t)
	}
	// The type name is checked after the fields, so that a field's error
	// wins over a name error (the fuzz test relies on it for unnamed types).
	if name == "" {
		var err error
		if name, err = typeName(t); err != nil {
			return nil, err
		}
	}
	for typ, n := range b.nodes {
		nodes.LoadOrStore(typ, n)
	}
	return &Plan{Type: t, Name: name, Root: root}, nil
}

func typeName(t reflect.Type) (string, error) {
	var name string
	switch {
	case t.Implements(typeNamerType):
		name = reflect.Zero(t).Interface().(TypeNamer).CrossServiceType()
	case reflect.PointerTo(t).Implements(typeNamerType):
		name = reflect.New(t).Interface().(TypeNamer).CrossServiceType()
	default:
		name = t.String()
	}
	if !ValidTypeName(name) {
		return "", &TagError{Type: t, Reason: "type name " + quoteForError(name) +
			" is not 1 to 256 printable ASCII characters without spaces; give the type a CrossServiceType() string method"}
	}
	return name, nil
}

// ValidTypeName reports whether s can be an envelope type name: 1 to 256
// bytes of printable ASCII from '!' to '~'.
func ValidTypeName(s string) bool {
	if len(s) == 0 || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// builder builds the nodes of one plan. New nodes are placed in nodes before
// they are filled, so that a recursive type finds its own placeholder, and
// published to the global cache only when the whole plan succeeded: no other
// goroutine ever sees a node being filled.
type builder struct {
	nodes map[reflect.Type]*Node
}

func (b *builder) node(t reflect.Type) (*Node, error) {
	if n, ok := nodes.Load(t); ok {
		return n.(*Node), nil
	}
	if n, ok := b.nodes[t]; ok {
		return n, nil
	}
	n := &Node{Type: t}
	b.nodes[t] = n
	if err := b.fill(n); err != nil {
		return nil, err
	}
	return n, nil
}

func implementsEither(t, a, b reflect.Type) bool {
	return t.Implements(a) || t.Implements(b)
}

func (b *builder) fill(n *Node) error {
	t := n.Type
	k := t.Kind()
	if k != reflect.Pointer && k != reflect.Interface {
		valueM := implementsEither(t, marshalerType, textMarshalerType)
		ptrM := implementsEither(reflect.PointerTo(t), marshalerType, textMarshalerType)
		if valueM || ptrM {
			n.Kind = JSON
			n.AddrMarshal = !valueM
			if k == reflect.Struct {
				return checkLeafStruct(t)
			}
			return nil
		}
		if implementsEither(reflect.PointerTo(t), unmarshalerType, textUnmarshalerType) && k != reflect.String &&
			!(k >= reflect.Bool && k <= reflect.Float64) {
			n.Kind = Unsupported
			n.reason = "type " + t.String() + " has an UnmarshalJSON or UnmarshalText method but no MarshalJSON or MarshalText: " +
				"its fields would be filtered when sealing but not when opening"
			return nil
		}
	}
	switch k {
	case reflect.Bool:
		n.Kind = Bool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n.Kind = Int
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n.Kind = Uint
	case reflect.Float32, reflect.Float64:
		n.Kind = Float
	case reflect.String:
		n.Kind = String
		if t == numberType || reflect.PointerTo(t).Implements(unmarshalerType) ||
			reflect.PointerTo(t).Implements(textUnmarshalerType) {
			n.Kind = JSON
		}
	case reflect.Struct:
		n.Kind = Struct
		return b.fillStruct(n)
	case reflect.Pointer:
		n.Kind = Pointer
		return b.fillElem(n)
	case reflect.Slice:
		e := t.Elem()
		if e.Kind() == reflect.Uint8 && !implementsEither(reflect.PointerTo(e), marshalerType, textMarshalerType) {
			n.Kind = Bytes
			return nil
		}
		n.Kind = Slice
		return b.fillElem(n)
	case reflect.Array:
		n.Kind = Array
		n.Len = t.Len()
		return b.fillElem(n)
	case reflect.Map:
		n.Kind = Map
		kt := t.Key()
		n.KeyTextUnmarshal = reflect.PointerTo(kt).Implements(textUnmarshalerType)
		switch {
		case kt.Kind() == reflect.String:
			n.Key = KeyString
		case kt.Implements(textMarshalerType):
			if !n.KeyTextUnmarshal {
				n.Kind = Unsupported
				n.reason = "map key type " + kt.String() + " has MarshalText but no UnmarshalText"
				return nil
			}
			n.Key = KeyText
		case kt.Kind() >= reflect.Int && kt.Kind() <= reflect.Int64:
			n.Key = KeyInt
		case kt.Kind() >= reflect.Uint && kt.Kind() <= reflect.Uintptr:
			n.Key = KeyUint
		default:
			n.Kind = Unsupported
			n.reason = "map key type " + kt.String() + " is not a string, an integer or a TextMarshaler"
			return nil
		}
		return b.fillElem(n)
	case reflect.Interface:
		n.Kind = Interface
	default:
		n.Kind = Unsupported
		n.reason = "type " + t.String() + " has no JSON encoding"
	}
	return nil
}

func (b *builder) fillElem(n *Node) error {
	e, err := b.node(n.Type.Elem())
	n.Elem = e
	return err
}

// checkLeafStruct refuses share and sensitive tags (or near misses) on the
// fields of a struct that marshals itself: they would have no effect, and a
// developer who wrote them expects them to.
func checkLeafStruct(t reflect.Type) error {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		pairs, err := parseStructTag(string(sf.Tag))
		if err != nil {
			continue // not ours to judge: the type's own marshalling decides
		}
		for _, p := range pairs {
			if p.key == tagShare || p.key == tagSensitive || nearMiss(p.key) {
				return &TagError{Type: t, Field: sf.Name, Tag: p.key,
					Reason: "the type has its own JSON marshalling (MarshalJSON or MarshalText), so share and sensitive tags on its fields have no effect"}
			}
		}
	}
	return nil
}

// candidate is a field found while scanning a struct and its embedded
// structs, before encoding/json's dominance rules pick the survivors.
type candidate struct {
	name     string
	tagged   bool // the name comes from the json tag
	index    []int
	indirect bool
	goPath   string
	sf       reflect.StructField
	decl     reflect.Type
	jt       jsonTag
	share    []string
	all      bool
	hasShare bool
	sens     Mode
	validate string
	unexpPtr bool // promoted through an embedded pointer to an unexported type
}

// fieldTags is what one field's struct tag says.
type fieldTags struct {
	share, sensitive, json, validate          string
	hasShare, hasSensitive, hasJSON, hasValid bool
}

func readTags(decl reflect.Type, sf reflect.StructField) (fieldTags, error) {
	var ft fieldTags
	pairs, err := parseStructTag(string(sf.Tag))
	if err != nil {
		return ft, &TagError{Type: decl, Field: sf.Name, Tag: string(sf.Tag),
			Reason: "malformed struct tag (want key:\"value\" pairs separated by spaces); Go would silently ignore what follows the mistake"}
	}
	for _, p := range pairs {
		switch p.key {
		case tagShare:
			if ft.hasShare {
				return ft, &TagError{Type: decl, Field: sf.Name, Tag: p.key, Reason: "share tag given twice"}
			}
			ft.share, ft.hasShare = p.value, true
		case tagSensitive:
			if ft.hasSensitive {
				return ft, &TagError{Type: decl, Field: sf.Name, Tag: p.key, Reason: "sensitive tag given twice"}
			}
			ft.sensitive, ft.hasSensitive = p.value, true
		case tagJSON:
			if !ft.hasJSON { // reflect.StructTag.Get returns the first
				ft.json, ft.hasJSON = p.value, true
			}
		case tagValidate:
			if !ft.hasValid {
				ft.validate, ft.hasValid = p.value, true
			}
		default:
			if nearMiss(p.key) {
				return ft, &TagError{Type: decl, Field: sf.Name, Tag: p.key,
					Reason: `unknown tag key close to "share" or "sensitive"; tag keys are case-sensitive`}
			}
		}
	}
	return ft, nil
}

// fillStruct finds the fields of a struct node with encoding/json's rules
// (typeFields in encoding/json/encode.go), checking every tag on the way.
func (b *builder) fillStruct(n *Node) error {
	t := n.Type
	type level struct {
		typ      reflect.Type
		index    []int
		indirect bool
		goPath   string
		unexpPtr bool // reached through an embedded pointer to an unexported type
	}
	current := []level{}
	next := []level{{typ: t}}
	var count, nextCount map[reflect.Type]int
	visited := map[reflect.Type]bool{}
	var cands []candidate

	for len(next) > 0 {
		current, next = next, current[:0]
		count, nextCount = nextCount, map[reflect.Type]int{}
		for _, lv := range current {
			if visited[lv.typ] {
				continue
			}
			visited[lv.typ] = true
			for i := 0; i < lv.typ.NumField(); i++ {
				sf := lv.typ.Field(i)
				tags, err := readTags(lv.typ, sf)
				if err != nil {
					return err
				}
				ours := tags.hasShare || tags.hasSensitive
				if sf.Anonymous {
					et := sf.Type
					if et.Kind() == reflect.Pointer {
						et = et.Elem()
					}
					if !sf.IsExported() && et.Kind() != reflect.Struct {
						if ours {
							return &TagError{Type: lv.typ, Field: sf.Name, Tag: firstOurs(tags),
								Reason: "embedded field of an unexported non-struct type is ignored by encoding/json; it cannot be shared"}
						}
						continue
					}
				} else if !sf.IsExported() {
					if ours {
						return &TagError{Type: lv.typ, Field: sf.Name, Tag: firstOurs(tags),
							Reason: "unexported field: encoding/json ignores it, so it can never be shared or encrypted"}
					}
					continue
				}
				jt := parseJSONTag(tags.json, tags.hasJSON)
				if jt.badName {
					return &TagError{Type: lv.typ, Field: sf.Name, Tag: tagJSON,
						Reason: "json name " + quoteForError(jt.rawName) + " is " + jsonNameRule + "; Go versions disagree on what it becomes"}
				}
				if jt.skip {
					if ours {
						return &TagError{Type: lv.typ, Field: sf.Name, Tag: firstOurs(tags),
							Reason: `json:"-" leaves the field out of JSON, so it cannot be shared`}
					}
					continue
				}
				index := append(slices.Clip(lv.index), i)
				goPath := sf.Name
				if lv.goPath != "" {
					goPath = lv.goPath + "." + sf.Name
				}
				ft := sf.Type
				if ft.Name() == "" && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if jt.name != "" || !sf.Anonymous || ft.Kind() != reflect.Struct {
					c := candidate{
						name: jt.name, tagged: jt.name != "", index: index, indirect: lv.indirect,
						goPath: goPath, sf: sf, decl: lv.typ, jt: jt, validate: tags.validate,
					}
					if c.name == "" {
						c.name = sf.Name
					}
					c.unexpPtr = lv.unexpPtr
					if err := c.readOurs(tags); err != nil {
						return err
					}
					cands = append(cands, c)
					if count[lv.typ] > 1 {
						cands = append(cands, cands[len(cands)-1])
					}
					continue
				}
				// An embedded struct whose fields are promoted.
				if ours {
					return &TagError{Type: lv.typ, Field: sf.Name, Tag: firstOurs(tags),
						Reason: "share and sensitive tags on an embedded struct have no effect (its fields are promoted): " +
							"tag the promoted fields, or give the embedded field a json name to make it one nested field"}
				}
				nextCount[ft]++
				if nextCount[ft] == 1 {
					isPtr := sf.Type.Kind() == reflect.Pointer
					next = append(next, level{
						typ: ft, index: index, indirect: lv.indirect || isPtr, goPath: goPath,
						unexpPtr: lv.unexpPtr || (isPtr && !sf.IsExported()),
					})
				}
			}
		}
	}
	// Dominance: encoding/json keeps, per name, the shallowest field, a
	// tagged one winning a tie, and drops every field of an unresolved tie.
	order := make([]int, len(cands))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(x, y int) int {
		a, b := &cands[x], &cands[y]
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := cmp.Compare(len(a.index), len(b.index)); c != 0 {
			return c
		}
		if a.tagged != b.tagged {
			if a.tagged {
				return -1
			}
			return +1
		}
		return slices.Compare(a.index, b.index)
	})
	var kept []int
	for adv, i := 0, 0; i < len(order); i += adv {
		name := cands[order[i]].name
		for adv = 1; i+adv < len(order) && cands[order[i+adv]].name == name; adv++ {
		}
		group := order[i : i+adv]
		if len(group) == 1 {
			kept = append(kept, group[0])
			continue
		}
		f0, f1 := &cands[group[0]], &cands[group[1]]
		if len(f0.index) != len(f1.index) || f0.tagged != f1.tagged {
			// The dominant field wins; deeper ones are shadowed, as Go's
			// embedding intends (their tags simply do not apply).
			kept = append(kept, group[0])
			continue
		}
		// A tie: encoding/json drops every field of that name. A share tag
		// among them was surely meant to send something: refuse.
		for _, ci := range group {
			if c := &cands[ci]; c.hasShare {
				return &TagError{Type: c.decl, Field: c.sf.Name, Tag: tagShare,
					Reason: "JSON name " + quoteForError(name) + " is ambiguous (two fields at the same depth), " +
						"so encoding/json drops every field with it and this share tag would have no effect"}
			}
		}
	}
	slices.SortFunc(kept, func(x, y int) int { return slices.Compare(cands[x].index, cands[y].index) })

	n.Fields = make([]*Field, 0, len(kept))
	for _, ci := range kept {
		c := &cands[ci]
		f := &Field{
			Name: c.name, GoName: c.sf.Name, Type: c.sf.Type, Declared: c.decl, Index: c.index, Indirect: c.indirect,
			GoPath: c.goPath, JSONKey: `"` + htmlEscape(c.name) + `":`, Token: "/" + PointerEscape(c.name),
			OmitEmpty: c.jt.omitEmpty, OmitZero: c.jt.omitZero,
			Share: c.share, ShareAll: c.all, Sensitive: c.sens, Validate: c.validate,
		}
		if f.OmitZero {
			f.isZero = zeroFunc(c.sf.Type)
		}
		if f.Shared() {
			tag := tagShare
			if c.sens != Stripped {
				tag = tagSensitive
			}
			if c.unexpPtr {
				return &TagError{Type: c.decl, Field: c.sf.Name, Tag: tag,
					Reason: "promoted through an embedded pointer to an unexported struct type, which cannot be allocated when opening"}
			}
			fn, err := b.node(c.sf.Type)
			if err != nil {
				return err
			}
			if reason := encodable(fn); reason != "" {
				return &TagError{Type: c.decl, Field: c.sf.Name, Tag: tag, Reason: reason}
			}
			f.Node = fn
		}
		n.Fields = append(n.Fields, f)
	}
	return nil
}

func firstOurs(t fieldTags) string {
	if t.hasShare {
		return tagShare
	}
	return tagSensitive
}

// readOurs checks and records the share and sensitive tags of a field that
// encoding/json would see.
func (c *candidate) readOurs(t fieldTags) error {
	if t.hasSensitive && !t.hasShare {
		return &TagError{Type: c.decl, Field: c.sf.Name, Tag: tagSensitive,
			Reason: "sensitive without share: the field is never sent (add a share tag, or remove sensitive)"}
	}
	if !t.hasShare {
		return nil
	}
	share, all, reason := parseShare(t.share)
	if reason != "" {
		return &TagError{Type: c.decl, Field: c.sf.Name, Tag: tagShare, Reason: reason}
	}
	if c.name == MarkerMember {
		return &TagError{Type: c.decl, Field: c.sf.Name, Tag: tagJSON,
			Reason: "the member name " + MarkerMember + " is reserved for encrypted-value markers"}
	}
	c.share, c.all, c.hasShare = share, all, true
	if t.hasSensitive {
		m, reason := parseSensitive(t.sensitive)
		if reason != "" {
			return &TagError{Type: c.decl, Field: c.sf.Name, Tag: tagSensitive, Reason: reason}
		}
		c.sens = m
	}
	if c.jt.quoted {
		return &TagError{Type: c.decl, Field: c.sf.Name, Tag: tagJSON,
			Reason: `the json ",string" option is not supported on shared fields (it would be silently ignored); use a string field`}
	}
	return nil
}

// encodable returns why a shared field of node n cannot be written, or "".
func encodable(n *Node) string {
	seen := map[*Node]bool{}
	for n != nil && !seen[n] {
		seen[n] = true
		switch n.Kind {
		case Unsupported:
			return n.reason
		case Interface:
			return "interface type " + n.Type.String() + " cannot be shared: its dynamic value could be any struct, " +
				"whose fields the tags could not filter (use a concrete type, or json.RawMessage for free-form JSON)"
		case Pointer, Slice, Array, Map:
			n = n.Elem
		default:
			return ""
		}
	}
	return ""
}

// zeroFunc mirrors encoding/json's choice of IsZero method for omitzero.
func zeroFunc(t reflect.Type) func(reflect.Value) bool {
	type isZeroer interface{ IsZero() bool }
	switch {
	case t.Kind() == reflect.Interface && t.Implements(isZeroerType):
		return func(v reflect.Value) bool {
			return v.IsNil() || (v.Elem().Kind() == reflect.Pointer && v.Elem().IsNil()) || v.Interface().(isZeroer).IsZero()
		}
	case t.Kind() == reflect.Pointer && t.Implements(isZeroerType):
		return func(v reflect.Value) bool { return v.IsNil() || v.Interface().(isZeroer).IsZero() }
	case t.Implements(isZeroerType):
		return func(v reflect.Value) bool { return v.Interface().(isZeroer).IsZero() }
	case reflect.PointerTo(t).Implements(isZeroerType):
		return func(v reflect.Value) bool {
			if !v.CanAddr() {
				v2 := reflect.New(v.Type()).Elem()
				v2.Set(v)
				v = v2
			}
			return v.Addr().Interface().(isZeroer).IsZero()
		}
	}
	return nil
}

// htmlEscape is encoding/json's escaping of member names: <, > and & as
// \u003c, \u003e and \u0026, and U+2028, U+2029 escaped.
func htmlEscape(s string) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '<' || c == '>' || c == '&' {
			b.WriteString(s[start:i])
			b.WriteString(`\u00`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xF])
			start = i + 1
		}
		if c == 0xE2 && i+2 < len(s) && s[i+1] == 0x80 && s[i+2]&^1 == 0xA8 {
			b.WriteString(s[start:i])
			b.WriteString(`\u202`)
			b.WriteByte(hex[s[i+2]&0xF])
			start = i + 3
		}
	}
	if start == 0 {
		return s
	}
	b.WriteString(s[start:])
	return b.String()
}

// PointerEscape escapes one JSON Pointer reference token (RFC 6901 §3):
// "~" becomes "~0" and "/" becomes "~1".
func PointerEscape(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

// AppendPointerEscape appends the RFC 6901 escaping of s to dst.
func AppendPointerEscape(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '~':
			dst = append(dst, '~', '0')
		case '/':
			dst = append(dst, '~', '1')
		default:
			dst = append(dst, s[i])
		}
	}
	return dst
}
