package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lifenavigator/crossservice/internal/names"
)

// A schema file describes a message type in JSON, with the same rules as the
// struct tags, for producers and consumers that are not written in Go (see
// the package documentation, "Schema files"). [ParseFile] turns it into a Go
// struct type built with reflect.StructOf whose fields carry the equivalent
// json, share, sensitive and validate tags, so that values of it are planned,
// sealed, opened and validated by exactly the code that handles Go types.

// ErrFile is the sentinel every [*FileError] matches with [errors.Is].
var ErrFile = errors.New("schema: invalid schema file")

// MaxFileSize is the largest schema file [ParseFile] reads: 1 MiB.
const MaxFileSize = 1 << 20

// FileError reports one mistake in a schema file. It names the place in the
// file and the field of the described message, never a value of a message.
type FileError struct {
	// Pointer is the JSON Pointer (RFC 6901) of the offending object in the
	// schema file, such as "/fields/2" or "/types/Owner/fields/0"; "" for the
	// file as a whole.
	Pointer string
	// Field is the path of the described field, JSON member names joined by
	// dots with "[]" after an array and "{}" after a map (the path of
	// [ExposureRow]), such as "owners[].ssn"; "" when the problem is not in a
	// field.
	Field string
	// Member is the schema-file member concerned ("share", "sensitive",
	// "type"...), or "" for the object as a whole.
	Member string
	// Reason says what is wrong.
	Reason string
}

func (e *FileError) Error() string {
	s := "schema: schema file"
	if e.Field != "" {
		s += ": field " + strconv.Quote(e.Field)
	}
	if e.Pointer != "" {
		s += " (at " + e.Pointer + ")"
	}
	if e.Member != "" {
		s += ": " + e.Member
	}
	return s + ": " + e.Reason
}

// Is makes errors.Is(err, ErrFile) true for every FileError.
func (e *FileError) Is(target error) bool { return target == ErrFile }

// File is a parsed schema file: the message type it describes.
type File struct {
	// Name is the envelope type name (the file's "type").
	Name string
	// Type is the struct type built for the message with reflect.StructOf.
	// Decode documents into reflect.New(Type) and hand the pointer to
	// fieldcrypt; the struct tags say what the file says.
	Type reflect.Type
	// Plan is the plan of Type under Name, as [For] returns it from now on.
	Plan *Plan
}

// The field types of a schema file and the Go types they stand for.
var fileScalars = map[string]reflect.Type{
	"string":  reflect.TypeFor[string](),
	"number":  reflect.TypeFor[float64](),
	"integer": reflect.TypeFor[int64](),
	"boolean": reflect.TypeFor[bool](),
	"time":    reflect.TypeFor[time.Time](),
	"bytes":   reflect.TypeFor[[]byte](),
	"raw":     reflect.TypeFor[json.RawMessage](),
}

