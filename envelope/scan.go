package envelope

import (
	"encoding/binary"
	"encoding/json"
	"math/bits"
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

// plainStr reads a JSON string without escapes or control characters and
// returns its bytes (aliasing the input); on anything else it reports false
// and consumes nothing, for str to judge.
func (s *scanner) plainStr() ([]byte, bool) {
	if s.next() != '"' {
		return nil, false
	}
	i := s.i + 1
	for i < len(s.b) && plainStringByte[s.b[i]] {
		i++
	}
	if i >= len(s.b) || s.b[i] != '"' {
		return nil, false
	}
	v := s.b[s.i+1 : i]
	s.i = i + 1
	return v, true
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
		// Runs of plain bytes first: they are nearly all of a string.
		i, b := s.i, s.b
		for i < len(b) && plainStringByte[b[i]] {
			i++
		}
		s.i = i
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			s.i++
			return nil
		case c < 0x20:
			return parseErr("control character in string")
		default: // '\\'
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

// validJSON reports whether b is one JSON value in UTF-8 (SPEC.md part 1,
// section 8.1): json.Valid (one value, whitespace around it allowed) and
// utf8.Valid, since json.Valid does not check the bytes inside strings. It
// has a fast path for the values sensitive fields hold most: a string
// without escapes, a number, true, false and null, written without
// whitespace. Everything else goes to utf8.Valid and json.Valid, so the
// answer is always theirs.
func validJSON(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	switch c := b[0]; {
	case c == '"':
		if len(b) >= 2 && b[len(b)-1] == '"' {
			i, or := 1, byte(0)
			for i < len(b)-1 && plainStringByte[b[i]] {
				or |= b[i]
				i++
			}
			if i == len(b)-1 {
				// One string, no escape, no control character: valid
				// JSON, and valid UTF-8 when it is ASCII or its body is.
				return or < utf8.RuneSelf || utf8.Valid(b[1:i])
			}
		}
	case c == '-' || c >= '0' && c <= '9':
		s := scanner{b: b}
		if _, err := s.number(); err == nil && s.eof() {
			return true
		}
	case string(b) == "true" || string(b) == "false" || string(b) == "null":
		return true
	}
	return utf8.Valid(b) && json.Valid(b)
}

// plainStringByte[c]: c may appear as it is inside a JSON string (at least
// 0x20, not '"', not '\\'). Bytes from 0x80 are accepted, as json.Valid
// and the scanner accept them; UTF-8 is checked separately, always: by
// parseInto and Finish for a whole envelope or data object, by parseMarker
// for a marker, by validJSON for a field plaintext.
var plainStringByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// skipValue is s.value(depth) for the common case of valid input, without
// recursion or a call per token: it returns the end of the value starting
// at b[i] and true, or false for input s.value refuses (which then says
// why). It accepts exactly what s.value accepts: the same grammar, the same
// nesting limit (the value itself at level depth).
func skipValue(b []byte, i, depth int) (int, bool) {
	var objects [(maxDepth + 63) / 64]uint64 // bit n: the container at level n is an object
	open := 0                                // containers open
	member := false                          // a member name starts at b[i], not a value
	for {
		if member {
			i = plainRun(b, i+1) // after the opening quote, checked by the caller
			if i >= len(b) || b[i] != '"' {
				var ok bool
				if i, ok = skipStringFast(b, i-1); !ok { // escapes: from where it started
					return 0, false
				}
			} else {
				i++
			}
			for i < len(b) && isWS(b[i]) {
				i++
			}
			if i >= len(b) || b[i] != ':' {
				return 0, false
			}
			i++
			for i < len(b) && isWS(b[i]) {
				i++
			}
			member = false
		}
		// A value starts at b[i].
		if i >= len(b) {
			return 0, false
		}
		switch c := b[i]; c {
		case '{', '[':
			if depth+open > maxDepth {
				return 0, false
			}
			if c == '{' && len(b)-i > len(randomMarker) && b[i+2] == '$' {
				// A marker in its canonical form is one string after a
				// fixed opening: no need to walk it token by token.
				if end, ok := skipMarker(b, i); ok {
					i = end
					break
				}
			}
			if c == '{' {
				objects[open>>6] |= 1 << (open & 63)
			} else {
				objects[open>>6] &^= 1 << (open & 63)
			}
			open++
			i++
			for i < len(b) && isWS(b[i]) {
				i++
			}
			if i < len(b) && b[i] == c+2 { // '{'+2 is '}', '['+2 is ']'
				i++
				open--
				break
			}
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return 0, false
				}
				member = true
			}
			continue
		case '"':
			j := plainRun(b, i+1)
			if j < len(b) && b[j] == '"' {
				i = j + 1
				break
			}
			var ok bool
			if i, ok = skipStringFast(b, i); !ok {
				return 0, false
			}
		case 't', 'n':
			if len(b)-i < 4 || string(b[i:i+4]) != "true" && string(b[i:i+4]) != "null" {
				return 0, false
			}
			i += 4
		case 'f':
			if len(b)-i < 5 || string(b[i:i+5]) != "false" {
				return 0, false
			}
			i += 5
		default:
			var ok bool
			if i, ok = skipNumber(b, i); !ok {
				return 0, false
			}
		}
		// A value ended before b[i]: close what it ends, then what follows.
		for {
			if open == 0 {
				return i, true
			}
			for i < len(b) && isWS(b[i]) {
				i++
			}
			if i >= len(b) {
				return 0, false
			}
			obj := objects[(open-1)>>6]&(1<<((open-1)&63)) != 0
			c := b[i]
			if c == '}' && obj || c == ']' && !obj {
				i++
				open--
				continue
			}
			if c != ',' {
				return 0, false
			}
			i++
			for i < len(b) && isWS(b[i]) {
				i++
			}
			if obj {
				if i >= len(b) || b[i] != '"' {
					return 0, false
				}
				member = true
			}
			break
		}
	}
}

