package fieldcrypt

import (
	"errors"
	"reflect"
	"strings"

	"github.com/lifenavigator/crossservice/envelope"
)

// ErrUnknownRecipient is returned by [Codec.Seal] for a recipient that is
// not in [Config.Recipients].
var ErrUnknownRecipient = errors.New("fieldcrypt: unknown recipient")

// ErrNoIdentity is returned by [Codec.Open] on a codec configured without
// [Config.Identity] (a codec that only seals).
var ErrNoIdentity = errors.New("fieldcrypt: no identity configured to open envelopes")

// InvalidValueError reports a value [Codec.Seal] cannot take (not a struct
// or a non-nil pointer to one) or a destination [Codec.Open] cannot fill
// (not a non-nil pointer to a struct). It is a programming error.
type InvalidValueError struct {
	Op   string       // "seal" or "open"
	Type reflect.Type // nil for a nil interface
}

func (e *InvalidValueError) Error() string {
	t := "nil"
	if e.Type != nil {
		t = e.Type.String()
	}
	if e.Op == "open" {
		return "fieldcrypt: open needs a non-nil pointer to a struct, not " + t
	}
	return "fieldcrypt: seal needs a struct or a non-nil pointer to one, not " + t
}

// MismatchError reports an authentic envelope whose header does not say
// what the caller expects: its type name is not the destination's
// ("typ"), or its sender is not the one required ("snd"). It matches
// [envelope.ErrCannotOpen]: the data is refused. The header was verified,
// so naming the values is safe; no field was decoded.
type MismatchError struct {
	Member    string // "typ" or "snd"
	Want, Got string
}

func (e *MismatchError) Error() string {
	return "fieldcrypt: cannot open: envelope " + e.Member + " is " + quote(e.Got) + ", want " + quote(e.Want)
}

// Is makes a *MismatchError match envelope.ErrCannotOpen.
func (e *MismatchError) Is(target error) bool { return target == envelope.ErrCannotOpen }

// ValidationError lists the validate tags a value fails. It names field
// paths and tags only, never values: paths use JSON member names, with "[]"
// for any slice index or map key (a map key can be a secret).
//
// From [Codec.Open] it also matches envelope.ErrCannotOpen: the data was
// authentic but is refused.
type ValidationError struct {
	Violations []Violation
	opened     bool
}

// Violation is one failed validate tag.
type Violation struct {
	Path string // such as "Account.owners[].ssn"
	Tag  string // the failed validation, such as "required" or "len"
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("fieldcrypt: invalid value:")
	for i, v := range e.Violations {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(" " + v.Path + " fails " + quote(v.Tag))
	}
	return b.String()
}

// Is makes a ValidationError returned by Open match envelope.ErrCannotOpen.
func (e *ValidationError) Is(target error) bool {
	return e.opened && target == envelope.ErrCannotOpen
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < 0x20 || r == '"' || r == '\\' || r == 0x7f {
			return '?'
		}
		return r
	}, s) + `"`
}
