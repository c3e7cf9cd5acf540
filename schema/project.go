package schema

import (
	"fmt"

	"github.com/lifenavigator/crossservice/internal/names"
)

// A Projection is a [Node] as one recipient sees it: for a struct, only the
// fields shared with that recipient, each with its [Mode]; for a container,
// the projection of its element. It mirrors the node graph (recursive types
// included) and is what a plan-driven writer or reader walks. Projections
// are built once per plan and recipient, cached, and read-only.
type Projection struct {
	// Recipient is the service this projection is for.
	Recipient string
	// Node is the projected node.
	Node *Node
	// Elem is the projection of Node.Elem.
	Elem *Projection
	// Fields are, for a struct, the fields shared with Recipient, in
	// encoding order.
	Fields []ProjectedField
	// Sensitive: some value below this projection (itself included) is
	// encrypted for Recipient. A writer can skip JSON Pointer bookkeeping
	// under a projection that is not Sensitive.
	Sensitive bool

	byName map[string]int
}

// A ProjectedField is a field shared with the projection's recipient.
type ProjectedField struct {
	*Field
	// Mode is Clear, Random or Deterministic, never Stripped.
	Mode Mode
	// Proj is the projection of Field.Node for the same recipient.
	Proj *Projection
}

// Lookup returns the shared field whose JSON name is name, or nil: a member
// that is not shared with the recipient has no field here. Matching is
// exact (encoding/json's case-insensitive fallback is deliberately absent).
func (p *Projection) Lookup(name []byte) *ProjectedField {
	if i := p.Index(name); i >= 0 {
		return &p.Fields[i]
	}
	return nil
}

// Index returns the position in Fields of the shared field whose JSON name
// is name, or -1 (see [Projection.Lookup]).
func (p *Projection) Index(name []byte) int {
	if p.byName == nil {
		for i := range p.Fields {
			if p.Fields[i].Name == string(name) {
				return i
			}
		}
		return -1
	}
	if i, ok := p.byName[string(name)]; ok {
		return i
	}
	return -1
}

// Project returns the projection of the plan for recipient, a service name
// (not "*": a field shared with "*" is in every recipient's projection).
func (p *Plan) Project(recipient string) (*Projection, error) {
	if v, ok := p.projections.Load(recipient); ok {
		return v.(*Projection), nil
	}
	if !names.Valid(recipient) {
		return nil, fmt.Errorf("%w: recipient %q", ErrRecipient, truncate(recipient))
	}
	built := map[*Node]*Projection{}
	root := project(p.Root, recipient, built)
	// Sensitive is a least fixed point over a possibly cyclic graph.
	for changed := true; changed; {
		changed = false
		for _, pr := range built {
			if pr.Sensitive {
				continue
			}
			s := pr.Elem != nil && pr.Elem.Sensitive
			for _, f := range pr.Fields {
				s = s || f.Mode.Encrypted() || f.Proj.Sensitive
			}
			if s {
				pr.Sensitive, changed = true, true
			}
		}
	}
	v, _ := p.projections.LoadOrStore(recipient, root)
	return v.(*Projection), nil
}

func project(n *Node, r string, built map[*Node]*Projection) *Projection {
	if p, ok := built[n]; ok {
		return p
	}
	p := &Projection{Recipient: r, Node: n}
	built[n] = p
	switch n.Kind {
	case Struct:
		for _, f := range n.Fields {
			m := f.ModeFor(r)
			if m == Stripped {
				continue
			}
			p.Fields = append(p.Fields, ProjectedField{Field: f, Mode: m, Proj: project(f.Node, r, built)})
		}
		if len(p.Fields) > 16 {
			p.byName = make(map[string]int, len(p.Fields))
			for i, f := range p.Fields {
				p.byName[f.Name] = i
			}
		}
	case Pointer, Slice, Array, Map:
		p.Elem = project(n.Elem, r, built)
	}
	return p
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
