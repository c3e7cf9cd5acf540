package envelope

import (
	"encoding/base64"
	"unicode/utf8"
)

// Mode is how a field value is encrypted.
type Mode uint8

const (
	// Random is AES-256-GCM under the message's data key, with associated
	// data binding the ciphertext to its message, sender, recipient, type and
	// exact JSON path. Equal values give unrelated ciphertexts.
	Random Mode = 1
	// Deterministic is Tink Deterministic AEAD (AES-SIV) under the
	// recipient's long-lived deterministic keyset, with associated data type +
	// schema path only. Equal values at the same schema place give equal
	// ciphertexts in every message to that recipient: equality leaks, by
	// design, so that the recipient can join or look values up.
	Deterministic Mode = 2
)

// String returns the name written in a marker's "$enc" member.
func (m Mode) String() string {
	switch m {
	case Random:
		return "random"
	case Deterministic:
		return "deterministic"
	default:
		return "invalid"
	}
}

func appendMarker(dst []byte, mode Mode, ct []byte) []byte {
	dst = append(dst, `{"$enc":"`...)
	dst = append(dst, mode.String()...)
	dst = append(dst, `","ct":"`...)
	dst = base64.RawURLEncoding.AppendEncode(dst, ct)
	return append(dst, `"}`...)
}

// parseMarker reads a marker object: exactly the members "$enc" and "ct"
// (any order, JSON whitespace allowed), "$enc" naming mode, "ct" strict
// base64url. It returns the decoded ct.
func parseMarker(b []byte, mode Mode) ([]byte, error) { return appendMarkerCT(nil, b, mode) }

// appendMarkerCT is parseMarker appending the decoded ct to dst, as append
// does: the result is dst followed by ct.
func appendMarkerCT(dst, b []byte, mode Mode) ([]byte, error) {
	if out, ok := parseCanonicalMarker(dst, b, mode); ok {
		return out, nil
	}
	if !utf8.Valid(b) {
		return nil, parseErr("invalid UTF-8 in marker")
	}
	s := &scanner{b: b}
	s.ws()
	var enc string
	var ct []byte
	var haveEnc, haveCT bool
	err := s.members(func(name string) error {
		var err error
		switch name {
		case "$enc":
			enc, err = s.str()
			haveEnc = true
		case "ct":
			ct, err = s.b64()
			haveCT = true
		default:
			err = parseErr("unknown member in marker")
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if !haveEnc || !haveCT {
		return nil, parseErr("missing member in marker")
	}
	s.ws()
	if !s.eof() {
		return nil, parseErr("trailing data after the marker")
	}
	if enc != mode.String() {
		// A marker of the other mode (or of no known mode) where the plan
		// expects this one: a downgrade attempt or a schema mismatch.
		return nil, ErrCannotOpen
	}
	return append(dst, ct...), nil
}

// Canonical marker openings, as appendMarker writes them.
const (
	randomMarker        = `{"$enc":"random","ct":"`
	deterministicMarker = `{"$enc":"deterministic","ct":"`
)

// parseCanonicalMarker reads a marker in the canonical form appendMarker
// writes, of the given mode, with a ct that decodes: what parseMarker
// returns for such input, without its general parser. It reports false for
// anything else, which parseMarker then judges.
func parseCanonicalMarker(dst, b []byte, mode Mode) ([]byte, bool) {
	open := randomMarker
	if mode == Deterministic {
		open = deterministicMarker
	} else if mode != Random {
		return nil, false
	}
	if len(b) < len(open)+2 || string(b[:len(open)]) != open || b[len(b)-2] != '"' || b[len(b)-1] != '}' {
		return nil, false
	}
	ct := b[len(open) : len(b)-2]
	for _, c := range ct {
		if !isB64URL(c) {
			return nil, false
		}
	}
	out, err := b64URLStrict.AppendDecode(dst, ct)
	if err != nil {
		return nil, false
	}
	return out, true
}