// ParseFile parses a schema file and returns the message type it
// describes, planned under the file's type name (see [ForNamed]).
//
// It refuses, with a [*FileError] naming the place: invalid JSON, a member
// given twice in one object, an unknown member (so that a misspelt
// "sensitve" is an error, as a misspelt tag is), a missing name or type, an
// unknown type, a field name encoding/json would not use, two fields with one
// name, the reserved name "$enc", an invalid or repeated service name in
// share, "*" mixed with names, an unknown sensitive option, sensitive without
// share, members that do not belong to the type (fields on a string, items
// on an object...), and a type that refers back to itself: reflect.StructOf
// cannot build recursive types, so recursive messages need Go types.
func ParseFile(data []byte) (*File, error) {
	if len(data) > MaxFileSize {
		return nil, &FileError{Reason: fmt.Sprintf("larger than %d bytes", MaxFileSize)}
	}
	if err := checkFileJSON(data); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		return nil, &FileError{Reason: "not valid JSON"}
	}
	top, ok := root.(map[string]any)
	if !ok {
		return nil, &FileError{Reason: "not a JSON object"}
	}
	fb := &fileBuilder{defs: map[string]map[string]any{}, built: map[string]reflect.Type{}, where: map[fieldKey]fieldWhere{}}
	if err := onlyMembers(top, "", "", "type", "fields", "types", "description"); err != nil {
		return nil, err
	}
	name, err := stringMember(top, "", "", "type", true)
	if err != nil {
		return nil, err
	}
	if !ValidTypeName(name) {
		return nil, &FileError{Member: "type", Reason: "type name " + quoteForError(name) +
			" is not 1 to 256 printable ASCII characters without spaces"}
	}
	if err := descriptionMember(top, "", ""); err != nil {
		return nil, err
	}
	if raw, ok := top["types"]; ok {
		defs, ok := raw.(map[string]any)
		if !ok {
			return nil, &FileError{Member: "types", Reason: "must be an object of named object types"}
		}
		for dn, d := range defs {
			ptr := "/types/" + PointerEscape(dn)
			if !validDefName(dn) {
				return nil, &FileError{Pointer: ptr, Reason: "type name " + quoteForError(dn) +
					" must be a letter followed by letters, digits, '_' or '.', and not a built-in type"}
			}
			obj, ok := d.(map[string]any)
			if !ok {
				return nil, &FileError{Pointer: ptr, Reason: "must be an object with \"fields\""}
			}
			fb.defs[dn] = obj
		}
	}
	if _, ok := top["fields"]; !ok {
		return nil, &FileError{Member: "fields", Reason: "missing (a list of fields)"}
	}
	t, err := fb.structType(top, "", "")
	if err != nil {
		return nil, err
	}
	p, err := ForNamed(t, name)
	if err != nil {
		return nil, fb.translate(err)
	}
	return &File{Name: name, Type: t, Plan: p}, nil
}

// fileBuilder turns the decoded file into Go types.
type fileBuilder struct {
	defs  map[string]map[string]any
	built map[string]reflect.Type // definition name → struct type
	stack []string                // definitions being built, for cycles
	where map[fieldKey]fieldWhere // to name a field in a TagError
}

type fieldKey struct {
	t      reflect.Type
	goName string
}

type fieldWhere struct{ ptr, field string }

// translate turns a TagError about a generated struct into a FileError
// naming the field of the file; other errors pass through.
func (fb *fileBuilder) translate(err error) error {
	var te *TagError
	if errors.As(err, &te) {
		if w, ok := fb.where[fieldKey{te.Type, te.Field}]; ok {
			return &FileError{Pointer: w.ptr, Field: w.field, Reason: te.Reason}
		}
		return &FileError{Reason: te.Reason}
	}
	return err
}