// skipMarker reads a marker object at b[i] in the form appendMarker writes,
// {"$enc":"random","ct":"…"} or {"$enc":"deterministic","ct":"…"}, with a
// ct free of escapes and control characters, and returns its end. Anything
// else is left to the general walk.
func skipMarker(b []byte, i int) (int, bool) {
	for _, open := range [...]string{randomMarker, deterministicMarker} {
		if len(b)-i > len(open) && string(b[i:i+len(open)]) == open {
			j := plainRun(b, i+len(open))
			if j+1 < len(b) && b[j] == '"' && b[j+1] == '}' {
				return j + 2, true
			}
			return 0, false
		}
	}
	return 0, false
}

// skipNumber reads an RFC 8259 number at b[i], as scanner.number does.
func skipNumber(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0, false
		}
	}
	return i, true
}

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// plainRun returns the index of the first byte from b[i] on that cannot
// stand as it is in a JSON string (a quote, a backslash or a control
// character), or len(b). Eight bytes at a time while there are eight.
func plainRun(b []byte, i int) int {
	for i+8 <= len(b) {
		x := binary.LittleEndian.Uint64(b[i:])
		const ones, highs = 0x0101010101010101, 0x8080808080808080
		q, bs := x^(ones*'"'), x^(ones*'\\')
		// The classic "has less" and "has zero" tests: the lowest high bit
		// set marks the first byte below 0x20, '"' or '\\' (a borrow only
		// ever reaches the bytes above it); bytes from 0x80 are never
		// marked.
		if m := ((x-ones*0x20)&^x | (q-ones)&^q | (bs-ones)&^bs) & highs; m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		i += 8
	}
	for i < len(b) && plainStringByte[b[i]] {
		i++
	}
	return i
}

// skipStringFast is skipString over b from i (a '"'): the index after the
// closing quote, or false.
func skipStringFast(b []byte, i int) (int, bool) {
	i++
	for {
		i = plainRun(b, i)
		if i >= len(b) {
			return 0, false
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return 0, false
		}
		// A backslash.
		if i+1 >= len(b) {
			return 0, false
		}
		switch b[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if i+6 > len(b) {
				return 0, false
			}
			for _, h := range b[i+2 : i+6] {
				if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
					return 0, false
				}
			}
			i += 6
		default:
			return 0, false
		}
	}
}
