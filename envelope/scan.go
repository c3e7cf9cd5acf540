package envelope

import (
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds the nesting of arrays and objects in "data" (the data
// object itself is level 1), so that a hostile input cannot make the
// validator recurse without bound.
const maxDepth = 1000

// scanner is a strict RFC 8259 scanner over one byte slice. It exists because
// encoding/json silently accepts duplicate object members and re-serialises
// what it reads; the envelope needs the exact bytes and must refuse
// duplicates. The input must already be valid UTF-8 (checked once by callers).
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eof() bool { return s.i >= len(s.b) }

// next returns the next byte without consuming it, or 0 at the end.
func (s *scanner) next() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) consume(c byte, reason string) error {
	if s.next() != c {
		return parseErr(reason)
	}
	s.i++
	return nil
}

// str reads a JSON string and returns its decoded value. It refuses control
// characters, unknown escapes and unpaired surrogates.
func (s *scanner) str() (string, error) {
	if s.next() != '"' {
		return "", parseErr("expected a string")
	}
	s.i++
	start := s.i
	// Fast path: no escapes.
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			v := intern(s.b[start:s.i])
			s.i++
			return v, nil
		case c == '\\':
			return s.strSlow(start)
		case c < 0x20:
			return "", parseErr("control character in string")
		}
		s.i++
	}
	return "", parseErr("unterminated string")
}

func (s *scanner) strSlow(start int) (string, error) {
	out := append([]byte(nil), s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return string(out), nil
		case c < 0x20:
			return "", parseErr("control character in string")
		case c != '\\':
			out = append(out, c)
			s.i++
			continue
		}
		// An escape.
		if s.i+1 >= len(s.b) {
			return "", parseErr("unterminated string")
		}
		e := s.b[s.i+1]
		s.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return "", parseErr("invalid \\u escape")
			}
			if utf16.IsSurrogate(r) {
				if r >= 0xdc00 || s.i+1 >= len(s.b) || s.b[s.i] != '\\' || s.b[s.i+1] != 'u' {
					return "", parseErr("unpaired surrogate")
				}
				s.i += 2
				r2, ok := s.hex4()
				if !ok {
					return "", parseErr("invalid \\u escape")
				}
				r = utf16.DecodeRune(r, r2)
				if r == utf8.RuneError {
					return "", parseErr("unpaired surrogate")
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", parseErr("invalid escape")
		}
	}
	return "", parseErr("unterminated string")
}

func (s *scanner) hex4() (rune, bool) {
	if s.i+4 > len(s.b) {
		return 0, false
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	s.i += 4
	return r, true
}

// skipString validates a JSON string without decoding it.
func (s *scanner) skipString() error {
	if s.next() != '"' {
		return parseErr("expected a string")
	}
	s.i++
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return nil
		case c < 0x20:
			return parseErr("control character in string")
		case c == '\\':
			if s.i+1 >= len(s.b) {
				return parseErr("unterminated string")
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				s.i += 2
				if _, ok := s.hex4(); !ok {
					return parseErr("invalid \\u escape")
				}
			default:
				return parseErr("invalid escape")
			}
		default:
			s.i++
		}
	}
	return parseErr("unterminated string")
}

// number reads an RFC 8259 number and returns its exact text.
func (s *scanner) number() ([]byte, error) {
	start := s.i
	if s.next() == '-' {
		s.i++
	}
	switch c := s.next(); {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return nil, parseErr("invalid number")
	}
	if s.next() == '.' {
		s.i++
		if n := s.digits(); n == 0 {
			return nil, parseErr("invalid number")
		}
	}
	if c := s.next(); c == 'e' || c == 'E' {
		s.i++
		if c := s.next(); c == '+' || c == '-' {
			s.i++
		}
		if n := s.digits(); n == 0 {
			return nil, parseErr("invalid number")
		}
	}
	return s.b[start:s.i], nil
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *scanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return parseErr("invalid literal")
	}
	s.i += len(lit)
	return nil
}

// value validates one JSON value of any kind, nested at most maxDepth-depth
// levels deep. Duplicate members below the header are not this package's
// business: "data" is authenticated as bytes and decoded by the caller.
func (s *scanner) value(depth int) error {
	switch c := s.next(); {
	case c == '{':
		if depth > maxDepth {
			return parseErr("nesting too deep")
		}
		s.i++
		s.ws()
		if s.next() == '}' {
			s.i++
			return nil
		}
		for {
			if err := s.skipString(); err != nil {
				return err
			}
			s.ws()
			if err := s.consume(':', "expected ':'"); err != nil {
				return err
			}
			s.ws()
			if err := s.value(depth + 1); err != nil {
				return err
			}
			s.ws()
			switch s.next() {
			case ',':
				s.i++
				s.ws()
			case '}':
				s.i++
				return nil
			default:
				return parseErr("expected ',' or '}'")
			}
		}
	case c == '[':
		if depth > maxDepth {
			return parseErr("nesting too deep")
		}
		s.i++
		s.ws()
		if s.next() == ']' {
			s.i++
			return nil
		}
		for {
			if err := s.value(depth + 1); err != nil {
				return err
			}
			s.ws()
			switch s.next() {
			case ',':
				s.i++
				s.ws()
			case ']':
				s.i++
				return nil
			default:
				return parseErr("expected ',' or ']'")
			}
		}
	case c == '"':
		return s.skipString()
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := s.number()
		return err
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		return parseErr("expected a JSON value")
	}
}

// members walks the members of an object whose '{' is next, calling member
// with each decoded name; member must consume the value. It refuses a name
// seen twice (after unescaping), which is what JSON parsers disagree on.
func (s *scanner) members(member func(name string) error) error {
	if err := s.consume('{', "expected an object"); err != nil {
		return err
	}
	s.ws()
	if s.next() == '}' {
		s.i++
		return nil
	}
	var buf [8]string // objects read this way have at most 7 valid members
	seen := buf[:0]
	for {
		name, err := s.str()
		if err != nil {
			return err
		}
		for _, n := range seen {
			if n == name {
				return parseErr("duplicate member")
			}
		}
		seen = append(seen, name)
		s.ws()
		if err := s.consume(':', "expected ':'"); err != nil {
			return err
		}
		s.ws()
		if err := member(name); err != nil {
			return err
		}
		s.ws()
		switch s.next() {
		case ',':
			s.i++
			s.ws()
		case '}':
			s.i++
			return nil
		default:
			return parseErr("expected ',' or '}'")
		}
	}
}

// intern returns the format's fixed names and values without allocating;
// anything else is copied into a new string.
func intern(b []byte) string {
	switch string(b) { // no allocation: the compiler compares in place
	case "hdr":
		return "hdr"
	case "data":
		return "data"
	case "tag":
		return "tag"
	case "v":
		return "v"
	case "id":
		return "id"
	case "snd":
		return "snd"
	case "rcp":
		return "rcp"
	case "typ":
		return "typ"
	case "iat":
		return "iat"
	case "key":
		return "key"
	case "alg":
		return "alg"
	case "kid":
		return "kid"
	case "wk":
		return "wk"
	case "$enc":
		return "$enc"
	case "ct":
		return "ct"
	case "random":
		return "random"
	case "deterministic":
		return "deterministic"
	case AlgHPKE:
		return AlgHPKE
	case AlgAEAD:
		return AlgAEAD
	}
	return string(b)
}