func validDefName(s string) bool {
	if s == "" || len(s) > 128 || fileScalars[s] != nil || s == "object" || s == "array" || s == "map" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case i > 0 && (c >= '0' && c <= '9' || c == '_' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// structType builds the struct type of an object with "fields" at ptr; path
// is the described field's path ("" for the message itself).
func (fb *fileBuilder) structType(obj map[string]any, ptr, path string) (reflect.Type, error) {
	raw, ok := obj["fields"]
	if !ok {
		return nil, &FileError{Pointer: ptr, Field: path, Member: "fields", Reason: `missing: an object type needs "fields" (possibly empty)`}
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, &FileError{Pointer: ptr, Field: path, Member: "fields", Reason: "must be a list of field objects"}
	}
	sfs := make([]reflect.StructField, 0, len(list))
	wheres := make([]fieldWhere, 0, len(list))
	seen := map[string]bool{}
	for i, item := range list {
		fptr := ptr + "/fields/" + strconv.Itoa(i)
		f, ok := item.(map[string]any)
		if !ok {
			return nil, &FileError{Pointer: fptr, Field: path, Reason: "a field must be an object"}
		}
		sf, fpath, err := fb.field(f, fptr, path, i)
		if err != nil {
			return nil, err
		}
		jname, _, _ := strings.Cut(sf.Tag.Get(tagJSON), ",")
		if seen[jname] {
			return nil, &FileError{Pointer: fptr, Field: fpath, Member: "name", Reason: "two fields have this name"}
		}
		seen[jname] = true
		sfs = append(sfs, sf)
		wheres = append(wheres, fieldWhere{fptr, fpath})
	}
	t := reflect.StructOf(sfs)
	for i, sf := range sfs {
		fb.where[fieldKey{t, sf.Name}] = wheres[i]
	}
	return t, nil
}

// field reads one field object and returns its struct field.
func (fb *fileBuilder) field(f map[string]any, ptr, parent string, index int) (reflect.StructField, string, error) {
	var sf reflect.StructField
	name, err := stringMember(f, ptr, parent, "name", true)
	if err != nil {
		return sf, "", err
	}
	path := name
	if parent != "" {
		path = parent + "." + name
	}
	if err := onlyMembers(f, ptr, path, "name", "type", "share", "sensitive", "validate", "omitempty", "omitzero",
		"nullable", "fields", "items", "values", "description"); err != nil {
		return sf, "", err
	}
	if !validJSONName(name) {
		return sf, "", &FileError{Pointer: ptr, Field: path, Member: "name",
			Reason: jsonNameRule}
	}
	if name == MarkerMember {
		return sf, "", &FileError{Pointer: ptr, Field: path, Member: "name",
			Reason: "the member name " + MarkerMember + " is reserved for encrypted-value markers"}
	}
	if err := descriptionMember(f, ptr, path); err != nil {
		return sf, "", err
	}

	var tag strings.Builder
	jsonTag := name
	for _, opt := range [...]string{"omitempty", "omitzero"} {
		on, err := boolMember(f, ptr, path, opt)
		if err != nil {
			return sf, "", err
		}
		if on {
			jsonTag += "," + opt
		}
	}
	tag.WriteString(tagJSON + ":" + strconv.Quote(jsonTag))

	hasShare := false
	if raw, ok := f["share"]; ok {
		list, ok := raw.([]any)
		if !ok {
			return sf, "", &FileError{Pointer: ptr, Field: path, Member: "share",
				Reason: `must be a list of service names, or ["*"] for every authenticated service`}
		}
		svcs := make([]string, 0, len(list))
		for _, v := range list {
			s, ok := v.(string)
			if !ok {
				return sf, "", &FileError{Pointer: ptr, Field: path, Member: "share", Reason: "service names must be strings"}
			}
			switch {
			case s == Wildcard && len(list) > 1:
				return sf, "", &FileError{Pointer: ptr, Field: path, Member: "share", Reason: `"*" cannot be combined with service names`}
			case s != Wildcard && !names.Valid(s):
				return sf, "", &FileError{Pointer: ptr, Field: path, Member: "share", Reason: "invalid service name " + quoteForError(s) +
					" (lowercase letters, digits and single hyphens, starting with a letter)"}
			case slices.Contains(svcs, s):
				return sf, "", &FileError{Pointer: ptr, Field: path, Member: "share", Reason: "service " + quoteForError(s) + " listed twice"}
			}
			svcs = append(svcs, s)
		}
		if len(svcs) == 0 {
			return sf, "", &FileError{Pointer: ptr, Field: path, Member: "share",
				Reason: "empty list (remove share to keep the field to this service, or name the services)"}
		}
		tag.WriteString(" " + tagShare + ":" + strconv.Quote(strings.Join(svcs, ",")))
		hasShare = true
	}
	if raw, ok := f["sensitive"]; ok {
		s, ok := raw.(string)
		if !ok {
			return sf, "", &FileError{Pointer: ptr, Field: path, Member: "sensitive", Reason: `must be "random" or "deterministic"`}
		}
		if _, reason := parseSensitive(s); reason != "" {
			return sf, "", &FileError{Pointer: ptr, Field: path, Member: "sensitive", Reason: reason}
		}
		if !hasShare {
			return sf, "", &FileError{Pointer: ptr, Field: path, Member: "sensitive",
				Reason: "sensitive without share: the field is never sent (add share, or remove sensitive)"}
		}
		tag.WriteString(" " + tagSensitive + ":" + strconv.Quote(s))
	}
	if _, ok := f["validate"]; ok {
		v, err := stringMember(f, ptr, path, "validate", true)
		if err != nil {
			return sf, "", err
		}
		tag.WriteString(" " + tagValidate + ":" + strconv.Quote(v))
	}

	t, err := fb.valueType(f, ptr, path)
	if err != nil {
		return sf, "", err
	}
	sf = reflect.StructField{Name: goFieldName(index, name), Type: t, Tag: reflect.StructTag(tag.String())}
	return sf, path, nil
}

// valueType builds the Go type of a field or of an array item or map value:
// the members type, fields, items, values and nullable of obj.
func (fb *fileBuilder) valueType(obj map[string]any, ptr, path string) (reflect.Type, error) {
	typ, err := stringMember(obj, ptr, path, "type", true)
	if err != nil {
		return nil, err
	}
	// Members that belong to another type are errors, not silently ignored.
	want := map[string]string{"object": "fields", "array": "items", "map": "values"}
	for t, m := range want {
		if _, ok := obj[m]; ok && typ != t {
			return nil, &FileError{Pointer: ptr, Field: path, Member: m, Reason: fmt.Sprintf("only a %q has %q (this is a %q)", t, m, typ)}
		}
	}
	nullable, err := boolMember(obj, ptr, path, "nullable")
	if err != nil {
		return nil, err
	}
	var t reflect.Type
	switch typ {
	case "object":
		t, err = fb.structType(obj, ptr, path)
	case "array":
		var item map[string]any
		if item, err = itemMember(obj, ptr, path, "items"); err == nil {
			var et reflect.Type
			if et, err = fb.item(item, ptr+"/items", path+"[]"); err == nil {
				t = reflect.SliceOf(et)
			}
		}
	case "map":
		var item map[string]any
		if item, err = itemMember(obj, ptr, path, "values"); err == nil {
			var et reflect.Type
			if et, err = fb.item(item, ptr+"/values", path+"{}"); err == nil {
				t = reflect.MapOf(reflect.TypeFor[string](), et)
			}
		}
	default:
		if st := fileScalars[typ]; st != nil {
			t = st
		} else if def, ok := fb.defs[typ]; ok {
			t, err = fb.definition(typ, def, path)
		} else {
			return nil, &FileError{Pointer: ptr, Field: path, Member: "type", Reason: "unknown type " + quoteForError(typ) +
				" (string, number, integer, boolean, time, bytes, raw, object, array, map, or a name from \"types\")"}
		}
	}
	if err != nil {
		return nil, err
	}
	if nullable {
		t = reflect.PointerTo(t)
	}
	return t, nil
}

// item reads an array item or map value description.
func (fb *fileBuilder) item(obj map[string]any, ptr, path string) (reflect.Type, error) {
	if err := onlyMembers(obj, ptr, path, "type", "fields", "items", "values", "nullable", "description"); err != nil {
		return nil, err
	}
	if err := descriptionMember(obj, ptr, path); err != nil {
		return nil, err
	}
	return fb.valueType(obj, ptr, path)
}

// definition builds a named object type from "types", once, refusing a
// type that refers back to itself.
func (fb *fileBuilder) definition(name string, def map[string]any, path string) (reflect.Type, error) {
	if t, ok := fb.built[name]; ok {
		return t, nil
	}
	ptr := "/types/" + PointerEscape(name)
	if i := slices.Index(fb.stack, name); i >= 0 {
		cycle := strings.Join(append(slices.Clone(fb.stack[i:]), name), " -> ")
		return nil, &FileError{Pointer: ptr, Field: path, Member: "type",
			Reason: "recursive type (" + cycle + "): schema files cannot describe recursive messages " +
				"(reflect.StructOf builds no recursive types); bound the depth with distinct types, use \"raw\", or use a Go type"}
	}
	if err := onlyMembers(def, ptr, "", "fields", "description"); err != nil {
		return nil, err
	}
	if err := descriptionMember(def, ptr, ""); err != nil {
		return nil, err
	}
	fb.stack = append(fb.stack, name)
	t, err := fb.structType(def, ptr, path)
	fb.stack = fb.stack[:len(fb.stack)-1]
	if err != nil {
		return nil, err
	}
	fb.built[name] = t
	return t, nil
}

// goFieldName makes an exported Go identifier for the index-th field:
// F<index>_<the JSON name's ASCII letters, digits and underscores>. Only
// error messages of other packages ever show it.
func goFieldName(index int, jsonName string) string {
	b := []byte("F" + strconv.Itoa(index) + "_")
	for i := 0; i < len(jsonName) && len(b) < 64; i++ {
		c := jsonName[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' {
			b = append(b, c)
		}
	}
	return string(b)
}

func onlyMembers(obj map[string]any, ptr, path string, allowed ...string) error {
	var unknown []string
	for k := range obj {
		if !slices.Contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	return &FileError{Pointer: ptr, Field: path, Member: unknown[0],
		Reason: "unknown member (allowed here: " + strings.Join(allowed, ", ") + "); members are case-sensitive"}
}

func stringMember(obj map[string]any, ptr, path, member string, required bool) (string, error) {
	raw, ok := obj[member]
	if !ok {
		if required {
			return "", &FileError{Pointer: ptr, Field: path, Member: member, Reason: "missing"}
		}
		return "", nil
	}
	s, ok := raw.(string)
	if !ok || (required && s == "") {
		return "", &FileError{Pointer: ptr, Field: path, Member: member, Reason: "must be a non-empty string"}
	}
	return s, nil
}

func boolMember(obj map[string]any, ptr, path, member string) (bool, error) {
	raw, ok := obj[member]
	if !ok {
		return false, nil
	}
	b, ok := raw.(bool)
	if !ok {
		return false, &FileError{Pointer: ptr, Field: path, Member: member, Reason: "must be true or false"}
	}
	return b, nil
}

func descriptionMember(obj map[string]any, ptr, path string) error {
	if raw, ok := obj["description"]; ok {
		if _, ok := raw.(string); !ok {
			return &FileError{Pointer: ptr, Field: path, Member: "description", Reason: "must be a string"}
		}
	}
	return nil
}

func itemMember(obj map[string]any, ptr, path, member string) (map[string]any, error) {
	raw, ok := obj[member]
	if !ok {
		return nil, &FileError{Pointer: ptr, Field: path, Member: member, Reason: "missing (the type of the elements)"}
	}
	item, ok := raw.(map[string]any)
	if !ok {
		return nil, &FileError{Pointer: ptr, Field: path, Member: member, Reason: `must be an object such as {"type": "string"}`}
	}
	return item, nil
}

// checkFileJSON checks that data is one JSON value, refusing a member given
// twice in one object: encoding/json would keep the last, so that
// {"sensitive": "random", "sensitive": null} would quietly clear a field.
func checkFileJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		obj    bool
		keys   map[string]bool
		ptr    string
		index  int
		expKey bool // in an object, the next token is a key
		key    string
	}
	var stack []*frame
	syntax := func(err error) error {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line, col := lineCol(data, se.Offset)
			return &FileError{Reason: fmt.Sprintf("not valid JSON at line %d, column %d: %s", line, col,
				strings.TrimPrefix(se.Error(), "json: "))}
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return &FileError{Reason: "not valid JSON: unexpected end of file"}
		}
		return &FileError{Reason: "not valid JSON"}
	}
	// valueDone is called after a complete value inside the top frame.
	valueDone := func() {
		if len(stack) == 0 {
			return
		}
		top := stack[len(stack)-1]
		if top.obj {
			top.expKey = true
		} else {
			top.index++
		}
	}
	childPtr := func() string {
		if len(stack) == 0 {
			return ""
		}
		top := stack[len(stack)-1]
		if top.obj {
			return top.ptr + "/" + PointerEscape(top.key)
		}
		return top.ptr + "/" + strconv.Itoa(top.index)
	}
	started := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if !started || len(stack) != 0 {
				return &FileError{Reason: "not valid JSON: unexpected end of file"}
			}
			return nil
		}
		if err != nil {
			return syntax(err)
		}
		if started && len(stack) == 0 {
			return &FileError{Reason: "not valid JSON: data after the top-level value"}
		}
		started = true
		if len(stack) > 0 {
			top := stack[len(stack)-1]
			if top.obj && top.expKey {
				if d, ok := tok.(json.Delim); ok && d == '}' {
					stack = stack[:len(stack)-1]
					valueDone()
					continue
				}
				k := tok.(string)
				if top.keys[k] {
					return &FileError{Pointer: top.ptr, Member: k, Reason: "given twice in one object"}
				}
				top.keys[k] = true
				top.key, top.expKey = k, false
				continue
			}
		}
		switch d, _ := tok.(json.Delim); d {
		case '{':
			stack = append(stack, &frame{obj: true, keys: map[string]bool{}, ptr: childPtr(), expKey: true})
			if len(stack) > 64 {
				return &FileError{Reason: "nested more than 64 levels deep"}
			}
		case '[':
			stack = append(stack, &frame{ptr: childPtr()})
			if len(stack) > 64 {
				return &FileError{Reason: "nested more than 64 levels deep"}
			}
		case ']':
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			valueDone()
		}
	}
}

