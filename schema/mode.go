package schema

// Mode says how one field reaches one recipient.
type Mode uint8

const (
	// Stripped: the field is not sent to the recipient at all. It is the zero
	// Mode, so anything not explicitly shared is stripped (default deny).
	Stripped Mode = iota
	// Clear: the field is sent as plain JSON at its place. It is still covered
	// by the envelope's integrity tag, but anyone on the path can read it.
	Clear
	// Random: the field is encrypted with a randomized AEAD; equal values give
	// unrelated ciphertexts.
	Random
	// Deterministic: the field is encrypted with a deterministic AEAD
	// (AES-SIV): equal values at the same place give equal ciphertexts for the
	// same recipient, so they can be joined or looked up. That equality is
	// visible to anyone who sees two envelopes: use it only where it is needed.
	Deterministic
)

// String returns "stripped", "clear", "random" or "deterministic".
func (m Mode) String() string {
	switch m {
	case Stripped:
		return "stripped"
	case Clear:
		return "clear"
	case Random:
		return "random"
	case Deterministic:
		return "deterministic"
	}
	return "invalid"
}

// Encrypted reports whether m is Random or Deterministic.
func (m Mode) Encrypted() bool { return m == Random || m == Deterministic }

// Kind says how the values of a [Node] are written and read.
type Kind uint8

const (
	// Unsupported: a type this package cannot put on the wire (channels,
	// functions, complex numbers, unsafe pointers, maps with unusable keys).
	// A shared field never has such a node: that is a [TagError].
	Unsupported Kind = iota
	Bool
	Int    // any signed integer kind; the Go type gives the size
	Uint   // any unsigned integer kind, uintptr included
	Float  // float32 or float64; the Go type gives the size
	String // any string kind without marshalling methods
	// Bytes is a []byte (of any named type) written as base64 like
	// encoding/json.
	Bytes
	// JSON is a leaf written and read by encoding/json: a type with a
	// MarshalJSON or MarshalText method (with a value or pointer receiver),
	// such as time.Time, json.RawMessage or json.Number.
	JSON
	Struct
	Pointer
	Slice
	Array
	Map
	// Interface: an interface type. It cannot be filtered by tags (the
	// dynamic value could be any struct), so it is never shared.
	Interface
)

var kindNames = [...]string{"unsupported", "bool", "int", "uint", "float", "string", "bytes", "json",
	"struct", "pointer", "slice", "array", "map", "interface"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "invalid"
}

// KeyKind says how the keys of a map are written and read, following
// encoding/json.
type KeyKind uint8

const (
	// KeyString: a string kind, written as is. When the key type's pointer
	// has an UnmarshalText method it is read with it, as encoding/json does.
	KeyString KeyKind = iota + 1
	// KeyText: a type with a MarshalText method (value receiver) and an
	// UnmarshalText method.
	KeyText
	KeyInt  // a signed integer kind, written in decimal
	KeyUint // an unsigned integer kind, written in decimal
)
