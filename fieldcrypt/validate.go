package fieldcrypt

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/go-playground/validator/v10"

	"github.com/lifenavigator/crossservice/schema"
)

// newValidator is the default validator: required on structs enabled, and
// JSON member names in error paths. Its email check answers exactly as the
// built-in one does, faster for the common addresses (see plainEmail).
// Nothing else is registered on it, which is what lets the codec skip the
// fields where no value can fail (see valPlanFor and filterMatters).
func newValidator() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			return "-"
		case "":
			return f.Name
		}
		return name
	})
	builtin := validator.New()
	if err := v.RegisterValidation("email", func(fl validator.FieldLevel) bool {
		f := fl.Field()
		if f.Kind() == reflect.String && plainEmail(f.String()) {
			return true
		}
		// The built-in check on the same text (it reads Field().String()).
		return builtin.Var(f.String(), "email") == nil
	}); err != nil {
		panic(err) // a constant tag name: cannot fail
	}
	return v
}

// plainEmail reports whether s is an address of the plainest form: a
// dot-atom local part of at most 64 bytes, '@', and a domain of at least
// two dot-separated labels of letters, digits and inner hyphens (at most
// 63 bytes each), the last one letters only, at most 254 bytes in all, all
// ASCII. Every such address passes validator's email check (net/mail's
// ParseAddress and its RFC 5322 regular expression; TestDefaultEmailCheck
// compares them), so a true answer can skip both; false means "ask them".
func plainEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	if at < 1 || at > 64 || len(s) > 254 {
		return false
	}
	prev := byte('.') // the local part cannot start with a dot
	for i := 0; i < at; i++ {
		c := s[i]
		if c == '.' {
			if prev == '.' {
				return false
			}
		} else if c >= 0x80 || !emailAtext[c] {
			return false
		}
		prev = c
	}
	if prev == '.' {
		return false
	}
	labels, start := 0, at+1
	for i := start; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
			continue
		}
		l := s[start:i]
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		if i == len(s) { // the last label: letters only
			for j := 0; j < len(l); j++ {
				if c := l[j]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
					return false
				}
			}
		}
		labels++
		start = i + 1
	}
	return labels >= 2
}

