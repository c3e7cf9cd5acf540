package schema

import (
	"errors"
	"reflect"
	"strconv"
)

// ErrTag is the sentinel every [*TagError] matches with [errors.Is]: the
// annotations of a type are wrong, so no value of it can be sealed or opened.
var ErrTag = errors.New("schema: invalid tag")

// ErrNotStruct is returned by [For] for a type that is neither a struct nor a
// pointer to one: only structs are sealed as messages.
var ErrNotStruct = errors.New("schema: not a struct type")

// ErrRecipient is returned for a recipient or report service that is not a
// valid service name.
var ErrRecipient = errors.New("schema: invalid service name")

// TagError reports one mistake in the annotations of a struct type. It is
// returned when the plan of the type is built (by [For] or [Report]), never
// later, and names no value: only the type, the Go field and the tag key.
type TagError struct {
	// Type is the struct type that declares the field (for a promoted field,
	// the embedded type), or the message type itself for a type-level problem.
	Type reflect.Type
	// Field is the Go name of the field, empty for a type-level problem (an
	// invalid type name).
	Field string
	// Tag is the struct tag key concerned ("share", "sensitive", "json", or the
	// misspelled key as written, such as "sensitve"); for a struct tag that
	// cannot be parsed at all it is the whole tag text; empty for a type-level
	// problem.
	Tag string
	// Reason says what is wrong, in words meant for the developer.
	Reason string
}

func (e *TagError) Error() string {
	s := "schema: "
	if e.Type != nil {
		s += e.Type.String()
	}
	if e.Field != "" {
		s += "." + e.Field
	}
	if e.Tag != "" {
		s += ": tag " + quoteForError(e.Tag)
	}
	return s + ": " + e.Reason
}

// Is makes errors.Is(err, ErrTag) true for every TagError.
func (e *TagError) Is(target error) bool { return target == ErrTag }

// quoteForError quotes s with Go syntax, bounded so a fuzzed or absurd tag
// cannot make an error message unbounded.
func quoteForError(s string) string {
	const max = 80
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strconv.Quote(s)
}
