package fieldcrypt

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/go-playground/validator/v10"

	"github.com/lifenavigator/crossservice/schema"
)

// newValidator is the default validator: required on structs enabled, and
// JSON member names in error paths.
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
	return v
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
