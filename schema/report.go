package schema

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/lifenavigator/crossservice/internal/names"
)

// Exposure is the answer to "which service sees which field, and how": one
// row per field path of the reported types, one [Mode] per service. Build it
// with [Report]; render it with [Exposure.Markdown] or [Exposure.DOT].
type Exposure struct {
	// Services are the columns, in the order given to Report.
	Services []string
	// Rows are the field paths, type by type, in encoding order.
	Rows []ExposureRow
}

// ExposureRow is one field path of an [Exposure].
type ExposureRow struct {
	// Path is the JSON path from the type: the type's name, then the JSON
	// member names joined by dots, with "[]" after a slice or array and "{}"
	// after a map, such as "Account.owners[].name".
	Path string
	// GoType is the Go type of the field.
	GoType string
	// Modes are the effective modes per service, in the order of
	// [Exposure.Services]. A field inside an encrypted struct, slice or map
	// takes the mode of that container (it is encrypted with it) when it is
	// shared, and a field inside a stripped one is stripped.
	Modes []Mode
	// Note explains an exceptional row: a recursive type stops here.
	Note string
}

// Report builds the exposure matrix of types for services. Each type must be
// a struct type (or a pointer to one) whose plan builds; its [TagError] is
// returned otherwise. Services must be valid service names.
//
// A recursive type is expanded once: the field where the type repeats is a
// row with a Note, and its fields are not listed again.
func Report(types []reflect.Type, services []string) (*Exposure, error) {
	for i, s := range services {
		if !names.Valid(s) {
			return nil, fmt.Errorf("%w: service %q", ErrRecipient, truncate(s))
		}
		for _, t := range services[:i] {
			if t == s {
				return nil, fmt.Errorf("%w: service %q listed twice", ErrRecipient, s)
			}
		}
	}
	e := &Exposure{Services: append([]string(nil), services...)}
	for _, t := range types {
		p, err := For(t)
		if err != nil {
			return nil, err
		}
		name := p.Type.Name()
		if name == "" {
			name = p.Name
		}
		inherited := make([]Mode, len(services))
		for i := range inherited {
			inherited[i] = Clear
		}
		e.walk(p.Root, name, inherited, []*Node{p.Root})
	}
	return e, nil
}

func (e *Exposure) walk(n *Node, path string, inherited []Mode, stack []*Node) {
	for _, f := range n.Fields {
		modes := make([]Mode, len(e.Services))
		for i, s := range e.Services {
			own := f.ModeFor(s)
			switch {
			case inherited[i] == Stripped || own == Stripped:
				modes[i] = Stripped
			case inherited[i].Encrypted():
				modes[i] = inherited[i]
			default:
				modes[i] = own
			}
		}
		row := ExposureRow{Path: path + "." + f.Name, GoType: f.Type.String(), Modes: modes}
		// Follow pointers, slices, arrays and maps down to a struct.
		child, suffix := f.Node, ""
		for child != nil && child.Kind != Struct {
			switch child.Kind {
			case Slice, Array:
				suffix += "[]"
			case Map:
				suffix += "{}"
			case Pointer:
			default:
				child = nil
				continue
			}
			child = child.Elem
			if child != nil && len(suffix) > 64 { // a type like `type L []L`
				child = nil
			}
		}
		if child != nil {
			for _, s := range stack {
				if s == child {
					row.Note = "recursive: " + child.Type.String() + " repeats here; its fields are listed above"
					child = nil
					break
				}
			}
		}
		e.Rows = append(e.Rows, row)
		if child != nil {
			e.walk(child, row.Path+suffix, modes, append(stack, child))
		}
	}
}

// Markdown renders the exposure as a GitHub-flavoured Markdown table: one
// row per field path, one column per service, cells "clear", "random",
// "deterministic" or "stripped", and a Note column when a row has a note.
func (e *Exposure) Markdown() string {
	var b strings.Builder
	notes := false
	for _, r := range e.Rows {
		notes = notes || r.Note != ""
	}
	b.WriteString("| Field | Go type |")
	for _, s := range e.Services {
		b.WriteString(" " + mdEscape(s) + " |")
	}
	if notes {
		b.WriteString(" Note |")
	}
	b.WriteString("\n|---|---|")
	for range e.Services {
		b.WriteString("---|")
	}
	if notes {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range e.Rows {
		b.WriteString("| " + mdEscape(r.Path) + " | " + mdEscape(r.GoType) + " |")
		for _, m := range r.Modes {
			b.WriteString(" " + m.String() + " |")
		}
		if notes {
			b.WriteString(" " + mdEscape(r.Note) + " |")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// mdEscape makes s safe inside a Markdown table cell.
func mdEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "|", `\|`, "\n", " ", "\r", " ", "`", "\\`", "<", "&lt;", ">", "&gt;").Replace(s)
}

// DOT renders the exposure as a Graphviz digraph: a box per field path, an
// ellipse per service, and an edge from a field to each service that
// receives it, labelled with its mode (encrypted modes drawn bold and
// coloured). A field no service receives is drawn grey, with no edge.
func (e *Exposure) DOT() string {
	var b strings.Builder
	b.WriteString("digraph exposure {\n\trankdir=LR;\n")
	b.WriteString("\tnode [shape=box, fontname=\"Helvetica\"];\n\tedge [fontname=\"Helvetica\"];\n")
	for i, s := range e.Services {
		fmt.Fprintf(&b, "\ts%d [label=%s, shape=ellipse];\n", i, dotQuote(s))
	}
	for i, r := range e.Rows {
		label := r.Path + "\n" + r.GoType
		if r.Note != "" {
			label += "\n" + r.Note
		}
		attrs := ""
		sent := false
		for _, m := range r.Modes {
			sent = sent || m != Stripped
		}
		if !sent {
			attrs = ", color=\"grey\", fontcolor=\"grey\""
		}
		fmt.Fprintf(&b, "\tf%d [label=%s%s];\n", i, dotQuote(label), attrs)
	}
	for i, r := range e.Rows {
		for j, m := range r.Modes {
			var style string
			switch m {
			case Stripped:
				continue
			case Clear:
				style = ""
			case Random:
				style = ", color=\"red\", penwidth=2"
			case Deterministic:
				style = ", color=\"darkorange\", penwidth=2, style=\"dashed\""
			}
			fmt.Fprintf(&b, "\tf%d -> s%d [label=%s%s];\n", i, j, dotQuote(m.String()), style)
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// dotQuote returns s as a DOT double-quoted string: backslashes and quotes
// escaped, line breaks as the \n escape (a centred line break in a label).
func dotQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
		default:
			if r < 0x20 || r == 0x7f {
				r = ' '
			}
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