// emailAtext[c]: c is an RFC 5322 atext character (letters, digits and
// !#$%&'*+-/=?^_`{|}~).
var emailAtext = func() (t [0x80]bool) {
	for c := 0; c < 0x80; c++ {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-/=?^_`{|}~", byte(c)) >= 0
	}
	return t
}()

// valuerType is validator's hook for types that are validated as another
// value (ValidatorValue), which may hold anything.
var valuerType = reflect.TypeFor[validator.Valuer]()

// typeFree reports whether the default validator can find nothing to
// check in any value of type t: no struct reachable from t through fields
// (exported or not), pointers, slices, arrays and maps has a validate tag, a
// field of interface type or a type with a ValidatorValue method. The
// answer is conservative: false when in doubt. seen holds the types being
// or already checked.
func typeFree(t reflect.Type, seen map[reflect.Type]bool) bool {
	for {
		if seen[t] {
			return true // being checked further up, or found free
		}
		seen[t] = true
		if t.Implements(valuerType) || reflect.PointerTo(t).Implements(valuerType) {
			return false
		}
		switch t.Kind() {
		case reflect.Interface:
			return false
		case reflect.Map:
			if !typeFree(t.Key(), seen) {
				return false
			}
			t = t.Elem()
		case reflect.Pointer, reflect.Slice, reflect.Array:
			t = t.Elem()
		case reflect.Struct:
			for i := range t.NumField() {
				f := t.Field(i)
				if f.Tag.Get("validate") != "" || !typeFree(f.Type, seen) {
					return false
				}
			}
			return true
		default:
			return true
		}
	}
}

// valPlan is how the default validator is run on values of one root struct
// type, decided once per type (like a plan) and cached in valPlans.
type valPlan struct {
	// free: nothing in the type can fail validation, so the validator is
	// not run at all.
	free bool
	// skip holds the namespaces (validator's, "Order.Items") of fields in
	// which the validator can find nothing to check: validating without
	// them gives the same answer, without walking them. nil: none known.
	skip *nameSet
	// skips is the filter that skips them, nil with skip.
	skips validator.FilterFunc
	// quick answers for validator when the type's tags allow (see
	// quickCheck); nil otherwise.
	quick *quickCheck
}

// nameSet is a set of strings that validator's filter, called for every
// field it walks, can query without hashing: by length, then by content.
type nameSet struct {
	byLen [][]string
}

func newNameSet(names map[string]bool) *nameSet {
	s := &nameSet{}
	for n := range names {
		for len(s.byLen) <= len(n) {
			s.byLen = append(s.byLen, nil)
		}
		s.byLen[len(n)] = append(s.byLen[len(n)], n)
	}
	return s
}

func (s *nameSet) has(b []byte) bool {
	if len(b) >= len(s.byLen) {
		return false
	}
	for _, n := range s.byLen[len(b)] {
		if n == string(b) {
			return true
		}
	}
	return false
}

var valPlans sync.Map // reflect.Type → *valPlan

const (
	skipDepth = 8    // struct levels below the root whose fields are listed in skip
	skipMax   = 1024 // entries of skip, against wide types
)

// valPlanFor returns the validation plan of the struct type t for the
// default validator (nothing registered on it but newValidator's email).
func valPlanFor(t reflect.Type) *valPlan {
	if v, ok := valPlans.Load(t); ok {
		return v.(*valPlan)
	}
	p := &valPlan{}
	// validator refuses a root convertible to time.Time: let it say so.
	p.free = !t.ConvertibleTo(timeType) && typeFree(t, map[reflect.Type]bool{})
	if !p.free {
		skip := map[string]bool{}
		listFree(t, t.Name(), 0, skip)
		if len(skip) > 0 {
			p.skip = newNameSet(skip)
			p.skips = p.skip.has
		}
		p.quick = compileQuick(t)
	}
	v, _ := valPlans.LoadOrStore(t, p)
	return v.(*valPlan)
}

// listFree adds to skip the namespace of every field of struct type t,
// named ns (validator's namespace of t, "" for an unnamed root), that the
// validator walks and can find nothing to check in, and goes down into
// the fields that are structs (or pointers to structs: validator follows
// both without brackets in the namespace) and may fail, up to skipDepth
// levels and skipMax entries. Namespaces it does not list are validated.
func listFree(t reflect.Type, ns string, depth int, skip map[string]bool) {
	if ns != "" {
		ns += "."
	}
	for i := range t.NumField() {
		if len(skip) >= skipMax {
			return
		}
		fld := t.Field(i)
		if !fld.Anonymous && fld.PkgPath != "" {
			continue // validator does not see it
		}
		tag := fld.Tag.Get("validate")
		if tag == "-" {
			continue // validator does not see it either
		}
		if tag == "" && typeFree(fld.Type, map[reflect.Type]bool{}) {
			skip[ns+fld.Name] = true
			continue
		}
		ft := fld.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && depth+1 < skipDepth {
			listFree(ft, ns+fld.Name, depth+1, skip)
		}
	}
}

// filterMatters reports whether the filter buildFilter makes for a root
// projection (vnode n of struct type t) could make validator skip a field
// in which the default validator would find something to check; when it
// cannot, validating without the filter gives the same answer. It follows
// validator's walk (exported and embedded fields, validate:"-" skipped) and
// answers true whenever the filter's answer below a field is not plainly
// "validate everything the projection has": a field not in the projection
// that may fail, a Valuer, a struct below a shared field that the
// projection does not describe, or map keys in the path (parsed
// heuristically by the filter).
func filterMatters(t reflect.Type, n *vnode, seen map[filterVisit]bool) bool {
	if seen[filterVisit{t, n}] {
		return false
	}
	seen[filterVisit{t, n}] = true
	for i := range t.NumField() {
		fld := t.Field(i)
		if !fld.Anonymous && fld.PkgPath != "" {
			continue // validator does not see it
		}
		tag := fld.Tag.Get("validate")
		if tag == "-" || tag == "" && typeFree(fld.Type, map[reflect.Type]bool{}) {
			continue // nothing to check there, skipped or not
		}
		e := n.fields[fld.Name]
		if e == nil {
			return true // the filter skips a field that may fail
		}
		st := fld.Type
		for st.Kind() == reflect.Pointer || st.Kind() == reflect.Slice || st.Kind() == reflect.Array || st.Kind() == reflect.Map {
			if st.Implements(valuerType) || reflect.PointerTo(st).Implements(valuerType) {
				return true
			}
			st = st.Elem()
		}
		if st.Implements(valuerType) || reflect.PointerTo(st).Implements(valuerType) {
			return true
		}
		if st.Kind() != reflect.Struct || typeFree(st, map[reflect.Type]bool{}) {
			continue
		}
		next := e.embedded
		if next == nil {
			next = e.child
		}
		if next == nil || slices.Contains(e.brackets, 'm') || filterMatters(st, next, seen) {
			return true
		}
	}
	return false
}

type filterVisit struct {
	t reflect.Type
	n *vnode
}

// validate runs validator on ptr (a pointer to a struct), all fields
// (filter nil) or those the filter keeps. validator panics on a malformed
// validate tag; that is turned into an error here.
func validate(v *validator.Validate, ptr any, filter validator.FilterFunc, opened bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			// validator's panics describe the tag, not the value.
			err = fmt.Errorf("fieldcrypt: validate tag of %T cannot be used: %v", ptr, r)
		}
	}()
	if filter == nil {
		err = v.Struct(ptr)
	} else {
		err = v.StructFiltered(ptr, filter)
	}
	if err == nil {
		return nil
	}
	var ves validator.ValidationErrors
	if !errors.As(err, &ves) {
		return fmt.Errorf("fieldcrypt: validation: %w", err)
	}
	out := &ValidationError{opened: opened}
	for _, fe := range ves {
		out.Violations = append(out.Violations, Violation{Path: stripBrackets(fe.Namespace()), Tag: fe.Tag()})
	}
	return out
}

// stripBrackets removes what validator prints between brackets (slice
// indices and map keys, which may be values) from a namespace. A bracket
// ends at a ']' followed by '.', '[' or the end.
func stripBrackets(ns string) string {
	var b strings.Builder
	for i := 0; i < len(ns); i++ {
		if ns[i] != '[' {
			b.WriteByte(ns[i])
			continue
		}
		b.WriteString("[]")
		j := i + 1
		for ; j < len(ns); j++ {
			if ns[j] == ']' && (j+1 == len(ns) || ns[j+1] == '.' || ns[j+1] == '[') {
				break
			}
		}
		i = j
	}
	return b.String()
}

// vnode maps validator's Go-name namespaces onto one struct projection, so
// that validation after opening only looks at fields the recipient received
// (a `required` field not shared with it is absent, not invalid).
type vnode struct {
	fields map[string]*ventry
}

type ventry struct {
	embedded *vnode // an embedded struct whose promoted fields follow
	shared   bool   // a field in the projection
	brackets []byte // containers between the field and child: 'i' list, 'm' map
	child    *vnode // the struct below the containers, if any
}

// buildFilter returns validator's filter for a root projection.
func buildFilter(rootName string, p *schema.Projection) validator.FilterFunc {
	memo := map[*schema.Projection]*vnode{}
	root := buildVnode(p, memo)
	prefix := ""
	if rootName != "" {
		prefix = rootName + "."
	}
	// Namespaces without brackets (struct and pointer hops only) are
	// enumerated up to a small depth, so that the common case is one map
	// lookup; the others are parsed.
	allowed := map[string]bool{}
	complete := root.enumerate("", 0, allowed)
	return func(ns []byte) bool {
		if len(ns) < len(prefix) || string(ns[:len(prefix)]) != prefix {
			return false
		}
		rest := ns[len(prefix):]
		if !complete {
			return root.skip(rest)
		}
		if allowed[string(rest)] {
			return false
		}
		dots := 0
		for _, c := range rest {
			switch c {
			case '[':
				return root.skip(rest)
			case '.':
				dots++
			}
		}
		if dots < enumerateDepth {
			return true // enumerated, and not allowed
		}
		return root.skip(rest)
	}
}

const (
	enumerateDepth = 4    // namespaces with fewer dots are all in the map
	enumerateMax   = 4096 // entries, against wide recursive types
)

// enumerate adds to out every allowed bracket-free namespace below n with
// fewer than enumerateDepth dots, and reports whether it could: beyond
// enumerateMax entries it gives up, and the filter then parses every
// namespace (a name missing from an incomplete map proves nothing).
func (n *vnode) enumerate(prefix string, depth int, out map[string]bool) bool {
	for name, e := range n.fields {
		if len(out) >= enumerateMax {
			clear(out)
			return false
		}
		ns := prefix + name
		out[ns] = true
		if depth+1 >= enumerateDepth {
			continue
		}
		next := e.embedded
		if next == nil && len(e.brackets) == 0 {
			next = e.child
		}
		if next != nil && !next.enumerate(ns+".", depth+1, out) {
			return false
		}
	}
	return true
}

func buildVnode(p *schema.Projection, memo map[*schema.Projection]*vnode) *vnode {
	if n, ok := memo[p]; ok {
		return n
	}
	n := &vnode{fields: map[string]*ventry{}}
	memo[p] = n
	for _, f := range p.Fields {
		segs := strings.Split(f.GoPath, ".")
		cur := n
		for _, s := range segs[:len(segs)-1] {
			e := cur.fields[s]
			if e == nil {
				e = &ventry{embedded: &vnode{fields: map[string]*ventry{}}}
				cur.fields[s] = e
			}
			cur = e.embedded
		}
		e := &ventry{shared: true}
		q := f.Proj
		for i := 0; i < 64 && q.Node.Kind != schema.Struct && q.Elem != nil; i++ {
			switch q.Node.Kind {
			case schema.Slice, schema.Array:
				e.brackets = append(e.brackets, 'i')
			case schema.Map:
				e.brackets = append(e.brackets, 'm')
			}
			q = q.Elem
		}
		if q.Node.Kind == schema.Struct {
			e.child = buildVnode(q, memo)
		}
		cur.fields[segs[len(segs)-1]] = e
	}
	return n
}

// skip reports whether validator should skip the field named by ns (Go
// names from the struct, such as "Owners[0].SSN"): true only when ns is
// understood and the field is not in the projection. Anything it cannot
// parse is validated.
func (n *vnode) skip(ns []byte) bool {
	for {
		end := 0
		for end < len(ns) && ns[end] != '.' && ns[end] != '[' {
			end++
		}
		e := n.fields[string(ns[:end])]
		if e == nil {
			return true
		}
		rest := ns[end:]
		if len(rest) == 0 {
			return false
		}
		if e.embedded != nil {
			if rest[0] != '.' {
				return false
			}
			n, ns = e.embedded, rest[1:]
			continue
		}
		for k, b := range e.brackets {
			if len(rest) == 0 || rest[0] != '[' {
				return false
			}
			j := 1
			if b == 'i' {
				for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
					j++
				}
				if j >= len(rest) || rest[j] != ']' {
					return false
				}
			} else {
				next := byte('.')
				if k+1 < len(e.brackets) {
					next = '['
				}
				for j < len(rest) && !(rest[j] == ']' && j+1 < len(rest) && rest[j+1] == next) {
					j++
				}
				if j >= len(rest) {
					return false
				}
			}
			rest = rest[j+1:]
		}
		if e.child == nil || len(rest) == 0 || rest[0] != '.' {
			return false
		}
		n, ns = e.child, rest[1:]
	}
}