func lineCol(data []byte, offset int64) (line, col int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(offset) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// ForNamed is [For] for a struct type that has no name of its own, such as
// one built with reflect.StructOf ([ParseFile] builds them): name, 1 to 256
// printable ASCII characters, becomes its envelope type name ([Plan.Name]).
// Such types cannot implement [TypeNamer], having no methods.
//
// The first successful call fixes the name of t for the life of the process:
// For(t) then returns the same plan, ForNamed(t, name) too, and ForNamed(t,
// other) is a [*TagError]. Note that reflect.StructOf returns the same type
// for the same fields and tags, so two schema files that differ only in their
// type name cannot both be used in one process. A named Go type is refused:
// it names itself (reflect.Type.String() or TypeNamer).
func ForNamed(t reflect.Type, name string) (*Plan, error) {
	if t == nil {
		return nil, fmt.Errorf("%w: nil type", ErrNotStruct)
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%w: %v", ErrNotStruct, t)
	}
	if t.Name() != "" {
		return nil, &TagError{Type: t, Reason: "ForNamed is for unnamed struct types; a named type is named by its Go name or its CrossServiceType method"}
	}
	if !ValidTypeName(name) {
		return nil, &TagError{Type: t, Reason: "type name " + quoteForError(name) + " is not 1 to 256 printable ASCII characters without spaces"}
	}
	for {
		old, loaded := plans.Load(t)
		if loaded {
			e := old.(*planEntry)
			switch {
			case e.plan != nil && e.plan.Name == name:
				return e.plan, nil
			case e.plan != nil:
				return nil, &TagError{Type: t, Reason: "the type is already planned under the name " + quoteForError(e.plan.Name) +
					", not " + quoteForError(name) + " (one name per type and process)"}
			}
			var te *TagError
			if !errors.As(e.err, &te) || te.Field != "" {
				return nil, e.err // a mistake in the fields: the name changes nothing
			}
			// The earlier For failed only for want of a valid name.
		}
		p, err := buildPlan(t, name)
		if err != nil {
			return nil, err
		}
		ne := &planEntry{plan: p}
		if loaded {
			if plans.CompareAndSwap(t, old, ne) {
				return p, nil
			}
		} else if _, raced := plans.LoadOrStore(t, ne); !raced {
			return p, nil
		}
		// Another goroutine planned t meanwhile: decide again.
	}
}
